"""One table from the Hatchet SDK's errors to owlclaw's.

Every call into the SDK runs inside :func:`map_sdk_errors`, which looks the
exception up in :data:`_RULES` (first match wins) and raises owlclaw's error
with the original as ``__cause__`` (except where the SDK's own message could
carry the API token: there the cause is dropped). A message names the host,
what failed, the cause's type and status, and a hint; never the token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import urllib3
from hatchet_sdk.clients.rest.exceptions import ApiException, NotFoundException
from pydantic import ValidationError

from owlclaw.scheduler.errors import (
    InvalidCronError,
    SchedulerConnectionError,
    SchedulerError,
    TaskNotFoundError,
    describe_error,
)

__all__ = ["grpc_code", "is_not_found", "map_sdk_errors", "sdk_error"]

TOKEN_HINT = "check scheduler.hatchet.api_token / HATCHET_CLIENT_TOKEN"


@dataclass(frozen=True)
class _Call:
    """What the SDK was asked to do, and how the caller wants its failures read."""

    host: str
    what: str
    missing: str | None  # a "no such thing" answer is TaskNotFoundError(missing)
    invalid: str | None  # an HTTP 400 is InvalidCronError(invalid + the engine's reason)
    configuring: bool  # building the client: any failure says the settings are wrong
    starting: bool  # starting the client (and the embedded engine): any failure is a connection error
    timeout: float | None  # a TimeoutError means nothing answered within this many seconds


def is_not_found(exc: BaseException) -> bool:
    """The engine's "no such thing": a 404 or gRPC NOT_FOUND, or a 400 for a
    malformed id, or an id the SDK refused before sending it (not a UUID)."""
    if isinstance(exc, NotFoundException | ValidationError):
        return True
    if isinstance(exc, grpc.RpcError) and grpc_code(exc) is grpc.StatusCode.NOT_FOUND:
        return True
    return isinstance(exc, ApiException) and exc.status in (400, 404)


def grpc_code(exc: BaseException) -> object:
    """A gRPC error's status code (None for anything else)."""
    return exc.code() if hasattr(exc, "code") else None


def _configure(exc: BaseException, call: _Call) -> SchedulerError:
    return SchedulerConnectionError(
        f"cannot configure the Hatchet client for {call.host}: {type(exc).__name__} "
        "(is api_token a Hatchet API token, i.e. a JWT from `hatchet-admin token create` "
        "or the dashboard?)"
    )


def _start(exc: BaseException, call: _Call) -> SchedulerError:
    return SchedulerConnectionError(f"cannot start the Hatchet client: {describe_error(exc)}")


def _invalid(exc: BaseException, call: _Call) -> SchedulerError:
    assert isinstance(exc, ApiException)
    return InvalidCronError(f"{call.invalid}: {exc.body or exc.reason}")


def _missing(exc: BaseException, call: _Call) -> SchedulerError:
    return TaskNotFoundError(str(call.missing))


def _refused(exc: BaseException, call: _Call) -> SchedulerError:
    assert isinstance(exc, ApiException)
    return SchedulerConnectionError(
        f"Hatchet at {call.host} refused the API token while trying to {call.what} "
        f"(HTTP {exc.status}); {TOKEN_HINT} belongs to this server and tenant"
    )


def _http(exc: BaseException, call: _Call) -> SchedulerError:
    assert isinstance(exc, ApiException)
    return SchedulerConnectionError(
        f"Hatchet at {call.host} failed to {call.what}: HTTP {exc.status} {exc.reason or ''}".rstrip()
    )


def _grpc(exc: BaseException, call: _Call) -> SchedulerError:
    code = grpc_code(exc)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        hint = f"the API token was refused; {TOKEN_HINT}"
    else:
        hint = "is the engine running, and are host_port and tls_strategy right?"
    return SchedulerConnectionError(
        f"cannot {call.what} on Hatchet at {call.host}: gRPC {getattr(code, 'name', code)}; {hint}"
    )


def _unreachable(exc: BaseException, call: _Call) -> SchedulerError:
    return SchedulerConnectionError(
        f"cannot reach Hatchet at {call.host} to {call.what}: {type(exc).__name__}: {exc}; "
        "is the engine running and server_url right?"
    )


def _silent(exc: BaseException, call: _Call) -> SchedulerError:
    return SchedulerConnectionError(
        f"Hatchet at {call.host} did not answer within {call.timeout:g}s; is the engine running, "
        "are host_port / server_url right, and does tls_strategy match the server?"
    )


@dataclass(frozen=True)
class _Rule:
    applies: Callable[[BaseException, _Call], bool]
    build: Callable[[BaseException, _Call], SchedulerError]
    keep_cause: bool = True


_RULES: tuple[_Rule, ...] = (
    # the SDK validates the token while the client is built; its message may quote it
    _Rule(lambda e, c: c.configuring and isinstance(e, Exception), _configure, keep_cause=False),
    _Rule(lambda e, c: c.starting and isinstance(e, Exception), _start),
    _Rule(lambda e, c: c.invalid is not None and isinstance(e, ApiException) and e.status == 400, _invalid),
    _Rule(lambda e, c: c.missing is not None and is_not_found(e), _missing, keep_cause=False),
    _Rule(lambda e, c: isinstance(e, ApiException) and e.status in (401, 403), _refused),
    _Rule(lambda e, c: isinstance(e, ApiException), _http),
    _Rule(lambda e, c: isinstance(e, grpc.RpcError), _grpc),
    _Rule(lambda e, c: c.timeout is not None and isinstance(e, TimeoutError), _silent, keep_cause=False),
    _Rule(lambda e, c: isinstance(e, OSError | TimeoutError | urllib3.exceptions.HTTPError), _unreachable),
)


def sdk_error(
    exc: BaseException,
    host: str,
    what: str,
    *,
    missing: str | None = None,
    invalid: str | None = None,
    configuring: bool = False,
    starting: bool = False,
    timeout: float | None = None,
) -> tuple[SchedulerError, bool] | None:
    """owlclaw's error for ``exc`` and whether to keep ``exc`` as its cause;
    None when ``exc`` is not the SDK's to map (it then propagates as is)."""
    if isinstance(exc, SchedulerError):
        return None
    call = _Call(host, what, missing, invalid, configuring, starting, timeout)
    for rule in _RULES:
        if rule.applies(exc, call):
            return rule.build(exc, call), rule.keep_cause
    return None


@contextlib.contextmanager
def map_sdk_errors(
    host: str,
    what: str,
    *,
    missing: str | None = None,
    invalid: str | None = None,
    configuring: bool = False,
    starting: bool = False,
    timeout: float | None = None,
) -> Iterator[None]:
    """Translate SDK and transport errors into owlclaw's; the original stays ``__cause__``.

    ``missing``: the message of the TaskNotFoundError that a "no such thing"
    answer becomes (callers for whom that is an ordinary answer catch it).
    ``invalid``: an HTTP 400 is an InvalidCronError starting with this.
    ``configuring`` / ``starting``: any failure while the client is built or
    started is a SchedulerConnectionError. ``timeout``: a TimeoutError says
    nothing answered within that many seconds.
    """
    try:
        yield
    except BaseException as exc:
        mapped = sdk_error(
            exc,
            host,
            what,
            missing=missing,
            invalid=invalid,
            configuring=configuring,
            starting=starting,
            timeout=timeout,
        )
        if mapped is None:
            raise
        error, keep_cause = mapped
        if keep_cause:
            raise error from exc
        raise error from None
