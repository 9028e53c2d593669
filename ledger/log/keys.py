"""The log's signing keys on disk, and their rotation.

DESIGN.md: "key rotation is an entry and a period of double signing". Rotating appends a
``key_rotated`` entry publishing the new verifier key (and the old one, and when double signing
ends) in a transaction whose checkpoint both keys sign; until that time every checkpoint carries
both signatures, so a verifier that knows only the old key keeps verifying while it learns the
new one. Beside the active key file (``log.key``) live:

* ``log.key.retiring``: the previous signing key, used only until double signing ends;
* ``log.key.vkeys``: every verifier key the log has had, oldest first (public, never shrinks),
  so ``lunaria verify`` can still check checkpoints signed before a rotation;
* ``log.key.fingerprints``: the key of idempotency fingerprints (secret, mode 0600), derived
  once from the signing key of the day and kept through rotations (see ``fingerprint_key``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ledger.errors import LedgerError
from ledger.log.append import Log, fingerprint_key_from
from ledger.log.entry import Entry
from ledger.log.notes import Signer, Verifier, write_secret_file

DEFAULT_DOUBLE_SIGNING = timedelta(days=30)


@dataclass(frozen=True)
class KeyFiles:
    """Where one deployment keeps its keys: ``active`` and the files named after it."""

    active: Path

    @property
    def retiring(self) -> Path:
        return self.active.with_name(self.active.name + ".retiring")

    @property
    def history(self) -> Path:
        return self.active.with_name(self.active.name + ".vkeys")

    @property
    def staged(self) -> Path:
        return self.active.with_name(self.active.name + ".new")

    @property
    def fingerprints(self) -> Path:
        return self.active.with_name(self.active.name + ".fingerprints")

    def signer(self) -> Signer | None:
        return Signer.load(self.active) if self.active.exists() else None

    def fingerprint_key(self) -> bytes | None:
        """The key idempotency fingerprints are made with (see ``request_fingerprint``).

        Stored keys' fingerprints must keep matching after the signing key rotates, or a
        request retried after a rotation would conflict with itself: the key is derived from
        the signing key once, as every Lunaria did before it had this file (so fingerprints
        already stored still match), and kept here. None where there is neither file nor
        signing key (a process that only reads)."""
        if self.fingerprints.exists():
            text = self.fingerprints.read_text(encoding="ascii").strip()
            try:
                key = bytes.fromhex(text)
            except ValueError:
                key = b""
            if len(key) != 32:
                raise LedgerError(f"{self.fingerprints} does not hold a 32-byte hex key")
            return key
        signer = self.signer()
        if signer is None:
            return None
        key = fingerprint_key_from(signer)
        # An OSError: a key directory this process may not write (a read-only secret mount);
        # the derived key serves as it always did, and `lunaria key rotate`, which must write
        # there anyway, keeps it before the signing key changes.
        with contextlib.suppress(OSError):
            _publish_once(self.fingerprints, (key.hex() + "\n").encode("ascii"))
        return key

    def retiring_signer(self) -> Signer | None:
        return Signer.load(self.retiring) if self.retiring.exists() else None

    def trusted_verifiers(self) -> list[Verifier]:
        """The keys this deployment signed with: the history file's and the active key's."""
        found: list[Verifier] = []
        if self.history.exists():
            lines = self.history.read_text(encoding="utf-8").splitlines()
            found = [Verifier.from_vkey(line.strip()) for line in lines if line.strip()]
        signer = self.signer()
        if signer is not None and signer.verifier() not in found:
            found.append(signer.verifier())
        return found


def _publish_once(path: Path, data: bytes) -> None:
    """Make ``path`` hold ``data`` (mode 0600) unless it exists: written aside, then linked
    into place, so a process reading it at the same moment never sees it half written (and
    one that made it first, the same way, keeps it)."""
    aside = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    write_secret_file(aside, data)
    try:
        os.link(aside, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(aside)


def rotate_key(log: Log, files: KeyFiles, double_signing: timedelta) -> Entry:
    """Replace the log's signing key: a ``key_rotated`` entry, then the key files.

    The new key is written (``.new``, mode 0600) before anything is appended, and moved into
    place after the entry commits; the old one becomes ``.retiring``. A crash in between
    leaves the ``.new`` file, and the next rotation refuses to start until it is sorted out.
    """
    old = log.signer
    if old is None:
        raise LedgerError(f"no signing key at {files.active}: nothing to rotate")
    if files.retiring.exists():
        raise LedgerError(
            f"{files.retiring} is still there from the last rotation: once its double signing "
            "has ended, delete it, then rotate again"
        )
    new = Signer.generate(old.name)
    if files.staged.exists():
        raise LedgerError(
            f"{files.staged} is left from a rotation that did not finish: if the log's last "
            "key_rotated entry publishes its key, move it to the key file (and the old key to "
            f"{files.retiring.name}); if not, delete it"
        )
    files.fingerprint_key()  # (made from the old key before it retires, if not yet made)
    new.save(files.staged)
    until = log.clock.now() + double_signing
    entry = log.rotate_key(new, until)
    _remember_vkey(files.history, old.verifier().vkey())
    os.replace(files.active, files.retiring)
    os.replace(files.staged, files.active)
    return entry


def _remember_vkey(path: Path, vkey: str) -> None:
    known = path.read_text(encoding="utf-8").split() if path.exists() else []
    if vkey in known:
        return
    with path.open("a", encoding="utf-8") as handle:
        handle.write(vkey + "\n")
        handle.flush()
        os.fsync(handle.fileno())
