"""C2SP tlog-tiles: path vectors, tiles against an independent tree, publishing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ledger.errors import EncodingError, LedgerError, NotFound
from ledger.fund.audit import audit
from ledger.log.append import CheckpointPolicy, Log
from ledger.log.clock import ManualClock
from ledger.log.merkle import Frontier, leaf_hash
from ledger.log.notes import Signer
from ledger.log.tiles import (
    Tile,
    bundles_for_size,
    decode_bundle,
    encode_bundle,
    entries_path,
    parse_tile_path,
    publish,
    read_entry_bundle,
    read_resource,
    read_tile,
    tile_path,
    tiles_for_size,
)
from tests.conftest import ORIGIN

# -- paths --------------------------------------------------------------------------------------

PATHS = [
    # (level, index, width, path): the spec's example and the group boundaries around it.
    (0, 1234067, 256, "tile/0/x001/x234/067"),
    (0, 0, 256, "tile/0/000"),
    (0, 255, 256, "tile/0/255"),
    (0, 256, 256, "tile/0/256"),
    (0, 999, 256, "tile/0/999"),
    (0, 1000, 256, "tile/0/x001/000"),
    (1, 1000000, 256, "tile/1/x001/x000/000"),
    (2, 1234067, 256, "tile/2/x001/x234/067"),
    (0, 0, 1, "tile/0/000.p/1"),
    (0, 273, 112, "tile/0/273.p/112"),
    (1, 1, 17, "tile/1/001.p/17"),
    (1, 1234067, 255, "tile/1/x001/x234/067.p/255"),
    (63, 0, 7, "tile/63/000.p/7"),
    (0, 2**63 - 1, 256, "tile/0/x009/x223/x372/x036/x854/x775/807"),
]
ENTRY_PATHS = [
    (1234067, 256, "tile/entries/x001/x234/067"),
    (0, 256, "tile/entries/000"),
    (1000, 256, "tile/entries/x001/000"),
    (0, 1, "tile/entries/000.p/1"),
    (273, 112, "tile/entries/273.p/112"),
]


@pytest.mark.parametrize(("level", "index", "width", "path"), PATHS)
def test_tile_paths(level: int, index: int, width: int, path: str) -> None:
    assert tile_path(level, index, width) == path
    assert parse_tile_path(path) == Tile(level, index, width, is_entries=False)
    assert Tile(level, index, width).path == path


@pytest.mark.parametrize(("index", "width", "path"), ENTRY_PATHS)
def test_entry_bundle_paths(index: int, width: int, path: str) -> None:
    assert entries_path(index, width) == path
    assert parse_tile_path(path) == Tile(0, index, width, is_entries=True)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/67",  # groups are three digits
        "tile/0/0067",
        "tile/0/x000/067",  # a leading zero group
        "tile/0/001/234",  # all but the last group carry an x
        "tile/0/x001/x234",  # the last one does not
        "tile/0/X001/234",
        "tile/0/x1/234",
        "tile/0/00a",
        "tile/0/ 000",
        "tile/0/000/",
        "tile/0/000\n",
        "tile/00/000",  # levels without leading zeros, 0..63
        "tile/01/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/0/000.p/256",  # a full tile has no .p suffix
        "tile/0/000.p/0",
        "tile/0/000.p/007",
        "tile/0/000.p/",
        "tile/0/000.p/12/",
        "tile/0/000.p/1.p/2",
        "tile/0/x009/x223/x372/x036/x854/x775/808",  # 2**63: beyond any tree
        "tile/0",
        "tile/entries",
        "tile/entries/",
        "tile/entry/000",
        "tile/data/000",
        "/tile/0/000",
        "tiles/0/000",
        "checkpoint",
        "",
    ],
)
def test_parse_refuses_non_canonical_paths(path: str) -> None:
    with pytest.raises(NotFound, match="not a canonical tlog-tiles path"):
        parse_tile_path(path)


@pytest.mark.parametrize(
    ("level", "index", "width"), [(-1, 0, 256), (64, 0, 256), (0, -1, 256), (0, 0, 0), (0, 0, 257)]
)
def test_tile_path_refuses_impossible_tiles(level: int, index: int, width: int) -> None:
    with pytest.raises(ValueError):
        tile_path(level, index, width)


def test_tiles_for_size_as_in_the_spec() -> None:
    tiles = tiles_for_size(70000)
    assert [t for t in tiles if t.level == 0 and not t.is_partial] == [
        Tile(0, i) for i in range(273)
    ]
    assert [t for t in tiles if t.is_partial or t.level > 0] == [
        Tile(0, 273, 112),
        Tile(1, 0),
        Tile(1, 1, 17),
        Tile(2, 0, 1),
    ]
    assert tiles_for_size(256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert tiles_for_size(1) == [Tile(0, 0, 1)]
    assert tiles_for_size(0) == []
    assert bundles_for_size(513) == [
        Tile(0, 0, is_entries=True),
        Tile(0, 1, is_entries=True),
        Tile(0, 2, 1, is_entries=True),
    ]


def test_entry_bundle_encoding() -> None:
    raws = [b"", b"{}", b"x" * 300, b"y" * 0xFFFF]
    bundle = encode_bundle(raws)
    assert bundle[:6] == b"\x00\x00\x00\x02{}"
    assert bundle[6:8] == (300).to_bytes(2, "big")
    assert decode_bundle(bundle) == raws
    with pytest.raises(EncodingError, match="does not fit"):
        encode_bundle([b"z" * 0x10000])
    with pytest.raises(EncodingError, match="entry 1 of the bundle claims 2 bytes"):
        decode_bundle(b"\x00\x00\x00\x02{")
    with pytest.raises(EncodingError, match="entry 1 of the bundle has a truncated length"):
        decode_bundle(b"\x00\x00\x00")


# -- tiles from the database ----------------------------------------------------------------------


def grow(log: Log, size: int) -> None:
    """Append entries up to ``size`` in batches, then sign a checkpoint of exactly ``size``."""
    while (head := log.head().size) < size:
        with log.writer() as writer:
            for i in range(head, min(size, head + 20_000)):
                writer.append("checkpoint_anchored", {"i": i})  # no fund rule applies
    if log.head().checkpoint_size != size:
        log.checkpoint_now()


def expected_tiles(log: Log, size: int) -> dict[Tile, bytes]:
    """Every tile of ``size``, computed from the entries with merkle.Frontier (not the store)."""
    frontier = Frontier()
    levels: dict[int, list[bytes]] = {}
    for raw in log.iter_raw():
        leaf = leaf_hash(raw)
        levels.setdefault(0, []).append(leaf)
        for (level, _), node in frontier.append(leaf):
            if level % 8 == 0:
                levels.setdefault(level // 8, []).append(node)
    assert frontier.size == size
    return {
        tile: b"".join(levels[tile.level][tile.first : tile.first + tile.width])
        for tile in tiles_for_size(size)
    }


@pytest.mark.parametrize("size", [1, 255, 256, 257, 513])
def test_tiles_equal_the_tree(log: Log, size: int) -> None:
    grow(log, size)
    expected = expected_tiles(log, size)
    for tile, data in expected.items():
        assert read_tile(log, tile.level, tile.index, tile.width) == data, tile.path
        assert read_resource(log, tile.path) == data
    raws = list(log.iter_raw())
    for bundle in bundles_for_size(size):
        data = read_entry_bundle(log, bundle.index, bundle.width)
        assert decode_bundle(data) == raws[bundle.first : bundle.first + bundle.width]


def test_large_log_tiles_publish_and_audit(log: Log, signer: Signer, tmp_path: Path) -> None:
    """70000 entries: 273 full level-0 tiles, then levels 1 and 2, as in the spec's example."""
    grow(log, 70000)
    expected = expected_tiles(log, 70000)
    assert len(expected) == 277
    report = publish(log, tmp_path / "tlog")
    assert (report.written, report.present) == (274 + 277 + 1, 0)
    for tile, data in expected.items():
        assert (tmp_path / "tlog" / tile.path).read_bytes() == data
    audited = audit(str(tmp_path / "tlog"), [signer.verifier()])
    assert (audited.checkpoint.size, audited.bundles, audited.tiles) == (70000, 274, 277)
    assert audited.checkpoint.root == log.root_at(70000)


