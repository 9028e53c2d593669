"""C2SP signed notes and tlog checkpoints, signed with Ed25519.

Read side by side with https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.
A note is a text ending in a newline, a blank line, then one or more signature lines::

    <origin>\\n<tree size>\\n<base64 root hash>\\n
    \\n
    — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>\\n

Parsing is strict (valid UTF-8, no control characters but newline, canonical padded base64,
at most :data:`MAX_SIGNATURES` signature lines) so that every accepted note re-serialises to
exactly the bytes it was parsed from. Verification ignores signatures from unknown keys,
rejects the note when a known key's signature fails, and requires at least one known key to
have signed.

Key strings follow golang.org/x/mod/sumdb/note: a verifier key is
``<name>+<8 hex key id>+<base64(0x01 || public key)>`` and a signer key is
``PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || seed)>``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import pathlib
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import InvalidKey, NoteError, SignatureError

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "SIGNATURE_PREFIX",
    "Checkpoint",
    "Note",
    "Signature",
    "Signer",
    "Verifier",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_note",
    "sign_checkpoint",
    "sign_note",
]

ALG_ED25519 = 0x01
"""Signature type byte of Ed25519 in c2sp.org/signed-note (key ids and key strings)."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (the spec requires accepting at least 16)."""

SIGNATURE_PREFIX = "\u2014 "
"""Every signature line starts with an em dash (U+2014) and a space."""

KEY_ID_SIZE = 4
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
ROOT_SIZE = 32
MAX_TREE_SIZE = 2**63 - 1

_PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


# --- helpers ---------------------------------------------------------------------------------


def _show(value: str, limit: int = 80) -> str:
    """``repr`` of a possibly long, untrusted string, cut to ``limit`` characters."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: str) -> bytes | None:
    """Strict standard padded base64: the canonical encoding of its bytes, else ``None``.

    Python's decoder (like Go's non-strict one) accepts non-zero padding bits, so a note could
    be altered without changing what it decodes to; re-encoding and comparing refuses that.
    """
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if _b64encode(data) == value else None


def _valid_name(name: str) -> bool:
    """A key name: non-empty, no Unicode spaces, no ``+``, no control characters."""
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() for c in name)
        and _CONTROL.search(name) is None
    )


def _check_text(text: str) -> None:
    """Raise :class:`NoteError` unless ``text`` can be the text of a signed note."""
    if not text:
        raise NoteError("note text is empty")
    if not text.endswith("\n"):
        raise NoteError(f"note text does not end with a newline: {_show(text[-40:])}")
    _check_characters(text, "note text")


def _check_characters(value: str, what: str) -> None:
    """Raise :class:`NoteError` if ``value`` is not UTF-8 encodable or holds control chars."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid UTF-8 at offset {exc.start}") from None
    match = _CONTROL.search(value)
    if match is not None:
        raise NoteError(
            f"{what} contains control character {match.group()!r} at offset {match.start()}"
        )


def _public_key(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def key_id(name: str, public_key: bytes, alg: int = ALG_ED25519) -> bytes:
    """Key id: ``SHA-256(name || 0x0A || alg || public key)[:4]`` (alg 0x01: Ed25519 note
    signatures; 0x04: Ed25519 cosignatures, see :mod:`ledger.log.cosignature`)."""
    material = name.encode("utf-8") + b"\n" + bytes([alg]) + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


# --- notes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line of a note: key name, 4-byte key id and raw signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise NoteError(f"invalid key name in signature: {_show(self.name)}")
        if len(self.key_id) != KEY_ID_SIZE:
            raise NoteError(
                f"signature key id for {self.name!r} is {len(self.key_id)} bytes, not 4"
            )
        if not self.signature:
            raise NoteError(f"signature by {self.name!r} is empty")

    def line(self) -> str:
        """The signature line, ``— <name> <base64(key id || signature)>\\n``."""
        return f"{SIGNATURE_PREFIX}{self.name} {_b64encode(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    """A signed note: the signed text (ending in a newline) and its signatures, in order."""

    text: str
    signatures: tuple[Signature, ...]

    def __post_init__(self) -> None:
        _check_text(self.text)
        if not self.signatures:
            raise NoteError("a note needs at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteError(
                f"note has {len(self.signatures)} signatures, more than {MAX_SIGNATURES}"
            )

    def serialise(self) -> str:
        """Text, blank line, signature lines: the inverse of :func:`parse_note`."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def _parse_signature_line(line: str, number: int) -> Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError(
            f"signature line {number} does not start with an em dash and a space: {_show(line)}"
        )
    name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not _valid_name(name):
        raise NoteError(f"signature line {number} has an invalid key name: {_show(name)}")
    blob = _b64decode(encoded)
    if blob is None:
        raise NoteError(
            f"signature line {number} ({name!r}) is not canonical padded base64: {_show(encoded)}"
        )
    if len(blob) <= KEY_ID_SIZE:
        raise NoteError(
            f"signature line {number} ({name!r}) decodes to {len(blob)} bytes, "
            f"need a 4-byte key id and a signature"
        )
    return Signature(name=name, key_id=blob[:KEY_ID_SIZE], signature=blob[KEY_ID_SIZE:])


