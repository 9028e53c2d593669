"""Erasure of personal data by an admin: the private record goes, every hash stays valid."""

from __future__ import annotations

from api import db
from api.auth import current_actor
from api.blueprint import Blueprint
from api.grants import GRANT
from ledger.fund import erase_recipient_details

blp = Blueprint(
    "erasures",
    __name__,
    url_prefix="/api/v1",
    description="Erasing personal data (admin): sealed for good, the log untouched.",
)


@blp.route(f"{GRANT}/recipient-details", methods=["DELETE"])
@blp.response(204)
def erase_recipient(grant_id: int) -> None:
    """Erase a grant's recipient details (admin). The vault key is rotated, so no copy of
    them (backups, WAL) can be opened again; 404 when none are kept."""
    erase_recipient_details(db.get_log(), db.get_vault(), current_actor(), grant_id)
