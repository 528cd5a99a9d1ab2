import pytest

from owlclaw.scheduler.cli import main


def test_backends_lists_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "memory" in out and "ready" in out


def test_demo_shows_each_feature(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OWLCLAW_CONFIG", raising=False)
    monkeypatch.delenv("OWLCLAW_SCHEDULER_BACKEND", raising=False)
    assert main(["demo", "--backend", "memory", "--seconds", "4.5"]) == 0
    out = capsys.readouterr().out
    assert "'hello ada'" in out  # run now
    assert "'hello later'" in out  # delay
    assert "cancelled" in out  # cancel
    assert "'ok on attempt 3'" in out  # retries
    assert "'step 3: done'" in out  # self-scheduling
    assert "demo_heartbeat" in out and "'beat'" in out  # cron


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no-colon", "module:attribute"),
        ("owlclaw_no_such_mod:app", "cannot import"),
        ("owlclaw.scheduler.cli:main", "not a scheduler"),
    ],
)
def test_worker_explains_a_bad_app(app: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", app]) == 1
    assert message in capsys.readouterr().err
