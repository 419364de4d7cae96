"""The same real-server fixtures and async-test runner as the collector's unit tests."""

from tests.unit.monitoring.conftest import no_samples, pytest_pyfunc_call, servers

__all__ = ["no_samples", "pytest_pyfunc_call", "servers"]
