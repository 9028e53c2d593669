"""This instance as a mirror of other logs: it copies their C2SP tlog-tiles and serves them.

Read beside https://c2sp.org/tlog-tiles, https://c2sp.org/tlog-cosignature and
https://c2sp.org/tlog-mirror. The operator names a log by the base URL of the Lunaria that
serves it (its tiles under ``<url>/tlog/``) and the log's verifier key, whose name is the
origin (``lunaria mirror add URL --vkey VKEY``). A sync (:meth:`Mirrors.sync`):

1. fetches ``checkpoint`` and opens it with that key (a checkpoint it does not sign changes
   nothing);
2. compares it with the tree held: a smaller tree must be a prefix of it (the root at that size,
   computed from the tiles held, is the same), an equal one must have the same root;
3. fetches every entry bundle and hash tile of the new size not held yet (full tiles never
   change, so a full tile held is never fetched again), and checks them: each level-0 hash is
   the leaf hash of its entry, each higher hash the subtree of the tile below, and the tiles
   give the signed root;
4. checks the new tree against the one held with a consistency proof computed from the tiles
   (the ones held and the new ones), as a witness would (c2sp.org/tlog-witness);
5. stores the tiles and the checkpoint in one transaction, moving the record by compare-and-set
   (size and root it checked against), with this instance's mirror cosignature on the checkpoint:
   ``cosignature/v1`` by the mirror key (type 0x04, distinct from the witness key), made before
   the commit and never served unless the commit holds, so it states that the log is durably
   copied up to that size.

A validly signed checkpoint that is not consistent with the tree held (two roots at one size,
or a larger tree whose prefix is another tree) is a split view: the sync refuses it, logs it
at ERROR, keeps it with the checkpoint held (``mirror_incidents``) and raises
:class:`SplitView`. Origin data that does not check out (a tile that does not match its
entries, a missing tile) is refused without an incident: :class:`MirrorBadData`.

Only what the origin publishes is stored: its checkpoint, tiles and entry bundles.
"""

from __future__ import annotations

import hashlib
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger.errors import InvalidKey, LedgerError, NoteError, NotFound, ProofError, SignatureError
from ledger.log.clock import Clock, format_ts
from ledger.log.cosignature import Cosigner
from ledger.log.db import write_transaction
from ledger.log.merkle import (
    HASH_SIZE,
    NodeId,
    consistency_proof,
    leaf_hash,
    node_hash,
    root_at,
    verify_consistency,
)
from ledger.log.notes import Checkpoint, Note, Verifier, open_note, parse_checkpoint, parse_note
from ledger.log.schema import mirror_incidents, mirror_tiles, mirrors
from ledger.log.tiles import (
    CHECKPOINT_PATH,
    MAX_BUNDLE_ENTRY_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    bundles_for_size,
    decode_bundle,
    parse_tile_path,
    tiles_for_size,
)

__all__ = [
    "MIRROR_PREFIX",
    "MirrorBadData",
    "MirrorError",
    "MirrorIncident",
    "MirrorSync",
    "MirrorUnavailable",
    "MirroredLog",
    "Mirrors",
    "SplitView",
    "SyncReport",
    "origin_hash",
]

log = logging.getLogger(__name__)

MIRROR_PREFIX = "mirror/"
"""Where a mirrored log is served, below the base URL: ``mirror/<hex SHA-256 of origin>/``."""

TLOG_PATH = "tlog/"
"""Where a Lunaria serves its own log's tlog-tiles, below its base URL."""

MAX_CHECKPOINT_BYTES = 1 << 20
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_BUNDLE_ENTRY_BYTES)
TIMEOUT = 30.0  # seconds per request to an origin
FETCHERS = 8  # requests at once while catching up
DEFAULT_INTERVAL = timedelta(seconds=60)  # how often the worker syncs each mirror

_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}")

Fetch = Callable[[str, int], bytes | None]
"""GET ``url`` (at most ``limit`` bytes): its body, or None for a 404. Raises
:class:`MirrorUnavailable` when the origin cannot be reached or answers another error."""


class MirrorError(LedgerError):
    """A sync that failed; nothing was stored."""

    code = "mirror_failed"


class MirrorUnavailable(MirrorError):
    """The origin could not be reached, or answered an HTTP error."""

    code = "mirror_origin_unavailable"


