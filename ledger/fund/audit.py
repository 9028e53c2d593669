"""Audit a published log from the outside, trusting nothing but the verifier keys.

The source is a directory written by :func:`ledger.log.tiles.publish` or the base URL of a running
Lunaria, which serves the same layout under ``<base>/tlog/`` (C2SP tlog-tiles). Only the
standard library fetches (``urllib``); everything else is the ledger's own verification code.

The audit fetches the checkpoint and opens it with the given keys, then every entry bundle and
every tile the checkpoint's size needs, in order: it re-hashes every entry and re-checks the
chain (:class:`ledger.log.verify.ChainChecker`), compares every tile with the hashes it recomputed,
replays the domain rules (:func:`audit_rules`) and compares the root with the signed one. It
stops at the first problem, raising :class:`VerificationError` naming the path and seq.
"""

from __future__ import annotations

import gzip
import io
import re
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ledger.errors import EncodingError, LedgerError, NoteError, VerificationError
from ledger.fund.governance import GovernanceReplay
from ledger.fund.urgency import ResponseFigures
from ledger.log.cosignature import WitnessQuorum
from ledger.log.entry import Entry, checked_entry
from ledger.log.merkle import HASH_SIZE
from ledger.log.notes import Checkpoint, Verifier, open_checkpoint, parse_note
from ledger.log.tiles import (
    CHECKPOINT_PATH,
    MAX_BUNDLE_ENTRY_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    bundles_for_size,
    iter_bundle,
)
from ledger.log.verify import ChainChecker

TLOG_PATH = "tlog/"
"""Where a running Lunaria serves its tlog-tiles, below its base URL."""

MAX_CHECKPOINT_BYTES = 1 << 20
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_BUNDLE_ENTRY_BYTES)
HTTP_TIMEOUT = 30.0
GZIP_SLACK = 1 << 16
"""Compressed bodies of random hashes are slightly larger than the hashes: read this more."""


# --- sources ---------------------------------------------------------------------------------


class Source(Protocol):
    """Where the tlog-tiles resources come from."""

    def fetch(self, path: str, limit: int) -> bytes | None:
        """The resource's bytes, or None if it does not exist; at most ``limit`` bytes."""

    def describe(self) -> str: ...


def _too_large(path: str, limit: int) -> VerificationError:
    return VerificationError(None, f"{path}: larger than {limit} bytes")


