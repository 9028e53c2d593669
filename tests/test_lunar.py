"""Tests of ledger.fund.lunar: new moons against published tables, tiling, and frozen boundaries.

The reference instants in tests/testdata/lunar/new_moons.json come from USNO and Espenak
(NASA) tables, not from ephem; each names its source. The rest are properties: cycles tile time,
every boundary is a canonical instant, and a persisted boundary wins over a new computation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import ephem
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.fund.lunar import (
    LUNATION_0,
    SYNODIC_MONTH_DAYS,
    Cycle,
    LunarSchedule,
    compute_cycle,
    cycle_at,
    lunation_number,
    new_moon_after,
    new_moon_of_lunation,
    new_moon_on_or_before,
)
from ledger.log.clock import format_ts, parse_ts

DATA = json.loads((Path(__file__).parent / "testdata/lunar/new_moons.json").read_text())
PUBLISHED: list[dict[str, Any]] = DATA["new_moons"]
TOLERANCE = timedelta(seconds=60)
MICROSECOND = timedelta(microseconds=1)
BROWN_OFFSET = 953  # Brown lunation number of LUNATION_0
ECLIPSE_2024 = datetime(2024, 4, 8, 18, 21, tzinfo=UTC)
ECLIPSE_2024_LUNATION = 300

# Lunations whose new moons fall in 1990-2099 (checked by test_lunation_range_constants).
LUNATIONS_1990_2100 = st.integers(min_value=-123, max_value=1236)
INSTANTS_1990_2100 = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def published_instant(row: dict[str, Any]) -> datetime:
    return datetime.strptime(row["utc"], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)


def days(delta: timedelta) -> float:
    return delta / timedelta(days=1)


# -- 1. published new moons --------------------------------------------------------------------


def test_reference_table_covers_what_the_design_relies_on() -> None:
    instants = [published_instant(row) for row in PUBLISHED]
    assert len(instants) >= 12
    assert all(
        datetime(2000, 1, 1, tzinfo=UTC) <= t < datetime(2031, 1, 1, tzinfo=UTC) for t in instants
    )
    assert LUNATION_0 in instants and ECLIPSE_2024 in instants
    assert sum(2025 <= t.year <= 2027 for t in instants) >= 5
    assert all(row["source"] in DATA["sources"] for row in PUBLISHED)
    # Listed lunation numbers advance with time, one per synodic month.
    ordered = sorted(zip(instants, (row["lunation"] for row in PUBLISHED), strict=True))
    for (t, n), (later, m) in pairwise(ordered):
        assert abs(days(later - t) / SYNODIC_MONTH_DAYS - (m - n)) < 0.05


@pytest.mark.parametrize("row", PUBLISHED, ids=[row["utc"] for row in PUBLISHED])
def test_new_moon_matches_published_instant(row: dict[str, Any]) -> None:
    published = published_instant(row)
    number = row["lunation"]
    computed = new_moon_of_lunation(number)
    assert abs(computed - published) < TOLERANCE, f"{computed} vs {row['source']} {published}"
    assert lunation_number(published) == number
    assert lunation_number(computed) == number
    # A minute either side of the published instant lies in the cycles on either side.
    assert cycle_at(published - TOLERANCE).number == number - 1
    after = cycle_at(published + TOLERANCE)
    assert after.number == number and after.start == computed


def test_lunation_numbers_are_meeus_not_brown() -> None:
    # The eclipse of 2024-04-08 starts Brown lunation 1253, which is Meeus lunation 300.
    assert lunation_number(ECLIPSE_2024) == ECLIPSE_2024_LUNATION
    assert lunation_number(LUNATION_0) == 0
    assert cycle_at(ECLIPSE_2024 + timedelta(days=1)).number == ECLIPSE_2024_LUNATION
    for row in PUBLISHED:
        if "brown" in row:
            assert lunation_number(published_instant(row)) + BROWN_OFFSET == row["brown"]


def test_lunation_number_is_exact_for_every_true_new_moon_1900_2200() -> None:
    """Walk every new moon of 1900-2200 with ephem alone: numbers must step by exactly one."""
    moment = ephem.next_new_moon("1900/1/1")
    expected = lunation_number(new_moon_of_lunation(-1237))
    assert expected == -1237
    checked = 0
    while moment < ephem.Date("2200/1/1"):
        instant = moment.datetime().replace(tzinfo=UTC)
        assert lunation_number(instant) == expected, instant
        if expected % 13 == 0:  # spot-check the canonical search on a spread of lunations
            assert abs(new_moon_of_lunation(expected) - instant) < timedelta(seconds=1)
        moment = ephem.next_new_moon(moment)
        expected += 1
        checked += 1
    # Lunations -1237 (1900-01-01 13:52) to 2473 (December 2199): 3711 new moons.
    assert checked == 3711 and expected == 2474


def test_lunation_range_constants() -> None:
    assert new_moon_of_lunation(-123).year == 1990
    assert new_moon_of_lunation(-124).year == 1989
    assert new_moon_of_lunation(1236).year == 2099
    assert new_moon_of_lunation(1237).year == 2100


# -- 2. cycles tile time -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(instant=INSTANTS_1990_2100)
def test_cycle_at_contains_the_instant_and_meets_its_neighbours(instant: datetime) -> None:
    cycle = cycle_at(instant)
    assert cycle.contains(instant)
    assert cycle.start.tzinfo is UTC and cycle.end.tzinfo is UTC
    assert 29.2 <= days(cycle.end - cycle.start) <= 29.9
    assert compute_cycle(cycle.number - 1).end == cycle.start
    assert compute_cycle(cycle.number + 1).start == cycle.end
    assert cycle.start == new_moon_on_or_before(instant)
    assert cycle.end == new_moon_after(instant)
    assert lunation_number(cycle.start) == cycle.number


@settings(max_examples=60, deadline=None)
@given(number=LUNATIONS_1990_2100, offset_us=st.integers(min_value=-20_000, max_value=20_000))
def test_instants_next_to_a_new_moon(number: int, offset_us: int) -> None:
    """Within ephem's ~5 ms blind spot too, the boundary is exactly the canonical new moon."""
    boundary = new_moon_of_lunation(number)
    instant = boundary + offset_us * MICROSECOND
    inside = number if offset_us >= 0 else number - 1
    assert cycle_at(instant).number == inside
    assert new_moon_on_or_before(instant) == new_moon_of_lunation(inside)
    assert new_moon_after(instant) == new_moon_of_lunation(inside + 1)


