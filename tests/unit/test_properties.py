"""Property-based tests (hypothesis) of the config loader, the cron translation
and the payload codec."""

from __future__ import annotations

import math
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from croniter import croniter
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from owlclaw.scheduler.config import SchedulerConfig
from owlclaw.scheduler.cron import next_fire_time, normalize_cron
from owlclaw.scheduler.errors import ConfigError, InvalidCronError, PayloadError
from owlclaw.scheduler.kit import MAX_PAYLOAD_BYTES, check_payload, dump_json, json_roundtrip

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# --------------------------------------------------------------------------
# payloads

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


@FAST
@given(json_objects)
def test_json_payloads_come_back_unchanged(payload: dict[str, Any]) -> None:
    """Any JSON object is accepted and comes back equal, and the codec is idempotent."""
    assert check_payload(payload) == payload
    assert json_roundtrip(payload, "payload") == payload
    assert json_roundtrip(json_roundtrip(payload, "p"), "p") == payload
    assert check_payload(check_payload(payload)) == check_payload(payload)


@FAST
@given(json_values)
def test_results_round_trip_as_json(value: Any) -> None:
    """Any JSON value survives dump_json and a trip through JSON."""
    assert json_roundtrip(value, "result") == value
    assert "\n" not in dump_json(value, "result")


not_json = st.one_of(
    st.sets(st.integers(), min_size=1),
    st.binary(min_size=1),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(-math.inf),
    st.complex_numbers(allow_nan=False),
    st.datetimes(),
    st.builds(object),
)


@FAST
@given(json_objects, st.text(max_size=8), not_json)
def test_non_json_inside_a_payload_is_a_payload_error(payload: dict[str, Any], key: str, bad: Any) -> None:
    """A non-JSON value anywhere in the payload raises PayloadError, nothing else."""
    payload[key] = {"nested": [bad]}
    with pytest.raises(PayloadError, match="JSON"):
        check_payload(payload)


@FAST
@given(json_values.filter(lambda v: v is not None and not isinstance(v, dict)))
def test_a_payload_must_be_an_object(value: Any) -> None:
    """A payload that is not a dict (or None) raises PayloadError naming the fix."""
    with pytest.raises(PayloadError, match="wrap it"):
        check_payload(value)


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=-50, max_value=50))
def test_payload_size_limit_is_exact(delta: int) -> None:
    """Payloads up to MAX_PAYLOAD_BYTES of JSON pass; one byte more is a PayloadError."""
    overhead = len(dump_json({"b": ""}, "p"))
    payload = {"b": "x" * (MAX_PAYLOAD_BYTES - overhead + delta)}
    if delta <= 0:
        assert check_payload(payload) == payload
    else:
        with pytest.raises(PayloadError, match="store large data"):
            check_payload(payload)


# --------------------------------------------------------------------------
# cron


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high).map(str)
    span = st.tuples(st.integers(low, high), st.integers(low, high)).map(lambda ab: f"{min(ab)}-{max(ab)}")
    step = st.tuples(st.sampled_from(["*", f"{low}-{high}"]), st.integers(1, high - low or 1)).map(
        lambda t: f"{t[0]}/{t[1]}"
    )
    listing = st.lists(st.integers(low, high), min_size=2, max_size=3, unique=True).map(
        lambda xs: ",".join(map(str, sorted(xs)))
    )
    return st.just("*") | number | span | step | listing


FIVE = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 6)).map(" ".join)
SIX = st.tuples(_field(0, 59), FIVE).map(" ".join)
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))


@FAST
@given(FIVE, MOMENTS)
def test_five_field_crons_fire_when_croniter_says(expression: str, after: datetime) -> None:
    """A 5-field expression is kept as is and fires exactly when croniter says, strictly later."""
    assert normalize_cron(expression) == expression
    assert normalize_cron(f"  {expression.replace(' ', '   ')} ") == expression
    nxt = next_fire_time(expression, after)
    assert nxt == croniter(expression, after).get_next(datetime)
    assert nxt > after
    assert nxt.utcoffset() == timedelta(0)


@FAST
@given(SIX, MOMENTS)
def test_six_field_crons_put_seconds_first(expression: str, after: datetime) -> None:
    """A 6-field expression has seconds first (as Hatchet reads it); croniter's order is seconds last."""
    seconds, rest = expression.split(" ", 1)
    nxt = next_fire_time(expression, after)
    assert nxt == croniter(f"{rest} {seconds}", after).get_next(datetime)
    assert nxt > after
    assert nxt - after <= timedelta(days=366 * 8)


@st.composite
def _spaced(draw: st.DrawFn, fields: st.SearchStrategy[str]) -> tuple[str, str]:
    """A valid expression as a user might type it (extra spaces around and
    between its fields), paired with the single-spaced form it normalizes to."""
    first, *rest = draw(fields).split(" ")
    edge = st.text(alphabet=" ", max_size=2)
    gaps = [draw(st.text(alphabet=" ", min_size=1, max_size=3)) for _ in rest]
    typed = (
        draw(edge) + first + "".join(gap + part for gap, part in zip(gaps, rest, strict=True)) + draw(edge)
    )
    return typed, " ".join([first, *rest])


