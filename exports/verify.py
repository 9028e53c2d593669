"""Check a cycle's JSONL export offline, trusting nothing but the log's verifier key.

    python -m exports.verify cycle.jsonl --vkey "origin+1a2b3c4d+AbC…"

Checks the checkpoint's signature (C2SP signed note), that every line's entry hashes
(SHA-256(0x00 || RFC 8785 bytes)) to its ``entry_hash`` and is included under the checkpoint's
root (RFC 9162), that every public text served beside an entry recomputes the commitment the
entry holds (``lunaria-cycle-entries/2``), that every entry belongs to the pool and cycle
named in the header, and then re-derives the roll-forward from the entries alone; for a
closed cycle it must equal the handover statement. Prints the figures the report's
roll-forward must show; exit status 1 and the reason when anything fails. Files of format
``lunaria-cycle-entries/1`` (no texts) are read too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exports.cycle import (
    belongs_to_cycle,
    check_statement,
    closes_cycle,
    closing_statement,
    compute_roll_forward,
)
from exports.json_export import ENTRIES_FORMAT
from exports.report import RollForward
from ledger.errors import LedgerError, VerificationError
from ledger.fund import format_major, public_text
from ledger.log import (
    Checkpoint,
    Entry,
    Verifier,
    canonical_bytes,
    decode_entry,
    leaf_hash,
    open_checkpoint,
    verify_inclusion,
)

READ_FORMATS = (ENTRIES_FORMAT, "lunaria-cycle-entries/1")


@dataclass(frozen=True)
class CycleCheck:
    pool: str
    cycle: int
    closed: bool
    checkpoint: Checkpoint
    entries: int
    roll_forward: tuple[RollForward, ...]
    texts: int = 0  # public texts served beside the entries and checked

    def summary(self) -> str:
        cp = self.checkpoint
        lines = [
            f"OK: {self.entries} entries of {self.pool} cycle {self.cycle} "
            f"({'closed' if self.closed else 'interim'}) are in {cp.origin} at tree size "
            f"{cp.size}, root {cp.root.hex()}; {self.texts} public texts match their "
            "commitments"
        ]
        for rf in self.roll_forward:
            c = rf.currency
            lines.append(
                f"{c}: opening {format_major(rf.opening, c)} + donations "
                f"{format_major(rf.donations, c)} - disbursements "
                f"{format_major(rf.disbursements, c)} + corrections "
                f"{format_major(rf.corrections, c)} = closing {format_major(rf.closing, c)} "
                f"(committed {format_major(rf.committed, c)}, available "
                f"{format_major(rf.available, c)})"
            )
        return "\n".join(lines)


def verify_cycle_export(lines: Iterable[bytes], verifiers: Sequence[Verifier]) -> CycleCheck:
    """Verify a JSONL export; raises VerificationError (or another LedgerError) on failure."""
    it = iter(lines)
    header = _json(next(it, b""), 1)
    if header.get("format") not in READ_FORMATS:
        raise VerificationError(None, f"line 1 is not a {ENTRIES_FORMAT} header")
    cp = header["checkpoint"]
    checkpoint = open_checkpoint(cp["note"], verifiers, cp["origin"])
    if checkpoint.size != cp["size"] or checkpoint.root.hex() != cp["root"]:
        raise VerificationError(None, "the header's size or root differs from the signed note")
    pool, cycle = str(header["pool"]), int(header["cycle"])
    texts = [0]
    found = [
        _check_line(_json(raw, n), checkpoint, texts) for n, raw in enumerate(it, 2) if raw.strip()
    ]
    if len(found) != header["entries"] or not found:
        raise VerificationError(
            None, f"header says {header['entries']} entries; found {len(found)}"
        )
    for entry in found:
        if not belongs_to_cycle(entry, pool, cycle):
            raise VerificationError(entry.seq, f"is not an entry of {pool} cycle {cycle}")
    roll_forward = compute_roll_forward(found, pool)
    closed = closes_cycle(found[-1], cycle)
    if closed:
        check_statement(pool, cycle, roll_forward, closing_statement(found[-1]))
    return CycleCheck(pool, cycle, closed, checkpoint, len(found), roll_forward, texts[0])


def _json(raw: bytes, line: int) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise VerificationError(None, f"line {line} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise VerificationError(None, f"line {line} is not a JSON object")
    return value


def _check_line(line: dict[str, Any], checkpoint: Checkpoint, texts: list[int]) -> Entry:
    raw = canonical_bytes(line["entry"])
    entry = decode_entry(raw)
    digest = leaf_hash(raw)
    proof = line["inclusion_proof"]
    if digest.hex() != line["entry_hash"] or digest.hex() != proof["leaf_hash"]:
        raise VerificationError(entry.seq, "entry_hash is not the hash of the entry")
    if proof["index"] != entry.seq or proof["size"] != checkpoint.size:
        raise VerificationError(entry.seq, "the proof is for another index or tree size")
    hashes = [bytes.fromhex(h) for h in proof["hashes"]]
    verify_inclusion(entry.seq, checkpoint.size, digest, hashes, checkpoint.root)
    served = line.get("texts", {})
    checked = public_text.check_texts(entry.seq, entry.kind, entry.data, served)
    texts[0] += sum(1 for item in checked if item.text is not None)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exports.verify", description=__doc__)
    parser.add_argument("export", type=Path, help="the cycle's .jsonl export")
    parser.add_argument("--vkey", action="append", required=True, help="verifier key string")
    args = parser.parse_args(argv)
    try:
        verifiers = [Verifier.from_vkey(v) for v in args.vkey]
        with args.export.open("rb") as lines:
            print(verify_cycle_export(lines, verifiers).summary())
    except (LedgerError, KeyError, TypeError, ValueError) as exc:
        message = exc.message if isinstance(exc, LedgerError) else f"malformed export: {exc!r}"
        print(f"FAILED: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
