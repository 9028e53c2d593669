"""Receipts: JSON and c2sp.org/tlog-proof, built from the log, verified offline."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from api import db
from ledger.errors import InvalidKey, NotFound, NotYetCovered, ProofError, VerificationError
from ledger.log.append import Log
from ledger.log.merkle import leaf_hash
from ledger.log.notes import Signer
from ledger.log.receipts import (
    TLOG_PROOF_HEADER,
    Receipt,
    TlogProof,
    build_receipt,
    parse_receipt,
    parse_receipt_json,
    parse_tlog_proof,
    verify_receipt,
)
from tests.conftest import ORIGIN
from tests.test_tiles import grow

SIZE = 13


@pytest.fixture
def covered(log: Log) -> Log:
    grow(log, SIZE)
    return log


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_json_receipt_format(covered: Log, signer: Signer) -> None:
    receipt = build_receipt(covered, 5)
    entry = covered.entry(5)
    proof = covered.inclusion_proof(5, SIZE)
    assert receipt.to_json() == {
        "entry": json.loads(entry.raw),
        "entry_b64": b64(entry.raw),
        "seq": 5,
        "leaf_hash": entry.hash.hex(),
        "proof": {
            "index": 5,
            "size": SIZE,
            "leaf_hash": entry.hash.hex(),
            "hashes": [h.hex() for h in proof],
        },
        "checkpoint": covered.latest_checkpoint().note,  # type: ignore[union-attr]
        "vkey": signer.verifier().vkey(),
    }
    assert list(receipt.to_json()) == [
        "entry",
        "entry_b64",
        "seq",
        "leaf_hash",
        "proof",
        "checkpoint",
        "vkey",
    ]


def test_tlog_proof_format(covered: Log) -> None:
    entry = covered.entry(5)
    text = build_receipt(covered, 5).to_tlog_proof().serialise()
    hashes = [b64(h) for h in covered.inclusion_proof(5, SIZE)]
    note = covered.latest_checkpoint().note  # type: ignore[union-attr]
    assert text == "\n".join(
        [TLOG_PROOF_HEADER, f"extra {b64(entry.raw)}", "index 5", *hashes, "", note]
    )
    assert text.endswith("\n") and note.startswith(f"{ORIGIN}\n{SIZE}\n")


def test_every_receipt_round_trips_and_verifies(covered: Log, signer: Signer) -> None:
    for seq in range(SIZE):
        receipt = build_receipt(covered, seq)
        text = receipt.dumps()
        assert parse_receipt_json(text) == receipt
        assert parse_receipt(text.encode()) == receipt
        proof = receipt.to_tlog_proof()
        assert parse_tlog_proof(proof.serialise()) == proof
        assert parse_receipt(proof.serialise().encode()) == proof
        entry = covered.entry(seq)
        for form in (receipt, proof):
            verified = verify_receipt(form, [signer.verifier().vkey()], origin=ORIGIN)
            assert (verified.entry, verified.leaf_hash) == (entry, entry.hash)
            assert verified.checkpoint.size == SIZE
            assert verified.checkpoint.root == covered.root_at(SIZE)
            assert verified.signed_by == (f"{ORIGIN}+{signer.key_id.hex()}",)
            assert verified.summary().startswith(f"ok: entry {seq} ({entry.kind}, leaf hash ")


def test_receipt_of_a_log_of_one_entry(log: Log, signer: Signer) -> None:
    proof = build_receipt(log, 0).to_tlog_proof()
    assert proof.hashes == ()
    assert "\nindex 0\n\n" in proof.serialise()
    assert verify_receipt(proof, [signer.verifier()]).checkpoint.size == 1


def test_receipt_not_yet_covered(covered: Log) -> None:
    with covered.writer() as writer:  # policy: 10 entries or 60 s; the clock stands still
        writer.append("correction", {"late": True})
    with pytest.raises(NotYetCovered, match="entry 13 is not covered by a signed checkpoint yet"):
        build_receipt(covered, SIZE)
    assert NotYetCovered.code == "receipt_not_yet_covered"
    assert isinstance(NotYetCovered("x"), NotFound)
    with pytest.raises(NotFound, match="no entry with seq 14") as caught:
        build_receipt(covered, SIZE + 1)
    assert caught.value.code == "not_found"
    covered.checkpoint_now()
    assert build_receipt(covered, SIZE).size == SIZE + 1


def test_read_only_log_names_the_key_of_log_created(covered: Log, signer: Signer) -> None:
    reader = Log(covered.engine, ORIGIN)
    assert build_receipt(reader, 3).vkey == signer.verifier().vkey()
    assert build_receipt(reader, 3, vkey="given").vkey == "given"


# -- tampering --------------------------------------------------------------------------------


def flip_hex(value: str) -> str:
    return ("1" if value[0] == "0" else "0") + value[1:]


def flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[-1] ^= 1
    return b64(bytes(raw))


def tampered_json(receipt: Receipt, change: Any) -> Receipt:
    obj = receipt.to_json()
    change(obj)
    return parse_receipt_json(json.dumps(obj))


def flip_signature(note: str) -> str:
    body, _, line = note[:-1].rpartition("\n")
    prefix, _, sig = line.rpartition(" ")
    return f"{body}\n{prefix} {flip_b64(sig)}\n"


def test_json_receipt_mutations_fail_clearly(covered: Log, signer: Signer) -> None:
    receipt = build_receipt(covered, 5)
    keys = [signer.verifier()]

    def fails(change: Any, message: str) -> None:
        with pytest.raises(VerificationError, match=message) as caught:
            verify_receipt(tampered_json(receipt, change), keys)
        assert caught.value.seq == 5

    def proof_hash(obj: dict[str, Any]) -> None:
        obj["proof"]["hashes"][1] = flip_hex(obj["proof"]["hashes"][1])

    fails(proof_hash, "the inclusion proof does not lead to the signed root: inclusion proof")

    def entry_data(obj: dict[str, Any]) -> None:
        obj["entry"]["data"]["i"] = 6
        del obj["entry_b64"]

    fails(entry_data, "the entry hashes to [0-9a-f]{64}, the receipt says")

    def both_hashes(obj: dict[str, Any]) -> None:
        entry_data(obj)
        obj["leaf_hash"] = obj["proof"]["leaf_hash"] = leaf_hash(
            json.dumps(obj["entry"], sort_keys=True, separators=(",", ":")).encode()
        ).hex()

    fails(both_hashes, "the inclusion proof does not lead to the signed root")

    def signature(obj: dict[str, Any]) -> None:
        obj["checkpoint"] = flip_signature(obj["checkpoint"])

    fails(signature, "receipt checkpoint: signature by known key .* does not verify")

    def size(obj: dict[str, Any]) -> None:
        obj["proof"]["size"] = SIZE + 1

    fails(size, f"the proof claims tree size {SIZE + 1}, the signed checkpoint is for size {SIZE}")

    def entry_seq(obj: dict[str, Any]) -> None:
        obj["entry"]["seq"] = 6
        del obj["entry_b64"]

    fails(entry_seq, "the entry is seq 6, but the proof is for index 5")

    def entry_version(obj: dict[str, Any]) -> None:
        obj["entry"]["data"]["i"] = "5"
        obj["entry"]["v"] = 2
        del obj["entry_b64"]

    fails(entry_version, "receipt entry is not a valid entry: entry version 2 is not 1")

    with pytest.raises(VerificationError, match="no known key signed the note"):
        verify_receipt(receipt, [Signer.generate(ORIGIN).verifier()])
    with pytest.raises(VerificationError, match=re.escape("is for 'test.lunaria.example/log'")):
        verify_receipt(receipt, keys, origin="other.example/log")


def test_tlog_proof_mutations_fail_clearly(covered: Log, signer: Signer) -> None:
    proof = build_receipt(covered, 7).to_tlog_proof()
    keys = [signer.verifier()]
    lines = proof.serialise().split("\n")
    assert lines[2] == "index 7"
    bad_hash = "\n".join([*lines[:3], flip_b64(lines[3]), *lines[4:]])
    with pytest.raises(VerificationError, match="does not lead to the signed root"):
        verify_receipt(parse_tlog_proof(bad_hash), keys)
    other_index = proof.serialise().replace("\nindex 7\n", "\nindex 6\n")
    with pytest.raises(VerificationError, match="the entry is seq 7, but the proof is for index 6"):
        verify_receipt(parse_tlog_proof(other_index), keys)
    bad_signature = TlogProof(7, proof.hashes, flip_signature(proof.checkpoint), proof.extra)
    with pytest.raises(VerificationError, match="signature by known key"):
        verify_receipt(bad_signature, keys)
    with pytest.raises(VerificationError, match="no known key signed the note"):
        verify_receipt(proof, [Signer.generate("someone.else/log").verifier()])


def test_tlog_proof_entry_supplied_separately(covered: Log, signer: Signer) -> None:
    proof = build_receipt(covered, 7).to_tlog_proof()
    assert proof.extra is not None
    bare = TlogProof(proof.index, proof.hashes, proof.checkpoint)
    assert "extra" not in bare.serialise()
    keys = [signer.verifier()]
    with pytest.raises(ProofError, match="has no extra line: supply the entry"):
        verify_receipt(bare, keys)
    assert verify_receipt(bare, keys, entry=proof.extra).entry.seq == 7
    assert verify_receipt(proof, keys, entry=proof.extra).entry.seq == 7
    other = covered.entry(8).raw
    with pytest.raises(ProofError, match="differs from the receipt's extra data"):
        verify_receipt(proof, keys, entry=other)
    with pytest.raises(VerificationError, match="the entry is seq 8, but the proof is for index 7"):
        verify_receipt(bare, keys, entry=other)
    with pytest.raises(InvalidKey, match="at least one trusted verifier key"):
        verify_receipt(proof, [])


# -- strict parsing ---------------------------------------------------------------------------

NOTE = f"{ORIGIN}\n1\n{b64(bytes(32))}\n\n\u2014 {ORIGIN} {b64(bytes(68))}\n"
HASH = b64(bytes(range(32)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"c2sp.org/tlog-proof@v2\nindex 0\n\n{NOTE}", "must start with"),
        (f"C2SP.org/tlog-proof@v1\nindex 0\n\n{NOTE}", "must start with"),
        (f"{TLOG_PROOF_HEADER}\r\nindex 0\n\n{NOTE}", "must start with"),
        (f"{TLOG_PROOF_HEADER}", "ends before its first line ends"),
        (f"{TLOG_PROOF_HEADER}\n\n\n{NOTE}", "needs 'index <decimal>'"),
        (f"{TLOG_PROOF_HEADER}\nindex 01\n\n{NOTE}", "needs 'index <decimal>'"),
        (f"{TLOG_PROOF_HEADER}\nindex -1\n\n{NOTE}", "needs 'index <decimal>'"),
        (f"{TLOG_PROOF_HEADER}\nindex  1\n\n{NOTE}", "needs 'index <decimal>'"),
        (f"{TLOG_PROOF_HEADER}\nindex 9223372036854775808\n\n{NOTE}", "beyond any tree"),
        (f"{TLOG_PROOF_HEADER}\nindex 0\nextra AA==\n\n{NOTE}", "not canonical padded base64"),
        (f"{TLOG_PROOF_HEADER}\nextra !!\nindex 0\n\n{NOTE}", "extra data is not canonical"),
        (f"{TLOG_PROOF_HEADER}\nextra AB==\nindex 0\n\n{NOTE}", "extra data is not canonical"),
        (f"{TLOG_PROOF_HEADER}\nindex 0\n{b64(bytes(31))}\n\n{NOTE}", "hash 0 is 31 bytes"),
        (f"{TLOG_PROOF_HEADER}\nindex 0\n{HASH[:-1]}\n\n{NOTE}", "hash 0 is not canonical"),
        (f"{TLOG_PROOF_HEADER}\nindex 0\n{HASH} \n\n{NOTE}", "hash 0 is not canonical"),
        (f"{TLOG_PROOF_HEADER}\nindex 0\n{HASH}\n", "ends before the blank line"),
        (f"{TLOG_PROOF_HEADER}\nindex 0\n\n", "tlog-proof checkpoint: note has no blank line"),
        (f"{TLOG_PROOF_HEADER}\nindex 0\n\n{NOTE}\n", "tlog-proof checkpoint:"),
        (f"{TLOG_PROOF_HEADER}\nindex 0\n\n{NOTE[:-1]}", "tlog-proof checkpoint:"),
    ],
)
def test_tlog_proof_parsing_is_strict(text: str, message: str) -> None:
    with pytest.raises(ProofError, match=message):
        parse_tlog_proof(text)


def test_tlog_proof_parses_what_other_tools_write() -> None:
    # The shape transparency-dev/formats writes: no extra line, empty extra, hashes.
    proof = parse_tlog_proof(f"{TLOG_PROOF_HEADER}\nindex 5\n{HASH}\n{HASH}\n\n{NOTE}")
    assert (proof.index, proof.hashes, proof.checkpoint, proof.extra) == (
        5,
        (bytes(range(32)),) * 2,
        NOTE,
        None,
    )
    empty = parse_tlog_proof(f"{TLOG_PROOF_HEADER}\nextra \nindex 0\n\n{NOTE}")
    assert empty.extra == b""
    assert empty.serialise() == f"{TLOG_PROOF_HEADER}\nextra \nindex 0\n\n{NOTE}"
    with pytest.raises(ProofError, match="not UTF-8"):
        parse_tlog_proof(b"\xff")


def test_json_receipt_parsing_is_strict(covered: Log) -> None:
    good = build_receipt(covered, 2).to_json()

    def refused(change: Any, message: str) -> None:
        obj = json.loads(json.dumps(good))
        change(obj)
        with pytest.raises(ProofError, match=message):
            parse_receipt_json(json.dumps(obj))

    refused(lambda o: o.update(extra=1), re.escape("has unknown fields ['extra']"))
    refused(lambda o: o.pop("vkey"), re.escape("is missing ['vkey']"))
    refused(lambda o: o["proof"].pop("size"), re.escape("receipt proof is missing ['size']"))
    refused(lambda o: o.update(seq=True), "seq must be an integer")
    refused(lambda o: o.update(seq=3), "receipt seq 3 differs from its proof.index 2")
    refused(lambda o: o.update(leaf_hash=o["leaf_hash"].upper()), "64 lowercase hex")
    refused(lambda o: o.update(leaf_hash=flip_hex(o["leaf_hash"])), "differs from its proof.leaf")
    refused(lambda o: o["proof"].update(hashes="x"), "proof.hashes must be a list")
    refused(lambda o: o["proof"]["hashes"].insert(0, "00"), re.escape("proof.hashes[0] must be"))
    refused(lambda o: o.update(entry=[]), "receipt entry must be a JSON object")
    refused(lambda o: o["entry"]["data"].update(i=1.5), "non-integer number")
    refused(lambda o: o["entry"]["data"].update(i=2**60), "cannot be canonicalised")
    refused(lambda o: o.update(entry_b64=b64(b"{}")), "entry_b64 is not the canonical bytes")
    refused(lambda o: o.update(checkpoint="nope\n"), "receipt: note has no blank line")
    refused(lambda o: o.update(vkey="nope"), "receipt: verifier key is not")
    refused(lambda o: o.update(checkpoint=1), "checkpoint must be a string")
    for text in ("[]", "{", "nothing", "\ufeff{}"):
        with pytest.raises(ProofError):
            parse_receipt(text)
    with pytest.raises(ProofError, match="receipt must be a JSON object"):
        parse_receipt_json("[]")


# -- the commands ------------------------------------------------------------------------------


def test_receipt_commands(runner: FlaskCliRunner, app: Flask, tmp_path: Path) -> None:
    assert runner.invoke(args=["init"]).exit_code == 0
    with app.app_context():
        grow(db.get_log(), 5)
    vkey = runner.invoke(args=["vkey"]).output.strip()

    as_json = runner.invoke(args=["receipt", "3"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["seq"] == 3
    text = runner.invoke(args=["receipt", "3", "--format", "tlog-proof"]).output
    assert text.startswith(f"{TLOG_PROOF_HEADER}\nextra ")

    for name, content in (("r.json", as_json.output), ("r.tlog-proof", text)):
        path = tmp_path / name
        path.write_text(content)
        result = runner.invoke(args=["verify-receipt", str(path), "--vkey", vkey])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("ok: entry 3 (checkpoint_anchored, leaf hash ")
        assert f"is in {ORIGIN} at size 5" in result.output

    proof = parse_tlog_proof(text)
    bare = tmp_path / "bare.tlog-proof"
    bare.write_text(TlogProof(proof.index, proof.hashes, proof.checkpoint).serialise())
    entry = tmp_path / "entry.json"
    entry.write_bytes((proof.extra or b"") + b"\n")  # as `lunaria export` writes a line
    result = runner.invoke(args=["verify-receipt", str(bare), "--vkey", vkey])
    assert (result.exit_code, result.output) == (
        1,
        "error: the tlog-proof has no extra line: supply the entry's bytes\n",
    )
    result = runner.invoke(
        args=["verify-receipt", str(bare), "--vkey", vkey, "--entry", str(entry)]
    )
    assert result.exit_code == 0, result.output

    tampered = tmp_path / "tampered.tlog-proof"
    tampered.write_text(text.replace("\nindex 3\n", "\nindex 2\n"))
    result = runner.invoke(args=["verify-receipt", str(tampered), "--vkey", vkey])
    assert (result.exit_code, result.output) == (
        1,
        "FAILED: seq 2: the entry is seq 3, but the proof is for index 2\n",
    )
    assert runner.invoke(args=["verify-receipt", str(bare)]).exit_code == 2  # no --vkey

    with app.app_context(), db.get_log().writer() as writer:
        writer.append("correction", {"late": True})
    result = runner.invoke(args=["receipt", "5"])
    assert result.exit_code == 1
    assert result.output.startswith("error: entry 5 is not covered by a signed checkpoint yet")
    assert runner.invoke(args=["receipt", "9"]).output.startswith("error: no entry with seq 9")
