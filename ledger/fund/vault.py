"""Sealed private records: personal data is unreadable once erased, wherever copies lie.

Each private record (a donor's references, notes, recipient details, payment references, and
the receipt salt that links a person to a public commitment) is encrypted with its own random
data key (AES-256-GCM). The data key is stored wrapped (AES-256-GCM again) by the vault key
in ``LUNARIA_DATA_KEY_FILE``; no plaintext of a private field is ever written to the database.

Erasing a record deletes its row and then *rotates the vault key*: every remaining data key is
wrapped anew under a fresh vault key and the old one is destroyed. Copies of the erased row
that the database still holds (dead tuples in heap pages, WAL segments, backups, replicas) are
wrapped under a key that no longer exists, so nobody can open them. Copies of the key file
itself are the one exception: an old ``data.key`` from a backup opens the records of database
backups from the same time, so rotate those backups out together (see docs/operations.md).

Rotation is crash-safe: the new key goes to ``data.key.next``; the rows are re-wrapped in the
caller's write transaction; just before it commits, the new key becomes ``data.key`` and the
old one waits as ``data.key.retired-…``, deleted once the commit is done. A reader loads every
key file present and picks the key by the id stored with each row, so a crash at any step
loses nothing.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.errors import LedgerError

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_BYTES = 8
_FORMAT = "lunaria-data-key/1"
_WRAP_AAD = b"lunaria/data-key\x00"
_SEAL_AAD = b"lunaria/private-record\x00"


class VaultError(LedgerError):
    code = "vault_error"


@dataclass(frozen=True)
class VaultKey:
    """A vault key and its public id (stored beside every data key it wraps)."""

    id: str
    secret: bytes

    @classmethod
    def generate(cls) -> VaultKey:
        return cls(secrets.token_hex(KEY_ID_BYTES), secrets.token_bytes(KEY_BYTES))

    @cached_property
    def cipher(self) -> AESGCM:
        """The key's AES-GCM, made once: every record sealed wraps its data key with it."""
        return AESGCM(self.secret)

    def line(self) -> str:
        return f"{_FORMAT} {self.id} {self.secret.hex()}\n"

    @classmethod
    def parse(cls, text: str, path: Path) -> VaultKey:
        parts = text.split()
        if len(parts) != 3 or parts[0] != _FORMAT or len(parts[2]) != 2 * KEY_BYTES:
            raise VaultError(f"{path} is not a Lunaria data key file ({_FORMAT})")
        return cls(parts[1], bytes.fromhex(parts[2]))


@dataclass(frozen=True)
class Sealed:
    """A record as stored: the vault key's id, its wrapped data key, and the ciphertext."""

    key_id: str
    wrapped_key: bytes
    ciphertext: bytes


def _encrypt(cipher: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + cipher.encrypt(nonce, plaintext, aad)


def _decrypt(cipher: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    try:
        return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise VaultError("a private record does not open with its key") from exc


def _write_secret(path: Path, text: str) -> None:
    """Write a key file whole (aside, fsync, rename) and readable by its owner only."""
    aside = path.with_name(path.name + ".tmp")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(aside, path)


class Vault:
    """Seals and opens private records with the vault key in ``path`` (see the module)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._next = path.with_name(path.name + ".next")
        self._seen: tuple[int, int] | None = None
        self._keys: dict[str, VaultKey] = {}
        self._current: VaultKey | None = None

    @classmethod
    def create(cls, path: Path) -> Vault:
        """Make a new key file (``lunaria init``); refuses to replace one."""
        if path.exists():
            raise VaultError(f"{path} exists already")
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_secret(path, VaultKey.generate().line())
        return cls(path)

    def _load(self) -> None:
        """(Re)read the key files when ``path`` changed: another process may have rotated."""
        try:
            stat = self.path.stat()
        except FileNotFoundError as exc:
            raise VaultError(f"no data key file at {self.path} (run lunaria init)") from exc
        seen = (stat.st_ino, stat.st_mtime_ns)
        if seen == self._seen:
            return
        if stat.st_mode & 0o077:
            raise VaultError(f"{self.path} must be readable by its owner only (chmod 600)")
        current = VaultKey.parse(self.path.read_text(encoding="ascii"), self.path)
        keys = {current.id: current}
        retired = sorted(self.path.parent.glob(f"{self.path.name}.retired-*"))
        for other in (*retired, self._next):
            if other.exists():
                key = VaultKey.parse(other.read_text(encoding="ascii"), other)
                keys.setdefault(key.id, key)
        self._keys, self._current, self._seen = keys, current, seen

    def _key(self, key_id: str) -> VaultKey:
        self._load()
        if key_id not in self._keys:
            raise VaultError(f"no data key file holds vault key {key_id}")
        return self._keys[key_id]

    def seal(self, records: Sequence[tuple[str, bytes]]) -> list[Sealed]:
        """Encrypt each ``(commitment, plaintext)`` under a fresh data key of its own, wrapped
        by the current vault key."""
        self._load()
        assert self._current is not None
        key = self._current
        sealed = []
        for commitment, plaintext in records:
            data_key = secrets.token_bytes(KEY_BYTES)
            wrapped = _encrypt(key.cipher, data_key, _WRAP_AAD + commitment.encode())
            aad = _SEAL_AAD + commitment.encode()
            sealed.append(Sealed(key.id, wrapped, _encrypt(AESGCM(data_key), plaintext, aad)))
        return sealed

    def _data_key(self, commitment: str, key_id: str, wrapped: bytes) -> bytes:
        return _decrypt(self._key(key_id).cipher, wrapped, _WRAP_AAD + commitment.encode())

    def open(self, commitment: str, sealed: Sealed) -> bytes:
        data_key = self._data_key(commitment, sealed.key_id, sealed.wrapped_key)
        aad = _SEAL_AAD + commitment.encode()
        return _decrypt(AESGCM(data_key), sealed.ciphertext, aad)

    @contextmanager
    def rotation(self) -> Iterator[Rewrap]:
        """A new vault key. In the block, re-wrap every remaining data key with the
        :class:`Rewrap` given, inside a write transaction, and call :meth:`Rewrap.install`
        as the last step before that transaction commits (the commit ending the block)."""
        self._load()
        fresh = VaultKey.generate()
        _write_secret(self._next, fresh.line())
        rewrap = Rewrap(self, fresh)
        try:
            yield rewrap
        except BaseException:
            if rewrap.installed:  # not committed: the rows are still under the old key
                os.replace(rewrap.retired, self.path)
            self._next.unlink(missing_ok=True)
            raise
        finally:
            self._seen = None
        rewrap.retired.unlink(missing_ok=True)


class Rewrap:
    """Re-wraps data keys under the new vault key of a rotation, then installs that key."""

    def __init__(self, vault: Vault, fresh: VaultKey) -> None:
        self._vault = vault
        self._fresh = fresh
        self.key_id = fresh.id
        self.retired = vault.path.with_name(f"{vault.path.name}.retired-{secrets.token_hex(4)}")
        self.installed = False

    def __call__(self, commitment: str, key_id: str, wrapped: bytes) -> bytes:
        data_key = self._vault._data_key(commitment, key_id, wrapped)
        return _encrypt(self._fresh.cipher, data_key, _WRAP_AAD + commitment.encode())

    def install(self) -> None:
        """Make the new key the vault's (the old one kept aside until the commit): done
        under the log's write lock, so no writer seals with the old key after this."""
        os.replace(self._vault.path, self.retired)
        os.replace(self._vault._next, self._vault.path)
        self.installed = True
