"""C2SP tlog-tiles: the log as a checkpoint, Merkle tiles and entry bundles.

Read side by side with https://c2sp.org/tlog-tiles. Every resource lives under a prefix::

    checkpoint                      the latest signed checkpoint (mutable)
    tile/<L>/<N>[.p/<W>]            hashes of tree level 8L, 32 bytes each (immutable)
    tile/entries/<N>[.p/<W>]        entries 256N .. 256N+W-1, each uint16 length || bytes

``<N>`` is written in zero-padded 3-digit groups, all but the last prefixed ``x``
(1234067 -> ``x001/x234/067``); ``.p/<W>`` marks a partial tile of width 1..255. Hash ``i``
of tile ``(L, N)`` is the tree node ``(level 8L, index 256N + i)``: level 0 hashes are entry
hashes, higher ones are interior nodes the append path already stores, so a tile is one query.

Everything served is bounded by the latest *signed* checkpoint: entries appended since are not
published until a checkpoint covers them. A partial tile of any width whose hashes all lie
below that size is served (its bytes are a prefix of the eventual full tile, so it never
changes); :func:`tiles_for_size` lists exactly the tiles a given size needs.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, select

from ledger.errors import EncodingError, LedgerError, NoteError, NotFound
from ledger.log.append import Log
from ledger.log.db import read_transaction
from ledger.log.merkle import HASH_SIZE, NodeId
from ledger.log.notes import parse_checkpoint, parse_note
from ledger.log.schema import entries
from ledger.log.storage import StoredCheckpoint, latest_checkpoint, read_nodes, with_cosignatures

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63
MAX_INDEX = 2**63 - 1
MAX_BUNDLE_ENTRY_BYTES = 0xFFFF
"""An entry bundle prefixes each entry with a big-endian uint16 length."""

CHECKPOINT_PATH = "checkpoint"
TILE_PREFIX = "tile/"
ENTRIES_PREFIX = "tile/entries/"

_GROUP = re.compile(r"x[0-9]{3}")
_LAST_GROUP = re.compile(r"[0-9]{3}")
_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")

TileSource = Log | Connection
"""Tiles are read through a :class:`Log` (own read transaction) or an open connection."""


@dataclass(frozen=True)
class Tile:
    """One tlog-tiles resource: a hash tile at ``level`` or (``is_entries``) an entry bundle.

    Entry bundles have ``level`` 0: bundle N holds the entries whose hashes level-0 tile N holds.
    """

    level: int
    index: int
    width: int = TILE_WIDTH
    is_entries: bool = False

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        """The resource path below the log's prefix, e.g. ``tile/0/x001/234.p/7``."""
        if self.is_entries:
            return entries_path(self.index, self.width)
        return tile_path(self.level, self.index, self.width)

    @property
    def first(self) -> int:
        """Index of its first hash within tree level 8L (of its first entry, for bundles)."""
        return self.index * TILE_WIDTH

    @property
    def end(self) -> int:
        """The tree size it needs: every leaf below the last hash it holds."""
        return (self.first + self.width) << (TILE_HEIGHT * self.level)

    def node_ids(self) -> list[NodeId]:
        """The perfect subtrees whose hashes it holds, in order."""
        level = TILE_HEIGHT * self.level
        return [(level, self.first + i) for i in range(self.width)]


# --- paths -----------------------------------------------------------------------------------


def format_index(index: int) -> str:
    """``<N>`` of a tile path: 3-digit groups, all but the last prefixed with ``x``."""
    if isinstance(index, bool) or not 0 <= index <= MAX_INDEX:
        raise ValueError(f"tile index {index!r} is not in [0, 2**63)")
    groups: list[str] = []
    while True:
        index, rest = divmod(index, 1000)
        groups.append(f"{rest:03d}")
        if index == 0:
            break
    groups.reverse()
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def _suffix(width: int) -> str:
    if isinstance(width, bool) or not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width!r} is not in [1, {TILE_WIDTH}]")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]``: the Merkle tile at ``level`` (tree level 8L)."""
    if isinstance(level, bool) or not 0 <= level <= MAX_TILE_LEVEL:
        raise ValueError(f"tile level {level!r} is not in [0, {MAX_TILE_LEVEL}]")
    return f"{TILE_PREFIX}{level}/{format_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]``: entries ``256N .. 256N + W - 1``."""
    return f"{ENTRIES_PREFIX}{format_index(index)}{_suffix(width)}"


def _not_a_tile(path: str, why: str) -> NotFound:
    return NotFound(f"{path[:120]!r} is not a canonical tlog-tiles path: {why}")


def _parse_index(path: str, groups: list[str]) -> int:
    if not groups or _LAST_GROUP.fullmatch(groups[-1]) is None:
        raise _not_a_tile(path, "the index must end in a 3-digit group")
    if any(_GROUP.fullmatch(g) is None for g in groups[:-1]):
        raise _not_a_tile(path, "all but the last index group must be 'x' and 3 digits")
    if len(groups) > 1 and groups[0] == "x000":
        raise _not_a_tile(path, "the index has a leading zero group")
    index = int("".join(g.lstrip("x") for g in groups))
    if index > MAX_INDEX:
        raise _not_a_tile(path, "the index is beyond any tree")
    return index


