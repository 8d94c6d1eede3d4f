"""Enforcement and the service: the proxy addon, journal, paths and the ``zerocontact`` command."""