def test_exact_new_moon_is_its_own_on_or_before() -> None:
    boundary = new_moon_of_lunation(ECLIPSE_2024_LUNATION)
    assert new_moon_on_or_before(boundary) == boundary
    assert new_moon_after(boundary) == new_moon_of_lunation(ECLIPSE_2024_LUNATION + 1)
    assert new_moon_on_or_before(boundary - MICROSECOND) == new_moon_of_lunation(299)
    assert new_moon_after(boundary - MICROSECOND) == boundary
    assert compute_cycle(ECLIPSE_2024_LUNATION).contains(boundary)
    assert not compute_cycle(ECLIPSE_2024_LUNATION - 1).contains(boundary)


def test_boundaries_do_not_depend_on_where_the_search_started() -> None:
    # ephem's own answers for one new moon differ by microseconds with the starting date...
    raw = {
        ephem.next_new_moon(ephem.Date(start)).datetime()
        for start in ("2024/3/12", "2024/3/20", "2024/3/28", "2024/4/5")
    }
    assert len(raw) > 1
    # ...but every cycle reports the one canonical instant, again after the cache is dropped.
    boundary = new_moon_of_lunation(ECLIPSE_2024_LUNATION)
    starts = {cycle_at(boundary + timedelta(days=d)).start for d in (0, 0.5, 7, 15, 29)}
    assert starts == {boundary}
    new_moon_of_lunation.cache_clear()
    assert new_moon_of_lunation(ECLIPSE_2024_LUNATION) == boundary


def test_boundaries_keep_microseconds_and_survive_storage() -> None:
    boundaries = [new_moon_of_lunation(n) for n in range(300, 340)]
    assert any(b.microsecond for b in boundaries)  # not rounded to the second
    for boundary in boundaries:
        assert parse_ts(format_ts(boundary)) == boundary  # the database form is exact


def test_aware_instants_in_other_zones_are_converted_to_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    local = ECLIPSE_2024.astimezone(tokyo) + timedelta(hours=1)
    cycle = cycle_at(local)
    assert cycle.number == ECLIPSE_2024_LUNATION and cycle.start.tzinfo is UTC
    assert new_moon_on_or_before(local).tzinfo is UTC
    assert Cycle(1, local, local + timedelta(days=29)).start.tzinfo is UTC


# -- 3. persisted boundaries win ---------------------------------------------------------------