def test_tiles_are_bounded_by_the_latest_checkpoint(log: Log, clock: ManualClock) -> None:
    grow(log, 20)
    with log.writer() as writer:  # five more, not yet under a checkpoint
        for i in range(5):
            writer.append("correction", {"i": i})
    assert log.head().size == 25
    note = log.latest_checkpoint().note  # type: ignore[union-attr]
    assert read_resource(log, "checkpoint") == note.encode()
    assert len(read_tile(log, 0, 0, 20)) == 20 * 32
    assert read_tile(log, 0, 0, 19) == read_tile(log, 0, 0, 20)[: 19 * 32]
    for path in ("tile/0/000.p/21", "tile/0/000", "tile/1/000.p/1", "tile/entries/000.p/25"):
        with pytest.raises(NotFound, match="the latest checkpoint covers 20"):
            read_resource(log, path)
    with pytest.raises(NotFound, match="not a canonical"):
        read_resource(log, "tile/0/0")


def test_read_tile_with_no_checkpoint(engine: Engine, signer: Signer) -> None:
    log = Log(engine, ORIGIN, signer=signer)
    with pytest.raises(NotFound):  # not even created
        read_resource(log, "checkpoint")


# -- publish --------------------------------------------------------------------------------------


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_publish_writes_every_tile_once(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tlog"
    grow(log, 300)
    first = publish(log, out)
    assert (first.size, first.written, first.present) == (300, 6, 0)
    published = files(out)
    assert sorted(published) == [
        "checkpoint",
        "tile/0/000",
        "tile/0/001.p/44",
        "tile/1/000.p/1",
        "tile/entries/000",
        "tile/entries/001.p/44",
    ]
    assert published["checkpoint"] == log.latest_checkpoint().note.encode()  # type: ignore[union-attr]
    for path, data in published.items():
        if path != "checkpoint":
            assert read_resource(log, path) == data

    again = publish(log, out)
    assert (again.written, again.present) == (0, 6)
    assert files(out) == published

    grow(log, 600)
    later = publish(log, out)
    assert later.summary() == (
        f"published {ORIGIN} at size 600: 6 files written, 2 already present"
    )
    now = files(out)
    assert {p: now[p] for p in published if p != "checkpoint"} == {
        p: d for p, d in published.items() if p != "checkpoint"
    }  # the partial tiles of size 300 stay for clients of that checkpoint
    assert "tile/0/002.p/88" in now and "tile/1/000.p/2" in now
    assert not [p for p in now if ".tmp-" in p]


def test_publish_refuses_to_roll_back(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tlog"
    grow(log, 30)
    publish(log, out)
    note = (out / "checkpoint").read_bytes()
    (out / "checkpoint").write_bytes(note.replace(b"\n30\n", b"\n31\n"))
    with pytest.raises(LedgerError, match="already holds size 31"):
        publish(log, out)
    (out / "checkpoint").write_bytes(note.replace(ORIGIN.encode(), b"x.example/y", 1))
    with pytest.raises(LedgerError, match=re.escape("is a checkpoint of 'x.example/y'")):
        publish(log, out)
    (out / "checkpoint").write_text("not a note")
    with pytest.raises(LedgerError, match="is not a checkpoint"):
        publish(log, out)
    (out / "checkpoint").write_bytes(note)
    assert publish(log, out).written == 0


def test_publish_needs_a_checkpoint(engine: Engine, signer: Signer, tmp_path: Path) -> None:
    log = Log(engine, ORIGIN, signer=signer, policy=CheckpointPolicy())
    with pytest.raises(NotFound):
        publish(log, tmp_path / "tlog")