def parse_note(data: str | bytes) -> Note:
    """Parse a signed note without verifying it (see :func:`open_note`).

    The text is everything up to and including the newline before the *last* blank line, so a
    text may itself contain blank lines. Raises :class:`NoteError` when malformed.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"note is not valid UTF-8 at byte {exc.start}") from None
    _check_characters(data, "note")
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line separating text and signatures")
    text, block = data[: split + 1], data[split + 2 :]
    if not block:
        raise NoteError("note has no signature lines after the last blank line")
    if not block.endswith("\n"):
        raise NoteError(f"note does not end with a newline: {_show(block[-40:])}")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signature lines, more than {MAX_SIGNATURES}")
    signatures = tuple(_parse_signature_line(line, i) for i, line in enumerate(lines, 1))
    return Note(text=text, signatures=signatures)


# --- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 verifier key: name, key id and 32-byte raw public key."""

    alg: ClassVar[int] = ALG_ED25519
    """The signature type byte of its key id and key string."""

    name: str
    key_id: bytes
    public_key: bytes

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise InvalidKey(f"invalid key name: {_show(self.name)}")
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise InvalidKey(
                f"Ed25519 public key for {self.name!r} is {len(self.public_key)} bytes, not 32"
            )
        expected = key_id(self.name, self.public_key, self.alg)
        if self.key_id != expected:
            raise InvalidKey(
                f"key id {self.key_id.hex()} does not match key {self.name!r}, "
                f"which has key id {expected.hex()}"
            )

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        """Parse ``<name>+<8 hex key id>+<base64(0x01 || public key)>``; raises InvalidKey."""
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise InvalidKey(f"verifier key is not <name>+<key id>+<key>: {_show(vkey)}")
        name, id_hex, encoded = parts
        if not _valid_name(name):
            raise InvalidKey(f"verifier key has an invalid name: {_show(name)}")
        if _KEY_ID_HEX.fullmatch(id_hex) is None:
            raise InvalidKey(
                f"verifier key {name!r} has key id {_show(id_hex)}, not 8 lowercase hex digits"
            )
        material = _b64decode(encoded)
        if material is None:
            raise InvalidKey(
                f"verifier key {name!r} is not canonical padded base64: {_show(encoded)}"
            )
        if not material or material[0] != cls.alg:
            alg = f"0x{material[0]:02x}" if material else "none"
            raise InvalidKey(
                f"verifier key {name!r} has algorithm {alg}, not Ed25519 0x{cls.alg:02x} "
                f"({cls.__name__})"
            )
        return cls(name=name, key_id=bytes.fromhex(id_hex), public_key=material[1:])

    def vkey(self) -> str:
        """The verifier key string, the inverse of :meth:`from_vkey`."""
        material = bytes([self.alg]) + self.public_key
        return f"{self.name}+{self.key_id.hex()}+{_b64encode(material)}"

    def verify(self, text: str, signature: Signature) -> bool:
        """Whether ``signature`` is this key's valid Ed25519 signature over ``text``.

        False when the signature's name or key id is not this key's.
        """
        if signature.name != self.name or signature.key_id != self.key_id:
            return False
        if len(signature.signature) != ED25519_SIGNATURE_SIZE:
            return False
        try:
            public_key = Ed25519PublicKey.from_public_bytes(self.public_key)
            public_key.verify(signature.signature, text.encode("utf-8"))
        except (InvalidSignature, ValueError):
            return False
        return True


