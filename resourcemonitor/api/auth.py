"""Who may do what: API tokens, Django sessions and three roles.

Use these, not your own checks:

* **django-ninja endpoints**: ``auth=TokenOrSession(scope=..., role=...)`` on the route (or
  the router). Examples::

      @router.post("/incidents/{id}/ack", auth=TokenOrSession(scope="write", role="operator"))
      @router.post("/ingest", auth=TokenOrSession(scope="ingest"))

  A request passes with ``Authorization: Bearer rmt_…`` (an :class:`ApiToken` holding the
  scope, whose user has the role) or with a logged-in session whose user has the role. A
  session's unsafe request (POST, PUT, PATCH, DELETE) must carry Django's CSRF token
  (``X-CSRFToken`` header); a bearer token needs none. A session has no scopes; for
  ``ingest`` it needs at least the operator role. Reads (``scope="read"``, role
  viewer) are also open to anyone while ``RESMON_PUBLIC_DASHBOARD`` is on. Inside the view
  ``request.auth`` is a :class:`Principal` (``.user``, ``.token``, ``.role``).
  No credentials → 401; credentials without the scope or role → 403; both JSON.
* **Django views** (dashboard forms): ``@role_required("operator")`` on the view, or
  ``require_role(request, "operator")`` inside it (raises ``PermissionDenied`` → 403; an
  anonymous user is sent to the login page by the decorator). Django's CSRF middleware
  already protects their POSTs.
* The API object is a :class:`SecuredNinjaAPI`, so every secured operation documents its
  401 and 403 answers (and 413 where it takes a body) in the OpenAPI schema.
* ``role_of(user)`` → ``"admin"``, ``"operator"``, ``"viewer"`` or ``None``.

Roles are Django groups named ``viewer``, ``operator`` and ``admin`` (created by a
migration). A superuser is an admin; any other active user is at least a viewer. viewer:
read. operator: + acknowledge incidents, maintenance windows, pause/resume devices.
admin: everything, including every user's tokens.

Scopes of a token: ``read``; ``write`` (implies read); ``ingest`` (push results only).
A token can never do more than its user's role allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import NinjaAPI
from ninja.errors import AuthorizationError
from ninja.security.http import HttpBearer
from ninja.utils import check_csrf

from resourcemonitor.api.models import ROLE_RANK, ApiToken, Role, Scope

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., HttpResponse])


def role_of(user: Any) -> str | None:
    """The strongest role of an active user; None for anonymous or inactive users."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    # Cached on the user object: several checks in one request cost one query.
    cached = getattr(user, "_resmon_role", None)
    if cached is not None:
        return str(cached)
    names = set(user.groups.filter(name__in=Role.values).values_list("name", flat=True))
    role = next(
        (role for role in (Role.ADMIN, Role.OPERATOR) if role in names),
        Role.VIEWER,
    )
    user._resmon_role = role
    return str(role)


def has_role(user: Any, role: str) -> bool:
    held = role_of(user)
    return held is not None and ROLE_RANK[Role(held)] >= ROLE_RANK[Role(role)]


def require_role(request: HttpRequest, role: str) -> None:
    """Raise PermissionDenied unless the request's user has ``role`` (or a stronger one)."""
    if not has_role(getattr(request, "user", None), role):
        raise PermissionDenied(f"this needs the {role} role")


