"""End to end in a real browser: Debian's chromium, driven by Playwright, against the real app.

The receipt checks run in the page's own JavaScript (WebCrypto SHA-256 and Ed25519); the
tests only feed it receipts (real ones from the running server, and tampered copies) and read
what the page says.
"""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image  # (Pillow comes with reportlab, which draws the PDF reports)
from playwright.sync_api import Browser, BrowserContext, Page, expect

from api import charts, db, witness
from ledger.fund.rules import Actor
from ledger.log import merkle
from ledger.log.merkle import Frontier, NodeId
from ledger.log.notes import Checkpoint, Signer, parse_checkpoint, sign_checkpoint
from tests.conftest import ORIGIN
from tests.e2e.conftest import LiveServer
from tests.witness_support import SpecWitness, spec_split

VERDICT = "#verdict.ok, #verdict.fail"


class Watched:
    """A page whose console errors, failed requests and off-site requests are recorded."""

    def __init__(self, context: BrowserContext, base: str) -> None:
        self.context = context
        self.page = context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def check_clean(self) -> None:
        assert self.errors == [], "console errors (CSP violations would show here)"
        offsite = [u for u in self.requests if not u.startswith(self.base + "/")]
        assert offsite == [], "the page made requests to another origin"


@pytest.fixture
def watched(browser: Browser, live_server: LiveServer) -> Iterator[Watched]:
    context = browser.new_context(locale="en-GB")
    watched = Watched(context, live_server.url)
    yield watched
    context.close()
    watched.check_clean()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        body: bytes = response.read()
    return body.decode("utf-8")


def covered_donation(server: LiveServer, below: int | None = None) -> int:
    """The newest donation that the latest signed checkpoint covers (and below ``below``)."""
    with server.app.app_context():
        log = db.get_log()
        checkpoint = log.latest_checkpoint()
        assert checkpoint is not None
        for seq in range(min(checkpoint.size, below or checkpoint.size) - 1, 0, -1):
            if log.entry(seq).kind == "donation_recorded":
                return seq
    raise AssertionError("the demo has no donation")


def key_label(vkey: str) -> str:
    """``<name>+<key id>`` of a verifier key string (its base64 may hold "+" too)."""
    return "+".join(vkey.split("+")[:2])


def receipt_json(server: LiveServer, seq: int) -> dict[str, Any]:
    receipt: dict[str, Any] = json.loads(fetch(f"{server.url}/api/v1/receipts/{seq}"))
    return receipt


def download(page: Page, url: str, which: str) -> str:
    """Keep a receipt as a donor would: the entry page's download link."""
    page.goto(url)
    with page.expect_download() as info:
        page.get_by_role("link", name=f"Receipt ({which})").click()
    saved = info.value
    assert saved.suggested_filename.startswith("lunaria-")
    return Path(saved.path()).read_text(encoding="utf-8")


def verify(
    page: Page,
    base: str,
    receipt: str,
    vkey: str | None = None,
    witnesses: list[str] | None = None,
    quorum: str | None = None,
) -> tuple[str, str]:
    """Paste ``receipt`` (and the witness keys and quorum, if given) into /verify and press
    the button with the keyboard."""
    page.goto(f"{base}/verify")
    page.wait_for_selector("#verify-form.ready")
    page.fill("#receipt-text", receipt)
    if vkey is not None:
        page.fill("#vkey", vkey)
    if witnesses is not None:
        page.fill("#witnesses", "\n".join(witnesses))
    if quorum is not None:
        page.fill("#quorum", quorum)
    page.focus("#quorum")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.type") == "submit"
    page.keyboard.press("Enter")
    page.wait_for_selector(VERDICT, timeout=20_000)
    return page.inner_text("#verdict"), page.inner_text("#steps")


def append_and_checkpoint(server: LiveServer) -> int:
    """A new donation and a new signed checkpoint: the log grows after a receipt was issued."""
    server.clock.advance(timedelta(minutes=5))
    with server.app.app_context():
        db.get_fund().record_donation(
            Actor("treasurer:e2e", "treasurer"),
            "food-bank",
            {
                "amount": "2500",
                "currency": "EUR",
                "channel": "bank",
                "external_reference": f"e2e-{server.clock.now().timestamp()}",
                "donor_reference": "donor-e2e",
            },
        )
        return db.get_log().checkpoint_now().size


