"""What the witness tests share: C2SP read from the spec text (not from ledger/), Lunaria
instances served on loopback, and trees of a log of the test's own to submit.

``spec_cosigned_by`` is an implementation of c2sp.org/tlog-cosignature (Ed25519, v1) and of the
signed-note split written here from the specs, so that the tests check the code under test
against the text, not against itself.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from sqlalchemy import Engine, text
from werkzeug.serving import BaseWSGIServer, make_server

from api import create_app
from api import db as api_db
from ledger import migrate
from ledger.log.append import Log
from ledger.log.clock import ManualClock
from ledger.log.db import make_engine
from ledger.log.notes import Checkpoint, Signer, sign_checkpoint
from tests.conftest import RUN_ID, _postgres_schema_url

# -- c2sp.org/tlog-cosignature and c2sp.org/signed-note, from the text -----------------------


def spec_cosignature_time(vkey: str, note_text: str, line: str) -> int | None:
    """The timestamp of ``line`` if it is a valid Ed25519 v1 cosignature of ``note_text`` by
    the witness whose vkey (signature type 0x04) is ``vkey``; None otherwise.

    Key ID = SHA-256(<name> || "\\n" || 0x04 || 32-byte public key)[:4]; the signature is a
    timestamped_signature (u64 big-endian timestamp || 64-byte Ed25519 signature) over
    "cosignature/v1\\n" "time <ts>\\n" and the note body."""
    name, key_id_hex, encoded = vkey.split("+", 2)
    material = base64.b64decode(encoded)
    assert material[0] == 0x04 and len(material) == 33, "not an Ed25519 cosignature vkey"
    public = material[1:]
    key_id = hashlib.sha256(name.encode() + b"\n" + b"\x04" + public).digest()[:4]
    assert key_id.hex() == key_id_hex
    assert line.startswith("\u2014 ") and line.endswith("\n")
    line_name, blob_b64 = line[2:-1].split(" ")
    blob = base64.b64decode(blob_b64)
    if line_name != name or blob[:4] != key_id or len(blob) != 4 + 8 + 64:
        return None
    timestamp = int.from_bytes(blob[4:12], "big")
    message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + note_text.encode()
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], message)
    except InvalidSignature:
        return None
    return timestamp


def spec_split(note: str) -> tuple[str, list[str]]:
    """A signed note's text (up to its last blank line) and its signature lines."""
    cut = note.rindex("\n\n")
    return note[: cut + 1], note[cut + 2 :].splitlines(keepends=True)


def spec_cosigned_by(note: str, vkeys: list[str]) -> set[str]:
    """The witness vkeys among ``vkeys`` with a valid cosignature line on ``note``."""
    note_text, lines = spec_split(note)
    return {
        vkey
        for vkey in vkeys
        if any(spec_cosignature_time(vkey, note_text, line) is not None for line in lines)
    }


@dataclass(frozen=True)
class SpecWitness:
    """A witness made from the spec text alone: its Ed25519 key, its vkey (signature type
    0x04) and its v1 cosignature lines, for tests that must not cosign with ledger/."""

    name: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> SpecWitness:
        return cls(name, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        """SHA-256(<name> || "\\n" || 0x04 || 32-byte public key)[:4]."""
        return hashlib.sha256(self.name.encode() + b"\n\x04" + self.public_key).digest()[:4]

    def vkey(self) -> str:
        """<name>+<hex key id>+base64(0x04 || public key)."""
        material = base64.b64encode(b"\x04" + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def cosign(self, note_text: str, timestamp: int) -> str:
        """The signature line "— <name> base64(key id || u64 timestamp || signature)\\n" over
        "cosignature/v1\\n" "time <timestamp>\\n" and the note text."""
        message = f"cosignature/v1\ntime {timestamp}\n{note_text}".encode()
        blob = self.key_id + timestamp.to_bytes(8, "big") + self.private_key.sign(message)
        return f"\u2014 {self.name} {base64.b64encode(blob).decode()}\n"


def spec_body(old: int, proof: list[bytes], note: str) -> bytes:
    """An add-checkpoint body (c2sp.org/tlog-witness): old size line, proof lines, empty line,
    checkpoint."""
    lines = [f"old {old}\n", *(base64.b64encode(h).decode() + "\n" for h in proof)]
    return ("".join(lines) + "\n" + note).encode()


# -- a log of the test's own, whose checkpoints are submitted -------------------------------------


@dataclass
class SourceLog:
    """A log on a SQLite file, to make signed checkpoints and proofs of any size."""

    log: Log
    signer: Signer

    @classmethod
    def make(cls, path: Path, origin: str, entries: int, signer: Signer | None = None) -> SourceLog:
        signer = signer or Signer.generate(origin)
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        log = Log(engine, origin, signer=signer, clock=ManualClock())
        log.create()
        source = cls(log, signer)
        source.grow(entries)
        return source

    def grow(self, entries: int, tag: str = "") -> None:
        for n in range(entries):
            self.log.append("donation_recorded", {"pool": "p", "amount": f"{n + 1}", "t": tag})

    def note(self, size: int, signer: Signer | None = None) -> str:
        checkpoint = Checkpoint(self.log.origin, size, self.log.root_at(size))
        return sign_checkpoint(checkpoint, [signer or self.signer]).serialise()

    def body(self, old: int, size: int) -> bytes:
        proof = self.log.consistency_proof(old, size) if old else []
        return spec_body(old, proof, self.note(size))

    @property
    def vkey(self) -> str:
        return self.signer.verifier().vkey()


# -- Lunaria instances on loopback ----------------------------------------------------------------


@dataclass
class Instance:
    """A Lunaria (its own database and keys) served by werkzeug on a free loopback port."""

    name: str
    app: Flask
    folder: Path
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def cli(self, *args: str) -> Any:
        result = self.app.test_cli_runner().invoke(args=list(args))
        return result

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.exit_code == 0, result.output
        return str(result.output)

    @property
    def log(self) -> Log:
        with self.app.app_context():
            return api_db.get_log()

    @property
    def engine(self) -> Engine:
        with self.app.app_context():
            return api_db.get_engine()

    @property
    def log_vkey(self) -> str:
        return self.ok("vkey").strip()

    @property
    def witness_vkey(self) -> str:
        return self.ok("witness", "vkey").strip()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        state = self.app.extensions.get("lunaria")
        if state is not None:
            state.engine.dispose()


def start_instance(name: str, url: str, folder: Path, **config: Any) -> Instance:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "witnesses").touch()
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "KEY_FILE": str(folder / "keys" / "log.key"),
            "ORIGIN": f"{name}.lunaria.example/log",
            "CLOCK": ManualClock(),
            "CHECKPOINT_EVERY": 100_000,
            "CHECKPOINT_INTERVAL": 86_400,
            "WITNESSES": str(folder / "witnesses"),
            **config,
        }
    )
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return Instance(name, app, folder, server, thread)


def database_urls(
    request: pytest.FixtureRequest, tmp_path: Path, count: int
) -> Iterator[list[str]]:
    """``count`` fresh databases: SQLite files, or PostgreSQL schemas of their own."""
    if request.param == "sqlite":
        yield [f"sqlite:///{tmp_path / f'db{i}' / 'lunaria.db'}" for i in range(count)]
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    schemas = [f"t_{RUN_ID}_{uuid.uuid4().hex[:10]}" for _ in range(count)]
    with admin.connect() as conn:
        for schema in schemas:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield [_postgres_schema_url(schema) for schema in schemas]
    finally:
        with admin.connect() as conn:
            for schema in schemas:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
