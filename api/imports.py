"""Bank statements imported into a pool (treasurer, admin): camt.053/054, MT940 or CSV with
the pool's saved column mapping; ``?dry_run=1`` shows what would be recorded and records
nothing. Parsing and recording are the ledger's (:mod:`ledger.fund.bank_import`)."""

from __future__ import annotations

from typing import Any

from api import db, schemas
from api.auth import current_actor
from api.blueprint import Blueprint, body_limit
from ledger.fund import csv_mapping, import_statement, parse_statement, save_csv_mapping

# A month of a small fund's statement fits easily; the ledger refuses larger files anyway.
STATEMENT_BODY_LIMIT = 4 * 1024 * 1024

blp = Blueprint(
    "imports",
    __name__,
    url_prefix="/api/v1",
    description="Bank statements in: credits become donations, each line once.",
)


@blp.route("/pools/<slug:slug>/imports", methods=["POST"])
@body_limit(STATEMENT_BODY_LIMIT)
@blp.arguments(schemas.ImportQuery, location="query")
@blp.arguments(schemas.StatementUpload)
@blp.response(200, schemas.ImportReport)
def import_bank_statement(query: dict[str, Any], body: dict[str, Any], slug: str) -> Any:
    """Import a bank statement (treasurer, admin): all its new credits in one batch, or
    nothing; each other line says why it was not recorded. Body up to 4 MiB."""
    engine = db.get_engine()
    raw = body["statement"].encode()
    statement = parse_statement(raw, csv_mapping(engine, slug))
    report = import_statement(
        db.get_fund(), current_actor(), slug, statement, dry_run=query["dry_run"]
    )
    return report.to_json()


@blp.route("/pools/<slug:slug>/imports/csv-mapping", methods=["PUT"])
@blp.arguments(schemas.CsvMappingBody)
@blp.response(200, schemas.CsvMappingBody)
def put_csv_mapping(body: dict[str, Any], slug: str) -> Any:
    """Save the pool's CSV column mapping (treasurer, admin), used by every CSV import."""
    mapping = save_csv_mapping(
        db.get_engine(), current_actor(), slug, body["mapping"], db.get_clock().now()
    )
    return {"mapping": mapping.__dict__}
