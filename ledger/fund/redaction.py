"""Redaction of public text: the text and its salt go, a ``text_redacted`` entry says so.

A text committed to by an entry of data version 2 (:mod:`ledger.fund.public_text`) is removed
from ``public_texts`` (text and salt set to NULL, the redaction's seq kept) and a
``text_redacted`` entry names its commitment, the entry and field that hold it, the pool and
a reason code from :data:`REASONS`, never the text. Both happen in one write transaction.
The commitment stays in its entry, so every hash, proof, checkpoint and replay stays valid;
readers show :data:`~ledger.fund.public_text.REDACTED` in the text's place.
"""

from __future__ import annotations

from typing import Any

from ledger.errors import NotFound, RuleViolation
from ledger.fund.public_text import is_commitment
from ledger.fund.rules import Actor, Outcome, require_role
from ledger.fund.transaction import FundCommands, FundTransaction
from ledger.log.db import read_sql, write_sql
from ledger.log.entry import Entry

REASONS = ("personal_data", "safety", "subject_request", "legal", "other")
"""Why a text was redacted: it held personal data, it endangered someone, the person it is
about asked, a legal obligation, or another reason (kept off the log, like the text)."""

OPERATOR = Actor("operator", "admin")
"""Who redacts from the command line (``lunaria redact``): whoever runs the server."""


class TextNotFound(NotFound):
    """No public text has this commitment (or it is in a version-1 entry, which holds the
    text itself and cannot be redacted)."""

    code = "text_not_found"


_ROW = "SELECT seq, field, redacted_seq FROM public_texts WHERE commitment = ?"
_POOL = "SELECT pool FROM entry_pools WHERE seq = ?"
_REDACT = (
    "UPDATE public_texts SET text = NULL, salt = NULL, redacted_seq = ? "
    "WHERE commitment = ? AND redacted_seq IS NULL"
)


def check_redaction(commitment: Any, reason: Any) -> None:
    """What a redaction says by itself: a commitment (64 lowercase hex) and a known reason."""
    if not is_commitment(commitment):
        raise RuleViolation(
            f"commitment must be 64 lowercase hex digits, got {commitment!r:.80}",
            code="invalid_commitment",
        )
    if reason not in REASONS:
        raise RuleViolation(
            f"reason must be one of {', '.join(REASONS)}, got {reason!r:.40}",
            code="invalid_reason",
        )


class RedactionCommands(FundCommands):
    """Redacting public text (admin, or the operator on the command line)."""

    def redact_text(
        self,
        actor: Actor,
        commitment: str,
        reason: str,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Remove the text behind ``commitment`` and log why; the outcome is the
        ``text_redacted`` entry. TextNotFound (404) for an unknown commitment;
        ``already_redacted`` (409) for a text redacted before."""
        require_role(actor, "admin")
        check_redaction(commitment, reason)
        request = {"commitment": commitment, "reason": reason}

        def command(tx: FundTransaction) -> Entry:
            return _redact(tx, actor, commitment, reason)

        return self._run(actor, idempotency_key, request, command)


def _redact(tx: FundTransaction, actor: Actor, commitment: str, reason: str) -> Entry:
    rows = read_sql(tx.conn, _ROW, (commitment,))
    if not rows:
        raise TextNotFound(f"no public text has the commitment {commitment}")
    seq, field, redacted_seq = rows[0]
    if redacted_seq is not None:
        raise RuleViolation(
            f"the text of {commitment} was redacted already, by entry {redacted_seq}",
            code="already_redacted",
        )
    data: dict[str, Any] = {
        "commitment": commitment,
        "entry": int(seq),
        "field": field,
        "reason": reason,
    }
    pools = read_sql(tx.conn, _POOL, (int(seq),))
    if pools:
        data["pool"] = pools[0][0]
    entry = tx.emit("text_redacted", data, actor.id)
    write_sql(tx.conn, _REDACT, (entry.seq, commitment))
    return entry
