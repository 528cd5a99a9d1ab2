"""Process helpers shared by the local PostgreSQL and the local engine.

Free loopback ports, log tails, readiness probes, starting and stopping a
child process, and the registry that stops whatever is still running when
the interpreter exits. Stdlib only, like the rest of this package.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

__all__ = [
    "LOG_TAIL_LINES",
    "at_exit",
    "find_free_port",
    "http_status",
    "log_header",
    "log_tail",
    "run_logged",
    "scrubbed_environ",
    "start_process",
    "stop_process",
    "tcp_open",
]

LOG_TAIL_LINES: Final = 40


def find_free_port(exclude: set[int] | frozenset[int] = frozenset()) -> int:
    """Return a TCP port that is currently free on 127.0.0.1.

    The port is found by binding to ``127.0.0.1:0``; it is free when this
    returns, though nothing reserves it afterwards.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port
    raise RuntimeError("could not find a free TCP port on 127.0.0.1")


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or why it could not be read."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except OSError as exc:
        return f"<could not read {path}: {exc}>"


def log_header(log: IO[bytes], text: str) -> None:
    """A timestamped separator in a log that several commands append to."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    log.write(f"\n===== {stamp} owlclaw: {text} =====\n".encode())
    log.flush()


def http_status(url: str, token: str | None = None, timeout: float = 2.0) -> int | None:
    """GET ``url``; return the HTTP status, or None if nothing answered."""
    request = urllib.request.Request(url, method="GET")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def tcp_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def scrubbed_environ(
    environ: Mapping[str, str], prefixes: tuple[str, ...], names: frozenset[str]
) -> dict[str, str]:
    """A copy of ``environ`` without the variables a child would read as its own settings."""
    return {k: v for k, v in environ.items() if not k.startswith(prefixes) and k not in names}


def run_logged(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    log: IO[bytes],
    timeout: float,
    *,
    capture_stdout: bool = False,
) -> tuple[int, str]:
    """Run a command to its end, its output appended to ``log``; return its exit
    code and, with ``capture_stdout``, its standard output (also logged if it
    failed). Raises ``subprocess.TimeoutExpired`` past ``timeout`` seconds."""
    result = subprocess.run(
        list(args),
        cwd=str(cwd),
        env=dict(env),
        stdout=subprocess.PIPE if capture_stdout else log,
        stderr=log,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )
    if result.returncode != 0 and capture_stdout and result.stdout:
        log.write(result.stdout)
        log.flush()
    return result.returncode, result.stdout.decode("utf-8", "replace") if capture_stdout else ""


def start_process(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start a long-running child in its own session, its output appended to ``log``."""
    return subprocess.Popen(
        list(args),
        cwd=str(cwd),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, wait ``timeout`` seconds, then SIGKILL; returns once it has exited."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


class _AtExit:
    """Stops the clusters and engines still running when the interpreter exits."""

    def __init__(self) -> None:
        self._live: weakref.WeakSet[Any] = weakref.WeakSet()
        self._late: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        atexit.register(self.stop_all)

    def add(self, obj: Any, *, late: bool = False) -> None:
        """Stop ``obj`` at exit; ``late`` ones after the others (a database after its clients)."""
        with self._lock:
            (self._late if late else self._live).add(obj)

    def discard(self, obj: Any) -> None:
        with self._lock:
            self._live.discard(obj)
            self._late.discard(obj)

    def stop_all(self) -> None:
        with self._lock:
            live = [*self._live, *self._late]
        for obj in live:
            with contextlib.suppress(Exception):
                obj.stop()


#: What ``LocalPostgres`` and ``LocalEngine`` register while they run.
at_exit = _AtExit()