def parse_tile_path(path: str) -> Tile:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` strictly.

    Only the canonical encoding is accepted (no leading zeros, no zero groups, no ``.p/256``),
    so every tile has exactly one path. Raises :class:`NotFound` otherwise.
    """
    if not path.startswith(TILE_PREFIX):
        raise _not_a_tile(path, f"it does not start with {TILE_PREFIX!r}")
    head, dot, width_text = path.partition(".p/")
    width = TILE_WIDTH
    if dot:
        if _WIDTH.fullmatch(width_text) is None or not 1 <= int(width_text) < TILE_WIDTH:
            raise _not_a_tile(path, "a partial width is a decimal from 1 to 255")
        width = int(width_text)
    level_text, _, rest = head[len(TILE_PREFIX) :].partition("/")
    is_entries = level_text == "entries"
    if not is_entries and (
        _LEVEL.fullmatch(level_text) is None or int(level_text) > MAX_TILE_LEVEL
    ):
        raise _not_a_tile(path, f"the level must be 'entries' or 0..{MAX_TILE_LEVEL}")
    index = _parse_index(path, rest.split("/"))
    return Tile(0 if is_entries else int(level_text), index, width, is_entries)


# --- which tiles exist -------------------------------------------------------------------------


def tiles_for_size(size: int) -> list[Tile]:
    """Every hash tile of a tree of ``size`` leaves: full tiles, then the partial one, per level.

    Size 70000 gives 273 full and a 112-wide tile at level 0, one full and a 17-wide tile at
    level 1 and a 1-wide tile at level 2, as in the spec.
    """
    tiles: list[Tile] = []
    level, hashes = 0, size
    while hashes:
        full, width = divmod(hashes, TILE_WIDTH)
        tiles.extend(Tile(level, index) for index in range(full))
        if width:
            tiles.append(Tile(level, full, width))
        level, hashes = level + 1, hashes >> TILE_HEIGHT
    return tiles


def bundles_for_size(size: int) -> list[Tile]:
    """Every entry bundle of a tree of ``size`` leaves, the partial one last."""
    full, width = divmod(size, TILE_WIDTH)
    bundles = [Tile(0, index, is_entries=True) for index in range(full)]
    if width:
        bundles.append(Tile(0, full, width, is_entries=True))
    return bundles


def check_tile(tile: Tile, size: int) -> None:
    """Raise :class:`NotFound` unless every hash or entry of ``tile`` lies below ``size``."""
    if tile.end > size:
        raise NotFound(
            f"{tile.path} needs a tree of {tile.end} entries; the latest checkpoint covers {size}"
        )


# --- entry bundles ---------------------------------------------------------------------------


def encode_bundle(raws: Sequence[bytes]) -> bytes:
    """``uint16 big-endian length || entry`` for every entry, in order."""
    parts: list[bytes] = []
    for raw in raws:
        if len(raw) > MAX_BUNDLE_ENTRY_BYTES:
            raise EncodingError(
                f"an entry of {len(raw)} bytes does not fit an entry bundle "
                f"(at most {MAX_BUNDLE_ENTRY_BYTES})"
            )
        parts.append(len(raw).to_bytes(2, "big") + raw)
    return b"".join(parts)


def iter_bundle(data: bytes) -> Iterator[bytes]:
    """The entries of an entry bundle, in order; :class:`EncodingError` where one is cut short."""
    offset = count = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise EncodingError(f"entry {count} of the bundle has a truncated length prefix")
        length = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise EncodingError(
                f"entry {count} of the bundle claims {length} bytes, "
                f"but only {len(data) - offset} remain"
            )
        yield data[offset : offset + length]
        offset += length
        count += 1


def decode_bundle(data: bytes) -> list[bytes]:
    """Every entry of an entry bundle (see :func:`iter_bundle`)."""
    return list(iter_bundle(data))


# --- reading from the database -----------------------------------------------------------------


@contextmanager
def _connection(source: TileSource) -> Iterator[Connection]:
    if isinstance(source, Log):
        with read_transaction(source.engine) as conn:
            yield conn
    else:
        yield source


def covered_size(conn: Connection) -> int:
    """The tree size of the latest signed checkpoint (0 before the first)."""
    latest = latest_checkpoint(conn)
    return 0 if latest is None else latest.size


def _read_hashes(conn: Connection, tile: Tile) -> bytes:
    """The tile's hashes with one query: entry hashes at level 0, stored nodes above."""
    if tile.level == 0:
        rows = conn.execute(
            select(entries.c.hash)
            .where(entries.c.seq >= tile.first, entries.c.seq < tile.first + tile.width)
            .order_by(entries.c.seq)
        )
        hashes = [bytes(h) for (h,) in rows]
    else:
        ids = tile.node_ids()
        found = read_nodes(conn, ids)
        hashes = [found[node] for node in ids if node in found]
    if len(hashes) != tile.width or any(len(h) != HASH_SIZE for h in hashes):
        raise LedgerError(f"the store is missing hashes of {tile.path}")
    return b"".join(hashes)


def _read_bundle(conn: Connection, tile: Tile) -> bytes:
    rows = conn.execute(
        select(entries.c.body)
        .where(entries.c.seq >= tile.first, entries.c.seq < tile.first + tile.width)
        .order_by(entries.c.seq)
    )
    raws = [bytes(body) for (body,) in rows]
    if len(raws) != tile.width:
        raise LedgerError(f"the store is missing entries of {tile.path}")
    return encode_bundle(raws)


def _read(conn: Connection, tile: Tile, size: int | None) -> bytes:
    check_tile(tile, covered_size(conn) if size is None else size)
    return _read_bundle(conn, tile) if tile.is_entries else _read_hashes(conn, tile)


def read_tile(
    source: TileSource, level: int, index: int, width: int = TILE_WIDTH, *, size: int | None = None
) -> bytes:
    """The bytes of tile ``tile/<level>/<index>[.p/<width>]``: ``width`` 32-byte hashes.

    Bounded by ``size`` (default: the latest checkpoint's); raises :class:`NotFound` beyond.
    """
    with _connection(source) as conn:
        return _read(conn, Tile(level, index, width), size)


def read_entry_bundle(
    source: TileSource, index: int, width: int = TILE_WIDTH, *, size: int | None = None
) -> bytes:
    """The bytes of ``tile/entries/<index>[.p/<width>]``; bounded like :func:`read_tile`."""
    with _connection(source) as conn:
        return _read(conn, Tile(0, index, width, is_entries=True), size)


def read_resource(source: TileSource, path: str) -> bytes:
    """Any tlog-tiles resource by its path below the prefix (what an HTTP route serves).

    ``checkpoint`` is the latest signed note with its cosignatures (UTF-8); tile paths are
    parsed strictly. Raises :class:`NotFound` for a malformed path or one beyond the latest
    checkpoint.
    """
    with _connection(source) as conn:
        if path == CHECKPOINT_PATH:
            latest = latest_checkpoint(conn)
            if latest is None:
                raise NotFound("the log has no signed checkpoint yet")
            return with_cosignatures(conn, latest).note.encode("utf-8")
        return _read(conn, parse_tile_path(path), None)


# --- publishing to a directory ---------------------------------------------------------------


@dataclass(frozen=True)
class PublishReport:
    """What :func:`publish` did."""

    origin: str
    size: int
    written: int
    present: int

    def summary(self) -> str:
        return (
            f"published {self.origin} at size {self.size}: {self.written} files written, "
            f"{self.present} already present"
        )


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _check_not_rolled_back(path: Path, checkpoint: StoredCheckpoint, origin: str) -> None:
    """Refuse to replace a published checkpoint by an older or different tree."""
    if not path.exists():
        return
    try:
        existing = parse_checkpoint(parse_note(path.read_bytes()).text)
    except NoteError as exc:
        raise LedgerError(f"{path} is not a checkpoint: {exc.message}") from exc
    if existing.origin != origin:
        raise LedgerError(f"{path} is a checkpoint of {existing.origin!r}, not {origin!r}")
    if existing.size > checkpoint.size or (
        existing.size == checkpoint.size and existing.root != checkpoint.root
    ):
        raise LedgerError(
            f"{path} already holds size {existing.size}; refusing to replace it with "
            f"size {checkpoint.size} of a different history"
        )


def publish(log: Log, directory: Path) -> PublishReport:
    """Write the tlog-tiles of the latest checkpoint to ``directory`` (served as the prefix).

    Deterministic and idempotent: tiles and bundles are immutable (a partial tile's bytes are
    fixed by its width), so files already present are kept; new ones are written atomically
    (temp file + rename), and the checkpoint last, so a reader never sees a checkpoint whose
    tiles are missing. Partial tiles of earlier checkpoints stay, as the spec lets logs do.
    """
    with read_transaction(log.engine) as conn:
        checkpoint = latest_checkpoint(conn)
        if checkpoint is None:
            raise NotFound("the log has no signed checkpoint to publish")
        checkpoint = with_cosignatures(conn, checkpoint)
        checkpoint_file = directory / CHECKPOINT_PATH
        _check_not_rolled_back(checkpoint_file, checkpoint, log.origin)
        written = present = 0
        for tile in [*bundles_for_size(checkpoint.size), *tiles_for_size(checkpoint.size)]:
            target = directory / tile.path
            if target.exists():
                present += 1
                continue
            write_atomically(target, _read(conn, tile, checkpoint.size))
            written += 1
    note = checkpoint.note.encode("utf-8")
    if checkpoint_file.exists() and checkpoint_file.read_bytes() == note:
        present += 1
    else:
        write_atomically(checkpoint_file, note)
        written += 1
    return PublishReport(log.origin, checkpoint.size, written, present)