def test_real_receipt_verifies_and_log_grew_consistently(
    watched: Watched, live_server: LiveServer, output_dir: Path
) -> None:
    seq = covered_donation(live_server)
    receipt = json.loads(download(watched.page, f"{live_server.url}/entries/{seq}", "JSON"))
    issued_at = receipt["proof"]["size"]
    grown_to = append_and_checkpoint(live_server)
    assert grown_to > issued_at

    verdict, steps = verify(watched.page, live_server.url, json.dumps(receipt, indent=2))

    assert verdict.startswith("Verified"), steps
    assert f"entry {seq} is in the log" in verdict
    assert receipt["leaf_hash"] in steps
    assert f"signed by {key_label(receipt['vkey'])}." in steps
    assert f"(size {issued_at} to {grown_to})" in steps  # a real consistency proof was walked
    consistency = f"/api/v1/ledger/proofs/consistency?from={issued_at}&to={grown_to}"
    assert live_server.url + consistency in watched.requests
    watched.page.screenshot(path=str(output_dir / "verify-verified.png"), full_page=True)


def test_tlog_proof_file_verifies(
    watched: Watched, live_server: LiveServer, tmp_path: Path
) -> None:
    seq = covered_donation(live_server)
    page = watched.page
    proof = tmp_path / f"lunaria-{seq}.tlog-proof"
    proof.write_text(download(page, f"{live_server.url}/entries/{seq}", ".tlog-proof"))
    page.goto(f"{live_server.url}/verify")
    page.wait_for_selector("#verify-form.ready")
    page.set_input_files("#receipt-file", str(proof))
    # (not wait_for_function: its polling evals strings, which the page's CSP rightly forbids)
    expect(page.locator("#receipt-text")).to_have_value(re.compile("^c2sp.org/tlog-proof@v1\n"))
    page.click("button[type=submit]")
    page.wait_for_selector(VERDICT)
    assert page.inner_text("#verdict").startswith("Verified"), page.inner_text("#steps")
    assert "c2sp.org/tlog-proof@v1" in page.inner_text("#steps")


def flip_hex(value: str) -> str:
    """Flip the lowest bit of the first byte of a hex string."""
    return f"{int(value[:2], 16) ^ 0x01:02x}{value[2:]}"


def test_flipped_proof_byte_is_named(watched: Watched, live_server: LiveServer) -> None:
    receipt = receipt_json(live_server, covered_donation(live_server))
    receipt["proof"]["hashes"][0] = flip_hex(receipt["proof"]["hashes"][0])
    verdict, steps = verify(watched.page, live_server.url, json.dumps(receipt))
    assert verdict == "Not verified: inclusion proof does not lead to the checkpoint root"
    assert "the proof gives root" in steps


def test_flipped_byte_in_tlog_proof_is_named(watched: Watched, live_server: LiveServer) -> None:
    text = fetch(f"{live_server.url}/api/v1/receipts/{covered_donation(live_server)}.tlog-proof")
    lines = text.split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith("index ")) + 1
    lines[index] = ("B" if lines[index][0] == "A" else "A") + lines[index][1:]
    verdict, _ = verify(watched.page, live_server.url, "\n".join(lines))
    assert verdict == "Not verified: inclusion proof does not lead to the checkpoint root"


def test_checkpoint_signed_by_another_key_is_named(
    watched: Watched, live_server: LiveServer
) -> None:
    receipt = receipt_json(live_server, covered_donation(live_server))
    body = receipt["checkpoint"][: receipt["checkpoint"].rindex("\n\n") + 1]
    impostor = Signer.generate(ORIGIN)  # same name, another key
    receipt["checkpoint"] = sign_checkpoint(parse_checkpoint(body), [impostor]).serialise()
    receipt["vkey"] = impostor.verifier().vkey()  # a receipt may claim any key: never trusted
    key = key_label(receipt_json(live_server, 0)["vkey"])  # the key the log published

    verdict, steps = verify(watched.page, live_server.url, json.dumps(receipt))

    assert verdict == f"Not verified: checkpoint signature is not valid for key {key}"
    assert f"signed by {ORIGIN}+{impostor.key_id.hex()}" in steps


def test_tampered_entry_is_named(watched: Watched, live_server: LiveServer) -> None:
    receipt = receipt_json(live_server, covered_donation(live_server))
    entry = receipt["entry"]
    entry["data"]["amount"] = str(int(entry["data"]["amount"]) * 100)
    raw = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    receipt["entry_b64"] = base64.b64encode(raw.encode()).decode("ascii")
    verdict, _ = verify(watched.page, live_server.url, json.dumps(receipt))
    assert verdict == "Not verified: leaf hash does not match the entry"


