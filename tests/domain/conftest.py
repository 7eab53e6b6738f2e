"""The egress guard's tests check real connections, so they share the probe tests' local servers."""

from tests.probe.conftest import serve_app

__all__ = ["serve_app"]
