"""Lunar cycles: custody of a pool changes hands at every new moon.

A cycle runs from one new moon (inclusive) to the next (exclusive) and is numbered by the Meeus
lunation number: lunation 0 is the new moon of 2000-01-06 18:14 UTC. (The Brown lunation number
some almanacs print is the Meeus number + 953: the eclipse new moon of 2024-04-08 is Brown 1253,
Meeus 300.)

New-moon instants come from ``ephem``, but three of its habits shape this module:

* Its root finder stops within 0.1 s, so the instant it returns for the same new moon moves by
  tens of microseconds with the starting date. Every instant here is therefore the *canonical*
  one, :func:`new_moon_of_lunation`, searched from a start that depends only on the lunation
  number; ephem's answer for an arbitrary instant only says which lunation to look at.
* It refuses a new moon within ~5 ms of the starting date (it assumes the caller stands on it
  and wants the next one), so "on or before" is settled against the canonical instants.
* It computes with module-global Sun and Moon bodies, so calls are serialised with a lock.

Instants are aware UTC datetimes with whole microseconds (what the database stores). A future
ephem may move a computed boundary slightly: :class:`LunarSchedule` keeps the persisted ones.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from itertools import pairwise

import ephem

SYNODIC_MONTH_DAYS: float = 29.530588853
LUNATION_0 = datetime(2000, 1, 6, 18, 14, tzinfo=UTC)

# As a timedelta (rounded once to the microsecond), so lunation arithmetic is exact integers.
_SYNODIC_MONTH = timedelta(days=SYNODIC_MONTH_DAYS)
# ephem dates are float days since noon UT on 1899-12-31 (the Dublin Julian Date epoch).
_EPHEM_EPOCH = datetime(1899, 12, 31, 12, tzinfo=UTC)
_MICROSECONDS_PER_DAY = 86_400_000_000
# Over 1900-2200 a true new moon falls 18.1 h before to 10.3 h after LUNATION_0 + n mean months
# (measured with ephem 4.2.1). Starting the search two days early lands after new moon n-1 and
# before new moon n with a wide margin, far from ephem's blind spot at the starting date.
_SEARCH_LEAD = timedelta(days=2)
_EPHEM_LOCK = threading.Lock()


def _require_aware(instant: datetime, name: str = "instant") -> datetime:
    """The same instant in UTC; a naive datetime is refused, as its zone would be a guess."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {instant!r}")
    return instant.astimezone(UTC)


def _to_ephem(instant: datetime) -> float:
    """An aware datetime as an ephem date (float days, UT), from exact integer microseconds."""
    micros = (instant - _EPHEM_EPOCH) // timedelta(microseconds=1)
    return micros / _MICROSECONDS_PER_DAY  # int / int: correctly rounded, so deterministic


def _from_ephem(value: float) -> datetime:
    """An ephem date as aware UTC, its exact binary value rounded half-to-even to the microsecond.

    ``ephem.Date.datetime()`` and ``timedelta(days=float)`` would also round, but through
    intermediate float steps; Fraction makes the rounding a single, explicit one.
    """
    micros = round(Fraction(value) * _MICROSECONDS_PER_DAY)
    return _EPHEM_EPOCH + timedelta(microseconds=micros)


def _ephem_new_moon(search: Callable[[float], float], instant: datetime) -> datetime:
    """Run ``ephem.next_new_moon`` or ``previous_new_moon`` from ``instant``, one call at a time."""
    with _EPHEM_LOCK:
        return _from_ephem(float(search(_to_ephem(instant))))