def test_forked_log_is_not_consistent(watched: Watched, live_server: LiveServer) -> None:
    """A checkpoint the log's own key signed, over a tree that rewrote history (entry 0):
    inclusion and signature hold, but the latest checkpoint shows the fork."""
    with live_server.app.app_context():
        log = db.get_log()
        latest = log.latest_checkpoint()
        assert latest is not None and log.signer is not None
        size = latest.size - 3
        leaves = [merkle.leaf_hash(raw) for raw in list(log.iter_raw())[:size]]
        signer = log.signer
    leaves[0] = merkle.leaf_hash(b'{"rewritten":"history"}')
    store: dict[NodeId, bytes] = {}
    frontier = Frontier()
    for index, leaf in enumerate(leaves):
        store[(0, index)] = leaf
        store.update(frontier.append(leaf))
    seq = covered_donation(live_server, below=size)
    hashes = merkle.inclusion_proof(seq, size, lambda ids: {i: store[i] for i in ids})
    receipt = receipt_json(live_server, seq)
    receipt["proof"].update(size=size, hashes=[h.hex() for h in hashes])
    receipt["checkpoint"] = sign_checkpoint(
        Checkpoint(ORIGIN, size, frontier.root()), [signer]
    ).serialise()

    verdict, steps = verify(watched.page, live_server.url, json.dumps(receipt))

    assert verdict == "Not verified: checkpoint is not consistent with the latest checkpoint"
    assert "The checkpoint is signed by" in steps  # it failed at the last step only


def test_spanish_verifier_and_no_javascript(browser: Browser, live_server: LiveServer) -> None:
    context = browser.new_context(locale="es-ES")
    try:
        watched = Watched(context, live_server.url)
        receipt = receipt_json(live_server, covered_donation(live_server))
        verdict, _ = verify(watched.page, live_server.url, json.dumps(receipt))
        assert watched.page.get_attribute("html", "lang") == "es"
        assert verdict.startswith("Verificado"), verdict
        watched.check_clean()
    finally:
        context.close()
    context = browser.new_context(java_script_enabled=False, locale="uk-UA")
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/pools/food-bank")
        assert page.get_attribute("html", "lang") == "uk"
        assert page.locator("table").count() >= 3  # every table renders without JavaScript
        page.goto(f"{live_server.url}/verify")
        assert page.locator("noscript").count() == 1
        assert page.locator("button[type=submit]").is_disabled()
    finally:
        context.close()


def test_pool_page_screenshots(browser: Browser, live_server: LiveServer, output_dir: Path) -> None:
    for suffix, viewport in (("", (1280, 900)), ("-phone", (390, 844))):
        context = browser.new_context(
            locale="en-GB", viewport={"width": viewport[0], "height": viewport[1]}
        )
        try:
            watched = Watched(context, live_server.url)
            page = watched.page
            page.goto(f"{live_server.url}/pools/food-bank")
            assert page.inner_text("h1") == "Neighbourhood food bank"
            expect(page.get_by_role("img", name="Full moon")).to_be_visible()  # 47% through
            expect(page.get_by_role("table", name="Balance per currency")).to_be_visible()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport[0], "the page scrolls sideways (tables scroll inside)"
            path = output_dir / f"pool-page{suffix}.png"
            page.screenshot(path=str(path), full_page=True)
            assert path.stat().st_size > 10_000
            for other, url in (("home", "/"), ("entry", "/entries/1000")):
                page.goto(live_server.url + url)
                page.screenshot(path=str(output_dir / f"{other}{suffix}.png"), full_page=True)
            watched.check_clean()
        finally:
            context.close()


def test_charts_follow_the_readers_colour_scheme(
    browser: Browser, live_server: LiveServer, output_dir: Path
) -> None:
    for scheme, palette in (("light", charts.LIGHT), ("dark", charts.DARK)):
        context = browser.new_context(color_scheme=scheme, locale="en-GB")
        try:
            watched = Watched(context, live_server.url)
            page = watched.page
            page.goto(f"{live_server.url}/pools/food-bank")
            page.wait_for_load_state("networkidle")
            section = page.locator("section:has(#charts-heading)")
            section.screenshot(path=str(output_dir / f"charts-{scheme}.png"))
            image = Image.open(io.BytesIO(page.locator("figure.chart img").first.screenshot()))
            corner = image.convert("RGB").getpixel((3, 3))
            assert corner == _rgb(palette["bg"]), f"{scheme}: the chart's background is {corner}"
            card = page.evaluate(
                "getComputedStyle(document.querySelector('figure.chart')).backgroundColor"
            )
            assert card == "rgb({}, {}, {})".format(*_rgb(palette["bg"]))
            watched.check_clean()
        finally:
            context.close()


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def covered_proposal(server: LiveServer) -> int:
    """The newest grant proposal (data version 2: its purpose is public text) a checkpoint
    covers."""
    with server.app.app_context():
        log = db.get_log()
        checkpoint = log.latest_checkpoint()
        assert checkpoint is not None
        for seq in range(checkpoint.size - 1, 0, -1):
            if log.entry(seq).kind == "grant_proposed":
                return seq
    raise AssertionError("the demo has no grant proposal")


