"""Schemathesis against /api/v1/openapi.json on a live server: no 5xx, no schema violation.

Two passes against a private server (RESMON_PUBLIC_DASHBOARD off, as in production):
anonymous, where every operation must refuse with a documented 401, and with an API
token holding every scope, where schemathesis also replays requests without the token to
check that no operation ignores auth. Bounded by
``MAX_EXAMPLES`` per operation so the module stays well under a minute.

Schemathesis' own pytest plugin (``from_fixture``/``parametrize``) does not run under
pytest 9 yet, so each operation's strategy is driven by Hypothesis directly; every
failing operation is reported, not only the first.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.fuzz.conftest import LiveServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MAX_EXAMPLES = 15
# "Schema-valid request rejected" flags a parameter documented as a plain string (a
# timestamp, say) whose validator refuses some strings with a 422. That answer is right:
# no JSON Schema pattern can say "a valid ISO 8601 time". Every other check runs: no 5xx,
# documented status codes and content types, responses matching their schemas, invalid
# input rejected, auth not ignored.
EXCLUDED_CHECKS = [positive_data_acceptance]
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)


@pytest.fixture(scope="module")
def api_schema(resmon_server: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{resmon_server.url}/api/v1/openapi.json")


def fuzz(api_schema: Any, headers: dict[str, str], *, skip: frozenset[str] = frozenset()) -> int:
    """Fuzz every operation; returns how many ran, fails listing every broken one."""
    failures: list[str] = []
    ran = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.label in skip:
            continue
        ran += 1

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, excluded_checks=EXCLUDED_CHECKS)

        try:
            check()
        except Exception as exc:  # collect them all: one broken endpoint must not hide others
            failures.append(f"{operation.label}:\n{exc}")
    assert not failures, "\n\n".join(failures)
    return ran


def test_anonymous(api_schema: Any) -> None:
    assert fuzz(api_schema, {}) >= 8


def test_with_a_token(api_schema: Any, resmon_server: LiveServer) -> None:
    # Revoking could hit the fuzzer's own token (id 1) and end the run; it has unit tests.
    ran = fuzz(
        api_schema,
        {"Authorization": f"Bearer {resmon_server.token}"},
        skip=frozenset({"POST /api/v1/tokens/{token_id}/revoke"}),
    )
    assert ran >= 8
