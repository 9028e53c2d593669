"""The browser's verifier (api/static/verify.js) against the same vectors as ledger/: the RFC
9162 inclusion and consistency probes of tests/testdata/merkle, and signed notes made and
mutated by ledger/notes.py. Run in chromium, with the page's own WebCrypto."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from ledger.errors import LedgerError
from ledger.fund.money import CURRENCY_EXPONENTS, display_major
from ledger.fund.public_text import text_commitment
from ledger.log.cosignature import Cosigner, WitnessQuorum
from ledger.log.notes import Checkpoint, Signer, open_checkpoint, parse_note, sign_checkpoint
from tests.conftest import ORIGIN
from tests.e2e.conftest import LiveServer

DATA = Path(__file__).parent.parent / "testdata" / "merkle"

RUN_PROBES = """async ({inclusion, consistency}) => {
  const m = await import("/static/verify.js");
  const outcome = async (check) => {
    try {
      return (await check()) ? "verifies" : "fails";
    } catch (error) {
      if (!(error instanceof m.VerifyError)) throw error;
      return "fails";
    }
  };
  const hex = (h) => m.fromHex(h, "hash");
  const wrong = [];
  for (const p of inclusion) {
    const got = await outcome(async () => {
      const root = await m.rootFromInclusionProof(
        BigInt(p.index), BigInt(p.size), hex(p.leaf_hash), p.hashes.map(hex));
      return m.toHex(root) === p.root;
    });
    if (got !== p.want) wrong.push(`${p.name}: ${got}`);
  }
  for (const p of consistency) {
    const got = await outcome(async () => {
      await m.verifyConsistency(BigInt(p.from), BigInt(p.to), p.hashes.map(hex),
        hex(p.old_root), hex(p.new_root));
      return true;
    });
    if (got !== p.want) wrong.push(`${p.name}: ${got}`);
  }
  return {wrong, count: inclusion.length + consistency.length};
}"""

OPEN_NOTES = """async ({notes, vkey, origin}) => {
  const m = await import("/static/verify.js");
  const key = await m.parseVkey(vkey);
  const results = [];
  for (const note of notes) {
    try {
      const checkpoint = await m.openCheckpoint(note, key, origin);
      results.push(`ok ${checkpoint.size} ${m.toHex(checkpoint.root)}`);
    } catch (error) {
      if (!(error instanceof m.VerifyError)) throw error;
      results.push(`${error.key}: ${error.detail}`);
    }
  }
  return results;
}"""


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(live_server.url + "/")
    yield page
    context.close()


def probes(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((DATA / name).read_text())["probes"]
    return data


def test_merkle_probes_give_the_same_outcome_as_ledger_merkle(page: Page) -> None:
    inclusion, consistency = probes("inclusion_probes.json"), probes("consistency_probes.json")
    result = page.evaluate(RUN_PROBES, {"inclusion": inclusion, "consistency": consistency})
    assert result["count"] == len(inclusion) + len(consistency) > 400
    assert result["wrong"] == []


def _python_outcome(note: str, signer: Signer) -> str:
    try:
        checkpoint = open_checkpoint(note, [signer.verifier()], ORIGIN)
    except LedgerError:
        return "fails"
    return f"ok {checkpoint.size} {checkpoint.root.hex()}"


def test_signed_notes_agree_with_ledger_notes(page: Page) -> None:
    signer = Signer.generate(ORIGIN)
    other = Signer.generate("witness.example/w1")
    impostor = Signer.generate(ORIGIN)  # the log's name, another key
    checkpoint = Checkpoint(ORIGIN, 1234567, bytes(range(32)))
    good = sign_checkpoint(checkpoint, [signer]).serialise()
    cosigned = sign_checkpoint(checkpoint, [other, signer]).serialise()
    body, signatures = good[: good.rindex("\n\n") + 1], good[good.rindex("\n\n") + 2 :]
    name, blob = signatures[2:].split(" ")
    notes = {
        "good": good,
        "an unknown key signed first (ignored)": cosigned,
        "only an impostor signed": sign_checkpoint(checkpoint, [impostor]).serialise(),
        "flipped signature": body + "\n" + f"— {name} {_flip_b64(blob.strip())}\n",
        "no trailing newline": good[:-1],
        "no blank line": good.replace("\n\n", "\n"),
        "a hyphen for the em dash": good.replace("— ", "- "),
        "another origin": sign_checkpoint(
            Checkpoint("other.example/log", 1, bytes(32)), [signer]
        ).serialise(),
        "size with a leading zero": good.replace("\n1234567\n", "\n01234567\n"),
        "size too large": sign_checkpoint(Checkpoint(ORIGIN, 0, bytes(32)), [signer])
        .serialise()
        .replace("\n0\n", "\n9223372036854775808\n"),
        "a tab in the text": good.replace(ORIGIN, ORIGIN + "\t"),
        "an empty extension line": sign_checkpoint(Checkpoint(ORIGIN, 5, bytes(32)), [signer])
        .serialise()
        .replace("\n\n", "\n\n\n", 1),
        "with an extension line": sign_checkpoint(
            Checkpoint(ORIGIN, 5, bytes(32), ("anchor 0xabc",)), [signer]
        ).serialise(),
    }
    got = page.evaluate(
        OPEN_NOTES,
        {"notes": list(notes.values()), "vkey": signer.verifier().vkey(), "origin": ORIGIN},
    )
    for (label, note), result in zip(notes.items(), got, strict=True):
        expected = _python_outcome(note, signer)
        assert (result.startswith("ok") and result == expected) or (
            not result.startswith("ok") and expected == "fails"
        ), f"{label}: browser says {result!r}, ledger/notes.py {expected!r}"
    assert got[0] == f"ok 1234567 {bytes(range(32)).hex()}"
    assert got[2].startswith("signature: no signature by this key; signed by")
    assert got[3] == "signature: the Ed25519 signature does not verify"
    assert got[7].startswith("origin")


def _flip_b64(blob: str) -> str:
    """Change the last signature byte (keeps the base64 canonical)."""
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


TEXT_COMMITMENTS = """async (cases) => {
  const m = await import("/static/verify.js");
  const out = [];
  for (const c of cases) out.push(await m.textCommitment(m.fromHex(c.salt, "salt"), c.text));
  return out;
}"""


def test_text_commitments_agree_with_ledger_public_text(page: Page) -> None:
    texts = ["Winter heating bill", "Alquiler — enero", "Оренда за січень", "🌙 ✓", "a\nb"]
    cases = [{"salt": bytes([i]) * 32, "text": text} for i, text in enumerate(texts)]
    got = page.evaluate(TEXT_COMMITMENTS, [{**c, "salt": c["salt"].hex()} for c in cases])
    assert got == [text_commitment(c["salt"], c["text"]) for c in cases]


QUORUM = """async ({notes, witnesses, quorum}) => {
  const m = await import("/static/verify.js");
  const keys = await Promise.all(witnesses.map(m.parseWitnessVkey));
  const results = [];
  for (const note of notes) {
    try {
      results.push(`ok ${(await m.witnessQuorum(m.parseNote(note), keys, quorum)).length}`);
    } catch (error) {
      if (!(error instanceof m.VerifyError)) throw error;
      results.push(`${error.key} ${JSON.stringify(error.params)}`);
    }
  }
  return results;
}"""


def test_witness_quorums_agree_with_ledger_cosignature(page: Page) -> None:
    signer = Signer.generate(ORIGIN)
    witnesses = [Cosigner.generate(f"w{i}.example/witness") for i in range(3)]
    text = Checkpoint(ORIGIN, 42, bytes(range(32))).body()
    signed = text + "\n" + signer.sign(text).line()
    lines = [w.cosign(text, 1_700_000_000 + i).line() for i, w in enumerate(witnesses)]
    _, blob = lines[1][2:].split(" ")
    notes = {
        "two of three": signed + lines[0] + lines[1],
        "all three": signed + "".join(lines),
        "one, twice": signed + lines[0] + lines[0],
        "none": signed,
        "a flipped cosignature": signed + lines[0] + f"— {lines[1][2:].split(' ')[0]} "
        f"{_flip_b64(blob.strip())}\n",
    }
    vkeys = [w.verifier().vkey() for w in witnesses]
    got = page.evaluate(QUORUM, {"notes": list(notes.values()), "witnesses": vkeys, "quorum": 2})
    for (label, note), result in zip(notes.items(), got, strict=True):
        try:
            expected = f"ok {len(WitnessQuorum.of(vkeys, 2).check(parse_note(note)))}"
        except LedgerError:
            expected = "fails"
        assert result == expected or (expected == "fails" and not result.startswith("ok")), (
            f"{label}: browser says {result!r}, ledger/log/cosignature.py {expected!r}"
        )
    assert got[:4] == [
        "ok 2",
        "ok 3",
        'quorum {"count":"1","known":"3","quorum":"2"}',
        'quorum {"count":"0","known":"3","quorum":"2"}',
    ]
    assert got[4].startswith("cosignature ")


FORMAT_AMOUNTS = """async (cases) => {
  const m = await import("/static/verify.js");
  const money = JSON.parse(document.getElementById("verify-form").dataset.money);
  return cases.map(([digits, currency]) =>
    m.formatAmount(digits, currency, money[currency], "en").replace(/,/g, ""));
}"""


def test_amounts_show_as_ledger_fund_money_shows_them(page: Page, live_server: LiveServer) -> None:
    """The display rule comes from the server (the page's data), not from a copy in JS."""
    page.goto(live_server.url + "/verify")
    amounts = ["0", "5", "150000", "-2550", "88000000", "88123400", "1", "123456789012345678"]
    cases = [(a, c) for c in CURRENCY_EXPONENTS for a in amounts]
    got = page.evaluate(FORMAT_AMOUNTS, cases)
    assert got == [f"{display_major(int(a), c)}\u00a0{c}" for a, c in cases]
    assert got[cases.index(("88000000", "USDC"))] == "88.00\u00a0USDC"
    assert got[cases.index(("150000", "JPY"))] == "150000\u00a0JPY"