def test_public_text_beside_a_receipt_is_checked(watched: Watched, live_server: LiveServer) -> None:
    seq = covered_proposal(live_server)
    receipt = receipt_json(live_server, seq)
    assert set(receipt["texts"]) == {"purpose"} and receipt["entry"]["data"]["v"] == 2
    verdict, steps = verify(watched.page, live_server.url, json.dumps(receipt, indent=2))
    assert verdict.startswith("Verified"), steps
    assert "The public text purpose served with the receipt matches the commitment" in steps

    forged = json.loads(json.dumps(receipt))
    forged["texts"]["purpose"]["text"] += " and more"
    verdict, steps = verify(watched.page, live_server.url, json.dumps(forged))
    assert verdict.startswith("Not verified"), steps
    assert "the public text purpose does not match the commitment in the entry" in verdict
    redacted = json.loads(json.dumps(receipt))
    redacted["texts"]["purpose"].update(text=None, salt=None)
    verdict, steps = verify(watched.page, live_server.url, json.dumps(redacted))
    assert verdict.startswith("Verified"), steps
    assert "The public text purpose was redacted; the entry keeps its commitment." in steps


# -- witnesses ------------------------------------------------------------------------------


def cosigned_receipt(
    server: LiveServer, witnesses: list[SpecWitness], times: list[int]
) -> dict[str, Any]:
    """A real receipt whose checkpoint also carries each witness's cosignature (made with the
    test's own implementation of c2sp.org/tlog-cosignature)."""
    receipt = receipt_json(server, covered_donation(server))
    note_text, _ = spec_split(receipt["checkpoint"])
    receipt["checkpoint"] += "".join(
        w.cosign(note_text, t) for w, t in zip(witnesses, times, strict=True)
    )
    return receipt


def test_a_witness_quorum_is_checked_in_the_browser(
    watched: Watched, live_server: LiveServer, output_dir: Path
) -> None:
    three = [SpecWitness.generate(f"w{i}.example/witness") for i in range(3)]
    vkeys = [w.vkey() for w in three]
    receipt = json.dumps(cosigned_receipt(live_server, three[:2], [1_700_000_000, 1_700_003_600]))
    page = watched.page

    verdict, steps = verify(page, live_server.url, receipt, witnesses=vkeys, quorum="2")
    assert verdict.startswith("Verified"), steps
    assert (
        "Passed: Witness w0.example/witness confirmed (cosigned) the checkpoint on "
        "Nov 14, 2023, 10:13:20 PM UTC." in steps
    )
    assert (
        "Witness w1.example/witness confirmed (cosigned) the checkpoint on Nov 14, 2023, "
        "11:13:20 PM UTC." in steps
    )
    assert "Note: Witness w2.example/witness did not confirm this checkpoint." in steps
    assert "Passed: 2 of the 3 witnesses you trust confirmed the checkpoint; 2 needed." in steps
    page.screenshot(path=str(output_dir / "verify-witnesses.png"), full_page=True)

    verdict, steps = verify(page, live_server.url, receipt, witnesses=vkeys, quorum="3")
    assert verdict == (
        "Not verified: only 2 of the 3 witnesses you trust confirmed this checkpoint, and 3 are "
        "needed: nobody independent vouches that this is the history everyone else sees"
    )
    assert "Note: Witness w2.example/witness did not confirm this checkpoint." in steps
    assert "The checkpoint is signed by" in steps  # the log's own signature passed
    assert "Fetched the latest checkpoint" not in steps  # it stopped at the quorum
    page.screenshot(path=str(output_dir / "verify-witnesses-quorum.png"), full_page=True)

    # An empty quorum asks for all of them; the witnesses' file lines paste as they are.
    lines = [f"{vkey} https://w{i}.example/witness" for i, vkey in enumerate(vkeys)]
    verdict, _ = verify(page, live_server.url, receipt, witnesses=["# ours", *lines], quorum="")
    assert verdict.startswith("Not verified: only 2 of the 3 witnesses"), verdict
    verdict, _ = verify(page, live_server.url, receipt, witnesses=vkeys[:2], quorum="")
    assert verdict.startswith("Verified"), verdict


