"""Which local process opened a connection to the proxy (best effort, for the journal only)."""

from __future__ import annotations


def process_for(client_port: int, proxy_port: int) -> str | None:
    """'name (pid)' of the process whose socket has local port ``client_port`` towards the proxy."""
    # imported on the first lookup (in the Blocker's lookup thread), not before the daemon is ready
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for c in conns:
        if c.laddr and c.laddr.port == client_port and c.raddr and c.raddr.port == proxy_port and c.pid:
            try:
                return f"{psutil.Process(c.pid).name()} ({c.pid})"
            except psutil.Error:
                return f"pid {c.pid} (exited)"
    return None
