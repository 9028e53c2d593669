"""The workspace in Chromium, on SQLite and PostgreSQL: invitation, passkey registration (the
CDP virtual authenticator), sign-out and passkey sign-in, the queue, two members of the
custodian voting (the second with the keyboard alone), the approval on the public pool page;
a treasurer's invitation, passkey, a donation recorded (with the keyboard alone) and seen on
the public pool page, a bank statement previewed and confirmed, an admin's page and webhook
settings; axe-core on every workspace page (en, es, uk) and the grant-request form.

The server is reached as http://localhost:<port>, its LUNARIA_PUBLIC_URL: Chromium refuses
WebAuthn on http://127.0.0.1, and passkeys are bound to the public URL's host name.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from playwright.sync_api import Browser, BrowserContext, Page, expect
from werkzeug.serving import make_server

from tests.conftest import OUTPUT_DIR
from tests.statement_builder import Line, camt053
from tests.test_api_support import Story, build_story

AXE = Path(__file__).parent.parent.parent / "node_modules" / "axe-core" / "axe.min.js"
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@dataclass
class Workspace:
    app: Flask
    url: str
    story: Story
    runner: FlaskCliRunner

    def invitation(self, collective: str, member: str) -> str:
        result = self.runner.invoke(args=["invite", collective, member])
        assert result.exit_code == 0, result.output
        url = result.stdout.strip()
        assert url.startswith(f"{self.url}/workspace/invite/")
        return url

    def staff_invitation(self, role: str, name: str) -> str:
        result = self.runner.invoke(args=["invite", "--role", role, name])
        assert result.exit_code == 0, result.output
        url = result.stdout.strip()
        assert url.startswith(f"{self.url}/workspace/invite/")
        return url


@pytest.fixture
def workspace(app: Flask, client: Any, runner: FlaskCliRunner) -> Iterator[Workspace]:
    """The app (on the test's database) over HTTP; its public URL http://localhost:<port>."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://localhost:{server.server_port}"
    app.config["PUBLIC_URL"] = url
    story = build_story(app, client, runner)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Workspace(app, url, story, runner)
    finally:
        server.shutdown()
        thread.join(timeout=10)


class Person:
    """A browser profile with its own virtual authenticator (its passkeys live there)."""

    def __init__(self, browser: Browser) -> None:
        self.context: BrowserContext = browser.new_context(locale="en-GB")
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", self._console)
        cdp = self.context.new_cdp_session(self.page)
        cdp.send("WebAuthn.enable")
        cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})

    def _console(self, message: Any) -> None:
        """Errors but the browser's note on a refusal the test asked for (the used
        invitation's 410): a CSP violation or a script error fails the test."""
        refusal = message.text.startswith("Failed to load resource: the server responded")
        if message.type == "error" and not refusal:
            self.errors.append(message.text)

    def register(self, invitation: str) -> None:
        self.page.goto(invitation)
        self.page.get_by_role("button", name="Create my passkey").click()
        expect(self.page.get_by_text("Your passkey is registered.")).to_be_visible()

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the page (injected through CDP, so
        the page keeps its CSP)."""
        self.page.evaluate(AXE.read_text())
        found = self.page.evaluate(
            "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)"
        )
        return [v for v in found if v["impact"] in ("serious", "critical")]

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], "console errors (a CSP violation would show here)"


@pytest.fixture
def people(browser: Browser) -> Iterator[list[Person]]:
    made: list[Person] = []
    yield made
    for person in made:
        person.close()


def test_invitation_passkey_votes_and_the_public_page(
    workspace: Workspace, browser: Browser, people: list[Person]
) -> None:
    grant = workspace.story.propose()
    a1, a2 = Person(browser), Person(browser)
    people.extend([a1, a2])
    a1.register(workspace.invitation("alba", "a1"))
    page = a1.page
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("heading", name="Sign in to the workspace")).to_be_visible()
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("heading", name="Waiting for my vote")).to_be_visible()
    expect(page.get_by_role("link", name=f"Grant #{grant}:")).to_be_visible()
    page.get_by_label("Note (public; no names or contact details)").fill("Checked the need")
    page.get_by_role("button", name=f"Approve grant #{grant}").click()
    expect(page.get_by_text("Your vote is recorded in the public log.")).to_be_visible()

    a2.register(workspace.invitation("alba", "a2"))
    vote_with_the_keyboard(a2.page, workspace.url, grant)
    expect(a2.page.get_by_text("Your vote is recorded in the public log.")).to_be_visible()

    a2.page.goto(f"{workspace.url}/pools/food")
    expect(a2.page.get_by_text(f"#{grant}").first).to_be_visible()
    assert workspace.story.http.get(f"/grants/{grant}")["status"] == "approved"
    public = a2.page.content()
    assert "approved" in public


def vote_with_the_keyboard(page: Page, url: str, grant: int) -> None:
    """Tab to the grant's note, type it, Tab to its Approve button, press Enter."""
    page.goto(f"{url}/workspace")
    note, approve = f"note-{grant}", f"Approve grant #{grant}"
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate("[document.activeElement.id, document.activeElement.textContent]")
        if focused[0] == note:
            page.keyboard.type("Agreed")
        if focused[1].strip() == approve:
            page.keyboard.press("Enter")
            return
    raise AssertionError("the Approve button cannot be reached with Tab")


