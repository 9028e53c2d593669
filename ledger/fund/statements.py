"""Bank statements read strictly: ISO 20022 camt.053 / camt.054, SWIFT MT940, and CSV with a
column mapping, into one plain :class:`Statement`.

XML from outside is parsed with lxml with entities left unresolved, no DTD loaded and no
network; a document that declares a DOCTYPE is refused outright. MT940 is read by the
maintained ``mt-940`` parser with all its options (the defaults lose the reference and glue
the IBAN onto the name). Amounts become minor units exactly (:func:`~ledger.fund.money.
minor_units`): an amount with more decimals than its currency has is refused, never rounded.
Counterparty IBANs are validated with ``schwifty``. A file that is malformed in any way raises
:class:`StatementError` naming the line; nothing of it is used.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import mt940
from lxml import etree
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from ledger.errors import RuleViolation
from ledger.fund.money import check_currency, minor_units

FORMATS = ("camt.053", "camt.054", "mt940", "csv")
# A statement of a small fund; larger files are refused before they are parsed.
MAX_STATEMENT_BYTES = 8 * 1024 * 1024
_UNKNOWN = "unknown_statement_format"
_TOO_LARGE = "statement_too_large"


class StatementError(RuleViolation):
    """A statement file cannot be used as it is (422); nothing of it was recorded."""

    def __init__(self, message: str, code: str = "malformed_statement") -> None:
        super().__init__(message, code)


@dataclass(frozen=True)
class StatementLine:
    """One booked line: ``credit`` (money in) or a debit, ``amount`` in minor units (> 0).

    ``reference`` is the bank's own reference for the line (unique per account); ``remittance``
    what the payer wrote (a pledge's or a grant's payment reference); ``iban`` and ``name`` are
    the counterparty's, personal data that never leaves the private store."""

    number: int
    credit: bool
    amount: int
    currency: str
    reference: str
    booked: str
    remittance: str
    end_to_end: str
    iban: str | None = field(repr=False)
    name: str | None = field(repr=False)
    status: str = "BOOK"


@dataclass(frozen=True)
class Statement:
    """A parsed statement: its format and id, the account's currency, the closing booked
    balance (signed minor units, None when the file gives none) and its date, and the lines."""

    format: str
    identifier: str
    currency: str
    closing: int | None
    closing_date: str | None
    lines: tuple[StatementLine, ...]


@dataclass(frozen=True)
class CsvMapping:
    """Which CSV column holds what. ``amount`` is signed unless ``direction`` names a column
    whose value is ``credit_mark`` for money in; ``currency`` is a column or, with
    ``fixed_currency``, the one currency of the account."""

    date: str
    amount: str
    reference: str
    remittance: str = ""
    currency: str = ""
    fixed_currency: str = ""
    direction: str = ""
    credit_mark: str = "C"
    iban: str = ""
    name: str = ""
    delimiter: str = ","
    decimal_comma: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CsvMapping:
        """A mapping from its JSON form; unknown keys and missing required columns refused."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise StatementError(f"unknown CSV mapping keys: {unknown}", "invalid_mapping")
        for required in ("date", "amount", "reference"):
            if not isinstance(data.get(required), str) or not data[required]:
                raise StatementError(
                    f"the CSV mapping must name the {required!r} column", "invalid_mapping"
                )
        if not data.get("currency") and not data.get("fixed_currency"):
            raise StatementError(
                "the CSV mapping needs a 'currency' column or a 'fixed_currency'",
                "invalid_mapping",
            )
        for key, value in data.items():
            expected = bool if key == "decimal_comma" else str
            if not isinstance(value, expected):
                raise StatementError(f"CSV mapping {key!r} must be a {expected.__name__}")
        if data.get("fixed_currency"):
            check_currency(data["fixed_currency"])
        if len(data.get("delimiter", ",")) != 1:
            raise StatementError("the CSV delimiter is one character", "invalid_mapping")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def detect_format(raw: bytes) -> str:
    """camt.053, camt.054 or mt940 from the first bytes; anything else is read as CSV."""
    head = raw[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        for name in ("camt.053", "camt.054"):
            if name.encode() in head:
                return name
        raise StatementError(
            "an XML file that is neither camt.053 nor camt.054", "unknown_statement_format"
        )
    if head.startswith((b":20:", b"{1:", b":940:")):
        return "mt940"
    return "csv"


def parse_statement(raw: bytes, mapping: CsvMapping | None = None) -> Statement:
    """The statement in ``raw`` (format detected); a CSV file needs the pool's ``mapping``."""
    if len(raw) > MAX_STATEMENT_BYTES:
        raise StatementError(
            f"a statement is at most {MAX_STATEMENT_BYTES} bytes", "statement_too_large"
        )
    kind = detect_format(raw)
    if kind == "mt940":
        statement = _mt940(raw)
    elif kind == "csv":
        if mapping is None:
            raise StatementError(
                "a CSV statement needs the pool's column mapping (set it first)", "no_mapping"
            )
        statement = _csv(raw, mapping)
    else:
        statement = _camt(raw, kind)
    _check_lines(statement)
    return statement


