"""Lunar cycles (temporary stand-in until the full module lands)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import ephem

SYNODIC_MONTH_DAYS = 29.530588853
LUNATION_0 = datetime(2000, 1, 6, 18, 14, tzinfo=UTC)


def _check(instant: datetime) -> None:
    if instant.tzinfo is None:
        raise ValueError("naive datetime")


def _to_ephem(instant: datetime) -> ephem.Date:
    return ephem.Date(instant.astimezone(UTC).replace(tzinfo=None))


def _from_ephem(value: float) -> datetime:
    moment: datetime = ephem.Date(value).datetime()
    return moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Cycle:
    number: int
    start: datetime
    end: datetime

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def new_moon_on_or_before(instant: datetime) -> datetime:
    _check(instant)
    after = _from_ephem(ephem.next_new_moon(_to_ephem(instant - timedelta(seconds=1))))
    if after <= instant:
        return after
    return _from_ephem(ephem.previous_new_moon(_to_ephem(instant)))


def new_moon_after(instant: datetime) -> datetime:
    _check(instant)
    return _from_ephem(ephem.next_new_moon(_to_ephem(instant)))


def lunation_number(new_moon: datetime) -> int:
    return round((new_moon - LUNATION_0) / timedelta(days=SYNODIC_MONTH_DAYS))


def new_moon_of_lunation(number: int) -> datetime:
    estimate = LUNATION_0 + timedelta(days=SYNODIC_MONTH_DAYS * number)
    return new_moon_on_or_before(estimate + timedelta(days=10))


def compute_cycle(number: int) -> Cycle:
    return Cycle(number, new_moon_of_lunation(number), new_moon_of_lunation(number + 1))


def cycle_at(instant: datetime) -> Cycle:
    return compute_cycle(lunation_number(new_moon_on_or_before(instant)))


class LunarSchedule:
    def __init__(self, known: Mapping[int, datetime] | None = None) -> None:
        self._known = dict(known or {})
        self._new: dict[int, datetime] = {}

    def start_of(self, number: int) -> datetime:
        if number in self._known:
            return self._known[number]
        if number not in self._new:
            self._new[number] = new_moon_of_lunation(number)
        return self._new[number]

    def cycle(self, number: int) -> Cycle:
        return Cycle(number, self.start_of(number), self.start_of(number + 1))

    def cycle_at(self, instant: datetime) -> Cycle:
        _check(instant)
        number = lunation_number(new_moon_on_or_before(instant))
        while instant < self.start_of(number):
            number -= 1
        while instant >= self.start_of(number + 1):
            number += 1
        return self.cycle(number)

    @property
    def new_boundaries(self) -> dict[int, datetime]:
        return dict(self._new)
