"""Forms for the self-service pages: devices and maintenance windows.

ModelForms, so the models' own ``clean()`` (dependency cycles, a window ending before it
starts) runs and its errors land next to the field they name.
"""

from __future__ import annotations

from typing import Any

from django import forms

from resourcemonitor.inventory.models import Device, Kind, MaintenanceWindow

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


class DeviceForm(forms.ModelForm):
    class Meta:
        model = Device
        fields = [
            "name",
            "address",
            "kind",
            "site",
            "parent",
            "tags",
            "enabled",
            "check_method",
            "check_port",
            "check_path",
            "check_tls",
            "check_expect_status",
            "check_body_match",
            "check_interval_s",
            "check_timeout_s",
            "fail_threshold",
            "recover_threshold",
            "latency_threshold_ms",
            "slo_target",
        ]
        labels = {
            "check_method": "Check method",
            "check_port": "Port",
            "check_path": "HTTP path",
            "check_tls": "HTTPS",
            "check_expect_status": "Expected HTTP status",
            "check_body_match": "Body must contain",
            "check_interval_s": "Interval (s)",
            "check_timeout_s": "Timeout (s)",
            "latency_threshold_ms": "Degraded above (ms)",
            "slo_target": "SLO target (%)",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        parents = Device.objects.order_by("name").only("id", "name")
        if self.instance.pk:
            parents = parents.exclude(pk=self.instance.pk)
        self.fields["parent"].queryset = parents  # type: ignore[attr-defined]


class MaintenanceWindowForm(forms.ModelForm):
    kinds = forms.MultipleChoiceField(
        choices=Kind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Every device of these kinds",
    )

    class Meta:
        model = MaintenanceWindow
        fields = [
            "name",
            "reason",
            "starts_at",
            "ends_at",
            "recurrence",
            "until",
            "devices",
            "sites",
            "tags",
            "kinds",
        ]
        labels = {
            "starts_at": "Starts (UTC)",
            "ends_at": "Ends (UTC)",
            "until": "Repeat until (UTC)",
        }
        widgets = {
            name: forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_FORMAT)
            for name in ("starts_at", "ends_at", "until")
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["devices"].queryset = Device.objects.order_by("name").only("id", "name")  # type: ignore[attr-defined]
        for name in ("starts_at", "ends_at", "until"):
            field = self.fields[name]
            assert isinstance(field, forms.DateTimeField)
            field.input_formats = [DATETIME_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