@pytest.mark.parametrize("shift", [timedelta(minutes=3), timedelta(minutes=-3)])
def test_persisted_boundary_wins_over_a_new_computation(shift: timedelta) -> None:
    n = 329  # the new moon of the total eclipse of 2026-08-12
    computed = new_moon_of_lunation(n)
    persisted = computed + shift
    schedule = LunarSchedule({n: persisted})

    assert schedule.cycle(n - 1).end == schedule.cycle(n).start == persisted
    assert schedule.start_of(n) == persisted

    # An instant between the computed and the persisted boundary goes by the persisted one.
    between = min(computed, persisted) + abs(shift) / 2
    expected = n - 1 if shift > timedelta(0) else n
    assert schedule.cycle_at(between).number == expected
    assert cycle_at(between).number == (n if shift > timedelta(0) else n - 1)  # computed view
    assert schedule.cycle_at(persisted).number == n
    assert schedule.cycle_at(persisted - MICROSECOND).number == n - 1

    # Only computed boundaries are reported for persisting, with their computed instants.
    assert set(schedule.new_boundaries) == {n - 1, n + 1}
    assert schedule.new_boundaries[n - 1] == new_moon_of_lunation(n - 1)
    assert schedule.new_boundaries[n + 1] == new_moon_of_lunation(n + 1)


def test_new_boundaries_can_be_persisted_and_reloaded() -> None:
    first = LunarSchedule()
    cycles = first.cycles_between(ECLIPSE_2024, ECLIPSE_2024 + timedelta(days=90))
    assert [c.number for c in cycles] == [300, 301, 302, 303]
    stored = first.new_boundaries
    assert sorted(stored) == [300, 301, 302, 303, 304]
    stored.clear()  # a copy: the caller cannot corrupt the schedule
    assert len(first.new_boundaries) == 5

    reloaded = LunarSchedule(first.new_boundaries)
    assert reloaded.cycles_between(ECLIPSE_2024, ECLIPSE_2024 + timedelta(days=90)) == cycles
    assert reloaded.new_boundaries == {}


@settings(max_examples=25, deadline=None)
@given(
    first=st.integers(min_value=0, max_value=1200),
    shifts=st.lists(st.integers(min_value=-600, max_value=600), min_size=1, max_size=8),
    probes=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=10),
)
def test_schedule_tiles_time_around_persisted_boundaries(
    first: int, shifts: list[int], probes: list[float]
) -> None:
    """Persisted boundaries up to 10 min off the computation: still no gap, no overlap."""
    known = {
        first + i: new_moon_of_lunation(first + i) + timedelta(seconds=s)
        for i, s in enumerate(shifts)
        if s % 3  # leave some boundaries unpersisted, so persisted and computed ones mix
    }
    schedule = LunarSchedule(known)
    start = new_moon_of_lunation(first) - timedelta(days=3)
    end = new_moon_of_lunation(first + len(shifts)) + timedelta(days=3)
    cycles = schedule.cycles_between(start, end)

    assert cycles[0].contains(start) and cycles[-1].end >= end > cycles[-1].start
    for cycle, following in pairwise(cycles):
        assert cycle.end == following.start and following.number == cycle.number + 1
    for cycle in cycles:
        assert cycle.start == known.get(cycle.number, new_moon_of_lunation(cycle.number))
    for fraction in probes:
        instant = start + (end - start) * fraction
        owner = schedule.cycle_at(instant)
        assert owner.contains(instant) and owner in cycles
    assert not set(schedule.new_boundaries) & set(known)


def test_cycles_between_an_empty_interval_is_empty() -> None:
    schedule = LunarSchedule()
    assert schedule.cycles_between(ECLIPSE_2024, ECLIPSE_2024) == []
    assert schedule.cycles_between(ECLIPSE_2024, ECLIPSE_2024 - timedelta(days=1)) == []


def test_schedule_refuses_persisted_boundaries_out_of_order() -> None:
    with pytest.raises(ValueError, match="not after"):
        LunarSchedule({10: datetime(2001, 1, 1, tzinfo=UTC), 11: datetime(2000, 1, 1, tzinfo=UTC)})


def test_cycle_refuses_to_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        Cycle(1, ECLIPSE_2024, ECLIPSE_2024)


# -- 4. naive datetimes ----------------------------------------------------------------------------

NAIVE = datetime(2026, 1, 1, 12, 0)
AWARE = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "call",
    [
        lambda: new_moon_on_or_before(NAIVE),
        lambda: new_moon_after(NAIVE),
        lambda: lunation_number(NAIVE),
        lambda: cycle_at(NAIVE),
        lambda: compute_cycle(320).contains(NAIVE),
        lambda: Cycle(1, NAIVE, AWARE),
        lambda: LunarSchedule({320: NAIVE}),
        lambda: LunarSchedule().cycle_at(NAIVE),
        lambda: LunarSchedule().cycles_between(NAIVE, AWARE),
        lambda: LunarSchedule().cycles_between(AWARE, NAIVE),
    ],
    ids=[
        "new_moon_on_or_before",
        "new_moon_after",
        "lunation_number",
        "cycle_at",
        "Cycle.contains",
        "Cycle",
        "LunarSchedule(known)",
        "LunarSchedule.cycle_at",
        "cycles_between(start)",
        "cycles_between(end)",
    ],
)
def test_naive_datetimes_are_refused(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="naive"):
        call()