def test_axe_on_every_workspace_page_and_the_request_form(
    workspace: Workspace, browser: Browser, people: list[Person]
) -> None:
    workspace.story.propose(urgency="urgent")
    person = Person(browser)
    people.append(person)
    page = person.page
    invitation = workspace.invitation("alba", "a1")
    page.goto(invitation)
    pages = {"invitation": person.axe()}
    person.register(invitation)
    page.goto(f"{workspace.url}/pools/food/ask")
    pages["ask"] = person.axe()
    page.get_by_label("Amount").fill("25")
    page.get_by_role("radio", name="urgent").check()
    page.get_by_label("If urgent: why, in a few words").fill("Heating cut off")
    page.get_by_label("Purpose (public once proposed: no names, addresses or numbers)").fill(
        "Heating bill for a family"
    )
    page.get_by_label("How to reach you (private)").fill("maria@example.org")
    page.get_by_role("button", name="Send the request").click()
    pages["ask sent"] = person.axe()
    page.locator("#status-link").click()
    pages["request status"] = person.axe()
    for path in ("", "/requests", "/collective", "/account"):
        for lang in ("en", "es", "uk"):
            page.goto(f"{workspace.url}/workspace{path}?lang={lang}")
            pages[f"workspace{path} {lang}"] = person.axe()
    page.goto(f"{workspace.url}/workspace/account?lang=en")
    page.get_by_role("button", name="Make 10 new recovery codes").click()
    pages["recovery codes"] = person.axe()
    page.get_by_role("button", name="Sign out", exact=True).click()
    pages["sign-in"] = person.axe()
    page.goto(invitation)  # used: refused
    pages["refused invitation"] = person.axe()
    bad = {name: found for name, found in pages.items() if found}
    assert bad == {}, json.dumps(bad, indent=1)[:4000]


def test_treasurer_and_admin_pages_in_chromium(
    workspace: Workspace, browser: Browser, people: list[Person]
) -> None:
    """A treasurer's invitation, passkey, a donation typed with the keyboard alone and then
    on the public pool page, a statement previewed and confirmed; an admin's page and the
    webhook settings; axe-core on each new page in three languages; screenshots in
    test-output/workspace-staff/."""
    shots = OUTPUT_DIR / "workspace-staff"
    shots.mkdir(parents=True, exist_ok=True)
    treasurer, admin = Person(browser), Person(browser)
    people.extend([treasurer, admin])
    treasurer.register(workspace.staff_invitation("treasurer", "Rosa"))
    page = treasurer.page
    page.goto(f"{workspace.url}/workspace")
    expect(page.get_by_role("heading", name="Donations and bank statements")).to_be_visible()
    found = {"treasury": treasurer.axe()}
    page.screenshot(path=str(shots / "treasury.png"), full_page=True)
    fill_with_the_keyboard(
        page,
        {
            "donation-amount": "42.50",
            "donation-reference": "bank-e2e-1",
            "donation-name": "Corner bakery",
        },
        "Record the donation",
    )
    expect(page.get_by_text("The donation is recorded in the public log")).to_be_visible()
    found["donation recorded"] = treasurer.axe()
    page.screenshot(path=str(shots / "donation-recorded.png"), full_page=True)
    page.get_by_role("link", name="The public page of food").click()
    expect(page.get_by_text("342.50").first).to_be_visible()  # 300.00 before, and 42.50

    page.goto(f"{workspace.url}/workspace/treasury")
    statement = camt053([Line("12.50", "E2E-1"), Line("3.00", "E2E-2", credit=False)])
    page.get_by_label("Statement file (up to 4 MiB)").set_input_files(
        {"name": "statement.xml", "mimeType": "application/xml", "buffer": statement}
    )
    size = workspace.story.http.size()
    page.get_by_role("button", name="Show what would be recorded").click()
    expect(page.get_by_text("Nothing is recorded yet.")).to_be_visible()
    assert workspace.story.http.size() == size
    found["import preview"] = treasurer.axe()
    page.screenshot(path=str(shots / "import-preview.png"), full_page=True)
    page.get_by_role("button", name="Record the donations shown (1)").click()
    expect(page.get_by_text("Donations recorded in the public log: 1.")).to_be_visible()
    assert workspace.story.http.size() == size + 1
    found["import recorded"] = treasurer.axe()

    admin.register(workspace.staff_invitation("admin", "Ada"))
    for path in ("/admin", "/webhooks", "/treasury", "/account"):
        for lang in ("en", "es", "uk"):
            admin.page.goto(f"{workspace.url}/workspace{path}?lang={lang}")
            found[f"{path} {lang}"] = admin.axe()
            admin.page.screenshot(path=str(shots / f"{path[1:]}-{lang}.png"), full_page=True)
    admin.page.goto(f"{workspace.url}/workspace/admin?lang=en")
    admin.page.get_by_label("Name (private: never in the log)").fill("Tom")
    admin.page.get_by_role("button", name="Create the account and its invitation").click()
    expect(admin.page.get_by_text("Give this link to its holder, privately.")).to_be_visible()
    found["staff invited"] = admin.axe()
    admin.page.get_by_text("Revoke the account of Tom").click()  # a second step, on purpose
    found["revoke opened"] = admin.axe()
    admin.page.get_by_role("button", name="Revoke now").first.click()
    expect(admin.page.get_by_text("The staff account is revoked")).to_be_visible()
    admin.page.screenshot(path=str(shots / "admin-revoked.png"), full_page=True)
    bad = {name: violations for name, violations in found.items() if violations}
    assert bad == {}, json.dumps(bad, indent=1)[:4000]


def fill_with_the_keyboard(page: Page, values: dict[str, str], button: str) -> None:
    """Tab through the page: type each value when its field has the focus, then press Enter
    on the button."""
    for _ in range(80):
        page.keyboard.press("Tab")
        focused = page.evaluate("[document.activeElement.id, document.activeElement.textContent]")
        if focused[0] in values:
            page.keyboard.type(values.pop(focused[0]))
        if focused[1].strip() == button:
            assert values == {}, f"not reached with Tab: {values}"
            page.keyboard.press("Enter")
            return
    raise AssertionError(f"{button!r} cannot be reached with Tab")
