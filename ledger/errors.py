"""One exception hierarchy for the ledger.

Every error carries a stable machine-readable ``code`` (the API puts it in the RFC 9457
problem document) and a message that says what failed and with which values.
"""

from __future__ import annotations

from collections.abc import Sequence


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    code = "ledger_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EncodingError(LedgerError):
    """A value cannot be encoded canonically (float, unsafe integer, non-ASCII key, too large)."""

    code = "invalid_encoding"


class InvalidAmount(EncodingError):
    """An amount is not a positive digit string in minor units."""

    code = "invalid_amount"


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof is malformed or does not verify."""

    code = "invalid_proof"


class NoteError(LedgerError):
    """A signed note or checkpoint is malformed."""

    code = "invalid_note"


class SignatureError(NoteError):
    """No known key produced a valid signature on a note."""

    code = "invalid_signature"


class InvalidKey(LedgerError):
    """A signing or verifier key string is malformed."""

    code = "invalid_key"


class RuleViolation(LedgerError):
    """An append was refused by a ledger rule; nothing was written."""

    code = "rule_violation"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class IdempotencyConflict(LedgerError):
    """An idempotency key was reused with a different request."""

    code = "idempotency_conflict"

    def __init__(self, key: str, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        super().__init__(
            f"idempotency key {key!r} was first used with a different request; "
            f"differing fields: {', '.join(self.fields)}"
        )


class NotFound(LedgerError):
    """A requested entry, checkpoint or object does not exist."""

    code = "not_found"


class SchemaOutdated(LedgerError):
    """The database's schema is older than this Lunaria's code (upgraded without running
    ``lunaria init``, which migrates it)."""

    code = "schema_out_of_date"


class VerificationError(LedgerError):
    """The log failed verification; ``seq`` is the first bad entry, if one entry is to blame."""

    code = "verification_failed"

    def __init__(self, seq: int | None, reason: str) -> None:
        self.seq = seq
        self.reason = reason
        where = f"seq {seq}: " if seq is not None else ""
        super().__init__(f"{where}{reason}")


class NotYetCovered(NotFound):
    """The entry exists but no signed checkpoint covers it yet (a receipt needs one)."""

    code = "receipt_not_yet_covered"