def write_secret_file(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to a new file of mode 0600, durably.

    Raises :class:`FileExistsError` rather than overwrite (or follow a symlink at) ``path``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # exactly 0600 whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


@dataclass(frozen=True)
class Signer:
    """An Ed25519 signing key: name, key id and 32-byte private seed (never in ``repr``)."""

    alg: ClassVar[int] = ALG_ED25519
    verifier_class: ClassVar[type[Verifier]] = Verifier

    name: str
    key_id: bytes
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise InvalidKey(f"invalid key name: {_show(self.name)}")
        if len(self.seed) != SEED_SIZE:
            raise InvalidKey(f"Ed25519 seed for {self.name!r} is {len(self.seed)} bytes, not 32")
        expected = key_id(self.name, _public_key(self.seed), self.alg)
        if self.key_id != expected:
            raise InvalidKey(
                f"key id {self.key_id.hex()} does not match signing key {self.name!r}, "
                f"which has key id {expected.hex()}"
            )

    @classmethod
    def _from_seed(cls, name: str, seed: bytes) -> Self:
        if not _valid_name(name):
            raise InvalidKey(f"invalid key name: {_show(name)}")
        return cls(name=name, key_id=key_id(name, _public_key(seed), cls.alg), seed=seed)

    @classmethod
    def generate(cls, name: str) -> Self:
        """A new random Ed25519 signing key named ``name``."""
        return cls._from_seed(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_skey(cls, skey: str) -> Self:
        """Parse ``PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || seed)>``.

        Raises :class:`InvalidKey`; messages never include the key material.
        """
        if not skey.startswith(_PRIVATE_KEY_PREFIX):
            raise InvalidKey("signing key does not start with 'PRIVATE+KEY+'")
        parts = skey[len(_PRIVATE_KEY_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise InvalidKey("signing key is not PRIVATE+KEY+<name>+<key id>+<key>")
        name, id_hex, encoded = parts
        if not _valid_name(name):
            raise InvalidKey(f"signing key has an invalid name: {_show(name)}")
        if _KEY_ID_HEX.fullmatch(id_hex) is None:
            raise InvalidKey(
                f"signing key {name!r} has key id {_show(id_hex)}, not 8 lowercase hex digits"
            )
        material = _b64decode(encoded)
        if material is None:
            raise InvalidKey(f"signing key {name!r} is not canonical padded base64")
        if not material or material[0] != cls.alg:
            raise InvalidKey(
                f"signing key {name!r} is not a 0x{cls.alg:02x} Ed25519 ({cls.__name__}) key"
            )
        return cls(name=name, key_id=bytes.fromhex(id_hex), seed=material[1:])

    def skey(self) -> str:
        """The signing key string, the inverse of :meth:`from_skey`. Secret."""
        material = bytes([self.alg]) + self.seed
        return f"{_PRIVATE_KEY_PREFIX}{self.name}+{self.key_id.hex()}+{_b64encode(material)}"

    def verifier(self) -> Verifier:
        """The matching public verifier key."""
        return self.verifier_class(
            name=self.name, key_id=self.key_id, public_key=_public_key(self.seed)
        )

    def sign(self, text: str) -> Signature:
        """Sign a note text (UTF-8 bytes exactly); raises NoteError if it cannot be a note."""
        _check_text(text)
        private_key = Ed25519PrivateKey.from_private_bytes(self.seed)
        return Signature(
            name=self.name, key_id=self.key_id, signature=private_key.sign(text.encode("utf-8"))
        )

    def save(self, path: pathlib.Path) -> None:
        """Write :meth:`skey` and a newline to a new file of mode 0600.

        Raises :class:`FileExistsError` rather than overwrite (or follow a symlink at) ``path``.
        """
        write_secret_file(path, (self.skey() + "\n").encode("utf-8"))

    @classmethod
    def load(cls, path: pathlib.Path) -> Self:
        """Read a key written by :meth:`save`; refuses a file group or others can access."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InvalidKey(f"signing key {str(path)!r} is not a regular file")
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise InvalidKey(
                    f"signing key {str(path)!r} has mode {mode:04o}; group and others must have "
                    f"no access (chmod 600)"
                )
            raw = handle.read()
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidKey(f"signing key {str(path)!r} is not UTF-8 text") from None
        return cls.from_skey(content.strip())


# --- signing and verifying -------------------------------------------------------------------


def sign_note(text: str, signers: Sequence[Signer]) -> Note:
    """Sign ``text`` with every signer, in order. Raises NoteError for a bad text or signer list."""
    if not signers:
        raise NoteError("cannot sign a note without signers")
    keys = [(s.name, s.key_id) for s in signers]
    if len(set(keys)) != len(keys):
        raise NoteError(f"duplicate signers: {', '.join(f'{n}+{k.hex()}' for n, k in keys)}")
    return Note(text=text, signatures=tuple(s.sign(text) for s in signers))


def open_note(note: Note, verifiers: Sequence[Verifier]) -> tuple[Signature, ...]:
    """Verify ``note``; return the signatures by known keys (one per key, in note order).

    Signatures whose name and key id match no verifier are ignored. Raises
    :class:`SignatureError` when a known key's signature does not verify, or when no known key
    signed. Raises :class:`InvalidKey` when two different verifiers share a name and key id.
    """
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        ident = (verifier.name, verifier.key_id)
        if known.setdefault(ident, verifier) != verifier:
            raise InvalidKey(
                f"two different verifier keys are named {verifier.name!r} "
                f"with key id {verifier.key_id.hex()}"
            )
    verified: dict[tuple[str, bytes], Signature] = {}
    for signature in note.signatures:
        ident = (signature.name, signature.key_id)
        match = known.get(ident)
        if match is None:
            continue
        if not match.verify(note.text, signature):
            raise SignatureError(
                f"signature by known key {signature.name}+{signature.key_id.hex()} does not verify"
            )
        verified.setdefault(ident, signature)
    if not verified:
        wanted = ", ".join(f"{n}+{k.hex()}" for n, k in known) or "none"
        found = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in note.signatures)
        raise SignatureError(
            f"no known key signed the note: looked for {wanted}; signatures are by {found}"
        )
    return tuple(verified.values())


# --- checkpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A c2sp.org/tlog-checkpoint: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin:
            raise NoteError("checkpoint origin is empty")
        if "\n" in self.origin:
            raise NoteError(f"checkpoint origin contains a newline: {_show(self.origin)}")
        _check_characters(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint tree size {self.size!r} is not in [0, 2**63)")
        if len(self.root) != ROOT_SIZE:
            raise NoteError(f"checkpoint root hash is {len(self.root)} bytes, not 32")
        for number, line in enumerate(self.extensions, 1):
            if not line or "\n" in line:
                raise NoteError(
                    f"checkpoint extension line {number} is empty or has a newline: {_show(line)}"
                )
            _check_characters(line, f"checkpoint extension line {number}")

    def body(self) -> str:
        """The note text: origin, size, base64 root and extension lines, each ending in newline."""
        head = f"{self.origin}\n{self.size}\n{_b64encode(self.root)}\n"
        return head + "".join(line + "\n" for line in self.extensions)


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint note text strictly; raises :class:`NoteError` when malformed."""
    if not body.endswith("\n"):
        raise NoteError(f"checkpoint does not end with a newline: {_show(body[-40:])}")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(f"checkpoint has {len(lines)} lines, need origin, size and root hash")
    origin, size_text, root_text, *extensions = lines
    if _TREE_SIZE.fullmatch(size_text) is None or len(size_text) > 19:
        raise NoteError(
            f"checkpoint tree size {_show(size_text)} is not a decimal without leading zeros"
        )
    root = _b64decode(root_text)
    if root is None:
        raise NoteError(f"checkpoint root hash is not canonical padded base64: {_show(root_text)}")
    return Checkpoint(origin=origin, size=int(size_text), root=root, extensions=tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[Signer]) -> Note:
    """Sign the checkpoint body as a note (the log's key name should be its origin)."""
    return sign_note(checkpoint.body(), signers)


def open_checkpoint(
    note_text: str | bytes, verifiers: Sequence[Verifier], origin: str | None = None
) -> Checkpoint:
    """Parse and verify a signed checkpoint; return the checkpoint it commits to.

    Raises :class:`NoteError` when malformed or when ``origin`` is given and differs, and
    :class:`SignatureError` when no known key validly signed it.
    """
    note = parse_note(note_text)
    open_note(note, verifiers)
    checkpoint = parse_checkpoint(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(
            f"checkpoint origin {_show(checkpoint.origin)} is not the expected {_show(origin)}"
        )
    return checkpoint
