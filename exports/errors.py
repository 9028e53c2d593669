"""Errors of the report exports, each a :class:`ledger.errors.LedgerError` with a stable code.

An unknown pool is :class:`ledger.errors.NotFound` (``not_found``), as everywhere else.
"""

from __future__ import annotations

from ledger.errors import LedgerError


class ReportError(LedgerError):
    """A report cannot be produced for the parameters given."""

    code = "report_error"


class CycleNotStarted(ReportError):
    """The cycle has not begun, or the log holds no checkpointed entry of it yet."""

    code = "cycle_not_started"


class CycleBeforePool(ReportError):
    """The cycle ended before the pool was created."""

    code = "cycle_before_pool"


class InvalidCycle(ReportError):
    """The cycle is neither a lunation number nor ``latest``."""

    code = "invalid_cycle"


class UnknownFormat(ReportError):
    """The format is not one of :data:`exports.formats.FORMATS`."""

    code = "unknown_format"


class InvalidFields(ReportError):
    """``fields`` names an unknown column, repeats one, or is empty."""

    code = "invalid_fields"


class InvalidRange(ReportError):
    """``since`` / ``until`` is not a date or timestamp, or the range is empty."""

    code = "invalid_range"


class InconsistentLog(ReportError):
    """The entries of the cycle do not add up to the handover statement the log holds."""

    code = "inconsistent_log"
