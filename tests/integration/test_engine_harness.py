"""The local Hatchet engine harness starts a real engine that answers.

Needs the engine binaries (``bash .ci/install-engine.sh``) and PostgreSQL
server binaries (``bash .ci/install-postgres.sh``). Without them these tests
are skipped locally and fail under CI (``CI`` set), so CI cannot go green
without running them.
"""

from __future__ import annotations

import json
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from owlclaw.backends.hatchet.local.engine import (
    ENGINE_VERSION,
    EngineConnection,
    EngineNotInstalledError,
    EngineStartError,
    LocalEngine,
    find_engine_binaries,
)
from owlclaw.backends.hatchet.local.postgres import LocalPostgres

pytestmark = pytest.mark.integration


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _http2_server_settings(port: int) -> int:
    """Speak the HTTP/2 preface (what gRPC runs on); return the first frame type."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    empty_settings = struct.pack(">I", 0)[1:] + bytes([0x4, 0x0]) + struct.pack(">I", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(preface + empty_settings)
        header = b""
        while len(header) < 9:
            chunk = sock.recv(9 - len(header))
            if not chunk:
                break
            header += chunk
    assert len(header) == 9, "gRPC port closed the connection without an HTTP/2 frame"
    return header[3]


@pytest.fixture(scope="module")
def engine(local_engine_binaries: None) -> Iterator[tuple[LocalEngine, EngineConnection]]:
    with LocalPostgres() as pg:
        local = LocalEngine(pg.database_url("hatchet"), startup_timeout=120)
        conn = local.start()
        try:
            yield local, conn
        finally:
            local.stop()


def test_ports_are_distinct_loopback_and_answer(
    engine: tuple[LocalEngine, EngineConnection],
) -> None:
    local, conn = engine
    ports = local.ports
    assert set(ports) == {"grpc", "api", "health", "frontend", "proxy"}
    assert len(set(ports.values())) == len(ports)
    assert conn.host_port == f"127.0.0.1:{ports['grpc']}"
    assert conn.server_url == f"http://127.0.0.1:{ports['api']}"

    # gRPC: an HTTP/2 server answers the client preface with a SETTINGS frame.
    assert _http2_server_settings(ports["grpc"]) == 0x4

    status, _ = _get(f"{conn.server_url}/api/ready")
    assert status == 200
    status, body = _get(f"{conn.server_url}/api/v1/meta")
    assert status == 200
    assert json.loads(body)["authDisabled"] is False
    status, _ = _get(f"http://127.0.0.1:{ports['health']}/ready")
    assert status == 200
    status, body = _get(f"http://127.0.0.1:{ports['health']}/version")
    assert status == 200
    assert json.loads(body)["version"] == ENGINE_VERSION


def test_token_is_accepted_by_the_api(
    engine: tuple[LocalEngine, EngineConnection],
) -> None:
    _, conn = engine
    url = f"{conn.server_url}/api/v1/tenants/{conn.tenant_id}"

    status, body = _get(url, token=conn.token)
    assert status == 200, body
    tenant = json.loads(body)
    assert tenant["metadata"]["id"] == conn.tenant_id
    assert tenant["version"] == "V1"

    status, _ = _get(url)
    assert status in (401, 403)
    status, _ = _get(url, token=conn.token[:-4] + "AAAA")
    assert status in (401, 403)


def test_connection_never_shows_the_token(
    engine: tuple[LocalEngine, EngineConnection],
) -> None:
    local, conn = engine
    assert conn.token.startswith("ey")
    assert conn.token not in repr(conn)
    assert conn.token not in repr(local)
    assert conn.as_env()["HATCHET_CLIENT_TOKEN"] == conn.token
    assert local.log_path.is_file()


def test_missing_binaries_explain_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(EngineNotInstalledError, match=r"bash \.ci/install-engine\.sh"):
        find_engine_binaries(tmp_path)


def test_start_failure_reports_the_log_tail(tmp_path: Path, local_engine_binaries: None) -> None:
    closed_port = _closed_port()
    local = LocalEngine(
        f"postgresql://postgres@127.0.0.1:{closed_port}/nope?sslmode=disable",
        workdir=tmp_path / "engine",
        startup_timeout=4,
    )
    with pytest.raises(EngineStartError) as info:
        local.start()
    message = str(info.value)
    assert "migrate" in message
    assert str(local.log_path) in message
    assert local.log_path.is_file()
    assert not local.running
    local.stop()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