class MirrorUntrusted(MirrorError):
    """The origin's checkpoint is not signed by the key the mirror was given."""

    code = "mirror_untrusted_checkpoint"


class MirrorBadData(MirrorError):
    """The origin's tiles or entry bundles are missing, malformed or do not give its root."""

    code = "mirror_bad_origin_data"


class MirrorExists(MirrorError):
    """``mirror add`` of an origin already mirrored with another key or URL."""

    code = "mirror_exists"


class SplitView(MirrorError):
    """A validly signed checkpoint not consistent with the tree held: kept as an incident."""

    code = "mirror_split_view"


class UnknownMirror(NotFound):
    code = "unknown_mirror"


def origin_hash(origin: str) -> str:
    """The lowercase hex SHA-256 of the origin line: its directory below ``mirror/``."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def http_get(url: str, limit: int) -> bytes | None:
    """GET with the standard library (see :data:`Fetch`)."""
    request = urllib.request.Request(
        url, headers={"Accept-Encoding": "identity", "User-Agent": "lunaria-mirror"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            data: bytes = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise MirrorUnavailable(f"HTTP {exc.code} from {url}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MirrorUnavailable(f"cannot reach {url}: {reason}") from exc
    if len(data) > limit:
        raise MirrorBadData(f"{url} is larger than {limit} bytes")
    return data


# -- the state kept ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MirroredLog:
    """A log this instance mirrors: where from, with which key, and how far it is copied."""

    origin: str
    origin_hash: str
    url: str
    vkey: str
    size: int
    root: bytes
    note: str
    cosignature: str
    added: str
    copied: str
    checked: str | None
    last_error: str | None
    last_error_at: str | None
    incidents: int

    def served_note(self) -> str:
        """The origin's checkpoint as fetched (with its witnesses' lines) and this mirror's
        cosignature line."""
        return self.note + self.cosignature


@dataclass(frozen=True)
class MirrorIncident:
    """A refused checkpoint: when, why, the origin's signed note and the note held then."""

    ts: str
    reason: str
    note: str
    held_note: str


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    origin: str
    old_size: int
    size: int
    fetched: int
    fetched_bytes: int
    added: bool = False
    stale: bool = False

    def summary(self) -> str:
        if self.added:
            return (
                f"mirroring {self.origin} at size {self.size}: {self.fetched} resources "
                f"({self.fetched_bytes} bytes) copied"
            )
        if self.stale:
            return (
                f"mirror {self.origin}: the origin serves size {self.size}, below the "
                f"{self.old_size} held (consistent); nothing to copy"
            )
        if self.size == self.old_size:
            return f"mirror {self.origin}: up to date at size {self.size}"
        return (
            f"mirror {self.origin}: {self.old_size} -> {self.size}, {self.fetched} resources "
            f"({self.fetched_bytes} bytes) copied"
        )


# -- hashes from tiles ------------------------------------------------------------------------


