"""``resmon tokens create|list|revoke``: API tokens from the command line.

resmon tokens create --user alice --scope ingest --name "lon push agent" [--expires-days 90]
resmon tokens list [--user alice] [--all]
resmon tokens revoke ID
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from resourcemonitor.api.models import TOKEN_MARK, ApiToken, Scope, parse_scopes


class Command(BaseCommand):
    help = "Create, list and revoke API tokens (only a hash is stored; a token is shown once)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser("create", help="create a token and print it, once")
        create.add_argument("--user", required=True, help="the user the token acts as")
        create.add_argument(
            "--scope",
            action="append",
            required=True,
            help=f"{', '.join(Scope.values)}; repeat or comma-separate for several",
        )
        create.add_argument("--name", required=True, help="what the token is for")
        create.add_argument("--expires-days", type=float, help="expire after this many days")
        listing = actions.add_parser("list", help="list tokens (never their secrets)")
        listing.add_argument("--user", help="only this user's tokens")
        listing.add_argument("--all", action="store_true", help="include revoked and expired")
        revoke = actions.add_parser("revoke", help="revoke a token by its id")
        revoke.add_argument("id", type=int, help="the token's id (from `resmon tokens list`)")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _create(self, options: dict[str, Any]) -> None:
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: options["user"]})
        except user_model.DoesNotExist:
            raise CommandError(f"--user: no user named {options['user']!r}") from None
        try:
            scopes = parse_scopes(",".join(options["scope"]))
        except ValueError as exc:
            raise CommandError(f"--scope: {exc}") from None
        name = options["name"].strip()
        if not name or len(name) > 100:
            raise CommandError("--name: give 1 to 100 characters")
        expires_at = None
        if options["expires_days"] is not None:
            if not 0 < options["expires_days"] <= 36500:
                raise CommandError("--expires-days: must be more than 0 and at most 36500")
            expires_at = timezone.now() + timedelta(days=options["expires_days"])
        token, plain = ApiToken.issue(user=user, name=name, scopes=scopes, expires_at=expires_at)
        self.stderr.write(
            f"Created token {token.pk} ({','.join(scopes)}) for {user.get_username()}. "
            "It is shown once; store it now:"
        )
        self.stdout.write(plain)

    def _list(self, options: dict[str, Any]) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("id")
        if options["user"]:
            tokens = tokens.filter(user__username=options["user"])
        if not options["all"]:
            tokens = tokens.active()
        self.stdout.write(
            f"{'id':>5}  {'user':<16} {'name':<24} {'prefix':<13} {'scopes':<18} "
            f"{'created':<17} {'last used':<17} state"
        )
        for token in tokens:
            state = "active" if token.is_active else ("revoked" if token.revoked_at else "expired")
            self.stdout.write(
                f"{token.pk:>5}  {token.user.get_username():<16.16} {token.name:<24.24} "
                f"{TOKEN_MARK + token.prefix:<13} {token.scopes:<18} "
                f"{_when(token.created_at):<17} {_when(token.last_used_at):<17} {state}"
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        token = ApiToken.objects.filter(pk=options["id"]).first()
        if token is None:
            raise CommandError(f"no token with id {options['id']}")
        if token.revoke():
            self.stdout.write(f"Revoked token {token.pk} ({token.name}).")
        else:
            self.stdout.write(f"Token {token.pk} was already revoked.")


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"
