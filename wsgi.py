"""WSGI entry point for any WSGI server (``waitress-serve wsgi:app``); ``lunaria serve`` is
the one Lunaria is tested with (api/serve_cli.py)."""

from api import create_app

app = create_app()
