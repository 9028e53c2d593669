"""Who may act and what a value must look like: roles, actors, outcomes and the checks
that every command applies before it touches the log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import RuleViolation
from ledger.fund.lunar import Cycle
from ledger.fund.screening import screen_public_text
from ledger.log.clock import format_ts
from ledger.log.entry import Entry

ROLES = ("admin", "treasurer", "member", "applicant")


CHANNELS = ("bank", "crypto", "cash")


URGENCIES = ("normal", "urgent")


VOTES = ("approve", "reject")


MAX_BATCH = 1000


# The value rules below as regular expressions that Python and JSON Schema (ECMA-262) read
# alike: the API's OpenAPI document states them as patterns (api/schemas.py).
SLUG_REGEX = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
PSEUDONYM_REGEX = r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?"
# A pseudonym holds no run of six digits (nor an @, which its characters exclude).
PSEUDONYM_NO_NUMBER = r"(?!.*[0-9]{6})"
CONTROL_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"  # refused in any text

_SLUG = re.compile(SLUG_REGEX + r"\Z")


_PSEUDONYM = re.compile(PSEUDONYM_REGEX + r"\Z")


_EMAILISH = re.compile(r"@|\d{6,}")


_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


@dataclass(frozen=True)
class Actor:
    """Who asks: the pseudonymous id written in the log, the role, and a member's collective."""

    id: str
    role: str
    collective: str | None = None
    member: str | None = None


def member_actor(member: str) -> str:
    """The log's actor id for a member: their public pseudonym."""
    return f"member:{member}"


@dataclass(frozen=True)
class Outcome:
    """The first entry a command wrote (or, replayed by idempotency key, wrote before).

    Donations also carry what their receipts need, so the answer is built without reading
    back what was just written: the entries, their receipt salts by seq and the display names
    by commitment (all empty when replayed)."""

    seq: int
    replayed: bool
    written: tuple[Entry, ...] = ()
    salts: Mapping[int, bytes] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)


def check_slug(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _SLUG.match(value):
        raise RuleViolation(
            f"{field} must be 1-64 lowercase letters, digits or '-', got {value!r}",
            code="invalid_slug",
        )
    return value


def check_pseudonym(value: Any, field: str) -> str:
    """Pseudonyms reach the public log: refuse what looks like an email or account number."""
    if not isinstance(value, str) or not _PSEUDONYM.match(value) or _EMAILISH.search(value):
        raise RuleViolation(
            f"{field} must be a pseudonym of 1-64 characters [a-z0-9._-] with no email address "
            f"or long number in it, got {value!r}",
            code="invalid_pseudonym",
        )
    return value


def check_text(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise RuleViolation(f"{field} must be 1-{limit} characters", code="invalid_text")
    if _CONTROL.search(value):
        raise RuleViolation(f"{field} contains control characters", code="invalid_text")
    return value


def check_public_text(value: Any, field: str, limit: int, *, one_line: bool) -> str:
    """Text bound for the public log: checked as any text, then screened for personal data
    and misleading characters (see :mod:`ledger.fund.screening`)."""
    return screen_public_text(check_text(value, field, limit), field, one_line=one_line)


def require_role(actor: Actor, *roles: str) -> None:
    if actor.role not in roles:
        raise RuleViolation(
            f"this needs the role {' or '.join(roles)}; the token has {actor.role}",
            code="forbidden",
        )


def cycle_json(cycle: Cycle) -> dict[str, Any]:
    return {"number": cycle.number, "start": format_ts(cycle.start), "end": format_ts(cycle.end)}
