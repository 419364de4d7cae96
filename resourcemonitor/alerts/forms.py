"""The channel form: model validation (apprise URL, addresses) reported per field."""

from __future__ import annotations

from django import forms

from resourcemonitor.alerts.models import Channel, Severity
from resourcemonitor.inventory.models import Kind


class ChannelForm(forms.ModelForm):
    severities = forms.MultipleChoiceField(
        choices=Severity.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    device_kinds = forms.MultipleChoiceField(
        choices=Kind.choices, required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Channel
        fields = [
            "name",
            "kind",
            "target",
            "enabled",
            "severities",
            "device_kinds",
            "sites",
            "tags",
        ]
        widgets = {"target": forms.TextInput(attrs={"size": 60})}
        help_texts = {
            "target": "An apprise URL (json://host/path, slack://…, msteams://…, discord://…, "
            "tgram://…) or, for email, comma-separated addresses. Empty filters match all.",
        }


class ChannelRoutingForm(ChannelForm):
    """What an operator may change on an existing channel: everything but the target,
    which holds the channel's secrets (tokens, passwords) and stays with admins."""

    class Meta(ChannelForm.Meta):
        fields = [f for f in ChannelForm.Meta.fields if f != "target"]
