from __future__ import annotations

import pytest

from tests.unit.monitoring.helpers import run_async_test


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    return run_async_test(pyfuncitem)


@pytest.fixture
def servers():
    """Real test servers on 127.0.0.1, on a loop of their own (see ServerThread)."""
    from tests.unit.monitoring.helpers import ServerThread

    thread = ServerThread()
    yield thread
    thread.close()


@pytest.fixture
def no_samples(transactional_db):
    """monitoring_sample is unmanaged: Django's flush between tests leaves it alone."""
    from django.db import connection

    def clear() -> None:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM monitoring_sample")

    clear()
    yield
    clear()