def role_required(role: str) -> Callable[[ViewFunc], ViewFunc]:
    """Decorator for Django views: anonymous → the login page; too weak a role → 403."""
    Role(role)  # fail at import on a typo

    def decorator(view: ViewFunc) -> ViewFunc:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                # /login/ admits every user; settings.LOGIN_URL (the admin's) only staff.
                return redirect_to_login(request.get_full_path(), reverse("login"))
            require_role(request, role)
            return view(request, *args, **kwargs)

        return cast(ViewFunc, wrapper)

    return decorator


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user (by session or token), or the public."""

    user: Any | None
    token: ApiToken | None
    role: str | None
    via: str  # "token", "session" or "public"

    def __bool__(self) -> bool:
        return True


class TokenOrSession(HttpBearer):
    """django-ninja auth: a bearer token with ``scope``, or a session, with ``role``.

    See the module docstring. ``public_read=False`` keeps a read endpoint private even
    when the dashboard is public (for example the token list).
    """

    openapi_scheme = "bearer"

    def __init__(
        self, scope: str = Scope.READ, role: str = Role.VIEWER, *, public_read: bool = True
    ) -> None:
        self.scope = Scope(scope)
        self.role = Role(role)
        self.public_read = public_read and self.scope == Scope.READ and self.role == Role.VIEWER
        super().__init__()

    def __call__(self, request: HttpRequest) -> Principal | None:
        header = request.headers.get("Authorization")
        if header:
            return self._by_token(request, header)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return self._by_session(request, user)
        if self.public_read and settings.RESMON_PUBLIC_DASHBOARD:
            return Principal(user=None, token=None, role=None, via="public")
        return None

    def _by_token(self, request: HttpRequest, header: str) -> Principal | None:
        kind, _, plain = header.partition(" ")
        if kind.lower() != "bearer" or not plain.strip():
            return None
        token = ApiToken.find(plain.strip())
        if token is None:
            return None
        if not token.allows(self.scope):
            raise AuthorizationError(message=f"this token lacks the {self.scope} scope")
        if not has_role(token.user, self.role):
            raise AuthorizationError(message=f"the token's user lacks the {self.role} role")
        token.touch()
        return Principal(user=token.user, token=token, role=role_of(token.user), via="token")

    def _by_session(self, request: HttpRequest, user: Any) -> Principal:
        unsafe = request.method in UNSAFE_METHODS
        exempt = getattr(request, "_ninja_csrf_exempt", False)
        if unsafe and not exempt and check_csrf(request) is not None:
            # AuthorizationError (a 403), like every refusal here, so callers outside
            # ninja (the /metrics view) catch one type.
            raise AuthorizationError(
                message="CSRF check failed: send the csrftoken cookie's value in an "
                "X-CSRFToken header, or use an API token"
            )
        # A session has no scopes: pushing results from a browser takes an operator.
        needed = self.role
        if self.scope == Scope.INGEST and ROLE_RANK[needed] < ROLE_RANK[Role.OPERATOR]:
            needed = Role.OPERATOR
        if not has_role(user, needed):
            raise AuthorizationError(message=f"this needs the {needed} role")
        return Principal(user=user, token=None, role=role_of(user), via="session")

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        # Required by HttpBearer; __call__ above decides without it.
        return None


# The API's default: read, open to the public when RESMON_PUBLIC_DASHBOARD is on.
read_access = TokenOrSession(scope=Scope.READ, role=Role.VIEWER)
# Kept for code written against the first version of this module.
ReadAccess = TokenOrSession


_ERROR_BODY = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"detail": {"title": "Detail"}},
            "required": ["detail"],
        }
    }
}
_AUTH_RESPONSES = {
    401: "No valid credentials (no token or session; or a wrong, revoked or expired token)",
    403: "Credentials without the scope or role this needs, or a session POST without CSRF",
}


class SecuredNinjaAPI(NinjaAPI):
    """A NinjaAPI whose OpenAPI schema documents the answers every secured operation can
    give: 401 and 403 from the auth, 413 for an oversized body (security.py)."""

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(*args, **kwargs)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                # ninja keys responses by int; a str key beside it would be a duplicate
                # in the JSON (Swagger UI refuses the whole schema then).
                present = {str(code) for code in responses}
                wanted = dict(_AUTH_RESPONSES) if operation.get("security") else {}
                if "requestBody" in operation:
                    wanted[413] = "Request body too large"
                for code, description in wanted.items():
                    if str(code) not in present:
                        responses[code] = {"description": description, "content": _ERROR_BODY}
        return schema
