"""The log's side of C2SP tlog-witness: it collects its witnesses' cosignatures.

The witnesses are named in a file (``LUNARIA_WITNESSES``), one a line: the witness's verifier
key (signature type 0x04, :mod:`ledger.log.cosignature`) and its submission prefix::

    witness.example/w1+8d9a0a7c+BDf...= https://witness.example/witness

:class:`Cosigning` is a task of ``lunaria worker``: whenever the latest checkpoint lacks a
witness's cosignature, it sends that checkpoint (as the log signed it) to the witness with a
consistency proof from the size the witness last cosigned, all witnesses at once. A 409 names
the size the witness holds: it asks again from there. The cosignature line is checked with
the witness's key and kept (``cosignatures``); every note served from then on carries it.

A witness that refuses (a 409 at the very size it holds, or a 422: the tree it cosigned is not
a prefix of this one) has seen a different history under this log's key: a bug or an attack.
That is said loudly (an ``error:`` line, every time it happens) and kept in ``witnesses``
(``refusals``, ``last_refusal``), which ``/witness`` shows.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ledger.errors import InvalidKey, LedgerError, NoteError
from ledger.log.append import Log
from ledger.log.clock import format_ts
from ledger.log.cosignature import CosignatureVerifier
from ledger.log.db import write_transaction
from ledger.log.notes import parse_note
from ledger.log.schema import cosignatures, witnesses
from ledger.log.storage import StoredCheckpoint, latest_checkpoint, store_cosignature

__all__ = [
    "Cosigning",
    "WitnessEndpoint",
    "parse_witnesses",
    "read_witnesses",
    "witness_status",
]

Post = Callable[[str, bytes], tuple[int, str]]
"""POST ``body`` to ``url``: the HTTP status and the response body (text)."""

TIMEOUT = 10.0  # seconds per request to a witness
MAX_TRIES = 3  # requests per witness and round (a 409 with a new size asks again)
POLL = timedelta(seconds=1)  # how often the worker looks for a checkpoint to send
RETRY_FIRST = timedelta(seconds=1)  # a witness out of reach: doubling up to RETRY_MAX
RETRY_MAX = timedelta(seconds=60)  # also how often a refusing witness is asked again


class WitnessUnavailable(LedgerError):
    """A witness could not be asked, or answered something other than the protocol's."""

    code = "witness_unavailable"


class WitnessRefused(LedgerError):
    """A witness refused this log's checkpoint as inconsistent with what it cosigned."""

    code = "witness_refused"


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness of this log: its verifier key and its submission prefix."""

    verifier: CosignatureVerifier
    url: str

    @property
    def name(self) -> str:
        """``<name>+<key id>``: how the witness is named in lines and rows."""
        return f"{self.verifier.name}+{self.verifier.key_id.hex()}"


def parse_witnesses(text: str, source: str = "the witnesses file") -> list[WitnessEndpoint]:
    """``VKEY URL`` lines (blank lines and ``#`` comments ignored); raises InvalidKey."""
    found: list[WitnessEndpoint] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].startswith(("http://", "https://")):
            raise InvalidKey(f"{source} line {number} is not 'VKEY URL': {line[:80]!r}")
        try:
            verifier = CosignatureVerifier.from_vkey(parts[0])
        except InvalidKey as exc:
            raise InvalidKey(f"{source} line {number}: {exc.message}") from exc
        found.append(WitnessEndpoint(verifier, parts[1].rstrip("/")))
    if len({w.verifier for w in found}) != len(found):
        raise InvalidKey(f"{source} names a witness key twice")
    return found


def read_witnesses(path: Path) -> list[WitnessEndpoint]:
    """The witnesses file at ``path``; raises InvalidKey when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidKey(f"the witnesses file {path} cannot be read: {exc}") from exc
    return parse_witnesses(text, str(path))


def http_post(url: str, body: bytes) -> tuple[int, str]:
    """POST with the standard library; the status and body of any HTTP answer."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.read(64 * 1024).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(64 * 1024).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WitnessUnavailable(f"cannot reach {url}: {reason}") from exc


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The request body of c2sp.org/tlog-witness add-checkpoint."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


@dataclass
class _Hold:
    """A witness not to be asked again before ``until`` about the checkpoint at ``size``."""

    size: int
    until: datetime
    delay: timedelta
    refused: bool


