"""Public text: what people write for everyone to read, erasable without breaking a proof.

A donor's display name, a grant's purpose, a vote's note and the reason of a cancellation or a
correction are public, but a person may need them gone (they named someone, they put someone
in danger). Entry data version 2 (``"v": 2`` in the data of the kinds of
:data:`TEXT_FIELDS`) therefore carries each of them as a salted, domain-separated commitment,
``{"commitment": hex}``, where

    commitment = SHA-256("lunaria/public-text/v1" || 0x00 || salt || UTF-8 text)

with a fresh 32-byte salt per text. The text and its salt live in ``public_texts``, written
in the same transaction as the entry, and are served beside the entry everywhere (never
inside it: the entry is exactly what was hashed), so anyone can recompute the commitment.
Redacting a text (:mod:`ledger.fund.redaction`) removes text and salt from the table and
appends a ``text_redacted`` entry; the commitment stays, and every hash and proof with it.

Version-1 entries (no ``"v"`` in their data) hold the text itself; every reader takes both,
through :func:`shown`. The table is not a projection: replaying the log cannot rebuild it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine

from ledger.errors import VerificationError
from ledger.fund.privacy import new_salt
from ledger.log.db import RowInsert, read_sql, read_transaction
from ledger.log.receipts import Receipt

DOMAIN = b"lunaria/public-text/v1"
DATA_VERSION = 2
"""The entry data version whose public text fields hold commitments."""
REDACTED = "[redacted]"
"""What readers show for a committed text that is no longer served."""

TEXT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "donation_recorded": ("donor.name",),
    "grant_proposed": ("purpose",),
    "vote_cast": ("note",),
    "grant_cancelled": ("reason",),
    "correction": ("reason",),
}
"""Each kind with public text, and where in its data the text is (dotted paths)."""

_HEX = re.compile(r"[0-9a-f]{64}\Z")
_CHUNK = 500


def text_commitment(salt: bytes, text: str) -> str:
    """Hex ``SHA-256(DOMAIN || 0x00 || salt || UTF-8 text)``."""
    return hashlib.sha256(DOMAIN + b"\x00" + salt + text.encode()).hexdigest()


def is_commitment(value: Any) -> bool:
    """True for 64 lowercase hex digits."""
    return isinstance(value, str) and _HEX.match(value) is not None


class PublicText(NamedTuple):
    """A text as written: its commitment (what the entry holds), the text and its salt."""

    commitment: str
    text: str
    salt: bytes

    @classmethod
    def new(cls, text: str, salt: bytes | None = None) -> PublicText:
        """Commit to ``text`` under a fresh salt (or the one given)."""
        salt = new_salt() if salt is None else salt
        return cls(text_commitment(salt, text), text, salt)

    def field(self) -> dict[str, str]:
        """The value the entry's data holds in the text's place."""
        return {"commitment": self.commitment}


# -- reading an entry's fields -----------------------------------------------------------------


def data_version(data: Mapping[str, Any]) -> int:
    """The version of an entry's data: its ``"v"``, or 1 without one."""
    version = data.get("v", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


def field_value(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of the data, or None where any step is missing."""
    value: Any = data
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def committed(value: Any) -> str | None:
    """The commitment of a version-2 text field's value, or None for anything else."""
    if isinstance(value, Mapping) and value.keys() == {"commitment"}:
        found = value["commitment"]
        return found if is_commitment(found) else None
    return None


def text_commitments(kind: str, data: Mapping[str, Any]) -> dict[str, str]:
    """The committed text fields of an entry: dotted path -> commitment (empty for v1)."""
    found = {}
    for path in TEXT_FIELDS.get(kind, ()):
        commitment = committed(field_value(data, path))
        if commitment is not None:
            found[path] = commitment
    return found


def shown(value: Any, texts: Mapping[str, str | None]) -> str | None:
    """What a reader sees for a text field's ``value``: a version-1 text as it is; a
    version-2 commitment as its text from ``texts`` (commitment -> text, None once
    redacted), or :data:`REDACTED` when not served; None when the field is absent."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    commitment = committed(value)
    if commitment is None:
        return REDACTED
    text = texts.get(commitment)
    return REDACTED if text is None else text


def shown_data(
    kind: str, data: Mapping[str, Any], texts: Mapping[str, str | None]
) -> dict[str, Any]:
    """The entry's data with each text field as a reader sees it (see :func:`shown`)."""
    result = dict(data)
    for path in TEXT_FIELDS.get(kind, ()):
        value = field_value(data, path)
        if value is None:
            continue
        head, _, last = path.rpartition(".")
        target = result
        if head:
            target = result[head] = dict(result[head])
        target[last] = shown(value, texts)
    return result


# -- the table ---------------------------------------------------------------------------------

_NEW_TEXTS = RowInsert("public_texts", ("commitment", "seq", "field", "text", "salt"))


def keep_public(conn: Connection, texts: Sequence[tuple[PublicText, int, str]]) -> None:
    """Store texts: (text, seq of the entry holding its commitment, field path)."""
    rows = [(t.commitment, seq, path, t.text, t.salt.hex()) for t, seq, path in texts]
    if rows:
        _NEW_TEXTS.run(conn, rows)


@dataclass(frozen=True)
class ServedText:
    """A text as served beside its entry: ``text`` and ``salt`` (hex) are None once it was
    redacted (``redacted_seq``: the ``text_redacted`` entry) or when none is kept."""

    commitment: str
    text: str | None
    salt: str | None
    redacted_seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "commitment": self.commitment,
            "text": self.text,
            "salt": self.salt,
            "redacted_seq": self.redacted_seq,
        }


_SERVED = "SELECT commitment, text, salt, redacted_seq FROM public_texts WHERE commitment IN ({})"
_BETWEEN = "SELECT commitment, text FROM public_texts WHERE seq >= ? AND seq <= ?"


def served_texts(conn: Connection, commitments: Iterable[str]) -> dict[str, ServedText]:
    """The table's rows for ``commitments`` (those it has), a few hundred per query."""
    wanted = list(dict.fromkeys(commitments))
    found: dict[str, ServedText] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for commitment, text, salt, redacted in read_sql(
            conn, _SERVED.format(", ".join("?" * len(chunk))), chunk
        ):
            redacted_seq = None if redacted is None else int(redacted)
            found[commitment] = ServedText(commitment, text, salt, redacted_seq)
    return found


def texts_between(conn: Connection, first: int, last: int) -> dict[str, str | None]:
    """commitment -> text (None once redacted) of the entries from ``first`` to ``last``."""
    return dict(read_sql(conn, _BETWEEN, (first, last)))


def texts_of(conn: Connection, entries: Iterable[Any]) -> dict[str, str | None]:
    """commitment -> text (None once redacted) for the committed texts of ``entries``
    (anything with ``kind`` and ``data``), read at once: what :func:`shown` takes."""
    wanted = [c for e in entries for c in text_commitments(e.kind, e.data).values()]
    return {c: served.text for c, served in served_texts(conn, wanted).items()}


def entry_texts(
    kind: str, data: Mapping[str, Any], served: Mapping[str, ServedText]
) -> dict[str, dict[str, Any]]:
    """The ``texts`` member served beside an entry: for each committed field, its text and
    salt (both null once redacted, or when none is kept)."""
    texts = {}
    for path, commitment in text_commitments(kind, data).items():
        found = served.get(commitment) or ServedText(commitment, None, None)
        texts[path] = found.to_json()
    return texts


def load_entry_texts(
    conn: Connection, entries: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[dict[str, dict[str, Any]]]:
    """The ``texts`` member of each (kind, data), in order, read with one query."""
    wanted = [c for kind, data in entries for c in text_commitments(kind, data).values()]
    served = served_texts(conn, wanted) if wanted else {}
    return [entry_texts(kind, data, served) for kind, data in entries]


def texts_beside(
    engine: Engine, entries: Sequence[Mapping[str, Any]]
) -> list[dict[str, dict[str, Any]]]:
    """The ``texts`` member to serve beside each entry object (its ``kind`` and ``data``),
    in order; no query when none of them commits to a text."""
    pairs = [(str(e["kind"]), e["data"]) for e in entries]
    if not any(text_commitments(kind, data) for kind, data in pairs):
        return [{} for _ in pairs]
    with read_transaction(engine) as conn:
        return load_entry_texts(conn, pairs)


_OF_RECORD = (
    "SELECT t.field, t.commitment FROM public_texts t JOIN private_records r ON r.seq = t.seq "
    "WHERE r.commitment = ? AND t.redacted_seq IS NULL ORDER BY t.field"
)


def texts_beside_record(engine: Engine, commitment: str) -> list[tuple[str, str]]:
    """(field, commitment) of the public texts still served beside the entry that wrote the
    private record ``commitment`` (a donation's display name): erasing the record leaves them,
    redacting removes them."""
    with read_transaction(engine) as conn:
        return [(str(f), str(c)) for f, c in read_sql(conn, _OF_RECORD, (commitment,))]


def receipt_with_texts(engine: Engine, receipt: Receipt) -> Receipt:
    """The receipt carrying the texts served beside its entry (JSON receipt version 2), or as
    it is when the entry commits to none."""
    entry = json.loads(receipt.entry)
    texts = texts_beside(engine, [entry])[0]
    return replace(receipt, texts=texts) if texts else receipt


def checked_text_fields(seq: int, kind: str, data: Mapping[str, Any]) -> dict[str, str]:
    """The committed text fields of an entry, after checking its data version and that each
    text field present has that version's shape (version 1: a string; version 2:
    ``{"commitment": hex}``). Raises :class:`VerificationError`."""
    version = data_version(data)
    if version not in (1, DATA_VERSION):
        raise VerificationError(seq, f"{kind} data version {data.get('v')!r} is not 1 or 2")
    found = {}
    for path in TEXT_FIELDS.get(kind, ()):
        value = field_value(data, path)
        if value is None:
            continue
        commitment = committed(value)
        if version == 1 and not isinstance(value, str):
            raise VerificationError(seq, f"{kind} data version 1 holds a {path} that is no text")
        if version == DATA_VERSION and commitment is None:
            raise VerificationError(
                seq, f'{kind} data version 2 holds a {path} that is not {{"commitment": hex}}'
            )
        if commitment is not None:
            found[path] = commitment
    return found


# -- checking served texts ---------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedText:
    """One served text checked against its entry: ``text`` None when it was not served."""

    field: str
    commitment: str
    text: str | None


def check_texts(
    seq: int, kind: str, data: Mapping[str, Any], texts: Mapping[str, Any]
) -> list[CheckedText]:
    """Check the ``texts`` served beside an entry: each names a committed field of it, with
    its commitment, and each text served recomputes that commitment with its salt. Raises
    :class:`VerificationError` naming the field that does not."""
    if not isinstance(texts, Mapping):
        raise VerificationError(seq, "the texts served beside the entry are not an object")
    expected = text_commitments(kind, data)
    checked = []
    for path, served in sorted(texts.items()):
        if path not in expected:
            raise VerificationError(
                seq, f"a text is served for {path!r}, which the entry does not commit to"
            )
        if not isinstance(served, Mapping) or served.get("commitment") != expected[path]:
            raise VerificationError(seq, f"the text served for {path} names another commitment")
        text, salt = served.get("text"), served.get("salt")
        if text is None:
            checked.append(CheckedText(path, expected[path], None))
            continue
        if not isinstance(text, str) or not isinstance(salt, str) or not _salt_hex(salt):
            raise VerificationError(seq, f"the text served for {path} has no valid salt")
        recomputed = text_commitment(bytes.fromhex(salt), text)
        if not hmac.compare_digest(recomputed, expected[path]):
            raise VerificationError(
                seq,
                f"the text served for {path} does not match its commitment: it gives "
                f"{recomputed}, the entry holds {expected[path]}",
            )
        checked.append(CheckedText(path, expected[path], text))
    return checked


def _salt_hex(value: str) -> bool:
    return len(value) == 64 and _HEX.match(value) is not None


def describe_checked(checked: Iterable[CheckedText]) -> Iterator[str]:
    """One line per checked text, for the command line."""
    for item in checked:
        if item.text is None:
            yield f"{item.field}: not served (redacted); commitment {item.commitment}"
        else:
            yield f"{item.field}: the text served matches commitment {item.commitment}"
