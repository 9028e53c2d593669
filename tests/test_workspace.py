"""The collectives' workspace on both databases, through Flask's test client and a software
passkey (tests/workspace_support.py): invitations, passkey registration and sign-in, sessions,
CSRF, custody, votes, revocation, recovery codes, /api/v1/me, ``lunaria invite``, and grant
requests from outside. tests/e2e/test_workspace_browser.py does the same flows in Chromium."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from api import db
from ledger.fund import Actor
from ledger.fund.intake import grant_requests
from ledger.fund.sign_in import member_credentials, member_sessions
from ledger.log.clock import ManualClock
from tests.test_api_support import Story, build_story
from tests.workspace_support import INVITATION, PUBLIC_URL, Member, form_token

CONTACT = "Write to maria.lopez@example.org or call +34 612 345 678"


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    app.config["PUBLIC_URL"] = PUBLIC_URL
    return build_story(app, client, runner)


def invite(runner: FlaskCliRunner, collective: str, member: str) -> str:
    result = runner.invoke(args=["invite", collective, member])
    assert result.exit_code == 0, result.output
    found = INVITATION.fullmatch(result.stdout.strip())
    assert found is not None, result.stdout
    return found.group(1)


def signed_in(app: Flask, runner: FlaskCliRunner, collective: str, name: str) -> Member:
    member = Member(app)
    registered = member.register(invite(runner, collective, name))
    assert registered.status_code == 200, registered.text
    return member


def rows(app: Flask, table: Any) -> int:
    with app.app_context(), db.get_engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_invitation_passkey_sign_in_queue_and_two_votes(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    grant = story.propose()
    a1 = signed_in(app, runner, "alba", "a1")
    token = form_token(a1.page())
    signed_out = a1.client.post("/workspace/sign-out", data={"csrf_token": token})
    assert signed_out.status_code == 303 and signed_out.location == "/workspace/sign-in"
    # signed out: the workspace sends to the sign-in page; the passkey signs in again
    assert a1.client.get("/workspace").status_code == 303
    signed = a1.sign_in()
    assert signed.status_code == 200 and signed.get_json()["redirect"] == "/workspace"
    home = a1.page()
    assert "Waiting for my vote" in home and f"grant-{grant}" in home
    assert "Your collective holds Food bank now" in home
    before = story.http.size()
    voted = a1.post_form(f"/workspace/grants/{grant}/vote", vote="approve", note="Checked")
    assert voted.status_code == 303, voted.text
    assert story.http.size() == before + 1
    a2 = signed_in(app, runner, "alba", "a2")
    voted = a2.post_form(f"/workspace/grants/{grant}/vote", vote="approve")
    assert voted.status_code == 303, voted.text
    assert story.http.get(f"/grants/{grant}")["status"] == "approved"
    pool_page = app.test_client().get("/pools/food").text
    assert f"#{grant}" in pool_page and "approved" in pool_page
    # the same form sent twice records once (its request key is the idempotency key)
    me = a1.client.get("/api/v1/me").get_json()
    assert (me["member"], me["collective"], me["role"]) == ("a1", "alba", "member")
    assert me["custody"][0]["holds_now"] is True and me["custody"][0]["until"]


def test_form_sent_twice_records_once(app: Flask, story: Story, runner: FlaskCliRunner) -> None:
    grant = story.propose()
    a1 = signed_in(app, runner, "alba", "a1")
    html = a1.page()
    data = {
        "csrf_token": form_token(html),
        "request_key": re.search(r'name="request_key" value="([^"]+)"', html).group(1),  # type: ignore[union-attr]
        "vote": "approve",
    }
    before = story.http.size()
    for _ in range(2):
        assert a1.client.post(f"/workspace/grants/{grant}/vote", data=data).status_code == 303
    assert story.http.size() == before + 1


def test_csrf_missing_or_wrong_is_refused_and_nothing_is_written(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    grant = story.propose()
    a1 = signed_in(app, runner, "alba", "a1")
    key = "k" * 24
    before = story.http.size()
    for token in (None, "wrong-token", form_token(Member(app).page("/workspace/sign-in"))):
        data = {"vote": "approve", "request_key": key}
        if token is not None:
            data["csrf_token"] = token
        refused = a1.client.post(f"/workspace/grants/{grant}/vote", data=data)
        assert refused.status_code == 403, refused.text
    assert story.http.size() == before
    # the anonymous forms too: a grant request without the cookie's token keeps nothing
    refused = app.test_client().post(
        "/pools/food/ask",
        data={
            "csrf_token": "x",
            "amount": "10",
            "currency": "EUR",
            "purpose": "Food",
            "contact": "a",
        },
    )
    assert refused.status_code == 403 and rows(app, grant_requests) == 0


def test_non_custodian_sees_no_vote_buttons_and_a_forged_post_is_403(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    grant = story.propose()
    b1 = signed_in(app, runner, "brisa", "b1")
    home = b1.page()
    assert "Approve grant" not in home and "Your collective does not hold Food bank now" in home
    before = story.http.size()
    forged = b1.client.post(
        f"/workspace/grants/{grant}/vote",
        data={"csrf_token": form_token(home), "request_key": "f" * 24, "vote": "approve"},
    )
    assert forged.status_code == 403, forged.text
    assert story.http.size() == before
    assert b1.client.get("/api/v1/me/queue").get_json() == {"items": []}


def test_revoked_member_session_ends_on_its_next_request(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    a1 = signed_in(app, runner, "alba", "a1")
    assert a1.client.get("/api/v1/me").status_code == 200
    story.http.post("/collectives/alba/members/a1/revoke-access", token=story.admin, status=200)
    assert a1.client.get("/workspace").status_code == 303
    assert a1.client.get("/api/v1/me").status_code == 401
    assert a1.sign_in().status_code == 403  # the passkey is gone too
    assert rows(app, member_credentials) == 0 and rows(app, member_sessions) == 0
    story.http.refused(
        "POST",
        "/collectives/alba/members/a1/revoke-access",
        None,
        403,
        "forbidden",
        token=story.member("a2"),
    )


def test_removed_member_session_ends(app: Flask, story: Story, runner: FlaskCliRunner) -> None:
    a1 = signed_in(app, runner, "alba", "a1")
    with app.app_context():
        db.get_fund().remove_member(Actor("admin:test", "admin"), "alba", "a1")
    assert a1.client.get("/workspace").status_code == 303


def test_invitation_used_twice_or_after_expiry_is_refused(
    app: Flask, story: Story, runner: FlaskCliRunner, clock: ManualClock
) -> None:
    invitation = invite(runner, "alba", "a1")
    first, second = Member(app), Member(app)
    # both open the link; the first to register uses it, the second is refused
    options = second.client.post(f"/workspace/invite/{invitation}/options", json={})
    assert options.status_code == 200
    assert first.register(invitation).status_code == 200
    late = second.client.post("/workspace/passkeys", json=second.passkey.create(options.get_json()))
    assert late.status_code == 410, late.text
    assert second.client.get(f"/workspace/invite/{invitation}").status_code == 410
    assert rows(app, member_credentials) == 1
    expiring = invite(runner, "alba", "a2")
    clock.advance(timedelta(hours=72, seconds=1))
    assert Member(app).client.get(f"/workspace/invite/{expiring}").status_code == 410
    assert Member(app).client.post(f"/workspace/invite/{expiring}/options").status_code == 410
    assert Member(app).client.get("/workspace/invite/no-such-invitation").status_code == 410
    result = runner.invoke(args=["invite", "alba", "nobody"])
    assert result.exit_code != 0 and "nobody" in result.output


def test_passkey_for_another_origin_or_rp_id_is_refused(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    invitation = invite(runner, "alba", "a1")
    member = Member(app)
    for lie in ({"origin": "http://evil.example"}, {"rp_id": "evil.example"}):
        refused = member.register(invitation, **lie)
        assert refused.status_code == 400 and refused.get_json()["code"] == "passkey_refused"
    assert rows(app, member_credentials) == 0 and rows(app, member_sessions) == 0
    assert member.register(invitation).status_code == 200  # still unused: the truth works
    stranger = Member(app)
    stranger.passkey = member.passkey
    assert stranger.sign_in(origin="http://localhost:9999").status_code == 403
    assert stranger.sign_in(rp_id="evil.example").status_code == 403
    assert stranger.sign_in().status_code == 200


def test_recovery_codes_are_one_time(app: Flask, story: Story, runner: FlaskCliRunner) -> None:
    a1 = signed_in(app, runner, "alba", "a1")
    page = a1.post_form("/workspace/recovery-codes", page="/workspace/account").text
    codes = re.findall(r"<code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code>", page)
    assert len(codes) == 10 and len(set(codes)) == 10
    other = Member(app)
    form = other.page("/workspace/sign-in")
    data = {"csrf_token": form_token(form), "member": "a1", "code": codes[3]}
    assert other.client.post("/workspace/recover", data=data).status_code == 303
    assert other.client.get("/api/v1/me").get_json()["member"] == "a1"
    again = Member(app)
    data["csrf_token"] = form_token(again.page("/workspace/sign-in"))
    assert again.client.post("/workspace/recover", data=data).status_code == 403
    data["code"] = codes[4]
    data["member"] = "a2"  # a code is only its member's
    assert again.client.post("/workspace/recover", data=data).status_code == 403


def test_sign_out_everywhere(app: Flask, story: Story, runner: FlaskCliRunner) -> None:
    a1 = signed_in(app, runner, "alba", "a1")
    laptop = Member(app)
    laptop.passkey = a1.passkey
    assert laptop.sign_in().status_code == 200
    ended = a1.post_form("/workspace/sign-out-everywhere", page="/workspace/account")
    assert ended.status_code == 303
    assert laptop.client.get("/workspace").status_code == 303
    assert a1.client.get("/workspace").status_code == 303


def test_idle_session_ends_after_12_hours(
    app: Flask, story: Story, runner: FlaskCliRunner, clock: ManualClock
) -> None:
    a1 = signed_in(app, runner, "alba", "a1")
    clock.advance(timedelta(hours=11))
    assert a1.client.get("/workspace").status_code == 200  # seen: the idle time restarts
    clock.advance(timedelta(hours=11))
    assert a1.client.get("/workspace").status_code == 200
    clock.advance(timedelta(hours=12))
    assert a1.client.get("/workspace").status_code == 303


def test_session_cookie_flags(app: Flask, story: Story, runner: FlaskCliRunner) -> None:
    member = Member(app)
    invitation = invite(runner, "alba", "a1")
    member.client.get(f"/workspace/invite/{invitation}")
    options = member.client.post(f"/workspace/invite/{invitation}/options", json={})
    answer = member.passkey.create(options.get_json())
    done = member.client.post("/workspace/passkeys", json=answer)
    cookie = next(c for c in done.headers.getlist("Set-Cookie") if c.startswith("lunaria_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert "Max-Age" not in cookie and "Expires" not in cookie


def test_me_for_bearer_tokens_and_sessions(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    grant = story.propose()
    me = story.http.get("/me", token=story.member("b1"))
    assert (me["member"], me["collective"]) == ("b1", "brisa")
    assert me["custody"][0]["holds_now"] is False and me["custody"][0]["next_from"]
    queue = story.http.get("/me/queue", token=story.member("a1"))["items"]
    assert [(q["grant"]["id"], q["waiting_for_me"]) for q in queue] == [(grant, True)]
    story.vote(grant, "a1")
    queue = story.http.get("/me/queue", token=story.member("a1"))["items"]
    assert [(q["my_vote"], q["waiting_for_me"]) for q in queue] == [("approve", False)]
    admin = story.http.get("/me", token=story.admin)
    assert admin["role"] == "admin" and admin["custody"] == []
    story.http.refused("GET", "/me", None, 401, "unauthorized")
    story.http.refused("GET", "/me", None, 401, "unauthorized", token="lun_bad")


def test_workspace_by_another_host_name_is_redirected(app: Flask, story: Story) -> None:
    moved = app.test_client().get("/workspace/sign-in?lang=es", base_url="http://127.0.0.1:8000")
    assert moved.status_code == 303
    assert moved.location == f"{PUBLIC_URL}/workspace/sign-in?lang=es"


def _ask(client: Any, **fields: str) -> Any:
    page = client.get("/pools/food/ask")
    assert page.status_code == 200
    data = {
        "csrf_token": form_token(page.text),
        "amount": "45.50",
        "currency": "EUR",
        "urgency": "urgent",
        "urgency_reason": "Eviction on Friday",
        "purpose": "Two months of rent for a family facing eviction",
        "contact": CONTACT,
        **fields,
    }
    return client.post("/pools/food/ask", data=data)


def test_grant_request_from_outside(app: Flask, story: Story, runner: FlaskCliRunner) -> None:
    requester = app.test_client()
    before = story.http.size()
    refused = _ask(requester, purpose="Rent; write to maria.lopez@example.org")
    assert refused.status_code == 422 and "personal data" in refused.text
    assert rows(app, grant_requests) == 0
    sent = _ask(requester)
    assert sent.status_code == 201, sent.text
    link = re.search(r'id="status-link">([^<]+)<', sent.text).group(1)  # type: ignore[union-attr]
    assert link.startswith(f"{PUBLIC_URL}/requests/")
    status_path = link.removeprefix(PUBLIC_URL)
    assert "Received" in requester.get(status_path).text
    assert story.http.size() == before  # the request is not in the log
    b1 = signed_in(app, runner, "brisa", "b1")
    assert "Eviction on Friday" not in b1.page("/workspace/requests")  # not brisa's pool now
    a1 = signed_in(app, runner, "alba", "a1")
    intake = a1.page("/workspace/requests")
    assert "maria.lopez@example.org" in intake and "45.50" in intake
    request_id = re.search(r"/workspace/requests/(\d+)/propose", intake).group(1)  # type: ignore[union-attr]
    forged = b1.post_form(f"/workspace/requests/{request_id}/decline", page="/workspace/requests")
    assert forged.status_code == 403
    proposed = a1.post_form(
        f"/workspace/requests/{request_id}/propose",
        page="/workspace/requests",
        recipient="family-11",
    )
    assert proposed.status_code == 303, proposed.text
    assert story.http.size() == before + 1
    assert "Proposed as a grant" in requester.get(status_path).text
    grant = story.http.get("/pools/food/grants?status=proposed")["items"][0]
    assert (grant["amount"], grant["urgency"]) == ("4550", "urgent")
    story.vote(grant["id"], "a2")
    story.vote(grant["id"], "a3")
    assert "Approved" in requester.get(status_path).text
    again = a1.post_form(
        f"/workspace/requests/{request_id}/propose", page="/workspace", recipient="x"
    )
    assert again.status_code in (404, 409, 422)
    _contact_is_nowhere_public(app, grant["id"])


def _contact_is_nowhere_public(app: Flask, grant: int) -> None:
    anyone = app.test_client()
    paths = [
        "/",
        "/pools/food",
        f"/grants/{grant}",
        f"/entries/{grant}",
        "/api/v1/pools/food/grants",
        f"/api/v1/grants/{grant}",
        f"/api/v1/ledger/entries/{grant}",
        "/feeds/pools/food.atom",
    ]
    for path in paths:
        response = anyone.get(path)
        body = response.get_data(as_text=True)
        assert "maria.lopez" not in body and "612 345" not in body, path


def test_grant_request_limits(app: Flask, story: Story) -> None:
    requester = app.test_client()
    too_big = _ask(requester, purpose="x" * 9000)
    assert too_big.status_code == 413
    app.config.update(RATE_LIMITS=True, RATE_LIMIT_GRANT_REQUESTS="2 per hour")
    assert _ask(requester).status_code == 201
    assert _ask(requester).status_code == 201
    third = _ask(requester)
    assert third.status_code == 429 and third.headers["Retry-After"]
    assert rows(app, grant_requests) == 2


def test_workspace_writes_per_person(
    app: Flask, story: Story, runner: FlaskCliRunner, clock: ManualClock
) -> None:
    """Forms count against the writes limit per signed-in person, refusals too (a flood stays
    refused); past it a 429 with Retry-After, nothing written; others are not held back."""
    grant = story.propose()
    a1, a2 = signed_in(app, runner, "alba", "a1"), signed_in(app, runner, "alba", "a2")
    app.config.update(RATE_LIMITS=True, RATE_LIMIT_WRITES="2 per minute")
    vote = f"/workspace/grants/{grant}/vote"
    assert a1.post_form(vote, vote="reject", note="Not yet").status_code == 303
    assert a1.post_form(vote, vote="reject").status_code == 409  # (voted already: counted)
    before = story.http.size()
    third = a1.post_form(vote, vote="approve")
    assert third.status_code == 429 and third.headers["Retry-After"] == "60"
    assert story.http.size() == before
    assert a2.post_form(vote, vote="approve").status_code == 303
    assert story.http.size() == before + 1
    clock.advance(timedelta(seconds=60))
    assert a1.post_form(vote, vote="approve").status_code == 409


def test_declined_request(app: Flask, story: Story, runner: FlaskCliRunner) -> None:
    requester = app.test_client()
    sent = _ask(requester, urgency="normal", urgency_reason="")
    status_path = re.search(r'id="status-link">http://localhost([^<]+)<', sent.text).group(1)  # type: ignore[union-attr]
    a1 = signed_in(app, runner, "alba", "a1")
    intake = a1.page("/workspace/requests")
    request_id = re.search(r"/workspace/requests/(\d+)/decline", intake).group(1)  # type: ignore[union-attr]
    declined = a1.post_form(f"/workspace/requests/{request_id}/decline", page="/workspace/requests")
    assert declined.status_code == 303
    assert "Declined" in requester.get(status_path).text
    assert requester.get("/requests/not-a-real-link").status_code == 404


def test_fast_lane_payout_and_cancellation_from_the_workspace(
    app: Flask, story: Story, runner: FlaskCliRunner
) -> None:
    urgent = story.propose("4000", urgency="urgent")
    other = story.propose()
    a1 = signed_in(app, runner, "alba", "a1")
    assert 'value="fast_lane"' in a1.page()
    voted = a1.post_form(f"/workspace/grants/{urgent}/vote", vote="approve", lane="fast_lane")
    assert voted.status_code == 303, voted.text
    grant = story.http.get(f"/grants/{urgent}")
    assert (grant["status"], grant["lane"]) == ("approved", "fast_lane")
    paid = a1.post_form(f"/workspace/grants/{urgent}/disburse", payment_reference="SEPA 7781")
    assert paid.status_code == 303, paid.text
    assert story.http.get(f"/grants/{urgent}")["status"] == "disbursed"
    assert "SEPA 7781" not in app.test_client().get(f"/grants/{urgent}").text
    screened = a1.post_form(
        f"/workspace/grants/{other}/cancel", reason="Asked by maria.lopez@example.org"
    )
    assert screened.status_code == 422 and "no personal data" in screened.text
    cancelled = a1.post_form(f"/workspace/grants/{other}/cancel", reason="Withdrawn by request")
    assert cancelled.status_code == 303, cancelled.text
    assert story.http.get(f"/grants/{other}")["status"] == "cancelled"


def test_secure_cookies_over_https(app: Flask, client: Any, runner: FlaskCliRunner) -> None:
    app.config["PUBLIC_URL"] = "https://localhost"
    build_story(app, client, runner, donations=0)
    member = Member(app)
    member.client = app.test_client()
    invitation = invite_url(runner, "alba", "a1").removeprefix("https://localhost")
    page = member.client.get(invitation, base_url="https://localhost")
    assert page.status_code == 200
    csrf = next(c for c in page.headers.getlist("Set-Cookie") if c.startswith("lunaria_csrf="))
    assert "Secure" in csrf and "SameSite=Strict" in csrf and "HttpOnly" in csrf
    options = member.client.post(f"{invitation}/options", base_url="https://localhost", json={})
    answer = member.passkey.create(options.get_json(), origin="https://localhost")
    done = member.client.post("/workspace/passkeys", base_url="https://localhost", json=answer)
    assert done.status_code == 200, done.text
    cookie = next(c for c in done.headers.getlist("Set-Cookie") if c.startswith("lunaria_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def invite_url(runner: FlaskCliRunner, collective: str, member: str) -> str:
    result = runner.invoke(args=["invite", collective, member])
    assert result.exit_code == 0, result.output
    return str(result.stdout.strip())


def test_mail_settings_from_the_workspace(app: Flask, story: Story, runner: FlaskCliRunner) -> None:
    a1 = signed_in(app, runner, "alba", "a1")
    assert "This Lunaria sends no mail" in a1.page("/workspace/account")
    app.config["SMTP_URL"] = "smtp://127.0.0.1:2525"  # (opting in sends nothing yet)
    assert "No mail" in a1.page("/workspace/account")
    refused = a1.post_form("/workspace/notifications", page="/workspace/account", email="nope")
    assert refused.status_code == 422
    address = "a1.private@example.org"
    saved = a1.post_form(
        "/workspace/notifications", page="/workspace/account", email=address, language="uk"
    )
    assert saved.status_code == 303, saved.text
    page = a1.page("/workspace/account")
    assert "Українська" in page and address not in page  # the address is never shown again
    mine = story.http.get("/notifications/email", token=story.member("a1"))
    assert (mine["member"], mine["language"]) == ("a1", "uk")
    stopped = a1.post_form("/workspace/notifications/off", page="/workspace/account")
    assert stopped.status_code == 303
    story.http.get("/notifications/email", token=story.member("a1"), status=404)
