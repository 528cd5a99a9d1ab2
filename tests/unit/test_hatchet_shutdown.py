"""bound_shutdown: the first SIGTERM reaches the SDK's handler at once, and
again after the grace (the SDK's second signal exits without waiting)."""

import os
import signal
import time
from collections.abc import Iterator

import pytest

from owlclaw.backends.hatchet.shutdown import bound_shutdown
from owlclaw.scheduler.polling import poll_until_blocking


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_the_signal_is_repeated_after_the_grace(restore_handlers: None) -> None:
    seen: list[tuple[int, float]] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: seen.append((signum, time.monotonic())))
    bound_shutdown(0.2)
    sent = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    poll_until_blocking(lambda: list(seen), lambda s: len(s) >= 2, timeout=30, what="SDK handler calls")
    (first, _), (second, again) = seen[:2]
    assert first == second == signal.SIGTERM
    assert again - sent >= 0.2  # the timer starts after the signal was sent
    # one timer only: a second signal during the grace does not start another
    os.kill(os.getpid(), signal.SIGINT)
    poll_until_blocking(lambda: list(seen), lambda s: len(s) >= 3, timeout=30, what="SDK handler calls")
    time.sleep(0.5)  # a second timer would fire within this
    assert [s for s, _ in seen] == [signal.SIGTERM, signal.SIGTERM, signal.SIGINT]
