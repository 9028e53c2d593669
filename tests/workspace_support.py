"""A software passkey (a WebAuthn authenticator in Python) and a workspace client on Flask's
test client, for tests of the workspace without a browser (tests/e2e drives Chromium's
virtual authenticator for the same ceremonies).

The authenticator makes real credentials: a P-256 key, "none" attestation, authenticator
data with the RP ID's hash, flags and sign count, and ES256 assertions, so the server's
``webauthn`` library verifies them as it verifies a browser's. It can also lie about the
origin or RP ID, which a browser would not let a test do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

PUBLIC_URL = "http://localhost"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_KEY = re.compile(r'name="request_key" value="([^"]+)"')
INVITATION = re.compile(r"http://localhost/workspace/invite/([A-Za-z0-9_-]+)")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftPasskey:
    """One credential of a software authenticator (user verification always done)."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))
    count: int = 0

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
        return bytes(cbor2.dumps({1: 2, 3: -7, -1: 1, -2: x, -3: y}))

    def create(
        self, options: dict[str, Any], origin: str = PUBLIC_URL, rp_id: str | None = None
    ) -> dict[str, Any]:
        """navigator.credentials.create's answer, as ``PublicKeyCredential.toJSON()``."""
        client = {
            "type": "webauthn.create",
            "challenge": options["challenge"],
            "origin": origin,
            "crossOrigin": False,
        }
        rp_hash = hashlib.sha256((rp_id or options["rp"]["id"]).encode()).digest()
        attested = bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id
        auth_data = rp_hash + bytes([0x45]) + (0).to_bytes(4, "big") + attested + self._cose_key()
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64u(json.dumps(client).encode()),
                "attestationObject": b64u(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self, options: dict[str, Any], origin: str = PUBLIC_URL, rp_id: str | None = None
    ) -> dict[str, Any]:
        """navigator.credentials.get's answer: an ES256 assertion, the count one higher."""
        self.count += 1
        client = json.dumps(
            {"type": "webauthn.get", "challenge": options["challenge"], "origin": origin}
        ).encode()
        rp_hash = hashlib.sha256((rp_id or options["rpId"]).encode()).digest()
        auth_data = rp_hash + bytes([0x05]) + self.count.to_bytes(4, "big")
        signed = auth_data + hashlib.sha256(client).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64u(client),
                "authenticatorData": b64u(auth_data),
                "signature": b64u(signature),
            },
            "clientExtensionResults": {},
        }


def form_token(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None, page
    return found.group(1)


class Member:
    """A member's browser on the test client: its cookies, passkey and CSRF token."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.passkey = SoftPasskey()

    def register(self, invitation: str, **lie: str) -> TestResponse:
        """Open the invitation and register the passkey (``origin=``/``rp_id=`` to lie)."""
        page = self.client.get(f"/workspace/invite/{invitation}")
        assert page.status_code == 200, page.text
        options = self.client.post(f"/workspace/invite/{invitation}/options", json={})
        assert options.status_code == 200, options.text
        answer = self.passkey.create(options.get_json(), **lie)
        return self.client.post("/workspace/passkeys", json=answer)

    def sign_in(self, **lie: str) -> TestResponse:
        options = self.client.post("/workspace/sign-in/options", json={})
        assert options.status_code == 200, options.text
        return self.client.post(
            "/workspace/sign-in", json=self.passkey.get(options.get_json(), **lie)
        )

    def page(self, path: str = "/workspace") -> str:
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.text

    def post_form(self, path: str, page: str = "/workspace", **fields: str) -> TestResponse:
        """Post a form as the page at ``page`` gives it: its CSRF token and a request key."""
        html = self.page(page)
        data = {"csrf_token": form_token(html), **fields}
        key = REQUEST_KEY.search(html)
        if key is not None:
            data.setdefault("request_key", key.group(1))
        return self.client.post(path, data=data)