def _check_lines(statement: Statement) -> None:
    """One currency, and no bank reference twice in one file."""
    seen: dict[str, int] = {}
    for line in statement.lines:
        if line.currency != statement.currency:
            raise StatementError(
                f"line {line.number} is in {line.currency}, the account in {statement.currency}",
                "currency_mismatch",
            )
        if line.reference in seen:
            raise StatementError(
                f"line {line.number} repeats the bank reference of line {seen[line.reference]}",
                "duplicate_line",
            )
        seen[line.reference] = line.number


def _amount(text: str, currency: Any, where: str) -> int:
    code = _currency(currency, where)
    try:
        return int(minor_units(text, code))
    except RuleViolation:
        raise StatementError(
            f"{where}: amount {text!r} is not a number with at most the decimals of {code}",
            "invalid_amount",
        ) from None


def _currency(currency: Any, where: str) -> str:
    try:
        return check_currency(currency)
    except RuleViolation:
        raise StatementError(
            f"{where}: unknown currency {currency!r}", "unknown_currency"
        ) from None


def _iban(text: str | None, where: str) -> str | None:
    if not text:
        return None
    checked = _checked_iban(text)
    if checked is None:
        message = f"{where}: the counterparty IBAN is not valid"
        raise StatementError(message, "invalid_iban")
    return checked


@functools.lru_cache(maxsize=4096)
def _checked_iban(text: str) -> str | None:
    """The IBAN in compact form, or None if ``schwifty`` finds it invalid (a recurring donor's
    IBAN is checked once: schwifty takes about half a millisecond)."""
    try:
        return str(IBAN(text).compact)
    except SchwiftyException:
        return None


# -- ISO 20022 camt.053 (statement) and camt.054 (debit/credit notification) ------------------

_SAFE_XML = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
)