@dataclass(frozen=True)
class Cycle:
    """One custody cycle: from the new moon of lunation ``number`` up to the next new moon."""

    number: int  # Meeus lunation number of the new moon that starts it
    start: datetime  # aware UTC new-moon instant (inclusive)
    end: datetime  # aware UTC next new-moon instant (exclusive)

    def __post_init__(self) -> None:
        # Normalise to UTC so equal instants compare and print alike; frozen, hence setattr.
        object.__setattr__(self, "start", _require_aware(self.start, "start"))
        object.__setattr__(self, "end", _require_aware(self.end, "end"))
        if self.start >= self.end:
            raise ValueError(f"cycle {self.number} would end ({self.end}) before it starts")

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` falls in [start, end)."""
        return self.start <= _require_aware(instant) < self.end


def lunation_number(new_moon: datetime) -> int:
    """The Meeus lunation number of a new-moon instant: mean months since LUNATION_0, rounded.

    A true new moon strays less than a day from the mean one (checked for every new moon of
    1900-2200 in the tests), far inside the half month that rounding tolerates.
    """
    return round((_require_aware(new_moon, "new_moon") - LUNATION_0) / _SYNODIC_MONTH)


@lru_cache(maxsize=4096)
def new_moon_of_lunation(number: int) -> datetime:
    """The computed (canonical) new-moon instant of lunation ``number``.

    The search starts at a date that depends only on ``number``, so the same number always
    yields the same microsecond, whichever instant the caller started from.
    """
    estimate = LUNATION_0 + number * _SYNODIC_MONTH
    found = _ephem_new_moon(ephem.next_new_moon, estimate - _SEARCH_LEAD)
    if lunation_number(found) != number:
        # Only possible far outside 1900-2200; a wrong boundary would be persisted forever.
        raise ArithmeticError(f"new-moon search for lunation {number} found {found}")
    return found


def _settle(guess: int, instant: datetime) -> int:
    """The n with new_moon_of_lunation(n) <= instant < new_moon_of_lunation(n + 1).

    ``guess`` comes from ephem and is off by at most one near a new moon (sub-second
    disagreement with the canonical instant, or ephem's blind spot at its starting date).
    """
    number = guess
    while new_moon_of_lunation(number + 1) <= instant:
        number += 1
    while new_moon_of_lunation(number) > instant:
        number -= 1
    return number


def _lunation_at(instant: datetime) -> int:
    """The lunation of the computed cycle containing an aware UTC ``instant``."""
    previous = _ephem_new_moon(ephem.previous_new_moon, instant)
    return _settle(lunation_number(previous), instant)


def new_moon_on_or_before(instant: datetime) -> datetime:
    """The latest computed new moon at or before ``instant`` (``instant`` itself if it is one)."""
    return new_moon_of_lunation(_lunation_at(_require_aware(instant)))


def new_moon_after(instant: datetime) -> datetime:
    """The earliest computed new moon strictly after ``instant``."""
    instant = _require_aware(instant)
    upcoming = _ephem_new_moon(ephem.next_new_moon, instant)
    return new_moon_of_lunation(_settle(lunation_number(upcoming) - 1, instant) + 1)


def compute_cycle(number: int) -> Cycle:
    """Cycle ``number`` from computed new moons alone (no persisted boundaries)."""
    return Cycle(number, new_moon_of_lunation(number), new_moon_of_lunation(number + 1))


def cycle_at(instant: datetime) -> Cycle:
    """The computed cycle containing ``instant``."""
    return compute_cycle(_lunation_at(_require_aware(instant)))


class LunarSchedule:
    """Cycle boundaries, frozen once known: a library upgrade must never move a past boundary.

    ``known`` holds the persisted boundaries (lunation -> start instant). Any other boundary is
    computed on first use and listed in :attr:`new_boundaries` for the caller to persist
    (append-only). Every cycle is built from the same boundary table, so cycles tile time with
    no gap or overlap even where a persisted instant differs from today's computation.
    """

    def __init__(self, known: Mapping[int, datetime] | None = None) -> None:
        self._known = {n: _require_aware(t, f"boundary {n}") for n, t in (known or {}).items()}
        _check_increasing(self._known)
        self._new: dict[int, datetime] = {}

    def start_of(self, number: int) -> datetime:
        """The start of cycle ``number``: persisted if known, else computed and recorded."""
        if number in self._known:
            return self._known[number]
        if number not in self._new:
            self._new[number] = new_moon_of_lunation(number)
        return self._new[number]

    def cycle(self, number: int) -> Cycle:
        """Cycle ``number``; its end is the start of the next, whatever their origin."""
        return Cycle(number, self.start_of(number), self.start_of(number + 1))

    def cycle_at(self, instant: datetime) -> Cycle:
        """The cycle containing ``instant`` according to this schedule's boundaries.

        The computed cycle is only a first guess: an instant between a computed new moon and
        the persisted boundary for it belongs to the cycle the persisted boundary says.
        """
        instant = _require_aware(instant)
        # Where the boundaries are persisted, a mean-motion guess settled on them needs no
        # ephem at all: the write path then never computes a new moon.
        number = math.floor((instant - LUNATION_0) / timedelta(days=SYNODIC_MONTH_DAYS))
        if not {number, number + 1} <= self._known.keys():
            number = _lunation_at(instant)
        while instant < self.start_of(number):
            number -= 1
        while instant >= self.start_of(number + 1):
            number += 1
        return self.cycle(number)

    def cycles_between(self, start: datetime, end: datetime) -> list[Cycle]:
        """Every cycle overlapping [start, end), in order; empty when ``end <= start``."""
        start = _require_aware(start, "start")
        end = _require_aware(end, "end")
        if end <= start:
            return []
        cycles = [self.cycle_at(start)]
        while cycles[-1].end < end:
            cycles.append(self.cycle(cycles[-1].number + 1))
        return cycles

    @property
    def new_boundaries(self) -> dict[int, datetime]:
        """Boundaries computed by this schedule and not persisted yet, by lunation (a copy)."""
        return dict(sorted(self._new.items()))


def _check_increasing(boundaries: Mapping[int, datetime]) -> None:
    """Refuse persisted boundaries out of order: they would make cycles overlap."""
    ordered = sorted(boundaries.items())
    for (n, start), (m, later) in pairwise(ordered):
        if later <= start:
            raise ValueError(f"persisted boundary {m} ({later}) is not after {n} ({start})")
