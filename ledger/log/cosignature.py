"""C2SP tlog-cosignature v1 (Ed25519): a witness's timestamped signature on a checkpoint.

Read side by side with https://c2sp.org/tlog-cosignature. A cosignature is one more note
signature line on a checkpoint, by a key of signature type 0x04::

    — <witness name> base64(key id || u64 big-endian timestamp || Ed25519 signature)

The signed message is ``cosignature/v1\\n``, ``time <timestamp>\\n`` and the whole checkpoint
text (the note text, without signature lines). Key ids are ``SHA-256(name || 0x0A || 0x04 ||
public key)[:4]`` and key strings are those of :mod:`ledger.log.notes` with 0x04 in place of
0x01, so a :class:`CosignatureVerifier` can sit beside the log's :class:`Verifier` in one
:func:`~ledger.log.notes.open_note` call.

A v1 cosignature states that, at that time, this checkpoint was the largest consistent tree
the witness had seen for the origin; :func:`witness_quorum` counts how many known witnesses
said so of one note.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import InvalidKey, SignatureError
from ledger.log.notes import (
    ED25519_SIGNATURE_SIZE,
    Note,
    Signature,
    Signer,
    Verifier,
    _check_text,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "CosignatureVerifier",
    "Cosigner",
    "QuorumNotMet",
    "WitnessQuorum",
    "cosigned_message",
    "witness_quorum",
]

ALG_COSIGNATURE_V1 = 0x04
"""Signature type byte of Ed25519 cosignatures (key ids and key strings)."""

TIMESTAMP_SIZE = 8
MAX_TIMESTAMP = 2**63 - 1


class QuorumNotMet(SignatureError):
    """Fewer known witnesses than the quorum cosigned a checkpoint."""

    code = "witness_quorum_not_met"


def cosigned_message(text: str, timestamp: int) -> bytes:
    """The bytes a v1 cosignature signs: header line, time line, then the checkpoint text."""
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise SignatureError(f"cosignature timestamp {timestamp!r} is not in [0, 2**63)")
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class CosignatureVerifier(Verifier):
    """A witness's verifier key (type 0x04): checks v1 cosignatures on checkpoint texts."""

    alg = ALG_COSIGNATURE_V1

    @staticmethod
    def timestamp(signature: Signature) -> int | None:
        """The time a cosignature says it was made (None if it is too short to hold one)."""
        if len(signature.signature) != TIMESTAMP_SIZE + ED25519_SIGNATURE_SIZE:
            return None
        return int.from_bytes(signature.signature[:TIMESTAMP_SIZE], "big")

    def verify(self, text: str, signature: Signature) -> bool:
        """Whether ``signature`` is this witness's valid v1 cosignature of ``text``."""
        if signature.name != self.name or signature.key_id != self.key_id:
            return False
        timestamp = self.timestamp(signature)
        if timestamp is None or timestamp > MAX_TIMESTAMP:
            return False
        try:
            public_key = Ed25519PublicKey.from_public_bytes(self.public_key)
            public_key.verify(
                signature.signature[TIMESTAMP_SIZE:], cosigned_message(text, timestamp)
            )
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Cosigner(Signer):
    """A witness's signing key (type 0x04): makes v1 cosignatures. Saved and loaded like the
    log's key (``PRIVATE+KEY+<name>+<key id>+base64(0x04 || seed)``, mode 0600)."""

    alg = ALG_COSIGNATURE_V1
    verifier_class = CosignatureVerifier

    def cosign(self, text: str, timestamp: int) -> Signature:
        """The v1 cosignature of checkpoint text ``text`` made at POSIX time ``timestamp``."""
        _check_text(text)
        private_key = Ed25519PrivateKey.from_private_bytes(self.seed)
        signed = private_key.sign(cosigned_message(text, timestamp))
        return Signature(
            name=self.name,
            key_id=self.key_id,
            signature=timestamp.to_bytes(TIMESTAMP_SIZE, "big") + signed,
        )

    def sign(self, text: str) -> Signature:
        """A cosignature made now (a cosigner never makes a plain note signature)."""
        return self.cosign(text, int(time.time()))


@dataclass(frozen=True)
class WitnessQuorum:
    """Which known witnesses must cosign: at least ``quorum`` of ``witnesses``."""

    witnesses: tuple[CosignatureVerifier, ...]
    quorum: int

    def __post_init__(self) -> None:
        if not 0 <= self.quorum <= len(self.witnesses):
            raise InvalidKey(
                f"a witness quorum of {self.quorum} needs at least that many witness keys "
                f"(got {len(self.witnesses)})"
            )

    @classmethod
    def of(cls, vkeys: Sequence[str], quorum: int | None) -> WitnessQuorum:
        """From witness verifier key strings; the quorum defaults to all of them."""
        witnesses = tuple(CosignatureVerifier.from_vkey(v) for v in vkeys)
        return cls(witnesses, len(witnesses) if quorum is None else quorum)

    def check(self, note: Note) -> tuple[str, ...]:
        """The names of the known witnesses that validly cosigned ``note``; raises
        :class:`QuorumNotMet` when they are fewer than the quorum, and SignatureError when a
        known witness's line does not verify."""
        return witness_quorum(note, self.witnesses, self.quorum)


def witness_quorum(
    note: Note, witnesses: Sequence[CosignatureVerifier], quorum: int
) -> tuple[str, ...]:
    """See :meth:`WitnessQuorum.check`."""
    known = {(w.name, w.key_id): w for w in witnesses}
    names: list[str] = []
    for signature in note.signatures:
        witness = known.pop((signature.name, signature.key_id), None)
        if witness is None:
            continue  # (another key's line, or a second line of a witness already counted)
        if not witness.verify(note.text, signature):
            raise SignatureError(
                f"the cosignature by known witness {witness.name}+{witness.key_id.hex()} "
                "does not verify"
            )
        names.append(f"{witness.name}+{witness.key_id.hex()}")
    if len(names) < quorum:
        raise QuorumNotMet(
            f"{len(names)} of the {len(witnesses)} known witnesses cosigned the checkpoint "
            f"({', '.join(names) or 'none'}); the quorum is {quorum}"
        )
    return tuple(names)