def _camt(raw: bytes, kind: str) -> Statement:
    try:
        root = etree.fromstring(raw, _SAFE_XML)
    except etree.XMLSyntaxError as exc:
        raise StatementError(f"the XML is not well formed: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise StatementError("a camt document has no DOCTYPE; this one declares one")
    ns = etree.QName(root).namespace or ""
    if not ns.startswith(f"urn:iso:std:iso:20022:tech:xsd:{kind}."):
        raise StatementError(
            f"not a {kind} document (namespace {ns!r})", "unknown_statement_format"
        )
    find = _Finder(ns)
    reports = find.all(root, "*/Stmt" if kind == "camt.053" else "*/Ntfctn")
    if not reports:
        raise StatementError(f"the {kind} document holds no statement")
    lines: list[StatementLine] = []
    currencies: set[str] = set()
    closing: tuple[int, str] | None = None
    for report in reports:
        currency = find.text(report, "Acct/Ccy")
        for entry in find.all(report, "Ntry"):
            line = _camt_entry(find, entry, len(lines) + 1)
            lines.append(line)
            currencies.add(line.currency)
        if currency:
            currencies.add(_currency(currency, "the account"))
        closing = _closing(find, report) or closing
    if len(currencies) > 1:
        raise StatementError(
            f"the document mixes currencies {sorted(currencies)}", "currency_mismatch"
        )
    (currency,) = currencies or {closing_currency(find, reports)}
    identifier = find.text(reports[0], "Id") or find.text(root, "*/GrpHdr/MsgId")
    return Statement(
        kind,
        identifier,
        currency,
        None if closing is None else closing[0],
        None if closing is None else closing[1],
        tuple(lines),
    )


def closing_currency(find: _Finder, reports: Sequence[Any]) -> str:
    for report in reports:
        for balance in find.all(report, "Bal"):
            return _currency(find.node(balance, "Amt").get("Ccy"), "the balance")
    raise StatementError("the statement names no currency: no account currency, entry or balance")


def _closing(find: _Finder, report: Any) -> tuple[int, str] | None:
    """The closing booked balance (CLBD), signed, and its date."""
    for balance in find.all(report, "Bal"):
        if find.text(balance, "Tp/CdOrPrtry/Cd") != "CLBD":
            continue
        amount_node = find.node(balance, "Amt")
        amount = _amount(amount_node.text or "", amount_node.get("Ccy"), "the closing balance")
        sign = -1 if find.text(balance, "CdtDbtInd") == "DBIT" else 1
        return sign * amount, find.text(balance, "Dt/Dt") or find.text(balance, "Dt/DtTm")[:10]
    return None


def _camt_entry(find: _Finder, entry: Any, number: int) -> StatementLine:
    where = f"entry {number}"
    amount_node = find.node(entry, "Amt")
    if amount_node is None:
        raise StatementError(f"{where} has no amount")
    currency = _currency(amount_node.get("Ccy"), where)
    amount = _amount(amount_node.text or "", currency, where)
    direction = find.text(entry, "CdtDbtInd")
    if direction not in ("CRDT", "DBIT"):
        raise StatementError(f"{where}: CdtDbtInd is {direction!r}, not CRDT or DBIT")
    credit = direction == "CRDT"
    details = find.all(entry, "NtryDtls/TxDtls")
    tx = details[0] if len(details) == 1 else None
    reference = find.text(entry, "AcctSvcrRef") or (
        find.text(tx, "Refs/AcctSvcrRef") if tx is not None else ""
    )
    if not reference:
        raise StatementError(f"{where} has no bank reference (AcctSvcrRef)")
    party = "Dbtr" if credit else "Cdtr"
    iban = name = None
    remittance = end_to_end = ""
    if tx is not None:
        iban = _iban(find.text(tx, f"RltdPties/{party}Acct/Id/IBAN"), where)
        name = find.text(tx, f"RltdPties/{party}/Nm") or find.text(tx, f"RltdPties/{party}/Pty/Nm")
        remittance = " ".join(find.texts(tx, "RmtInf/Ustrd"))
        end_to_end = find.text(tx, "Refs/EndToEndId")
    status = find.text(entry, "Sts") or find.text(entry, "Sts/Cd")
    booked = find.text(entry, "BookgDt/Dt") or find.text(entry, "BookgDt/DtTm")[:10]
    return StatementLine(
        number,
        credit,
        amount,
        currency,
        reference,
        booked,
        remittance,
        "" if end_to_end == "NOTPROVIDED" else end_to_end,
        iban,
        name or None,
        status.strip() if status.strip() else "BOOK",
    )


class _Finder:
    """Paths like ``Refs/EndToEndId`` in one camt namespace (any of its versions), each
    compiled once (a statement asks the same dozen paths of every entry)."""

    def __init__(self, ns: str) -> None:
        self.ns = {"c": ns}
        self.compiled: dict[str, Any] = {}

    def all(self, node: Any, path: str) -> list[Any]:
        xpath = self.compiled.get(path)
        if xpath is None:
            steps = "/".join(p if p == "*" else f"c:{p}" for p in path.split("/"))
            xpath = self.compiled[path] = etree.XPath(steps, namespaces=self.ns)
        return list(xpath(node))

    def node(self, node: Any, path: str) -> Any:
        found = self.all(node, path)
        return found[0] if found else None

    def text(self, node: Any, path: str) -> str:
        found = self.node(node, path)
        return "" if found is None or found.text is None else found.text.strip()

    def texts(self, node: Any, path: str) -> list[str]:
        return [n.text.strip() for n in self.all(node, path) if n.text]


# -- SWIFT MT940 ----------------------------------------------------------------------------


def _mt940(raw: bytes) -> Statement:
    try:
        parsed = mt940.parse(io.BytesIO(raw), encoding="utf-8", options=mt940.Options.all())
        transactions = list(parsed)
    except Exception as exc:  # (the parser raises many kinds; the file is the problem)
        raise StatementError(f"the MT940 file cannot be read: {exc}") from None
    data = parsed.data
    closing = data.get("final_closing_balance")
    if closing is None:
        raise StatementError("the MT940 statement has no closing balance (:62F:)")
    currency = _currency(closing.amount.currency, "the closing balance")
    lines = [_mt940_line(t.data, number) for number, t in enumerate(transactions, 1)]
    closing_amount = closing.amount.amount
    signed = _amount(_decimal_text(abs(closing_amount)), currency, "the closing balance")
    return Statement(
        "mt940",
        str(data.get("transaction_reference") or ""),
        currency,
        -signed if closing_amount < 0 else signed,
        str(closing.date),
        tuple(lines),
    )


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")


def _mt940_line(data: Mapping[str, Any], number: int) -> StatementLine:
    where = f"line {number}"
    status = str(data.get("status", ""))
    if status not in ("C", "D", "RC", "RD"):
        raise StatementError(f"{where}: mark {status!r} is not C, D, RC or RD")
    value = data["amount"].amount
    currency = _currency(data.get("currency"), where)
    amount = _amount(_decimal_text(abs(value)), currency, where)
    reference = str(data.get("bank_reference") or "")
    if not reference:
        raise StatementError(f"{where} has no bank reference (after // in :61:)")
    remittance = data.get("purpose") or data.get("transaction_details") or ""
    customer = str(data.get("customer_reference") or "")
    return StatementLine(
        number,
        value > 0,
        amount,
        currency,
        reference,
        str(data.get("entry_date") or data.get("date")),
        str(remittance).replace("\n", " ").strip(),
        str(data.get("end_to_end_reference") or ("" if customer == "NONREF" else customer)),
        _iban(data.get("applicant_iban"), where),
        data.get("applicant_name") or None,
    )


# -- CSV with the pool's column mapping -------------------------------------------------------


def _csv(raw: bytes, mapping: CsvMapping) -> Statement:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StatementError("the CSV file is not UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=mapping.delimiter)
    columns = [c for c in _mapped_columns(mapping) if c]
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise StatementError(f"the CSV file has no column(s) {missing}", "invalid_mapping")
    lines = [_csv_line(row, mapping, number) for number, row in enumerate(reader, 1)]
    currencies = {line.currency for line in lines} or {mapping.fixed_currency}
    if len(currencies) > 1:
        raise StatementError(f"the file mixes currencies {sorted(currencies)}", "currency_mismatch")
    (currency,) = currencies
    if not currency:
        raise StatementError("the CSV file has no lines")
    return Statement("csv", "", currency, None, None, tuple(lines))


def _mapped_columns(mapping: CsvMapping) -> list[str]:
    m = mapping
    return [m.date, m.amount, m.reference, m.remittance, m.currency, m.direction, m.iban, m.name]


def _csv_line(row: Mapping[str, str | None], mapping: CsvMapping, number: int) -> StatementLine:
    where = f"line {number}"

    def cell(column: str) -> str:
        return (row.get(column) or "").strip() if column else ""

    if None in row:  # (DictReader keeps the cells of a row longer than the header there)
        raise StatementError(f"{where} has more cells than the header")
    currency = _currency(cell(mapping.currency) or mapping.fixed_currency, where)
    text = cell(mapping.amount)
    if mapping.decimal_comma:
        text = text.replace(".", "").replace(",", ".")
    negative = text.startswith("-")
    amount = _amount(text.lstrip("+-"), currency, where)
    credit = cell(mapping.direction) == mapping.credit_mark if mapping.direction else not negative
    if amount == 0:
        raise StatementError(f"{where}: the amount is zero")
    reference = cell(mapping.reference)
    if not reference:
        raise StatementError(f"{where} has no bank reference (column {mapping.reference!r})")
    return StatementLine(
        number,
        credit,
        amount,
        currency,
        reference,
        cell(mapping.date),
        cell(mapping.remittance),
        "",
        _iban(cell(mapping.iban), where),
        cell(mapping.name) or None,
    )


def line_summary(lines: Sequence[StatementLine]) -> dict[str, int]:
    """How many credits and debits a statement holds (for the import's report)."""
    credits = sum(1 for line in lines if line.credit)
    return {"credits": credits, "debits": len(lines) - credits}
