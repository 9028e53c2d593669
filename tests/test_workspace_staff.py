"""Treasurers and admins in the workspace, and webhook settings, on both databases, through
Flask's test client and a software passkey (tests/workspace_support.py): staff invitations
(``lunaria invite --role``), a treasurer recording a donation and importing a bank statement
with its preview, the admin page (invitations, revoking members, staff and tokens), webhooks,
and the refusals (CSRF, roles, revoked accounts)."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskCliRunner

from tests.statement_builder import DONOR_IBAN, DONOR_NAME, Line, camt053
from tests.test_api_support import Story, build_story
from tests.test_workspace import invite, signed_in
from tests.workspace_support import INVITATION, PUBLIC_URL, Member, form_token

HIDDEN = re.compile(r'name="(plan|statement|pool)" value="([^"]*)"')


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    app.config["PUBLIC_URL"] = PUBLIC_URL
    app.config["WEBHOOK_ALLOW_PRIVATE"] = "1"
    return build_story(app, client, runner)


def staff_invitation(runner: FlaskCliRunner, role: str, name: str) -> str:
    result = runner.invoke(args=["invite", "--role", role, name])
    assert result.exit_code == 0, result.output
    found = INVITATION.fullmatch(result.stdout.strip())
    assert found is not None, result.stdout
    return found.group(1)


def forget_language() -> None:
    """pytest-flask keeps a request context pushed through each test, so the test client's
    requests share its ``g``, where flask-babel and api.web keep the first page's locale and
    catalog: drop them, and the next request chooses its language again (as each real one does).
    """
    g.pop("_flask_babel", None)
    g.pop("lunaria_translations", None)


def staff(app: Flask, runner: FlaskCliRunner, role: str, name: str) -> Member:
    person = Member(app)
    registered = person.register(staff_invitation(runner, role, name))
    assert registered.status_code == 200, registered.text
    return person


def donation_form(**extra: str) -> dict[str, str]:
    return {
        "pool": "food",
        "amount": "12.50",
        "currency": "EUR",
        "channel": "bank",
        "external_reference": "bank-ws-1",
        **extra,
    }


def test_treasurer_invitation_passkey_and_a_donation_on_the_public_page(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    treasurer = staff(app, runner, "treasurer", "Rosa (treasurer)")
    home = treasurer.client.get("/workspace")
    assert home.status_code == 303 and home.location == "/workspace/treasury"
    me = treasurer.client.get("/api/v1/me").get_json()
    assert me["role"] == "treasurer" and re.fullmatch(r"treasurer:[0-9a-f]{16}", me["actor"])
    assert me["collective"] is None and me["member"] is None
    before = story.http.size()
    page = treasurer.page("/workspace/treasury")
    data = {"csrf_token": form_token(page), **donation_form(display_name="Ana's bakery")}
    data["request_key"] = re.search(r'name="request_key" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    recorded = treasurer.client.post("/workspace/treasury/donations", data=data)
    assert recorded.status_code == 201, recorded.text
    assert "receipt salt" in recorded.text
    # the same form sent twice records once (its request key is the idempotency key)
    again = treasurer.client.post("/workspace/treasury/donations", data=data)
    assert again.status_code == 201, again.text
    assert story.http.size() == before + 1
    entry = story.http.get(f"/ledger/entries/{before}")["entry"]
    assert entry["kind"] == "donation_recorded" and entry["actor"] == me["actor"]
    assert entry["data"]["amount"] == "1250"
    public = app.test_client().get("/pools/food").text
    assert "312.50" in public  # 300.00 of the story, and 12.50 from the workspace
    assert "Rosa" not in public and "bank-ws-1" not in public


def test_bad_donation_forms_record_nothing(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    treasurer = staff(app, runner, "treasurer", "Rosa")
    before = story.http.size()
    for bad in (
        donation_form(display_name="mail me: ana@example.org"),  # public-text rules
        donation_form(amount="12.505"),  # more decimals than the currency has
        donation_form(currency="XYZ"),
        donation_form(pool="nowhere"),
        donation_form(channel="carrier-pigeon"),
    ):
        refused = treasurer.post_form("/workspace/treasury/donations", "/workspace/treasury", **bad)
        assert 400 <= refused.status_code < 500, (bad, refused.status_code)
        assert "Nothing was recorded" in refused.text, bad
    assert story.http.size() == before
    # without the CSRF token: refused before anything is read
    forged = treasurer.client.post(
        "/workspace/treasury/donations", data={**donation_form(), "request_key": "k" * 24}
    )
    assert forged.status_code == 403
    assert story.http.size() == before


def test_members_cannot_reach_staff_pages_and_treasurers_not_admin(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    a1 = signed_in(app, runner, "alba", "a1")
    token = form_token(a1.page())
    before = story.http.size()
    for path in ("/workspace/treasury", "/workspace/admin"):
        assert a1.client.get(path).status_code == 403
    forged = [
        ("/workspace/treasury/donations", {**donation_form(), "request_key": "k" * 24}),
        ("/workspace/admin/staff", {"name": "me", "role": "admin"}),
        ("/workspace/admin/members/alba/a2/revoke", {}),
        ("/workspace/admin/invitations", {"member": "brisa/b1"}),
    ]
    for path, fields in forged:
        refused = a1.client.post(path, data={"csrf_token": token, **fields})
        assert refused.status_code == 403, (path, refused.text)
    assert story.http.size() == before
    treasurer = staff(app, runner, "treasurer", "Rosa")
    assert treasurer.client.get("/workspace/admin").status_code == 403
    assert treasurer.client.get("/workspace/webhooks").status_code == 403
    for path in ("/workspace/requests", "/workspace/collective"):
        assert treasurer.client.get(path).status_code == 403
    refused = treasurer.post_form(
        "/workspace/admin/staff", "/workspace/treasury", name="x", role="admin"
    )
    assert refused.status_code == 403
    assert "Mail notifications" not in treasurer.page("/workspace/account")


def test_a_revoked_treasurer_session_stops_at_once(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    treasurer = staff(app, runner, "treasurer", "Rosa")
    admin = staff(app, runner, "admin", "Ada")
    page = admin.page("/workspace/admin")
    assert "Rosa" in page and "Ada" in page
    account = re.search(r"<code>treasurer:([0-9a-f]{16})</code>", page)
    assert account is not None
    stale = treasurer.page("/workspace/treasury")  # open, with its form and CSRF token
    revoked = admin.post_form(
        f"/workspace/admin/staff/{account.group(1)}/revoke", "/workspace/admin"
    )
    assert revoked.status_code == 303, revoked.text
    assert treasurer.client.get("/workspace/treasury").status_code == 303  # to sign-in
    before = story.http.size()
    data = {"csrf_token": form_token(stale), "request_key": "r" * 24, **donation_form()}
    assert treasurer.client.post("/workspace/treasury/donations", data=data).status_code == 401
    assert story.http.size() == before
    assert treasurer.sign_in().status_code == 403  # the passkey is gone too
    page = admin.page("/workspace/admin")
    staff_part = page[page.index('id="staff"') : page.index('id="tokens"')]
    assert "Rosa" in staff_part and "revoked" in staff_part
    assert "Rosa" not in page[page.index('id="tokens"') :]  # a staff account, not an API token
    # an account revoked before its invitation was used stays listed, revoked
    made = admin.post_form("/workspace/admin/staff", "/workspace/admin", name="Tom", role="admin")
    link = INVITATION.search(made.text)
    tom = re.search(r"The admin account ([0-9a-f]{16}) is created", made.text)
    assert link is not None and tom is not None
    gone = admin.post_form(f"/workspace/admin/staff/{tom.group(1)}/revoke", "/workspace/admin")
    assert gone.status_code == 303
    assert app.test_client().get(f"/workspace/invite/{link.group(1)}").status_code == 410
    page = admin.page("/workspace/admin")
    assert f"admin:{tom.group(1)}" in page[page.index('id="staff"') : page.index('id="tokens"')]
    # an API token cannot be turned into a staff account by an invitation
    api_token = story.treasurer.split("_")[1]
    forged = admin.post_form(
        "/workspace/admin/invitations", "/workspace/admin", member=f"/staff:{api_token}"
    )
    assert forged.status_code == 404
    assert (
        admin.post_form(
            f"/workspace/admin/staff/{api_token}/invite", "/workspace/admin"
        ).status_code
        == 404
    )


def test_import_preview_records_nothing_and_confirm_records_exactly_it(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    treasurer = staff(app, runner, "treasurer", "Rosa")
    lines = [
        Line("12.50", "WS-REF-1"),
        Line("7.00", "WS-REF-2"),
        Line("3.00", "WS-REF-3", credit=False, remittance="rent"),
        Line("1.00", "WS-REF-4", status="PDNG"),
    ]
    first = camt053(lines[:1])
    token = form_token(treasurer.page("/workspace/treasury"))

    def preview(raw: bytes) -> Any:
        return treasurer.client.post(
            "/workspace/treasury/imports",
            data={"csrf_token": token, "pool": "food", "statement": (io.BytesIO(raw), "s.xml")},
            content_type="multipart/form-data",
        )

    before = story.http.size()
    shown = preview(camt053(lines))
    assert shown.status_code == 200, shown.text
    assert story.http.size() == before  # the preview records nothing
    text = shown.text
    counted = "2 lines to record, 1 line skipped, 0 debits matched to grants, 1 debit unmatched."
    assert counted in text
    statement = (io.BytesIO(camt053(lines)), "s.xml")
    forget_language()
    in_uk = treasurer.client.post(
        "/workspace/treasury/imports?lang=uk",
        data={"csrf_token": token, "pool": "food", "statement": statement},
        content_type="multipart/form-data",
    ).text
    forget_language()
    plurals = "2 рядки до запису, 1 рядок пропущено, 0 списань зіставлено з грантами, "
    assert plurals + "1 списання не зіставлено." in in_uk
    assert "the bank has not booked it" in text and "no payout has this reference" in text
    assert DONOR_IBAN not in text and DONOR_NAME not in text
    hidden = dict(HIDDEN.findall(text))
    # meanwhile another import records the first line: the plan has changed, nothing is
    # recorded and the new preview asks again
    other = dict(HIDDEN.findall(preview(first).text))
    done = treasurer.client.post(
        "/workspace/treasury/imports/confirm", data={"csrf_token": token, **other}
    )
    assert done.status_code == 201 and story.http.size() == before + 1
    changed = treasurer.client.post(
        "/workspace/treasury/imports/confirm", data={"csrf_token": token, **hidden}
    )
    assert changed.status_code == 409 and story.http.size() == before + 1
    assert "recorded already" in changed.text and "1 line to record," in changed.text
    renewed = dict(HIDDEN.findall(changed.text))
    done = treasurer.client.post(
        "/workspace/treasury/imports/confirm", data={"csrf_token": token, **renewed}
    )
    assert done.status_code == 201 and story.http.size() == before + 2
    # a new statement: preview, confirm records exactly its previewed lines, once
    third = [Line("5.00", "WS-REF-5"), Line("6.00", "WS-REF-6"), Line("12.50", "WS-REF-1")]
    shown = preview(camt053(third, statement_id="STMT-2"))
    hidden = dict(HIDDEN.findall(shown.text))
    assert "2 lines to record, 1 line skipped" in shown.text
    size = story.http.size()
    confirmed = treasurer.client.post(
        "/workspace/treasury/imports/confirm", data={"csrf_token": token, **hidden}
    )
    assert confirmed.status_code == 201, confirmed.text
    assert story.http.size() == size + 2
    refs = {
        story.http.get(f"/ledger/entries/{seq}")["entry"]["data"]["amount"]
        for seq in (size, size + 1)
    }
    assert refs == {"500", "600"}
    again = treasurer.client.post(
        "/workspace/treasury/imports/confirm", data={"csrf_token": token, **hidden}
    )
    assert again.status_code == 200 and "nothing was recorded twice" in again.text
    assert story.http.size() == size + 2
    # no CSRF token, a damaged statement, a bad file: refused, nothing recorded
    forged = treasurer.client.post("/workspace/treasury/imports/confirm", data=hidden)
    assert forged.status_code == 403
    damaged = treasurer.client.post(
        "/workspace/treasury/imports/confirm",
        data={"csrf_token": token, **hidden, "statement": "%%%"},
    )
    assert damaged.status_code == 400
    truncated = preview(camt053(third)[:200])
    assert truncated.status_code in (400, 422) and "could not be read" in truncated.text
    wrong = preview(camt053([Line("1.00", "X", currency="GBP")], currency="GBP"))
    assert wrong.status_code in (400, 422)
    assert story.http.size() == size + 2
    # the file goes back in the form sealed for this session: no IBAN or name in clear, and
    # another treasurer's session cannot open it
    assert DONOR_IBAN.encode() not in base64.urlsafe_b64decode(hidden["statement"].split(".")[2])
    other = staff(app, runner, "treasurer", "Tom")
    other_token = form_token(other.page("/workspace/treasury"))
    taken = other.client.post(
        "/workspace/treasury/imports/confirm", data={**hidden, "csrf_token": other_token}
    )
    assert taken.status_code == 400 and "does not open here" in taken.text
    elsewhere = treasurer.client.post(
        "/workspace/treasury/imports/confirm",
        data={"csrf_token": token, **hidden, "pool": "other-pool"},
    )
    assert elsewhere.status_code == 400
    assert story.http.size() == size + 2


def test_roles_channels_and_counts_are_named_in_the_readers_language(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    admin = staff(app, runner, "admin", "Ada")
    made = admin.post_form(
        "/workspace/admin/staff", "/workspace/admin", name="Tom", role="treasurer"
    )
    assert made.status_code == 201
    assert "The treasurer account " in made.text  # (en: the role's own name)
    named = {
        "es": ("administradora", "tesorera", "miembro", "efectivo", "banco", "Tom (tesorera)"),
        "uk": ("адміністратор", "скарбник", "учасник", "готівка", "банк", "Tom (скарбник)"),
    }
    for lang, (admin_role, treasurer, member, cash, bank, invited) in named.items():
        forget_language()
        page = admin.page(f"/workspace/admin?lang={lang}")
        assert re.search(rf"<td>Ada</td><td>{admin_role}</td>", page), lang  # the staff table
        assert re.search(r"<code>admin:[0-9a-f]{16}</code>", page)  # (an id stays as it is)
        assert f'<option value="treasurer">{treasurer}</option>' in page
        assert f'<option value="admin">{admin_role}</option>' in page
        assert f"<td>{treasurer}</td>" in page and f"<td>{member} (" in page  # API tokens
        assert invited in page  # the pending staff invitation
        assert ">treasurer<" not in page and ">member<" not in page and ">admin<" not in page
        forget_language()
        treasury = admin.page(f"/workspace/treasury?lang={lang}")
        assert f'<option value="cash">{cash}</option>' in treasury
        assert f'<option value="bank">{bank}</option>' in treasury
        assert ">crypto<" not in treasury and ">cash<" not in treasury
    token = form_token(admin.page("/workspace/admin"))
    forget_language()
    shown = admin.client.post(
        "/workspace/admin/staff?lang=es", data={"csrf_token": token, "name": "Eva", "role": "admin"}
    )
    assert shown.status_code == 201 and "(administradora)" in shown.text


def test_webhook_settings_member_and_admin(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    a1 = signed_in(app, runner, "alba", "a1")
    page = a1.page("/workspace/webhooks")
    assert "No webhooks yet" in page
    created = a1.post_form(
        "/workspace/webhooks",
        "/workspace/webhooks",
        url="http://127.0.0.1:9/alba-hook",
    )
    assert created.status_code == 201, created.text
    secret = re.search(r'<code class="invitation">(whsec_[^<]+)</code>', created.text)
    assert secret is not None, created.text
    listed = a1.page("/workspace/webhooks")
    assert "http://127.0.0.1:9/alba-hook" in listed and secret.group(1) not in listed
    refused = a1.post_form("/workspace/webhooks", "/workspace/webhooks", url="ftp://x")
    assert refused.status_code == 422 and "Nothing was created" in refused.text
    admin = staff(app, runner, "admin", "Ada")
    fund = admin.post_form(
        "/workspace/webhooks", "/workspace/webhooks", url="http://127.0.0.1:9/fund-hook"
    )
    assert fund.status_code == 201
    everything = admin.page("/workspace/webhooks")
    assert "alba-hook" in everything and "fund-hook" in everything
    b1 = signed_in(app, runner, "brisa", "b1")
    assert "alba-hook" not in b1.page("/workspace/webhooks")
    endpoint = re.search(r"/workspace/webhooks/([0-9a-f]+)/delete", listed)
    assert endpoint is not None
    forged = b1.post_form(f"/workspace/webhooks/{endpoint.group(1)}/delete", "/workspace/webhooks")
    assert forged.status_code == 404
    removed = a1.post_form(f"/workspace/webhooks/{endpoint.group(1)}/delete", "/workspace/webhooks")
    assert removed.status_code == 303
    assert "alba-hook" not in a1.page("/workspace/webhooks")


def test_admin_page_invitations_members_and_tokens(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    admin = staff(app, runner, "admin", "Ada")
    page = admin.page("/workspace/admin")
    for shown in ("Alba", "Brisa", "a1", "b2", "the treasurer", "API tokens"):
        assert shown in page, shown
    assert admin.client.get("/workspace").location == "/workspace/admin"
    # an invitation for b1, withdrawn: its link then opens nothing
    made = admin.post_form("/workspace/admin/invitations", "/workspace/admin", member="brisa/b1")
    assert made.status_code == 201, made.text
    link = INVITATION.search(made.text)
    assert link is not None
    assert app.test_client().get(f"/workspace/invite/{link.group(1)}").status_code == 200
    page = admin.page("/workspace/admin")
    withdraw = re.search(r"/workspace/admin/invitations/([0-9a-f]{64})/revoke", page)
    assert withdraw is not None
    assert admin.post_form(withdraw.group(0), "/workspace/admin").status_code == 303
    assert app.test_client().get(f"/workspace/invite/{link.group(1)}").status_code == 410
    # revoking a member ends their session at once
    a1 = signed_in(app, runner, "alba", "a1")
    done = admin.post_form("/workspace/admin/members/alba/a1/revoke", "/workspace/admin")
    assert done.status_code == 303
    assert a1.client.get("/workspace").status_code == 303
    # a new treasurer from the admin page; a bad role is refused
    made = admin.post_form(
        "/workspace/admin/staff", "/workspace/admin", name="Tom", role="treasurer"
    )
    assert made.status_code == 201 and INVITATION.search(made.text) is not None
    bad = admin.post_form(
        "/workspace/admin/staff", "/workspace/admin", name="Zebedee", role="member"
    )
    assert bad.status_code == 422
    assert "Zebedee" not in admin.page("/workspace/admin")
    # revoking the treasurer's API token: the API refuses it from then on
    token_id = story.treasurer.split("_")[1]
    assert (
        admin.post_form(
            f"/workspace/admin/tokens/{token_id}/revoke", "/workspace/admin"
        ).status_code
        == 303
    )
    refused = story.http.post(
        "/pools/food/donations",
        {"amount": "100", "currency": "EUR", "channel": "bank", "external_reference": "z"},
        token=story.treasurer,
    )
    assert refused.status_code == 401
    # a staff invitation's link names no person and no collective
    link = invite(runner, "brisa", "b2")
    assert app.test_client().get(f"/workspace/invite/{link}").status_code == 200


def test_staff_invitations_from_the_shell_recovery_codes_and_refusals(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    for args in (
        ["invite", "--role", "treasurer", "Rosa", "extra"],  # a staff invitation takes a NAME
        ["invite", "alba"],  # a member's needs the MEMBER
        ["invite", "--role", "applicant", "Rosa"],
    ):
        refused = runner.invoke(args=args)
        assert refused.exit_code == 2, (args, refused.output)
    bad_name = runner.invoke(args=["invite", "--role", "admin", " "])
    assert bad_name.exit_code != 0
    secret = staff_invitation(runner, "admin", "Ada")
    opened = app.test_client().get(f"/workspace/invite/{secret}")
    assert opened.status_code == 200 and "as an admin of the fund" in opened.text
    assert "Ada" not in opened.text  # the name is the admin page's, not the link's
    ada = Member(app)
    assert ada.register(secret).status_code == 200
    assert app.test_client().get(f"/workspace/invite/{secret}").status_code == 410  # used
    account = re.search(r"for recovery codes: (staff:[0-9a-f]{16})", ada.page("/workspace/account"))
    assert account is not None
    codes = ada.post_form("/workspace/recovery-codes", "/workspace/account")
    code = re.search(r"<code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code>", codes.text)
    assert code is not None
    stranger = Member(app)
    token = form_token(stranger.page("/workspace/sign-in"))
    recovered = stranger.client.post(
        "/workspace/recover",
        data={"csrf_token": token, "member": account.group(1), "code": code.group(1)},
    )
    assert recovered.status_code == 303, recovered.text
    assert stranger.client.get("/workspace").location == "/workspace/admin"
    me = stranger.client.get("/api/v1/me").get_json()
    assert me["actor"] == "admin:" + account.group(1).removeprefix("staff:")
    # the staff principal cannot be invited as a member of a collective
    a1 = signed_in(app, runner, "alba", "a1")
    forged = a1.post_form(
        "/workspace/invitations", "/workspace/collective", member=account.group(1)
    )
    assert forged.status_code == 404


def test_the_demo_prints_a_treasurer_invitation(app: Flask, runner: FlaskCliRunner) -> None:
    app.config["PUBLIC_URL"] = PUBLIC_URL
    result = runner.invoke(args=["init", "--demo"])
    assert result.exit_code == 0, result.output
    found = re.search(
        r"or as a treasurer: open http://localhost/workspace/invite/(\S+) ", result.output
    )
    assert found is not None, result.output
    treasurer = Member(app)
    assert treasurer.register(found.group(1)).status_code == 200
    assert "Record a donation" in treasurer.page("/workspace/treasury")


def test_every_staff_form_without_its_csrf_token_is_refused(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    admin = staff(app, runner, "admin", "Ada")
    page = admin.page("/workspace/admin")
    token_id = story.treasurer.split("_")[1]
    before = story.http.size()
    forms = [
        ("/workspace/admin/invitations", {"member": "alba/a1"}),
        ("/workspace/admin/members/alba/a1/revoke", {}),
        ("/workspace/admin/staff", {"name": "Tom", "role": "treasurer"}),
        (f"/workspace/admin/tokens/{token_id}/revoke", {}),
        ("/workspace/webhooks", {"url": "http://127.0.0.1:9/x", "request_key": "w" * 24}),
        ("/workspace/treasury/donations", {**donation_form(), "request_key": "d" * 24}),
    ]
    for path, fields in forms:
        for token in (None, "wrong"):
            data = dict(fields) if token is None else {**fields, "csrf_token": token}
            refused = admin.client.post(path, data=data)
            assert refused.status_code == 403, (path, token, refused.status_code)
    assert story.http.size() == before
    assert page.count("Tom") == admin.page("/workspace/admin").count("Tom") == 0
    assert "No webhooks yet" in admin.page("/workspace/webhooks")
    assert story.http.get("/pools/food")["slug"] == "food"
    unrevoked = story.http.post(
        "/pools/food/donations",
        {"amount": "100", "currency": "EUR", "channel": "bank", "external_reference": "ok-1"},
        token=story.treasurer,
    )
    assert unrevoked.status_code == 201  # the token was not revoked by the forged form