class TileTree:
    """The hashes of a tree of ``size`` leaves, read from its tiles (``tiles_for_size``)."""

    def __init__(self, size: int, tiles: Mapping[tuple[int, int], bytes]) -> None:
        self.size = size
        self.tiles = tiles  # (tile level, tile index) -> the widest bytes held for this size

    def hashes(self, level: int, start: int, count: int) -> list[bytes]:
        """``count`` hashes of tree level ``8 * level`` from index ``start`` (one tile)."""
        tile = self.tiles.get((level, start // TILE_WIDTH))
        offset = (start % TILE_WIDTH) * HASH_SIZE
        if tile is None or len(tile) < offset + count * HASH_SIZE:
            raise MirrorBadData(f"no tile holds hashes {start}..{start + count - 1} at {level}")
        return [tile[offset + i * HASH_SIZE : offset + (i + 1) * HASH_SIZE] for i in range(count)]

    def node(self, node: NodeId) -> bytes:
        """The hash of perfect subtree ``(level, index)``: from the tile at ``level // 8``."""
        level, index = node
        above = level % TILE_HEIGHT
        hashes = self.hashes(level // TILE_HEIGHT, index << above, 1 << above)
        return _reduce(hashes)

    def read(self, nodes: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        """A :data:`ledger.log.merkle.NodeReader`."""
        return {node: self.node(node) for node in nodes}

    def root(self, size: int) -> bytes:
        """MTH of the first ``size`` leaves (``size`` at most this tree's)."""
        return root_at(size, self.read)


def _reduce(hashes: list[bytes]) -> bytes:
    """The root of a perfect subtree from its 2**k hashes at one level."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


# -- the mirrors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Copy:
    """What a sync fetched (path -> bytes) and the new tree's hash tiles."""

    resources: dict[str, bytes]
    tree: TileTree
    bundles: list[Tile]
    tiles: list[Tile]

    def check(self, base: str, checkpoint: Checkpoint) -> None:
        """Every new entry hashes to its level-0 hash, every new hash above is the subtree of
        the tile below, and the tiles give the signed root; else :class:`MirrorBadData`."""
        for bundle in self.bundles:
            _check_bundle(bundle, self.resources[bundle.path], self.tree)
        for tile in self.tiles:
            if tile.level:
                _check_tile(tile, self.tree)
        root = self.tree.root(checkpoint.size)
        if root != checkpoint.root:
            raise MirrorBadData(
                f"the tiles of {base} give root {root.hex()} at size {checkpoint.size}, "
                f"not the signed {checkpoint.root.hex()}"
            )


@dataclass(frozen=True)
class _Fetched:
    note: Note
    checkpoint: Checkpoint
    url: str


class Mirrors:
    """The logs this deployment mirrors: its database, its mirror key, its clock."""

    def __init__(
        self,
        engine: Engine,
        cosigner: Cosigner | None,
        clock: Clock,
        *,
        fetch: Fetch = http_get,
    ) -> None:
        self.engine = engine
        self.cosigner = cosigner
        self.clock = clock
        self.fetch = fetch

    # -- reads --------------------------------------------------------------------------------

    def logs(self) -> list[MirroredLog]:
        """Every log mirrored, by origin."""
        with self.engine.connect() as conn:
            counts: dict[str, int] = dict(
                conn.execute(
                    select(mirror_incidents.c.origin_hash, func.count()).group_by(
                        mirror_incidents.c.origin_hash
                    )
                ).all()
            )
            rows = conn.execute(select(mirrors).order_by(mirrors.c.origin)).all()
        return [_mirrored(row, int(counts.get(row.origin_hash, 0))) for row in rows]

    def get(self, key: str) -> MirroredLog:
        """A mirrored log by its origin hash or its origin; :class:`NotFound` otherwise."""
        wanted = key if _ORIGIN_HASH.fullmatch(key) else origin_hash(key)
        for mirrored in self.logs():
            if mirrored.origin_hash == wanted:
                return mirrored
        raise UnknownMirror(f"this instance does not mirror {key[:100]!r}")

    def incidents(self, key: str) -> list[MirrorIncident]:
        """The refused checkpoints of a mirrored log, oldest first."""
        mirrored = self.get(key)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(mirror_incidents)
                .where(mirror_incidents.c.origin_hash == mirrored.origin_hash)
                .order_by(mirror_incidents.c.id)
            ).all()
        return [MirrorIncident(r.ts, r.reason, r.note, r.held_note) for r in rows]

    def resource(self, key: str, path: str) -> bytes:
        """A tlog-tiles resource of a mirrored log, byte for byte as copied (the checkpoint
        with this mirror's cosignature); :class:`NotFound` for anything not held."""
        if _ORIGIN_HASH.fullmatch(key) is None:
            raise UnknownMirror(f"{key[:100]!r} is not a hex SHA-256 of an origin")
        mirrored = self.get(key)
        if path == CHECKPOINT_PATH:
            return mirrored.served_note().encode("utf-8")
        tile = parse_tile_path(path)
        with self.engine.connect() as conn:
            data = conn.execute(
                select(mirror_tiles.c.data).where(
                    mirror_tiles.c.origin_hash == key, mirror_tiles.c.path == tile.path
                )
            ).scalar()
        if data is None:
            raise NotFound(f"{tile.path} of {mirrored.origin} is not mirrored here")
        return bytes(data)

    # -- add and sync ---------------------------------------------------------------------------

    def add(self, url: str, vkey: str) -> SyncReport:
        """Mirror the log at ``url`` signed by ``vkey``: its first copy, all or nothing.

        Adding a log already mirrored from the same URL with the same key syncs it."""
        verifier = _verifier(vkey)
        base = _base_url(url)
        try:
            held = self.get(origin_hash(verifier.name))
        except UnknownMirror:
            held = None
        if held is not None:
            if held.vkey != verifier.vkey() or held.url != base:
                raise MirrorExists(
                    f"{verifier.name} is mirrored already, from {held.url} with key {held.vkey}"
                )
            return self.sync(held.origin_hash)
        self._require_key()
        fetched = self._fetch_checkpoint(base, verifier)
        checkpoint = fetched.checkpoint
        copy = self._copy(base, checkpoint, {}, 0)
        copy.check(base, checkpoint)
        resources = copy.resources
        now = format_ts(self.clock.now())
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(
                    insert(mirrors).values(
                        origin_hash=origin_hash(verifier.name),
                        origin=verifier.name,
                        url=base,
                        vkey=verifier.vkey(),
                        size=checkpoint.size,
                        root=checkpoint.root,
                        note=fetched.note.serialise(),
                        cosignature=self._cosign(fetched.note),
                        added=now,
                        copied=now,
                        checked=now,
                    )
                )
                _store(conn, origin_hash(verifier.name), resources)
        except IntegrityError as exc:
            raise MirrorExists(f"{verifier.name} was added by another command just now") from exc
        return SyncReport(
            verifier.name,
            0,
            checkpoint.size,
            len(resources),
            sum(len(d) for d in resources.values()),
            added=True,
        )

    def sync(self, key: str, url: str | None = None) -> SyncReport:
        """Bring a mirrored log up to its origin's latest checkpoint (see the module's text).

        ``url`` reads the log from another server (another mirror, or a second address of the
        origin): what it serves must be consistent with what is held, like the origin's.
        Failures are kept as the log's last error; a split view also as an incident."""
        held = self.get(key)
        try:
            return self._sync(held, _base_url(url) if url else held.url)
        except MirrorError as exc:
            self._note_error(held, exc.message)
            raise

    def sync_all(self) -> list[str]:
        """Sync every mirrored log; one line each (``error:`` lines for failures)."""
        lines: list[str] = []
        for held in self.logs():
            try:
                report = self.sync(held.origin_hash)
            except LedgerError as exc:
                lines.append(f"error: mirror {held.origin}: {exc.message}")
                continue
            if report.size != report.old_size:
                lines.append(report.summary())
        return lines

    def _sync(self, held: MirroredLog, base: str) -> SyncReport:
        self._require_key()
        verifier = Verifier.from_vkey(held.vkey)
        fetched = self._fetch_checkpoint(base, verifier)
        checkpoint = fetched.checkpoint
        held_tiles = self._held_tiles(held)
        if checkpoint.size <= held.size:
            root = TileTree(held.size, held_tiles).root(checkpoint.size)
            if root != checkpoint.root:
                self._split_view(
                    held,
                    fetched,
                    f"{base} serves a checkpoint of size {checkpoint.size} with root "
                    f"{checkpoint.root.hex()}, but the tree held has root {root.hex()} at that "
                    "size: two histories under the log's key",
                )
            self._checked(held)
            return SyncReport(
                held.origin,
                held.size,
                checkpoint.size,
                0,
                0,
                stale=checkpoint.size < held.size,
            )
        copy = self._copy(base, checkpoint, held_tiles, held.size)
        tree = copy.tree
        try:
            proof = consistency_proof(held.size, checkpoint.size, tree.read)
            verify_consistency(held.size, checkpoint.size, proof, held.root, checkpoint.root)
        except ProofError as exc:
            message = exc.message
            self._split_view(
                held,
                fetched,
                f"{base} serves a checkpoint of size {checkpoint.size} that is not consistent "
                f"with the tree of size {held.size} held: {message}",
            )
        copy.check(base, checkpoint)
        self._advance(held, fetched, copy.resources)
        return SyncReport(
            held.origin,
            held.size,
            checkpoint.size,
            len(copy.resources),
            sum(len(d) for d in copy.resources.values()),
        )

    # -- the steps ----------------------------------------------------------------------------

    def _require_key(self) -> None:
        if self.cosigner is None:
            raise MirrorError("this instance has no mirror key: run `lunaria init`")

    def _cosign(self, note: Note) -> str:
        assert self.cosigner is not None  # (checked by _require_key before any fetch)
        timestamp = int(self.clock.now().timestamp())
        return self.cosigner.cosign(note.text, timestamp).line()

    def _get(self, url: str, limit: int) -> bytes:
        data = self.fetch(url, limit)
        if data is None:
            raise MirrorBadData(f"{url} is not served (404)")
        return data

    def _fetch_checkpoint(self, base: str, verifier: Verifier) -> _Fetched:
        url = base + TLOG_PATH + CHECKPOINT_PATH
        data = self.fetch(url, MAX_CHECKPOINT_BYTES)
        if data is None:
            raise MirrorUnavailable(f"{url}: no checkpoint there (404)")
        try:
            note = parse_note(data)
            checkpoint = parse_checkpoint(note.text)
        except NoteError as exc:
            raise MirrorBadData(f"{url} is not a checkpoint: {exc.message}") from exc
        if checkpoint.origin != verifier.name:
            raise MirrorUntrusted(
                f"{url} is a checkpoint of {checkpoint.origin!r}, not of {verifier.name!r}"
            )
        try:
            open_note(note, [verifier])
        except (SignatureError, InvalidKey) as exc:
            raise MirrorUntrusted(
                f"{url} is not signed by {verifier.name}+{verifier.key_id.hex()}: {exc.message}"
            ) from exc
        return _Fetched(note, checkpoint, base)

    def _held_tiles(self, held: MirroredLog) -> dict[tuple[int, int], bytes]:
        """The hash tiles of the tree held (full ones and the partial ones of its size)."""
        wanted = {tile.path: tile for tile in tiles_for_size(held.size)}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(mirror_tiles.c.path, mirror_tiles.c.data).where(
                    mirror_tiles.c.origin_hash == held.origin_hash,
                    mirror_tiles.c.path.in_(list(wanted)),
                )
            ).all()
        return {(wanted[p].level, wanted[p].index): bytes(d) for p, d in rows}

    def _copy(
        self,
        base: str,
        checkpoint: Checkpoint,
        held_tiles: Mapping[tuple[int, int], bytes],
        held_size: int,
    ) -> _Copy:
        """Fetch what the new size needs beyond what is held (full tiles held are kept)."""
        size = checkpoint.size
        held_full = {t.path for t in tiles_for_size(held_size) if not t.is_partial}
        new_tiles = [t for t in tiles_for_size(size) if t.path not in held_full]
        new_bundles = [b for b in bundles_for_size(size) if b.first + b.width > held_size]
        wanted = [*new_bundles, *new_tiles]
        with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
            bodies = list(
                pool.map(lambda t: self._get(base + TLOG_PATH + t.path, _limit(t)), wanted)
            )
        resources = {t.path: body for t, body in zip(wanted, bodies, strict=True)}
        tiles: dict[tuple[int, int], bytes] = {
            key: data
            for key, data in held_tiles.items()
            if len(data) == TILE_WIDTH * HASH_SIZE  # (the partial tiles of the held size go)
        }
        for tile in new_tiles:
            data = resources[tile.path]
            if len(data) != tile.width * HASH_SIZE:
                raise MirrorBadData(
                    f"{tile.path} is {len(data)} bytes, not {tile.width} hashes of {HASH_SIZE}"
                )
            tiles[tile.level, tile.index] = data
        return _Copy(resources, TileTree(size, tiles), new_bundles, new_tiles)

    def _split_view(self, held: MirroredLog, fetched: _Fetched, reason: str) -> None:
        """Keep the refused checkpoint, say it loudly, raise :class:`SplitView`."""
        now = format_ts(self.clock.now())
        with write_transaction(self.engine) as conn:
            conn.execute(
                insert(mirror_incidents).values(
                    origin_hash=held.origin_hash,
                    ts=now,
                    reason=reason,
                    note=fetched.note.serialise(),
                    held_note=held.note,
                )
            )
        log.error("mirror %s refused a checkpoint: %s", held.origin, reason)
        raise SplitView(f"split view of {held.origin}: {reason}")

    def _checked(self, held: MirroredLog) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(mirrors)
                .where(mirrors.c.origin_hash == held.origin_hash)
                .values(checked=format_ts(self.clock.now()))
            )

    def _note_error(self, held: MirroredLog, message: str) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(mirrors)
                .where(mirrors.c.origin_hash == held.origin_hash)
                .values(last_error=message, last_error_at=format_ts(self.clock.now()))
            )

    def _advance(self, held: MirroredLog, fetched: _Fetched, resources: dict[str, bytes]) -> None:
        """Store the new tiles and checkpoint, moving the record by compare-and-set."""
        checkpoint = fetched.checkpoint
        now = format_ts(self.clock.now())
        with write_transaction(self.engine) as conn:
            moved = conn.execute(
                update(mirrors)
                .where(
                    mirrors.c.origin_hash == held.origin_hash,
                    mirrors.c.size == held.size,
                    mirrors.c.root == held.root,
                )
                .values(
                    size=checkpoint.size,
                    root=checkpoint.root,
                    note=fetched.note.serialise(),
                    cosignature=self._cosign(fetched.note),
                    copied=now,
                    checked=now,
                )
            ).rowcount
            if moved != 1:
                raise MirrorError(
                    f"another sync moved the mirror of {held.origin} while this one copied "
                    f"from size {held.size}; nothing stored by this one"
                )
            _store(conn, held.origin_hash, resources)


