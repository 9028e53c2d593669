"""How every ``lunaria`` command reports a failure: one clear line and exit status 1."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec

import click

from ledger.errors import LedgerError, VerificationError

P = ParamSpec("P")


def fail(message: str) -> NoReturn:
    """Print ``message`` to stderr and exit with status 1."""
    click.echo(message, err=True)
    sys.exit(1)


def reports_ledger_errors(command: Callable[P, None]) -> Callable[P, None]:
    """Turn ledger errors into one clear line and exit status 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except VerificationError as exc:
            fail(f"FAILED: {exc.message}")
        except LedgerError as exc:
            fail(f"error: {exc.message}")

    return wrapper
