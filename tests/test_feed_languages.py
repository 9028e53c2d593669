"""The Atom feeds speak the reader's language like the pages: ``?lang=``, then the language
cookie, then Accept-Language (en, es, uk), on SQLite and PostgreSQL."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import flask_babel  # type: ignore[import-untyped]
import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from tests.test_api_support import Story, build_story

ATOM = "{http://www.w3.org/2005/Atom}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
FEED = "/api/v1/pools/food/feed.atom"


@pytest.fixture
def story(app: Flask, client: Any, runner: FlaskCliRunner) -> Story:
    story = build_story(app, client, runner, donations=1)
    grant = story.propose("4000", "urgent")
    story.vote(grant, "a1", fast_lane=True)
    return story


def read(client: Any, url: str, **headers: str) -> tuple[ET.Element, Any]:
    # pytest-flask keeps one app context pushed for the whole test, which every request
    # shares: flask-babel would remember the first request's language (a server's requests
    # each have their own context).
    flask_babel.refresh()
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    return ET.fromstring(response.get_data()), response


def titles(root: ET.Element) -> list[str]:
    return [e.findtext(f"{ATOM}title") or "" for e in root.iter(f"{ATOM}entry")]


@pytest.mark.parametrize(
    ("lang", "donation", "decision", "subtitle"),
    [
        ("en", "Donation of 100.00 EUR (bank)", "approved in the fast lane", "Every entry of"),
        ("es", "Donación de 100.00 EUR (bank)", "aprobada por la vía rápida", "Todas las entradas"),
        ("uk", "Пожертва 100.00 EUR (bank)", "схвалено швидкою смугою", "Усі записи фонду"),
    ],
)
def test_the_feed_follows_lang(
    story: Story, client: Any, lang: str, donation: str, decision: str, subtitle: str
) -> None:
    root, response = read(client, f"{FEED}?lang={lang}")
    assert root.get(XML_LANG) == lang
    assert response.headers["Content-Language"] == lang
    assert "Accept-Language" in response.headers["Vary"]
    assert donation in titles(root)
    assert any(decision in title for title in titles(root))
    assert (root.findtext(f"{ATOM}subtitle") or "").startswith(subtitle)
    summaries = [e.findtext(f"{ATOM}summary") or "" for e in root.iter(f"{ATOM}entry")]
    assert any(s.startswith(donation) for s in summaries)


@pytest.mark.parametrize(
    ("accept", "lang", "word"),
    [
        ("uk-UA,uk;q=0.9,en;q=0.5", "uk", "Пожертва"),
        ("es-ES,es;q=0.9", "es", "Donación"),
        ("fr-FR,fr;q=0.9", "en", "Donation"),
    ],
)
def test_the_feed_follows_accept_language(
    story: Story, client: Any, accept: str, lang: str, word: str
) -> None:
    root, _ = read(client, FEED, **{"Accept-Language": accept})
    assert root.get(XML_LANG) == lang
    assert any(title.startswith(word) for title in titles(root))


def test_lang_wins_then_the_pages_cookie_and_each_language_has_its_etag(
    story: Story, client: Any
) -> None:
    spanish, es = read(client, f"{FEED}?lang=es", **{"Accept-Language": "uk"})
    assert spanish.get(XML_LANG) == "es"
    _, uk = read(client, f"{FEED}?lang=uk")
    assert es.headers["ETag"] != uk.headers["ETag"]
    assert client.get("/pools/food?lang=es").status_code == 200  # the page sets the cookie
    remembered, _ = read(client, FEED, **{"Accept-Language": "uk"})
    assert remembered.get(XML_LANG) == "es"
    unknown, _ = read(client, f"{FEED}?lang=xx")
    assert unknown.get(XML_LANG) == "es"  # an unsupported ?lang= falls back, never fails
