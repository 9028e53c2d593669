"""Timestamps: one exact text form, RFC 3339 UTC with microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from ledger.log.clock import format_ts, parse_ts

INSTANTS = st.datetimes(
    min_value=datetime(1000, 1, 2), timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])
)


@given(INSTANTS)
def test_format_ts_is_the_strftime_form_in_utc(instant: datetime) -> None:
    text = format_ts(instant)
    assert text == instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert parse_ts(text) == instant


def test_format_ts_pads_every_field() -> None:
    # (glibc strftime would write the year 7 as "7": RFC 3339 wants four digits)
    assert format_ts(datetime(7, 2, 3, 4, 5, 6, 7, tzinfo=UTC)) == "0007-02-03T04:05:06.000007Z"
