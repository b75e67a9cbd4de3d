"""Is a TCP port free to listen on, and if not, who holds it (so the error can name them)."""

from __future__ import annotations

import contextlib
import socket

import psutil


def port_is_free(host: str, port: int) -> bool:
    """True when ``host:port`` can be bound (with SO_REUSEADDR, as llama-server binds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str:
    """A short description of the process listening on ``port``, or ``"an unknown process"``."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    break
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(conn.pid)
                    return f"{proc.name()} (pid {conn.pid})"
                return f"pid {conn.pid}"
    return "an unknown process"


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (for tests and the demo)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
