"""The Hatchet backend's one table from SDK errors to owlclaw's, without an engine."""

from __future__ import annotations

import grpc
import pytest
from hatchet_sdk.clients.rest.exceptions import ApiException, NotFoundException

from owlclaw.backends.hatchet.errors import map_sdk_errors
from owlclaw.scheduler.errors import (
    InvalidCronError,
    SchedulerConnectionError,
    TaskNotFoundError,
)

HOST = "127.0.0.1:7077 (API http://127.0.0.1:8080)"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.secret-claims.signature"


class _Rpc(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


def test_a_refused_token_names_the_setting_not_the_token() -> None:
    with pytest.raises(SchedulerConnectionError) as info, map_sdk_errors(HOST, "list runs"):
        raise ApiException(status=401, reason=f"bad token {TOKEN}")
    assert "refused the API token" in str(info.value) and "HATCHET_CLIENT_TOKEN" in str(info.value)
    assert TOKEN not in str(info.value)
    assert isinstance(info.value.__cause__, ApiException)


def test_grpc_and_transport_errors_name_the_host() -> None:
    with pytest.raises(SchedulerConnectionError, match="gRPC UNAVAILABLE") as info:
        with map_sdk_errors(HOST, "run task 'x'"):
            raise _Rpc(grpc.StatusCode.UNAVAILABLE)
    assert HOST in str(info.value)
    with pytest.raises(SchedulerConnectionError, match="cannot reach Hatchet"):
        with map_sdk_errors(HOST, "list runs"):
            raise ConnectionRefusedError("refused")


def test_not_found_is_task_not_found_only_where_the_caller_asks() -> None:
    with pytest.raises(TaskNotFoundError, match="no cron"), map_sdk_errors(HOST, "x", missing="no cron"):
        raise NotFoundException(status=404)
    with pytest.raises(TaskNotFoundError), map_sdk_errors(HOST, "x", missing="no run"):
        raise ApiException(status=400, reason="invalid uuid")
    with pytest.raises(SchedulerConnectionError, match="HTTP 404"), map_sdk_errors(HOST, "x"):
        raise NotFoundException(status=404, reason="Not Found")
    # the gRPC side's answer too (GetRunDetails of an unknown run), not "is the engine running?"
    with pytest.raises(TaskNotFoundError, match="no run"), map_sdk_errors(HOST, "x", missing="no run"):
        raise _Rpc(grpc.StatusCode.NOT_FOUND)


def test_a_rejected_cron_is_invalid_cron_error() -> None:
    with pytest.raises(InvalidCronError, match="rejected cron expression '1 2': bad field"):
        with map_sdk_errors(HOST, "add a cron", invalid="Hatchet rejected cron expression '1 2'"):
            raise ApiException(status=400, reason="bad field")


def test_a_client_that_cannot_be_configured_drops_the_sdk_message() -> None:
    with pytest.raises(SchedulerConnectionError, match="cannot configure the Hatchet client") as info:
        with map_sdk_errors("127.0.0.1:7077", "configure the client", configuring=True):
            raise ValueError(f"invalid token {TOKEN}")
    assert TOKEN not in str(info.value) and info.value.__cause__ is None


def test_only_the_outer_connect_guard_reads_a_timeout_as_silence() -> None:
    with pytest.raises(SchedulerConnectionError, match="did not answer within 5s"):
        with map_sdk_errors(HOST, "connect", timeout=5):
            raise TimeoutError
    with pytest.raises(SchedulerConnectionError, match=r"cannot reach Hatchet .* TimeoutError"):
        with map_sdk_errors(HOST, "connect", timeout=5), map_sdk_errors(HOST, "check the engine version"):
            raise TimeoutError


def test_other_errors_pass_through() -> None:
    with pytest.raises(KeyError), map_sdk_errors(HOST, "x"):
        raise KeyError("not the SDK's")
    with pytest.raises(TaskNotFoundError, match="ours"), map_sdk_errors(HOST, "x", starting=True):
        raise TaskNotFoundError("ours")
