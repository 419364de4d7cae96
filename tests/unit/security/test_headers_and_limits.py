"""CSP and friends on every response; oversized bodies refused with 413; ingest rate."""

from __future__ import annotations

import pytest
from ninja.errors import HttpError

from resourcemonitor.security import CONTENT_SECURITY_POLICY, TokenBucket, check_ingest_rate

from .conftest import issue


@pytest.mark.parametrize(
    "url", ["/", "/admin/login/", "/api/v1/devices", "/api/v1/docs", "/healthz", "/nope"]
)
def test_strict_csp_everywhere(client, settings, network, url):
    settings.RESMON_PUBLIC_DASHBOARD = True
    response = client.get(url)
    policy = response["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY
    directives = dict(part.split(" ", 1) for part in policy.split("; "))
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in policy
    assert directives["frame-ancestors"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_dashboard_has_no_inline_script_or_style(client, settings, network):
    settings.RESMON_PUBLIC_DASHBOARD = True
    network.core.name = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    network.core.save()
    html = client.get("/").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    for line in html.splitlines():
        stripped = line.strip()
        if stripped.startswith("<script"):
            # External modules or JSON data blocks only: nothing CSP would have to run inline.
            assert " src=" in stripped or 'type="application/json"' in stripped, stripped
    assert " style=" not in html
    assert " onclick=" not in html and " onerror=" not in html


def test_declared_oversized_body_is_413_json(client, bob, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    _, plain = issue(bob, "write")
    response = client.post(
        "/api/v1/tokens",
        "x" * 4096,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {plain}",
    )
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_bad_content_length_is_400(client, db):
    response = client.generic("POST", "/api/v1/tokens", b"{}", CONTENT_LENGTH="lots")
    assert response.status_code == 400


def test_token_bucket():
    bucket = TokenBucket(rate=2, burst=4)
    assert [bucket.take("t", now=0.0) for _ in range(4)] == [0.0] * 4
    assert bucket.take("t", now=0.0) == pytest.approx(0.5)
    assert bucket.take("other", now=0.0) == 0.0
    assert bucket.take("t", now=0.5) == 0.0  # one refilled
    assert bucket.take("t", cost=10, now=100.0) > 0  # never more than the burst


def test_check_ingest_rate_raises_429(settings):
    settings.RESMON_INGEST_RATE_PER_S = 1.0
    check_ingest_rate(123456)
    check_ingest_rate(123456)
    with pytest.raises(HttpError) as raised:
        check_ingest_rate(123456)
    assert raised.value.status_code == 429 and "retry in" in str(raised.value)


def test_no_source_file_needs_unsafe_inline():
    """The CSP forbids inline script, handlers and style attributes: keep them out of every
    template, admin display and script we ship (vendored libraries aside)."""
    import re
    from pathlib import Path

    import resourcemonitor

    root = Path(resourcemonitor.__file__).parent
    forbidden = re.compile(
        r"<script>|<script\s+(?![^>]*\b(?:src|type=\"application/json\"))[^>]*>"
        r"|<[a-z][^>]*\s(?:on[a-z]+|style)=|\.innerHTML\s*=|insertAdjacentHTML|outerHTML\s*="
    )
    offenders = []
    for path in root.rglob("*"):
        if path.suffix not in {".html", ".js", ".py"} or "vendor" in path.parts:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if forbidden.search(line):
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []
