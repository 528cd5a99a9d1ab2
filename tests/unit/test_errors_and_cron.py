from datetime import UTC, datetime

import pytest

from owlclaw.scheduler import errors
from owlclaw.scheduler.cron import next_fire_time, normalize_cron


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.ConfigError, ValueError),
        (errors.BackendNotFoundError, LookupError),
        (errors.SchedulerConnectionError, ConnectionError),
        (errors.TaskNotRegisteredError, LookupError),
        (errors.TaskDefinitionError, ValueError),
        (errors.InvalidCronError, ValueError),
        (errors.InvalidScheduleError, ValueError),
        (errors.TaskNotFoundError, LookupError),
        (errors.PayloadError, TypeError),
        (errors.WaitTimeoutError, TimeoutError),
    ],
)
def test_every_error_is_a_scheduler_error_and_its_builtin(error: type, builtin: type) -> None:
    assert issubclass(error, errors.SchedulerError)
    assert issubclass(error, builtin)
    assert error.__name__ in errors.__all__


def test_not_supported_is_a_scheduler_error() -> None:
    assert issubclass(errors.NotSupportedError, errors.SchedulerError)


T0 = datetime(2030, 1, 1, 0, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/5 * * * *", datetime(2030, 1, 1, 0, 5, tzinfo=UTC)),
        ("*/10 * * * * *", datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC)),  # seconds first
        ("30 0 * * * *", datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)),
        ("@hourly", datetime(2030, 1, 1, 1, 0, tzinfo=UTC)),
        ("@daily", datetime(2030, 1, 2, tzinfo=UTC)),
        ("0 9 * * MON-FRI", datetime(2030, 1, 1, 9, 0, tzinfo=UTC)),
    ],
)
def test_next_fire_time_reads_crons_as_the_engine_does(expression: str, expected: datetime) -> None:
    assert next_fire_time(expression, T0) == expected


def test_aliases_expand_and_whitespace_normalizes() -> None:
    assert normalize_cron("@weekly") == "0 0 * * 0"
    assert normalize_cron("  */5   *  * * * ") == "*/5 * * * *"


def test_invalid_cron_message_says_what_to_write() -> None:
    with pytest.raises(errors.InvalidCronError, match="seconds FIRST"):
        normalize_cron("* * * * * * *")
