"""The verifiable log: a library of its own, usable without the fund.

Canonical JSON entries (:mod:`.canonical`, :mod:`.entry`), the RFC 9162 Merkle tree
(:mod:`.merkle`), C2SP signed notes and checkpoints (:mod:`.notes`), the append path and its
storage (:mod:`.append`, :mod:`.storage`, :mod:`.db`, :mod:`.schema`), keys and their rotation
(:mod:`.keys`), receipts (:mod:`.receipts`), tlog-tiles (:mod:`.tiles`), public reads
(:mod:`.public`) and verification (:mod:`.verify`).

Rule: nothing under ``ledger.log`` imports ``ledger.fund``. What other packages use is
re-exported here; import it from ``ledger.log``.
"""

from __future__ import annotations

from ledger.log import merkle
from ledger.log.append import CheckpointPolicy, Log
from ledger.log.canonical import MAX_SAFE_INTEGER, canonical_bytes
from ledger.log.clock import Clock, ManualClock, SystemClock, parse_ts
from ledger.log.cosignature import CosignatureVerifier, Cosigner, QuorumNotMet, WitnessQuorum
from ledger.log.cosigning import Cosigning, WitnessEndpoint, read_witnesses, witness_status
from ledger.log.db import make_engine, read_transaction, write_transaction
from ledger.log.entry import KINDS, Entry, checked_entry, decode_entry
from ledger.log.keys import DEFAULT_DOUBLE_SIGNING, KeyFiles, rotate_key
from ledger.log.merkle import (
    NodeId,
    NodeReader,
    consistency_proof,
    fold,
    inclusion_plan,
    leaf_hash,
    root_at,
    verify_inclusion,
)
from ledger.log.mirroring import (
    MIRROR_PREFIX,
    MirroredLog,
    MirrorError,
    MirrorIncident,
    Mirrors,
    MirrorSync,
    SplitView,
    SyncReport,
    origin_hash,
)
from ledger.log.notes import (
    Checkpoint,
    Signer,
    Verifier,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
)
from ledger.log.public import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Page,
    anchor_page,
    consistency,
    entry_at,
    entry_page,
    inclusion,
    latest_note,
    log_keys,
    log_version,
    note_at,
    recent_anchors,
)
from ledger.log.receipts import InclusionProof, build_receipt, parse_receipt, verify_receipt
from ledger.log.schema import checkpoints, entries, idempotency_keys
from ledger.log.storage import StoredCheckpoint, latest_checkpoint, load_head, read_nodes
from ledger.log.tiles import (
    CHECKPOINT_PATH,
    TILE_PREFIX,
    PublishReport,
    parse_tile_path,
    publish,
    read_resource,
    write_atomically,
)
from ledger.log.verify import VerifyReport, verify_database, verify_export
from ledger.log.witness import (
    MAX_BODY,
    SIZE_CONTENT_TYPE,
    BodyTooLarge,
    Witness,
    WitnessConflict,
    WitnessRefusal,
)

__all__ = [
    "CHECKPOINT_PATH",
    "DEFAULT_DOUBLE_SIGNING",
    "DEFAULT_LIMIT",
    "KINDS",
    "MAX_BODY",
    "MAX_LIMIT",
    "MAX_SAFE_INTEGER",
    "MIRROR_PREFIX",
    "SIZE_CONTENT_TYPE",
    "TILE_PREFIX",
    "BodyTooLarge",
    "Checkpoint",
    "CheckpointPolicy",
    "Clock",
    "CosignatureVerifier",
    "Cosigner",
    "Cosigning",
    "Entry",
    "InclusionProof",
    "KeyFiles",
    "Log",
    "ManualClock",
    "MirrorError",
    "MirrorIncident",
    "MirrorSync",
    "MirroredLog",
    "Mirrors",
    "NodeId",
    "NodeReader",
    "Page",
    "PublishReport",
    "QuorumNotMet",
    "Signer",
    "SplitView",
    "StoredCheckpoint",
    "SyncReport",
    "SystemClock",
    "Verifier",
    "VerifyReport",
    "Witness",
    "WitnessConflict",
    "WitnessEndpoint",
    "WitnessQuorum",
    "WitnessRefusal",
    "anchor_page",
    "build_receipt",
    "canonical_bytes",
    "checked_entry",
    "checkpoints",
    "consistency",
    "consistency_proof",
    "decode_entry",
    "entries",
    "entry_at",
    "entry_page",
    "fold",
    "idempotency_keys",
    "inclusion",
    "inclusion_plan",
    "latest_checkpoint",
    "latest_note",
    "leaf_hash",
    "load_head",
    "log_keys",
    "log_version",
    "make_engine",
    "merkle",
    "note_at",
    "open_checkpoint",
    "origin_hash",
    "parse_checkpoint",
    "parse_note",
    "parse_receipt",
    "parse_tile_path",
    "parse_ts",
    "publish",
    "read_nodes",
    "read_resource",
    "read_transaction",
    "read_witnesses",
    "recent_anchors",
    "root_at",
    "rotate_key",
    "verify_database",
    "verify_export",
    "verify_inclusion",
    "verify_receipt",
    "witness_status",
    "write_atomically",
    "write_transaction",
]
