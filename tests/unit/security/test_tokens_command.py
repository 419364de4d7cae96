"""`resmon tokens create|list|revoke`."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from resourcemonitor.api.models import ApiToken


def test_create_prints_the_token_only_once(bob, capsys):
    call_command("tokens", "create", "--user", "bob", "--scope", "ingest", "--name", "push agent")
    out = capsys.readouterr()
    plain = out.out.strip()
    token = ApiToken.find(plain)
    assert token is not None and token.scope_list == ["ingest"] and token.name == "push agent"
    assert "shown once" in out.err
    call_command("tokens", "list")
    listing = capsys.readouterr().out
    assert "push agent" in listing and token.prefix in listing and plain not in listing


def test_scopes_repeat_or_comma(bob, capsys):
    call_command(
        "tokens",
        "create",
        "--user",
        "bob",
        "--scope",
        "read,write",
        "--scope",
        "ingest",
        "--name",
        "n",
    )
    assert ApiToken.find(capsys.readouterr().out.strip()).scope_list == ["read", "write", "ingest"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody", "--scope", "read", "--name", "n"], "--user: no user named 'nobody'"),
        (["--user", "bob", "--scope", "root", "--name", "n"], "--scope: unknown scope 'root'"),
        (["--user", "bob", "--scope", "read", "--name", " "], "--name"),
        (
            ["--user", "bob", "--scope", "read", "--name", "n", "--expires-days", "-1"],
            "--expires-days",
        ),
    ],
)
def test_create_errors_name_the_flag(bob, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("tokens", "create", *args)
    assert not ApiToken.objects.exists()


def test_revoke(bob, capsys):
    token, plain = ApiToken.issue(user=bob, name="n", scopes=["read"])
    call_command("tokens", "revoke", str(token.pk))
    assert "Revoked" in capsys.readouterr().out
    assert ApiToken.find(plain) is None
    call_command("tokens", "list")
    assert "n " not in capsys.readouterr().out.split("\n", 1)[1]
    call_command("tokens", "list", "--all")
    assert "revoked" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no token with id 999"):
        call_command("tokens", "revoke", "999")