# -- helpers ----------------------------------------------------------------------------------


def _verifier(vkey: str) -> Verifier:
    try:
        return Verifier.from_vkey(vkey.strip())
    except InvalidKey as exc:
        raise InvalidKey(f"--vkey: {exc.message}") from exc


def _base_url(url: str) -> str:
    if not re.match(r"https?://[^/\s]+", url) or any(c.isspace() for c in url):
        raise MirrorError(f"{url[:200]!r} is not an http(s):// base URL")
    return url.rstrip("/") + "/"


def _limit(tile: Tile) -> int:
    return MAX_BUNDLE_BYTES if tile.is_entries else tile.width * HASH_SIZE


def _check_bundle(bundle: Tile, data: bytes, tree: TileTree) -> None:
    """Each entry's leaf hash is the level-0 hash at its index."""
    try:
        raws = decode_bundle(data)
    except LedgerError as exc:
        raise MirrorBadData(f"{bundle.path}: {exc.message}") from exc
    if len(raws) != bundle.width:
        raise MirrorBadData(f"{bundle.path} holds {len(raws)} entries, not {bundle.width}")
    hashes = tree.hashes(0, bundle.first, bundle.width)
    for i, raw in enumerate(raws):
        if leaf_hash(raw) != hashes[i]:
            raise MirrorBadData(
                f"entry {bundle.first + i} of {bundle.path} does not hash to its level-0 hash"
            )


