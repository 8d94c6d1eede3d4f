"""Touches the system: service units, CA trust, proxy settings (the installer issue builds this out)."""