@dataclass(frozen=True)
class DirectorySource:
    """A directory written by ``lunaria publish``."""

    root: Path

    def fetch(self, path: str, limit: int) -> bytes | None:
        try:
            with (self.root / path).open("rb") as handle:
                data = handle.read(limit + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VerificationError(None, f"{path}: cannot be read: {exc}") from exc
        if len(data) > limit:
            raise _too_large(path, limit)
        return data

    def describe(self) -> str:
        return str(self.root)


@dataclass(frozen=True)
class HttpSource:
    """A tlog-tiles prefix served over HTTP(S); ``prefix`` ends with a slash."""

    prefix: str
    timeout: float = HTTP_TIMEOUT

    def fetch(self, path: str, limit: int) -> bytes | None:
        url = self.prefix + path
        request = urllib.request.Request(
            url, headers={"Accept-Encoding": "gzip, identity", "User-Agent": "lunaria-audit"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data: bytes = response.read(limit + GZIP_SLACK)
                encoding = response.headers.get("Content-Encoding", "identity")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise VerificationError(None, f"{path}: HTTP {exc.code} from {url}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise VerificationError(None, f"{path}: cannot fetch {url}: {exc}") from exc
        if encoding == "gzip":
            data = _gunzip(path, data, limit)
        if len(data) > limit:
            raise _too_large(path, limit)
        return data

    def describe(self) -> str:
        return self.prefix


def _gunzip(path: str, data: bytes, limit: int) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            return stream.read(limit + 1)
    except (OSError, EOFError) as exc:
        raise VerificationError(None, f"{path}: bad gzip encoding: {exc}") from exc


MIRRORED_PATH = re.compile(r"https?://.*/mirror/[0-9a-f]{64}/?")
"""A mirror's copy of a log (``<base>/mirror/<hex SHA-256 of origin>/``): itself the prefix."""


def open_source(location: str) -> Source:
    """An ``http(s)://`` base URL (resources under ``<base>/tlog/``), a mirrored log's prefix
    (``<base>/mirror/<hex>/``) or a directory."""
    if MIRRORED_PATH.fullmatch(location):
        return HttpSource(location.rstrip("/") + "/")
    if re.match(r"https?://", location):
        return HttpSource(location.rstrip("/") + "/" + TLOG_PATH)
    root = Path(location)
    if not root.is_dir():
        raise LedgerError(f"{location!r} is neither an http(s):// URL nor a directory")
    return DirectorySource(root)


# --- domain rules ----------------------------------------------------------------------------

_SIGNED_AMOUNT = re.compile(r"0|-?[1-9][0-9]{0,47}")
AVAILABLE = "available"


@dataclass(frozen=True)
class RulesReport:
    """What :func:`audit_rules` replayed."""

    entries: int
    money_entries: int
    balances: dict[tuple[str, str], int] = field(hash=False)
    responses: dict[tuple[str, int], ResponseFigures] = field(hash=False, default_factory=dict)
    """Recomputed response figures of urgent grants, by (pool, closed cycle)."""

    def summary(self) -> str:
        lines = [f"rules hold over {self.entries} entries ({self.money_entries} with postings)"]
        lines += [
            response_line(pool, cycle, figures)
            for (pool, cycle), figures in sorted(self.responses.items())
        ]
        return "\n".join(lines)


def response_line(pool: str, cycle: int, figures: ResponseFigures) -> str:
    """One closed cycle's response figures, in the audit's output (the same words each time,
    so a reader can parse them)."""
    median = "none" if figures.median_seconds is None else f"{figures.median_seconds} s"
    return (
        f"response {pool} cycle {cycle}: {figures.on_time} of {figures.counted} urgent grants "
        f"decided within {figures.deadline_hours} h; median time to a decision {median} "
        f"over {figures.decided} decided"
    )


def _posting(entry: Entry, i: int, raw: Any) -> tuple[str, str, int]:
    """``(account, currency, signed amount)`` of one posting, strictly."""
    if not isinstance(raw, dict) or raw.keys() != {"account", "currency", "amount"}:
        raise VerificationError(
            entry.seq, f"posting {i} is not {{account, currency, amount}}: {raw!r:.120}"
        )
    account, currency, amount = raw["account"], raw["currency"], raw["amount"]
    if not isinstance(account, str) or ":" not in account or not isinstance(currency, str):
        raise VerificationError(entry.seq, f"posting {i} has account {account!r:.80}")
    if not isinstance(amount, str) or _SIGNED_AMOUNT.fullmatch(amount) is None:
        raise VerificationError(entry.seq, f"posting {i} amount {amount!r:.80} is not digits")
    return account, currency, int(amount)


class RuleReplay:
    """Domain rules replayed entry by entry; raises :class:`VerificationError` at a break.

    Postings balance per currency in every entry that has them, and no pool's ``available``
    account goes negative once an entry is applied (an entry's postings apply together:
    entries, not legs, are atomic); custody, votes, quorum, the fast lane and handover
    statements hold (:class:`ledger.fund.governance.GovernanceReplay`).
    """

    def __init__(self) -> None:
        self.entries = 0
        self.money_entries = 0
        self.balances: dict[tuple[str, str], int] = defaultdict(int)
        self.governance = GovernanceReplay(self.balances)

    def add(self, entry: Entry) -> None:
        self.entries += 1
        if "postings" in entry.data:
            self._post(entry)
        self.governance.add(entry)

    def _post(self, entry: Entry) -> None:
        self.money_entries += 1
        postings = entry.data["postings"]
        if not isinstance(postings, list):
            raise VerificationError(entry.seq, "postings is not a list")
        legs = [_posting(entry, i, raw) for i, raw in enumerate(postings)]
        totals: dict[str, int] = defaultdict(int)
        for _, currency, amount in legs:
            totals[currency] += amount
        unbalanced = {c: str(t) for c, t in sorted(totals.items()) if t}
        if unbalanced:
            raise VerificationError(entry.seq, f"postings do not balance: {unbalanced}")
        for account, currency, amount in legs:
            self.balances[account, currency] += amount
        for account, currency, _ in legs:
            balance = self.balances[account, currency]
            if account.rsplit(":", 1)[1] == AVAILABLE and balance < 0:
                raise VerificationError(entry.seq, f"{account} goes negative: {balance} {currency}")

    def report(self) -> RulesReport:
        return RulesReport(
            self.entries,
            self.money_entries,
            dict(self.balances),
            dict(self.governance.responses),
        )


def audit_rules(entries: Iterable[Entry]) -> RulesReport:
    """Replay the domain rules over ``entries`` (in seq order); see :class:`RuleReplay`."""
    replay = RuleReplay()
    for entry in entries:
        replay.add(entry)
    return replay.report()


# --- the tree --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditReport:
    """What a successful audit covered."""

    source: str
    checkpoint: Checkpoint
    bundles: int
    tiles: int
    rules: RulesReport
    cosigned_by: tuple[str, ...] = ()

    def summary(self) -> str:
        cp = self.checkpoint
        witnessed = f"; cosigned by {', '.join(self.cosigned_by)}" if self.cosigned_by else ""
        return (
            f"ok: {cp.origin} size {cp.size} root {cp.root.hex()} from {self.source}; "
            f"{self.bundles} entry bundles and {self.tiles} tiles verified; "
            f"{self.rules.summary()}{witnessed}"
        )


def _fetch(source: Source, path: str, limit: int) -> bytes:
    data = source.fetch(path, limit)
    if data is None:
        raise VerificationError(None, f"{path}: missing from {source.describe()}")
    return data


class TreeAuditor:
    """Streams the entry bundles of one tree size through the chain check and the tiles."""

    def __init__(self, source: Source, origin: str) -> None:
        self.source = source
        self.chain = ChainChecker(origin)
        self.pending: dict[int, list[bytes]] = defaultdict(list)
        self.bundles = 0
        self.tiles = 0

    def entries(self, size: int) -> Iterator[Entry]:
        """Every entry below ``size``, checked, in seq order; then the partial tiles."""
        for bundle in bundles_for_size(size):
            yield from self._bundle(bundle)
            self.bundles += 1
        self._finish(size)

    def _bundle(self, bundle: Tile) -> Iterator[Entry]:
        raws = iter_bundle(_fetch(self.source, bundle.path, MAX_BUNDLE_BYTES))
        count = 0
        while True:
            seq = bundle.first + count
            try:
                raw = next(raws, None)
            except EncodingError as exc:
                raise VerificationError(seq, f"{bundle.path}: {exc.message}") from exc
            if raw is None:
                break
            if count == bundle.width:
                raise VerificationError(seq, f"{bundle.path}: more than {bundle.width} entries")
            yield self._entry(bundle, raw)
            count += 1
        if count != bundle.width:
            raise VerificationError(
                bundle.first + count, f"{bundle.path}: {count} entries, expected {bundle.width}"
            )

    def _entry(self, bundle: Tile, raw: bytes) -> Entry:
        try:
            entry_hash, completed = self.chain.add(raw)
        except VerificationError as exc:
            raise VerificationError(exc.seq, f"{bundle.path}: {exc.reason}") from exc
        seq = self.chain.size - 1
        self._hash(0, seq, entry_hash, bundle)
        for (level, index), node in completed:
            if level % TILE_HEIGHT == 0:
                self._hash(level // TILE_HEIGHT, index, node, bundle)
        return checked_entry(raw)  # (ChainChecker has just accepted it)

    def _hash(self, level: int, index: int, node: bytes, bundle: Tile) -> None:
        hashes = self.pending[level]
        hashes.append(node)
        if len(hashes) == TILE_WIDTH:
            self._compare(Tile(level, index // TILE_WIDTH), hashes, bundle)
            hashes.clear()

    def _finish(self, size: int) -> None:
        for level, hashes in sorted(self.pending.items()):
            if hashes:
                index = (size >> (TILE_HEIGHT * level)) // TILE_WIDTH
                self._compare(Tile(level, index, len(hashes)), hashes, None)

    def _compare(self, tile: Tile, computed: list[bytes], bundle: Tile | None) -> None:
        data = _fetch(self.source, tile.path, TILE_WIDTH * HASH_SIZE)
        span = 1 << (TILE_HEIGHT * tile.level)
        first_leaf = tile.first * span
        if len(data) != tile.width * HASH_SIZE:
            raise VerificationError(
                first_leaf, f"{tile.path}: {len(data)} bytes, expected {tile.width * HASH_SIZE}"
            )
        for i, node in enumerate(computed):
            served = data[i * HASH_SIZE : (i + 1) * HASH_SIZE]
            if served != node:
                seq = first_leaf + i * span
                if tile.level == 0 and bundle is not None:
                    what = f"entry {seq} of {bundle.path} hashes to"
                else:
                    what = f"entries {seq}..{seq + span - 1} give"
                raise VerificationError(
                    seq, f"{tile.path}: hash {i} is {served.hex()}, but {what} {node.hex()}"
                )
        self.tiles += 1


def _open(
    note: bytes,
    verifiers: Sequence[Verifier],
    origin: str | None,
    witnesses: WitnessQuorum | None,
) -> tuple[Checkpoint, tuple[str, ...]]:
    try:
        checkpoint = open_checkpoint(note, verifiers, origin=origin)
        cosigned_by = () if witnesses is None else witnesses.check(parse_note(note))
    except NoteError as exc:
        raise VerificationError(None, f"{CHECKPOINT_PATH}: {exc.message}") from exc
    return checkpoint, cosigned_by


def audit(
    source: Source | str,
    vkeys: Sequence[Verifier | str],
    origin: str | None = None,
    witnesses: WitnessQuorum | None = None,
) -> AuditReport:
    """Verify everything a tlog-tiles source publishes; raise at the first problem.

    ``origin`` defaults to the checkpoint's own. With ``witnesses``, the checkpoint must also
    carry the cosignatures of a quorum of them (c2sp.org/tlog-cosignature): a checkpoint no
    quorum of witnesses saw may be one of two histories shown to different readers. Raises
    :class:`VerificationError` naming the resource path and, where one entry is to blame, its
    seq.
    """
    verifiers = [v if isinstance(v, Verifier) else Verifier.from_vkey(v) for v in vkeys]
    if not verifiers:
        raise LedgerError("an audit needs at least one trusted verifier key")
    if isinstance(source, str):
        source = open_source(source)
    note = _fetch(source, CHECKPOINT_PATH, MAX_CHECKPOINT_BYTES)
    checkpoint, cosigned_by = _open(note, verifiers, origin, witnesses)
    tree = TreeAuditor(source, checkpoint.origin)
    rules = audit_rules(tree.entries(checkpoint.size))
    root = tree.chain.frontier.root()
    if root != checkpoint.root:
        raise VerificationError(
            max(checkpoint.size - 1, 0),
            f"{CHECKPOINT_PATH}: signs root {checkpoint.root.hex()} at size {checkpoint.size}, "
            f"but the entries give {root.hex()}",
        )
    return AuditReport(source.describe(), checkpoint, tree.bundles, tree.tiles, rules, cosigned_by)