def _flip_b64(blob: str) -> str:
    """Change the last byte of a signature (keeps the base64 canonical)."""
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_a_tampered_cosignature_fails(watched: Watched, live_server: LiveServer) -> None:
    two = [SpecWitness.generate(f"w{i}.example/witness") for i in range(2)]
    receipt = cosigned_receipt(live_server, two, [1_700_000_000, 1_700_000_001])
    head, _, last = receipt["checkpoint"].rstrip("\n").rpartition("\n")
    name, blob = last[2:].split(" ")
    receipt["checkpoint"] = f"{head}\n\u2014 {name} {_flip_b64(blob)}\n"
    label = "+".join(two[1].vkey().split("+")[:2])
    verdict, steps = verify(
        watched.page,
        live_server.url,
        json.dumps(receipt),
        witnesses=[w.vkey() for w in two],
        quorum="1",
    )
    assert verdict == (
        f"Not verified: the confirmation (cosignature) of witness {label} is not valid: the "
        "checkpoint or the cosignature was altered"
    ), steps
    assert f"the line of {label} is not its Ed25519 cosignature of this checkpoint" in steps
    # A witness nobody asked about is ignored, as any other key's line.
    verdict, steps = verify(watched.page, live_server.url, json.dumps(receipt))
    assert verdict.startswith("Verified"), steps
    assert "Witness" not in steps


def test_witness_fields_say_what_is_wrong(watched: Watched, live_server: LiveServer) -> None:
    one = SpecWitness.generate("w0.example/witness")
    receipt = json.dumps(cosigned_receipt(live_server, [one], [1_700_000_000]))
    cases = {
        "": ([one.vkey(), "not-a-key"], "the witness key on line 2 is not a valid witness key"),
        "two": ([one.vkey()], "the number of witnesses needed is not a whole number: two"),
        "2": ([one.vkey()], "you asked for 2 witnesses, but gave only 1 witness keys"),
        "1": ([], "you asked for 1 witnesses, but gave only 0 witness keys"),
    }
    for quorum, (witnesses, words) in cases.items():
        verdict, _ = verify(
            watched.page, live_server.url, receipt, witnesses=witnesses, quorum=quorum
        )
        assert verdict == f"Not verified: {words}"
    # The log's key where a witness key belongs: named as not a cosignature key.
    with live_server.app.app_context():
        signer = db.load_signer()
    assert signer is not None
    verdict, steps = verify(
        watched.page, live_server.url, receipt, witnesses=[signer.verifier().vkey()]
    )
    assert verdict == "Not verified: the witness key on line 1 is not a valid witness key"
    assert "not an Ed25519 cosignature (0x04) key of 32 bytes" in steps


def test_the_page_shows_this_instances_witness_key(
    watched: Watched, live_server: LiveServer
) -> None:
    with live_server.app.app_context():
        cosigner = witness.load_cosigner()
    assert cosigner is not None
    page = watched.page
    page.goto(f"{live_server.url}/verify")
    expect(page.get_by_role("heading", name="This Lunaria is a witness too")).to_be_visible()
    assert page.inner_text("#own-witness-vkey") == cosigner.verifier().vkey()
    assert page.input_value("#witnesses") == "" and page.input_value("#quorum") == ""


def test_the_witness_words_in_spanish_and_ukrainian(
    browser: Browser, live_server: LiveServer, output_dir: Path
) -> None:
    three = [SpecWitness.generate(f"w{i}.example/witness") for i in range(3)]
    receipt = json.dumps(cosigned_receipt(live_server, three[:2], [1_700_000_000, 1_700_000_001]))
    expected = {
        "es-ES": "No verificado: solo 2 de los 3 testigos en los que confías confirmaron",
        "uk-UA": "Не підтверджено: цю контрольну точку підтвердили лише 2 з 3 свідків",
    }
    for locale, words in expected.items():
        context = browser.new_context(locale=locale)
        try:
            watched = Watched(context, live_server.url)
            vkeys = [w.vkey() for w in three]
            verdict, steps = verify(watched.page, live_server.url, receipt, witnesses=vkeys)
            assert verdict.startswith(words), verdict
            assert "w2.example/witness" in steps
            watched.page.screenshot(
                path=str(output_dir / f"verify-witnesses-{locale[:2]}.png"), full_page=True
            )
            watched.check_clean()
        finally:
            context.close()
