"""/api/v1/tokens: list, create and revoke API tokens. Your own; an admin sees all.

Creating and revoking need a logged-in session (with CSRF) or a token with the write
scope; the plain token is in the create answer only, never again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Path, Router, Schema, Status
from pydantic import field_validator

from resourcemonitor.api.auth import Principal, TokenOrSession
from resourcemonitor.api.models import TOKEN_MARK, ApiToken, Scope, parse_scopes
from resourcemonitor.api.schemas import ErrorOut

router = Router(tags=["tokens"])

# Larger ids overflow a 64-bit column: a 422, not a database error.
MAX_ID = 2**63 - 1

read_own = TokenOrSession(scope=Scope.READ, public_read=False)
write_own = TokenOrSession(scope=Scope.WRITE)


class TokenOut(Schema):
    id: int
    name: str
    user: str
    prefix: str = Field(description="The token's public start, to recognise it")
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = Field(description="Updated at most once a minute")
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


class TokenList(Schema):
    items: list[TokenOut]


class TokenIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=3, description="read, write, ingest")
    expires_at: datetime | None = Field(None, description="Optional; must be in the future")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        return parse_scopes(value)

    @field_validator("expires_at")
    @classmethod
    def _expiry(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value <= timezone.now():
            raise ValueError("expires_at must be in the future")
        return value


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself: shown once, store it now")


def _out(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.pk,
        "name": token.name,
        "user": token.user.get_username(),
        "prefix": f"{TOKEN_MARK}{token.prefix}",
        "scopes": token.scope_list,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "active": token.is_active,
    }


@router.get("/tokens", response={200: TokenList}, auth=read_own, summary="API tokens you can see")
def token_list(request: HttpRequest) -> dict[str, Any]:
    principal: Principal = request.auth  # type: ignore[attr-defined]
    tokens = ApiToken.objects.visible_to(principal.user).select_related("user")[:1000]
    return {"items": [_out(token) for token in tokens]}


@router.post(
    "/tokens",
    response={201: TokenCreated, 403: ErrorOut, 422: ErrorOut},
    auth=write_own,
    summary="Create a token for yourself (the answer holds it, once)",
)
def token_create(request: HttpRequest, payload: TokenIn) -> Status:
    principal: Principal = request.auth  # type: ignore[attr-defined]
    token, plain = ApiToken.issue(
        user=principal.user, name=payload.name, scopes=payload.scopes, expires_at=payload.expires_at
    )
    return Status(201, {**_out(token), "token": plain})


@router.post(
    "/tokens/{token_id}/revoke",
    response={200: TokenOut, 404: ErrorOut},
    auth=write_own,
    summary="Revoke a token (yours; an admin may revoke any)",
)
def token_revoke(
    request: HttpRequest, token_id: int = Path(..., ge=1, le=MAX_ID)
) -> dict[str, Any]:
    principal: Principal = request.auth  # type: ignore[attr-defined]
    token = get_object_or_404(
        ApiToken.objects.visible_to(principal.user).select_related("user"), pk=token_id
    )
    token.revoke()
    return _out(token)
