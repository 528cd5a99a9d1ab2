"""poll_until and its blocking twin: the value once it holds, a bounded wait, and a
failure that says what it waited for and what it last saw."""

from __future__ import annotations

import itertools

import pytest

from owlclaw.scheduler.errors import WaitTimeoutError
from owlclaw.scheduler.polling import PollTimeoutError, poll_until, poll_until_blocking


async def test_returns_the_first_value_that_holds() -> None:
    counter = itertools.count(1)
    assert await poll_until(lambda: next(counter), lambda n: n >= 3, timeout=5, interval=0.001) == 3


async def test_reads_an_async_probe() -> None:
    async def read() -> str:
        return "done"

    assert await poll_until(read, lambda v: v == "done", timeout=1) == "done"


async def test_gives_up_naming_what_and_the_last_value() -> None:
    with pytest.raises(PollTimeoutError) as caught:
        await poll_until(
            lambda: "QUEUED", lambda v: v == "SUCCEEDED", timeout=0.05, interval=0.01, what="run x"
        )
    assert "run x" in str(caught.value) and "'QUEUED'" in str(caught.value)
    assert caught.value.last == "QUEUED"
    assert isinstance(caught.value, WaitTimeoutError) and isinstance(caught.value, AssertionError)


async def test_a_zero_timeout_reads_once() -> None:
    reads = []
    with pytest.raises(PollTimeoutError):
        await poll_until(lambda: reads.append(1), lambda _: False, timeout=0)
    assert reads == [1]
    assert await poll_until(lambda: 7, timeout=0) == 7


async def test_an_ignored_error_is_reported_and_the_poll_goes_on() -> None:
    def read() -> int:
        raise ConnectionError("engine down")

    with pytest.raises(PollTimeoutError, match="ConnectionError: engine down"):
        await poll_until(read, timeout=0.05, interval=0.01, ignore=(ConnectionError,))
    with pytest.raises(ConnectionError):
        await poll_until(read, timeout=0.05, interval=0.01)


@pytest.mark.parametrize("timeout", [-1, float("nan")])
async def test_a_bad_timeout_is_refused(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout >= 0"):
        await poll_until(lambda: True, timeout=timeout)
    with pytest.raises(ValueError, match="timeout >= 0"):
        poll_until_blocking(lambda: True, timeout=timeout)


def test_the_blocking_twin_behaves_the_same() -> None:
    counter = itertools.count(1)
    assert poll_until_blocking(lambda: next(counter), lambda n: n >= 3, timeout=5, interval=0.001) == 3
    with pytest.raises(PollTimeoutError, match="proc: not reached within"):
        poll_until_blocking(lambda: 0, timeout=0.05, interval=0.01, what="proc")