def _check_tile(tile: Tile, tree: TileTree) -> None:
    """Each hash of a tile above level 0 is the subtree of the full tile below it."""
    level = tile.level * TILE_HEIGHT
    for i in range(tile.width):
        below = tree.hashes(tile.level - 1, (tile.first + i) * TILE_WIDTH, TILE_WIDTH)
        expected = tree.tiles[tile.level, tile.index][i * HASH_SIZE : (i + 1) * HASH_SIZE]
        if _reduce(below) != expected:
            raise MirrorBadData(
                f"hash {i} of {tile.path} is not the subtree ({level}, {tile.first + i}) "
                "of the tile below"
            )


def _store(conn: Connection, key: str, resources: Mapping[str, bytes]) -> None:
    held = set(
        conn.execute(
            select(mirror_tiles.c.path).where(
                mirror_tiles.c.origin_hash == key, mirror_tiles.c.path.in_(list(resources))
            )
        ).scalars()
    )
    rows = [
        {"origin_hash": key, "path": path, "data": data}
        for path, data in resources.items()
        if path not in held
    ]
    if rows:
        conn.execute(insert(mirror_tiles), rows)


def _mirrored(r: Any, incidents: int) -> MirroredLog:
    """A row of ``mirrors`` as a :class:`MirroredLog`."""
    return MirroredLog(
        origin=r.origin,
        origin_hash=r.origin_hash,
        url=r.url,
        vkey=r.vkey,
        size=int(r.size),
        root=bytes(r.root),
        note=r.note,
        cosignature=r.cosignature,
        added=r.added,
        copied=r.copied,
        checked=r.checked,
        last_error=r.last_error,
        last_error_at=r.last_error_at,
        incidents=incidents,
    )


# -- the worker's task ------------------------------------------------------------------------


class MirrorSync:
    """The worker task that syncs every mirrored log each ``interval``."""

    name = "mirrors"

    def __init__(self, mirrors: Mirrors, interval: timedelta = DEFAULT_INTERVAL) -> None:
        self.mirrors = mirrors
        self.interval = interval
        self._last: datetime | None = None

    def next_at(self, now: datetime) -> datetime:
        return now if self._last is None else self._last + self.interval

    def run(self, now: datetime) -> list[str]:
        self._last = now
        return self.mirrors.sync_all()