class Cosigning:
    """The worker task that collects cosignatures (see the module's docstring)."""

    name = "witnesses"

    def __init__(
        self,
        log: Log,
        endpoints: Sequence[WitnessEndpoint],
        quorum: int,
        *,
        post: Post = http_post,
    ) -> None:
        if not 0 <= quorum <= len(endpoints):
            raise InvalidKey(f"a witness quorum of {quorum} needs that many witnesses")
        self.log = log
        self.endpoints = tuple(endpoints)
        self.quorum = quorum
        self.post = post
        self._holds: dict[str, _Hold] = {}
        self._register()

    def _register(self) -> None:
        with write_transaction(self.log.engine) as conn:
            known = set(conn.execute(select(witnesses.c.vkey)).scalars())
            for endpoint in self.endpoints:
                vkey = endpoint.verifier.vkey()
                if vkey in known:
                    conn.execute(
                        update(witnesses).where(witnesses.c.vkey == vkey).values(url=endpoint.url)
                    )
                else:
                    conn.execute(
                        insert(witnesses).values(
                            vkey=vkey, url=endpoint.url, cosigned_size=0, refusals=0
                        )
                    )

    # -- the Task protocol of ledger.fund.worker ----------------------------------------------

    def next_at(self, now: datetime) -> datetime:
        missing = self._missing()
        if missing is None:
            return now + POLL
        size, names = missing
        waits = [self._hold_until(name, size, now) for name in names]
        return min([now + POLL, *waits])

    def run(self, now: datetime) -> list[str]:
        missing = self._missing()
        if missing is None:
            return []
        size, names = missing
        due = [
            e
            for e in self.endpoints
            if e.name in names and self._hold_until(e.name, size, now) <= now
        ]
        return self.collect(due)

    # -- a round ------------------------------------------------------------------------------

    def collect(self, endpoints: Sequence[WitnessEndpoint] | None = None) -> list[str]:
        """Ask ``endpoints`` (default: every witness) to cosign the latest checkpoint, all at
        once; one line per refusal or failure, and one saying how many cosigned."""
        with self.log.engine.connect() as conn:
            checkpoint = latest_checkpoint(conn)
        if checkpoint is None:
            return []
        asked = list(self.endpoints if endpoints is None else endpoints)
        if not asked:
            return []
        with ThreadPoolExecutor(max_workers=len(asked)) as pool:
            results = list(pool.map(lambda e: self._ask(e, checkpoint), asked))
        lines = [line for line in results if line is not None]
        count = self._cosigned_count(checkpoint.size)
        if any(line is None for line in results):
            reached = "reached" if count >= self.quorum else "not reached"
            lines.append(
                f"checkpoint {checkpoint.size} cosigned by {count} of {len(self.endpoints)} "
                f"witnesses (quorum {self.quorum} {reached})"
            )
        return lines

    def _ask(self, endpoint: WitnessEndpoint, checkpoint: StoredCheckpoint) -> str | None:
        """Get ``endpoint``'s cosignature; None when it cosigned, else the line to say."""
        now = self.log.clock.now()
        try:
            line = self._cosignature(endpoint, checkpoint)
        except WitnessRefused as exc:
            self._hold(endpoint.name, checkpoint.size, now, refused=True)
            self._report(endpoint, exc.message, refused=True)
            return (
                f"error: witness {endpoint.name} refused checkpoint {checkpoint.size}: "
                f"{exc.message}"
            )
        except LedgerError as exc:
            self._hold(endpoint.name, checkpoint.size, now, refused=False)
            self._report(endpoint, exc.message, refused=False)
            return f"error: witness {endpoint.name}: {exc.message}"
        self._keep(endpoint, checkpoint.size, line)
        self._holds.pop(endpoint.name, None)
        return None

    def _cosignature(self, endpoint: WitnessEndpoint, checkpoint: StoredCheckpoint) -> str:
        old = self._cosigned_size(endpoint)
        for _ in range(MAX_TRIES):
            if old > checkpoint.size:
                raise WitnessRefused(
                    f"it cosigned size {old}, beyond this log's latest checkpoint "
                    f"({checkpoint.size}): this log was rolled back, or forked"
                )
            proof = self.log.consistency_proof(old, checkpoint.size) if old else []
            body = add_checkpoint_body(old, proof, checkpoint.note)
            status, text = self.post(endpoint.url + "/add-checkpoint", body)
            if status == 200:
                return self._checked_line(endpoint, checkpoint, text)
            if status == 409:
                held = _held_size(text)
                if held == old:
                    raise WitnessRefused(
                        f"it cosigned a different tree at size {old} (409 Conflict): "
                        "two histories under this log's key"
                    )
                old = held
                continue
            if status == 422:
                raise WitnessRefused(
                    f"the consistency proof from size {old} does not verify against the tree "
                    "it cosigned (422): two histories under this log's key"
                )
            raise WitnessUnavailable(f"HTTP {status} from {endpoint.url}: {text.strip()[:200]}")
        raise WitnessUnavailable(f"still 409 after {MAX_TRIES} requests; the last said {old}")

    def _checked_line(
        self, endpoint: WitnessEndpoint, checkpoint: StoredCheckpoint, response: str
    ) -> str:
        """The witness's valid cosignature line from a 200 response (other keys' ignored)."""
        try:
            note = parse_note(checkpoint.note + response)
        except NoteError as exc:
            raise WitnessUnavailable(f"its answer is not signature lines: {exc.message}") from exc
        for signature in note.signatures:
            if endpoint.verifier.verify(note.text, signature):
                return signature.line()
        raise WitnessUnavailable("it answered 200 without a valid cosignature by its key")

    # -- state --------------------------------------------------------------------------------

    def _missing(self) -> tuple[int, set[str]] | None:
        """The latest checkpoint's size and the witnesses that have not cosigned it."""
        with self.log.engine.connect() as conn:
            checkpoint = latest_checkpoint(conn)
            if checkpoint is None:
                return None
            done = set(
                conn.execute(
                    select(cosignatures.c.witness).where(cosignatures.c.size == checkpoint.size)
                ).scalars()
            )
        names = {e.name for e in self.endpoints} - done
        return (checkpoint.size, names) if names else None

    def _hold_until(self, name: str, size: int, now: datetime) -> datetime:
        hold = self._holds.get(name)
        if hold is None or (hold.refused and hold.size != size):
            return now  # (a new checkpoint: a refusing witness is asked again at once)
        return hold.until

    def _hold(self, name: str, size: int, now: datetime, *, refused: bool) -> None:
        before = self._holds.get(name)
        if refused:
            delay = RETRY_MAX
        else:
            delay = RETRY_FIRST if before is None else min(2 * before.delay, RETRY_MAX)
        self._holds[name] = _Hold(size, now + delay, delay, refused)

    def _cosigned_size(self, endpoint: WitnessEndpoint) -> int:
        with self.log.engine.connect() as conn:
            size = conn.execute(
                select(witnesses.c.cosigned_size).where(
                    witnesses.c.vkey == endpoint.verifier.vkey()
                )
            ).scalar()
        return int(size or 0)

    def _cosigned_count(self, size: int) -> int:
        with self.log.engine.connect() as conn:
            return len(
                conn.execute(
                    select(cosignatures.c.witness).where(cosignatures.c.size == size)
                ).all()
            )

    def _keep(self, endpoint: WitnessEndpoint, size: int, line: str) -> None:
        ts = format_ts(self.log.clock.now())
        with write_transaction(self.log.engine) as conn:
            store_cosignature(conn, size, endpoint.name, line, ts)
            conn.execute(
                update(witnesses)
                .where(witnesses.c.vkey == endpoint.verifier.vkey())
                .values(cosigned_size=size, cosigned_ts=ts)
            )

    def _report(self, endpoint: WitnessEndpoint, message: str, *, refused: bool) -> None:
        ts = format_ts(self.log.clock.now())
        values: dict[str, Any] = {"last_error": message, "last_error_ts": ts}
        if refused:
            values |= {
                "refusals": witnesses.c.refusals + 1,
                "last_refusal": message,
                "last_refusal_ts": ts,
            }
        with write_transaction(self.log.engine) as conn:
            conn.execute(
                update(witnesses)
                .where(witnesses.c.vkey == endpoint.verifier.vkey())
                .values(**values)
            )


def _held_size(text: str) -> int:
    body = text.strip()
    if not body.isascii() or not body.isdigit() or len(body) > 19:
        raise WitnessUnavailable(f"a 409 whose body is not a tree size: {body[:40]!r}")
    return int(body)


def witness_status(conn: Connection) -> list[dict[str, Any]]:
    """What each witness of this log last cosigned, and every refusal it answered (JSON)."""
    rows = conn.execute(select(witnesses).order_by(witnesses.c.vkey)).all()
    return [
        {
            "vkey": r.vkey,
            "url": r.url,
            "cosigned_size": r.cosigned_size,
            "cosigned_at": r.cosigned_ts,
            "last_error": r.last_error,
            "last_error_at": r.last_error_ts,
            "refusals": r.refusals,
            "last_refusal": r.last_refusal,
            "last_refusal_at": r.last_refusal_ts,
        }
        for r in rows
    ]
