"""C2SP signed notes and tlog checkpoints (ledger.log.notes)."""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidKey, NoteError, SignatureError
from ledger.log.notes import (
    MAX_SIGNATURES,
    Checkpoint,
    Note,
    Signature,
    Signer,
    Verifier,
    key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
    sign_note,
)

# From c2sp.org/signed-note.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_TEXT = "This is an example message.\n"
SPEC_SIG_LINE = (
    "— example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
SPEC_NOTE = SPEC_TEXT + "\n" + SPEC_SIG_LINE

# From the documentation of golang.org/x/mod/sumdb/note (a second implementation).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

ORIGIN = "ledger.example.org/lunaria"
LOG = Signer.generate(ORIGIN)
WITNESS_A = Signer.generate("witness.example/a")
WITNESS_B = Signer.generate("witness.example/b")
ROOT = hashlib.sha256(b"root").digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sig_line(name: str, blob: bytes) -> str:
    return f"— {name} {b64(blob)}\n"


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


# --- 1. Known answers ------------------------------------------------------------------------


def test_c2sp_example_verifies() -> None:
    verifier = Verifier.from_vkey(SPEC_VKEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id == bytes.fromhex("530d903a")
    assert key_id(verifier.name, verifier.public_key) == bytes.fromhex("530d903a")

    note = parse_note(SPEC_NOTE)
    assert note.text == SPEC_TEXT
    assert len(note.signatures) == 1
    assert note.signatures[0].line() == SPEC_SIG_LINE
    assert verifier.verify(note.text, note.signatures[0])
    assert open_note(note, [verifier]) == note.signatures
    assert note.serialise() == SPEC_NOTE


def test_go_reference_key_strings_and_signature() -> None:
    signer = Signer.from_skey(GO_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id == bytes.fromhex("c74f20a3")
    assert signer.verifier().vkey() == GO_VKEY
    assert signer.skey() == GO_SKEY
    # Ed25519 is deterministic: signing reproduces the reference note byte for byte.
    assert sign_note(GO_TEXT, [signer]).serialise() == GO_NOTE
    assert open_note(parse_note(GO_NOTE.encode()), [Verifier.from_vkey(GO_VKEY)])


# --- 2. Round trips --------------------------------------------------------------------------


def test_note_round_trip() -> None:
    note = sign_note("hello\nworld\n", [LOG, WITNESS_A])
    text = note.serialise()
    assert parse_note(text) == note
    assert parse_note(text.encode("utf-8")) == note
    assert parse_note(text).serialise() == text


def test_key_string_round_trips() -> None:
    assert Signer.from_skey(LOG.skey()) == LOG
    verifier = LOG.verifier()
    assert Verifier.from_vkey(verifier.vkey()) == verifier
    name, id_hex, encoded = verifier.vkey().split("+", 2)
    assert (name, id_hex) == (ORIGIN, LOG.key_id.hex())
    assert base64.b64decode(encoded) == b"\x01" + verifier.public_key
    seed_material = b64(b"\x01" + LOG.seed)
    assert LOG.skey() == f"PRIVATE+KEY+{ORIGIN}+{LOG.key_id.hex()}+{seed_material}"


def test_checkpoint_body_round_trip() -> None:
    checkpoint = Checkpoint(ORIGIN, 20852163, ROOT)
    assert checkpoint.body() == f"{ORIGIN}\n20852163\n{b64(ROOT)}\n"
    assert parse_checkpoint(checkpoint.body()) == checkpoint
    with_ext = Checkpoint(ORIGIN, 0, ROOT, ("ext one", "— two"))
    assert with_ext.body().endswith("\next one\n— two\n")
    assert parse_checkpoint(with_ext.body()) == with_ext
    biggest = Checkpoint(ORIGIN, 2**63 - 1, ROOT)
    assert parse_checkpoint(biggest.body()) == biggest


def test_signed_checkpoint_round_trip() -> None:
    checkpoint = Checkpoint(ORIGIN, 8, ROOT)
    note = sign_checkpoint(checkpoint, [LOG])
    assert note.text == checkpoint.body()
    assert open_checkpoint(note.serialise(), [LOG.verifier()], origin=ORIGIN) == checkpoint
    assert open_checkpoint(note.serialise().encode(), [LOG.verifier()]) == checkpoint


def test_signer_repr_hides_seed() -> None:
    text = repr(LOG)
    assert LOG.seed.hex() not in text
    assert b64(LOG.seed)[:20] not in text
    assert "seed" not in text


# --- 3. Multiple signatures ------------------------------------------------------------------


def test_three_signers_any_verifier_order() -> None:
    signers = [LOG, WITNESS_A, WITNESS_B]
    note = parse_note(sign_note("three\n", signers).serialise())
    verifiers = [s.verifier() for s in signers]
    assert open_note(note, verifiers) == note.signatures
    assert open_note(note, list(reversed(verifiers))) == note.signatures
    only = open_note(note, [WITNESS_B.verifier()])
    assert [s.name for s in only] == ["witness.example/b"]


def test_unknown_keys_ignored() -> None:
    stranger = Signer.generate("stranger.example")
    note = sign_note("text\n", [stranger, LOG])
    assert open_note(note, [LOG.verifier()]) == (note.signatures[1],)
    # A garbage signature by an unknown key is ignored too.
    junk = Signature("junk.example", b"\x00\x01\x02\x03", b"x")
    note = Note(note.text, (junk, *note.signatures))
    assert open_note(note, [LOG.verifier()]) == (note.signatures[2],)


def test_same_name_other_key_id_is_unknown() -> None:
    rotated = Signer.generate(ORIGIN)  # same name, new key: a key rotation
    note = sign_note("rotated\n", [rotated, LOG])
    assert open_note(note, [LOG.verifier()]) == (note.signatures[1],)
    assert open_note(note, [rotated.verifier()]) == (note.signatures[0],)


def test_duplicate_signature_lines_reported_once() -> None:
    signature = LOG.sign("dup\n")
    note = Note("dup\n", (signature, signature))
    assert open_note(note, [LOG.verifier()]) == (signature,)


def test_many_signatures_accepted() -> None:
    signers = [Signer.generate(f"witness.example/{i}") for i in range(20)]
    note = parse_note(sign_note("many\n", signers).serialise())
    assert len(open_note(note, [s.verifier() for s in signers])) == 20


def test_hundred_signatures_accepted_more_refused() -> None:
    text = "limit\n"
    signature = LOG.sign(text)
    hundred = text + "\n" + signature.line() * MAX_SIGNATURES
    assert len(parse_note(hundred).signatures) == MAX_SIGNATURES
    with pytest.raises(NoteError, match="101"):
        parse_note(hundred + signature.line())
    with pytest.raises(NoteError, match="101"):
        Note(text, (signature,) * (MAX_SIGNATURES + 1))


# --- 4. Failures -----------------------------------------------------------------------------


def test_known_key_bad_signature_rejected() -> None:
    note = sign_note("payload\n", [LOG, WITNESS_A])
    good, witnessed = note.signatures
    raw = bytearray(good.signature)
    raw[10] ^= 0x01
    bad = Signature(good.name, good.key_id, bytes(raw))
    assert not LOG.verifier().verify(note.text, bad)
    with pytest.raises(SignatureError, match=r"does not verify"):
        open_note(Note(note.text, (bad,)), [LOG.verifier()])
    # Even with another known key's valid signature, a failing known signature rejects the note.
    with pytest.raises(SignatureError):
        open_note(Note(note.text, (witnessed, bad)), [LOG.verifier(), WITNESS_A.verifier()])
    # Truncated signature bytes from a known key.
    short = Signature(good.name, good.key_id, good.signature[:63])
    with pytest.raises(SignatureError):
        open_note(Note(note.text, (short,)), [LOG.verifier()])


def test_key_id_matches_but_name_differs() -> None:
    good = LOG.sign("payload\n")
    impostor = Signature("impostor.example", good.key_id, good.signature)
    assert not LOG.verifier().verify("payload\n", impostor)
    with pytest.raises(SignatureError, match="no known key"):
        open_note(Note("payload\n", (impostor,)), [LOG.verifier()])


def test_no_known_key_names_the_keys_looked_for() -> None:
    note = sign_note("payload\n", [WITNESS_A])
    with pytest.raises(SignatureError) as info:
        open_note(note, [LOG.verifier(), WITNESS_B.verifier()])
    assert ORIGIN in str(info.value)
    assert "witness.example/b" in str(info.value)
    assert "witness.example/a" in str(info.value)  # what it found
    with pytest.raises(SignatureError):
        open_note(note, [])


def test_text_altered_after_signing() -> None:
    note = sign_note("amount 1500\n", [LOG])
    altered = Note("amount 9500\n", note.signatures)
    with pytest.raises(SignatureError):
        open_note(altered, [LOG.verifier()])
    serialised = note.serialise().replace("1500", "9500")
    with pytest.raises(SignatureError):
        open_note(parse_note(serialised), [LOG.verifier()])


def test_missing_trailing_newline() -> None:
    note = sign_note("text\n", [LOG]).serialise()
    with pytest.raises(NoteError, match="newline"):
        parse_note(note[:-1])
    with pytest.raises(NoteError, match="newline"):
        sign_note("text", [LOG])
    with pytest.raises(NoteError, match="newline"):
        Note("text", (LOG.sign("text\n"),))


def test_no_blank_line() -> None:
    line = LOG.sign("text\n").line()
    with pytest.raises(NoteError, match="blank line"):
        parse_note("text\n" + line)
    with pytest.raises(NoteError, match="no signature"):
        parse_note("text\n\n")


def test_blank_lines_inside_text_split_at_last() -> None:
    text = "para one\n\npara two\n\n\npara three\n"
    note = sign_note(text, [LOG])
    parsed = parse_note(note.serialise())
    assert parsed.text == text
    assert parsed == note
    assert open_note(parsed, [LOG.verifier()]) == note.signatures
    # A text that itself ends with an empty line.
    trailing = sign_note("ends blank\n\n", [LOG])
    assert parse_note(trailing.serialise()).text == "ends blank\n\n"
    # A blank line among the signature lines makes the earlier lines part of the text.
    line = LOG.sign("x\n").line()
    moved = parse_note("x\n\n" + line + "\n" + line)
    assert moved.text == "x\n\n" + line
    with pytest.raises(SignatureError):
        open_note(moved, [LOG.verifier()])


@pytest.mark.parametrize("encoded", ["not base64!", "", "AAAAAA=="])
def test_bad_signature_encoding(encoded: str) -> None:
    # Not base64; empty; base64 of a 4-byte key id with no signature.
    with pytest.raises(NoteError, match="signature line 1"):
        parse_note("text\n\n— name " + encoded + "\n")


def test_bad_base64() -> None:
    line = LOG.sign("text\n").line()
    encoded = line.rstrip("\n").rsplit(" ", 1)[1]
    assert encoded.endswith("=")
    cases = [
        encoded.rstrip("="),  # unpadded
        encoded + "=",  # over-padded
        encoded.replace("=", "") + "==",  # wrong padding
        encoded[:10] + "-" + encoded[11:],  # URL-safe alphabet
        encoded[:10] + " " + encoded[10:],  # embedded space
        encoded[:-2] + chr(ord(encoded[-2]) ^ 0x01) + "=",  # non-zero padding bits
    ]
    for case in cases:
        with pytest.raises(NoteError, match="base64"):
            parse_note("text\n\n— " + LOG.name + " " + case + "\n")


def test_non_canonical_base64_same_bytes_refused() -> None:
    signature = LOG.sign("text\n")
    encoded = b64(signature.key_id + signature.signature)
    last = encoded[-2]  # carries 2 padding bits for a 68-byte blob
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = alphabet[alphabet.index(last) ^ 0x01]
    variant = encoded[:-2] + twin + "="
    assert base64.b64decode(variant) == base64.b64decode(encoded)  # same bytes
    with pytest.raises(NoteError, match="base64"):
        parse_note("text\n\n— " + LOG.name + " " + variant + "\n")


def test_signature_line_syntax() -> None:
    line = LOG.sign("text\n").line()
    encoded = line.rstrip("\n").rsplit(" ", 1)[1]
    for bad in [
        f"- {LOG.name} {encoded}\n",  # hyphen, not em dash
        f"-- {LOG.name} {encoded}\n",
        f"–  {LOG.name} {encoded}\n",  # en dash
        f"—{LOG.name} {encoded}\n",  # no space after the dash
        f"— {encoded}\n",  # no name
        f"—  {encoded}\n",  # empty name
        f"— a+b {encoded}\n",  # plus in name
        f"— a\u00a0b {encoded}\n",  # Unicode space in name
        f"— {LOG.name}  {encoded}\n",  # two spaces
        f"— {LOG.name} {encoded} \n",  # trailing space
    ]:
        with pytest.raises(NoteError):
            parse_note("text\n\n" + bad)


def test_signature_too_short() -> None:
    with pytest.raises(NoteError, match="4 bytes"):
        parse_note("text\n\n" + sig_line("name", b"\x01\x02\x03\x04"))
    # Five bytes is well formed (a 1-byte signature) but never verifies.
    note = parse_note("text\n\n" + sig_line(LOG.name, LOG.key_id + b"\x00"))
    with pytest.raises(SignatureError):
        open_note(note, [LOG.verifier()])


@pytest.mark.parametrize("char", ["\x00", "\t", "\r", "\x0b", "\x1b", "\x1f"])
def test_control_characters_refused(char: str) -> None:
    with pytest.raises(NoteError, match="control character"):
        sign_note(f"a{char}b\n", [LOG])
    line = LOG.sign("ab\n").line()
    with pytest.raises(NoteError, match="control character"):
        parse_note(f"a{char}b\n\n" + line)
    with pytest.raises(NoteError, match="control character"):
        parse_note("ab\n\n" + line[:-1] + char + "\n")


def test_crlf_note_refused() -> None:
    note = sign_note("text\n", [LOG]).serialise()
    with pytest.raises(NoteError, match="control character"):
        parse_note(note.replace("\n", "\r\n"))


def test_delete_and_non_ascii_allowed() -> None:
    # The spec forbids only characters below U+0020 other than newline.
    text = "caf\u00e9 \u043c\u0456\u0441\u044f\u0446\u044c \x7f \U0001f315\n"
    note = sign_note(text, [LOG])
    assert open_note(parse_note(note.serialise().encode()), [LOG.verifier()])


def test_invalid_utf8_refused() -> None:
    note = sign_note("text\n", [LOG]).serialise().encode()
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note(b"\xff" + note)
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note("\udc80" + note.decode())  # lone surrogate in a str
    with pytest.raises(NoteError, match="UTF-8"):
        sign_note("\ud800\n", [LOG])


def test_empty_text_refused() -> None:
    with pytest.raises(NoteError, match="empty"):
        sign_note("", [LOG])
    with pytest.raises(NoteError, match="empty"):
        Note("", (LOG.sign("x\n"),))
    with pytest.raises(NoteError):
        parse_note("\n" + LOG.sign("x\n").line())
    with pytest.raises(NoteError):
        parse_note("")


def test_note_needs_signatures() -> None:
    with pytest.raises(NoteError, match="at least one"):
        Note("text\n", ())
    with pytest.raises(NoteError, match="without signers"):
        sign_note("text\n", [])
    with pytest.raises(NoteError, match="duplicate"):
        sign_note("text\n", [LOG, LOG])


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("05", "leading zeros"),
        ("00", "leading zeros"),
        ("-1", "leading zeros"),
        ("+5", "leading zeros"),
        (" 5", "leading zeros"),
        ("5 ", "leading zeros"),
        ("1_000", "leading zeros"),
        ("\u0665", "leading zeros"),  # ARABIC-INDIC DIGIT FIVE: int() would accept it
        ("", "leading zeros"),
        ("0x10", "leading zeros"),
        (str(2**63), r"2\*\*63"),
        ("9" * 30, "leading zeros"),
    ],
)
def test_checkpoint_bad_size(size: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_checkpoint(f"{ORIGIN}\n{size}\n{b64(ROOT)}\n")


def test_checkpoint_constructor_validates() -> None:
    with pytest.raises(NoteError, match="size"):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(NoteError, match="size"):
        Checkpoint(ORIGIN, 2**63, ROOT)
    with pytest.raises(NoteError, match="size"):
        Checkpoint(ORIGIN, True, ROOT)
    with pytest.raises(NoteError, match="31 bytes"):
        Checkpoint(ORIGIN, 1, ROOT[:31])
    with pytest.raises(NoteError, match="origin is empty"):
        Checkpoint("", 1, ROOT)
    with pytest.raises(NoteError, match="newline"):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(NoteError, match="extension line 2"):
        Checkpoint(ORIGIN, 1, ROOT, ("ok", ""))


def test_checkpoint_bad_root() -> None:
    with pytest.raises(NoteError, match="31 bytes"):
        parse_checkpoint(f"{ORIGIN}\n1\n{b64(ROOT[:31])}\n")
    with pytest.raises(NoteError, match="33 bytes"):
        parse_checkpoint(f"{ORIGIN}\n1\n{b64(ROOT + b'x')}\n")
    with pytest.raises(NoteError, match="base64"):
        parse_checkpoint(f"{ORIGIN}\n1\n{b64(ROOT).rstrip('=')}\n")
    with pytest.raises(NoteError, match="48 bytes"):  # hex is valid base64 of 48 bytes
        parse_checkpoint(f"{ORIGIN}\n1\n{ROOT.hex()}\n")
    with pytest.raises(NoteError, match="base64"):
        parse_checkpoint(f"{ORIGIN}\n1\n{ROOT.hex()}x\n")


def test_checkpoint_bad_structure() -> None:
    good = f"{ORIGIN}\n1\n{b64(ROOT)}\n"
    with pytest.raises(NoteError, match="origin is empty"):
        parse_checkpoint(f"\n1\n{b64(ROOT)}\n")
    with pytest.raises(NoteError, match="newline"):
        parse_checkpoint(good[:-1])
    with pytest.raises(NoteError, match="2 lines"):
        parse_checkpoint(f"{ORIGIN}\n1\n")
    with pytest.raises(NoteError, match="extension line 1"):
        parse_checkpoint(good + "\n")
    with pytest.raises(NoteError, match="extension line 2"):
        parse_checkpoint(good + "ext\n\nmore\n")
    with pytest.raises(NoteError, match="control character"):
        parse_checkpoint(f"{ORIGIN}\r\n1\n{b64(ROOT)}\n")


def test_open_checkpoint_errors() -> None:
    checkpoint = Checkpoint(ORIGIN, 8, ROOT)
    note = sign_checkpoint(checkpoint, [LOG]).serialise()
    with pytest.raises(NoteError, match="not the expected") as info:
        open_checkpoint(note, [LOG.verifier()], origin="other.example/log")
    assert not isinstance(info.value, SignatureError)
    assert "other.example/log" in str(info.value)
    with pytest.raises(NoteError):
        open_checkpoint(note, [LOG.verifier()], origin=ORIGIN + " ")
    with pytest.raises(SignatureError):
        open_checkpoint(note, [WITNESS_A.verifier()], origin=ORIGIN)
    # A validly signed note whose text is not a checkpoint.
    with pytest.raises(NoteError, match="size"):
        open_checkpoint(
            sign_note(f"{ORIGIN}\n08\n{b64(ROOT)}\n", [LOG]).serialise(), [LOG.verifier()]
        )


# --- Keys ------------------------------------------------------------------------------------


def test_bad_verifier_keys() -> None:
    name, id_hex, encoded = SPEC_VKEY.split("+", 2)
    pub = base64.b64decode(encoded)[1:]
    alg2 = b64(b"\x02" + pub)
    short = b64(b"\x01" + pub[:31])
    cases = {
        "no-plus": "verifier key is not",
        f"{name}+{id_hex}": "verifier key is not",
        f"{name}+530d903b+{encoded}": "does not match",
        f"other.example+{id_hex}+{encoded}": "does not match",
        f"{name}+530D903A+{encoded}": "lowercase hex",
        f"{name}+530d903+{encoded}": "lowercase hex",
        f"+{id_hex}+{encoded}": "invalid name",
        f"a b+{id_hex}+{encoded}": "invalid name",
        f"{name}+{id_hex}+{encoded[:-1]}": "base64",
        f"{name}+{id_hex}+{encoded}=": "base64",
        f"{name}+{id_hex}+{alg2}": "algorithm 0x02",
        f"{name}+{id_hex}+": "algorithm none",
        f"{name}+{id_hex}+{short}": "31 bytes",
    }
    for vkey, message in cases.items():
        with pytest.raises(InvalidKey, match=message):
            Verifier.from_vkey(vkey)


def test_bad_signer_keys_never_echo_the_secret() -> None:
    *head, encoded = GO_SKEY.split("+", 4)  # the base64 itself contains a "+"
    prefix = "+".join(head)
    material = base64.b64decode(encoded)
    seed_b64 = b64(material[1:])
    alg2 = b64(b"\x02" + material[1:])
    cases = {
        GO_SKEY.replace("PRIVATE+KEY+", "PUBLIC+KEY+"): "PRIVATE",
        GO_SKEY.replace("c74f20a3", "c74f20a4"): "does not match",
        GO_SKEY.replace("PeterNeumann", "PeterNeumannn"): "does not match",
        GO_SKEY.replace("c74f20a3", "C74F20A3"): "lowercase hex",
        GO_SKEY[:-1]: "base64",
        f"{prefix}+{alg2}": "Ed25519",
        f"{prefix}+{b64(material[:-1])}": "31 bytes",
        "PRIVATE+KEY+PeterNeumann": "not PRIVATE",
    }
    for skey, message in cases.items():
        with pytest.raises(InvalidKey, match=message) as info:
            Signer.from_skey(skey)
        assert encoded[4:20] not in str(info.value)
        assert seed_b64[:16] not in str(info.value)


def test_bad_key_names() -> None:
    for name in ["", "a b", "a+b", "tab\there", "a\u3000b"]:
        with pytest.raises(InvalidKey, match="name"):
            Signer.generate(name)


def test_verifier_checks_its_fields() -> None:
    verifier = LOG.verifier()
    with pytest.raises(InvalidKey, match="does not match"):
        Verifier(verifier.name, b"\x00\x00\x00\x00", verifier.public_key)
    with pytest.raises(InvalidKey, match="31 bytes"):
        Verifier(verifier.name, verifier.key_id, verifier.public_key[:31])


# --- 5. Key files ----------------------------------------------------------------------------


def test_save_creates_0600_and_refuses_overwrite(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "log.key"
    LOG.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == LOG.skey() + "\n"
    assert Signer.load(path) == LOG
    with pytest.raises(FileExistsError):
        WITNESS_A.save(path)
    assert Signer.load(path) == LOG  # unchanged


def test_save_ignores_a_permissive_umask(tmp_path: pathlib.Path) -> None:
    old = os.umask(0)
    try:
        LOG.save(tmp_path / "log.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "log.key").stat().st_mode) == 0o600


def test_save_refuses_to_follow_a_symlink(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "log.key").symlink_to(target)
    with pytest.raises(FileExistsError):
        LOG.save(tmp_path / "log.key")
    assert not target.exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_load_refuses_group_or_world_access(tmp_path: pathlib.Path, mode: int) -> None:
    path = tmp_path / "log.key"
    LOG.save(path)
    path.chmod(mode)
    with pytest.raises(InvalidKey, match=f"{mode:04o}"):
        Signer.load(path)
    path.chmod(0o400)
    assert Signer.load(path) == LOG


def test_load_refuses_garbage(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "log.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"\xff\xfe")
    os.close(fd)
    with pytest.raises(InvalidKey, match="UTF-8"):
        Signer.load(path)
    with pytest.raises(FileNotFoundError):
        Signer.load(tmp_path / "missing.key")


# --- 6. Properties ---------------------------------------------------------------------------

_line_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], min_codepoint=0x20), min_size=1
)


@settings(max_examples=200)
@given(
    origin=_line_text,
    size=st.integers(min_value=0, max_value=2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_line_text, max_size=3),
)
def test_property_sign_then_open(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert parse_checkpoint(checkpoint.body()) == checkpoint
    note = sign_checkpoint(checkpoint, [LOG, WITNESS_A]).serialise()
    assert open_checkpoint(note, [LOG.verifier()], origin=origin) == checkpoint
    assert open_checkpoint(note.encode(), [WITNESS_A.verifier()]) == checkpoint


@settings(max_examples=300)
@given(
    origin=_line_text,
    size=st.integers(min_value=0, max_value=2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    data=st.data(),
)
def test_property_any_byte_flip_rejected(
    origin: str, size: int, root: bytes, data: st.DataObject
) -> None:
    note = sign_checkpoint(Checkpoint(origin, size, root), [LOG]).serialise().encode()
    index = data.draw(st.integers(min_value=0, max_value=len(note) - 1), label="index")
    mask = data.draw(st.integers(min_value=1, max_value=255), label="mask")
    with pytest.raises(NoteError):
        open_checkpoint(flip(note, index, mask), [LOG.verifier()])


def test_every_single_byte_change_rejected() -> None:
    """Exhaustive over one note: every position, every other byte value."""
    note = sign_checkpoint(Checkpoint("log.example/x", 5, ROOT), [LOG]).serialise().encode()
    verifiers = [LOG.verifier()]
    assert open_checkpoint(note, verifiers).size == 5
    for index in range(len(note)):
        for mask in range(1, 256):
            with pytest.raises(NoteError):
                open_checkpoint(flip(note, index, mask), verifiers)
