"""The end-to-end fixtures (a local origin, a TLS origin, a running daemon); helpers in zctest.e2e."""

from zctest.e2e import daemon, origin, tls_origin

__all__ = ["daemon", "origin", "tls_origin"]
