"""Field validators shared by backend settings and the OwlClaw adapter's settings.

They raise ``ValueError`` so pydantic reports them as a validation error of
the field being checked.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["check_host_port", "check_server_url"]


def check_host_port(value: str | None, field: str) -> str | None:
    """``host:port`` with a port in 1..65535; ``field`` names the setting in the error."""
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{field} must look like host:port, e.g. localhost:7070, got {value!r}")
    return value


def check_server_url(value: str | None) -> str | None:
    """An http(s) URL, without its trailing slash."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"server_url must be an http(s) URL, e.g. http://localhost:8080, got {value!r}")
    return value.rstrip("/")