# a third of the examples are arbitrary text (almost never a cron); the rest are
# valid 5- and 6-field crons, so the branch that accepts one sees most examples
CRON_OR_TEXT = st.one_of(
    st.text(max_size=30).map(lambda text: (text, None)),
    _spaced(FIVE),
    _spaced(SIX),
)


@FAST
@given(CRON_OR_TEXT)
def test_any_text_is_a_cron_or_an_invalid_cron_error(case: tuple[str, str | None]) -> None:
    """normalize_cron never raises anything but InvalidCronError, and its output is a fixed point."""
    text, valid = case
    try:
        normalized = normalize_cron(text)
    except InvalidCronError as exc:
        event("refused")  # --hypothesis-show-statistics shows how the examples split
        assert valid is None, f"{text!r} is a valid cron, refused: {exc}"
        assert "fields" in str(exc)
        return
    event("accepted")
    if valid is not None:
        assert normalized == valid
    assert normalize_cron(normalized) == normalized
    assert len(normalized.split(" ")) in (5, 6)
    assert next_fire_time(normalized, datetime(2030, 1, 1, tzinfo=UTC)) > datetime(2030, 1, 1, tzinfo=UTC)


@FAST
@given(FIVE, st.sampled_from(["30", "31", "30-31", "30,31"]), st.sampled_from(["2", "4", "6", "9", "11"]))
def test_a_cron_that_never_fires_is_refused(five: str, day: str, month: str) -> None:
    """An expression with no date to fire on (February 30) is an InvalidCronError, not a crash later."""
    minute, hour = five.split(" ")[:2]
    month = (
        "2" if day == "30" or "," in day or "-" in day else month
    )  # only "31" can use the months without a 31st
    expression = f"{minute} {hour} {day} {month} *"
    with pytest.raises(InvalidCronError, match="never fires"):
        normalize_cron(expression)


# --------------------------------------------------------------------------
# config loader

env_names = st.from_regex(r"OWLCLAW_HYP_[A-Z0-9_]{1,12}", fullmatch=True)
env_values = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\x00"), max_size=30
)
plain_text = st.text(st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="$"), max_size=20)


@FAST
@given(env_names, env_values, plain_text, plain_text)
def test_substitution_inserts_environment_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, before: str, after: str
) -> None:
    """${VAR} becomes the variable's value exactly, wherever it sits in a string."""
    monkeypatch.setenv(name, value)
    path = tmp_path / "owlclaw.yaml"
    document = {"scheduler": {"note": {"text": f"{before}${{{name}}}{after}", "list": [f"${{{name}}}"]}}}
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    note = SchedulerConfig.load(path).model_extra["note"]  # type: ignore[index]
    assert note == {"text": f"{before}{value}{after}", "list": [value]}


@FAST
@given(env_names, plain_text.filter(lambda d: "}" not in d))
def test_substitution_default_applies_when_unset_or_empty(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, default: str
) -> None:
    """${VAR:-default} is the default when VAR is unset or empty (as in shells and Compose)."""
    path = tmp_path / "owlclaw.yaml"
    path.write_text(yaml.safe_dump({"scheduler": {"note": f"${{{name}:-{default}}}"}}), encoding="utf-8")
    monkeypatch.delenv(name, raising=False)
    assert SchedulerConfig.load(path).model_extra == {"note": default}
    monkeypatch.setenv(name, "")
    assert SchedulerConfig.load(path).model_extra == {"note": default}
    monkeypatch.setenv(name, "set")
    assert SchedulerConfig.load(path).model_extra == {"note": "set"}
    monkeypatch.delenv(name)


@FAST
@given(env_names)
def test_unset_variable_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """${VAR} with VAR unset is a ConfigError that says to export it."""
    monkeypatch.delenv(name, raising=False)
    assume(name not in os.environ)
    with pytest.raises(ConfigError, match=f"export {name}="):
        _load({"scheduler": {"backend": f"${{{name}}}"}})


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | plain_text,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), inner, max_size=3)
    ),
    max_leaves=10,
)


@FAST
@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda k: k != "backend"), yaml_values, max_size=4
    )
)
def test_yaml_sections_round_trip(sections: dict[str, Any]) -> None:
    """Whatever a YAML file holds under scheduler: (without ${...}) is read back unchanged."""
    config = _load({"scheduler": {"backend": "memory", **sections}})
    assert config.backend == "memory"
    assert config.model_extra == sections
    for name, value in sections.items():
        if isinstance(value, dict):
            assert config.section(name) == value


def _load(document: dict[str, Any]) -> SchedulerConfig:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "owlclaw.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return SchedulerConfig.from_yaml(path)
