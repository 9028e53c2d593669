"""The marshmallow schemas of the API's requests and responses.

Request schemas check shapes and types (``unknown = RAISE``; amounts are strings, so a JSON
number is refused); the ledger checks values and answers with its own stable codes. The value
rules the ledger applies are documented here too, from the ledger's own constants (lengths,
patterns, enums, ranges), so that the OpenAPI document states every rule a schema can state:
a request valid by it is refused only by a rule no schema can hold (public-text screening for
personal data, a name that must exist in the books), and those say so in
:data:`api.docs.BEYOND_SCHEMA`.
Response schemas dump the read models of :mod:`ledger.fund.views`. The Blueprint and the
strict JSON parser that load them are in :mod:`api.blueprint`.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields

from api.blueprint import SLUG_PATTERN
from ledger.fund import (
    CHANNELS,
    CONTROL_CHARACTERS,
    CURRENCY_EXPONENTS,
    EVENT_TYPES,
    GRANT_STATUSES,
    MAX_BATCH,
    MAX_DEADLINE_HOURS,
    MAX_MAJOR_DIGITS,
    MAX_PAGE,
    PSEUDONYM_NO_NUMBER,
    PSEUDONYM_REGEX,
    ROLES,
    URGENCIES,
    VOTES,
    mail,
    refused_characters,
    views,
    webhooks,
)
from ledger.log import MAX_SAFE_INTEGER

# -- requests -------------------------------------------------------------------------------


def _storable(value: str) -> None:
    """Refuse what no database column takes: NUL and lone surrogates."""
    if "\x00" in value:
        raise ma.ValidationError("NUL characters are not allowed.")
    if not _valid_unicode(value):
        raise ma.ValidationError("Not valid Unicode (a lone surrogate).")


def _valid_unicode(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Text(fields.String):
    """A string field that only admits text every database can store."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=_storable, **kwargs)


class Whole(fields.Integer):
    """A whole number, strictly (not "5", not 5.5, not true), where 5.0 is 5: JSON Schema's
    ``integer`` admits it, and so does this."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if type(value) is float and value.is_integer():
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class WholeOrAsIs(fields.Raw):
    """A value the ledger checks, passed on as it came, but 5.0 as 5 (JSON Schema's
    ``integer`` admits it)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if type(value) is float and value.is_integer():
            return int(value)
        return value


class Flag(fields.Boolean):
    """A JSON true or false, nothing else (marshmallow's Boolean takes 1, "yes", …)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


# -- the ledger's value rules, as the OpenAPI document states them (not enforced here: the
# ledger refuses with its own codes, e.g. invalid_slug, invalid_text, invalid_pseudonym)

CURRENCIES = sorted(CURRENCY_EXPONENTS)
# The longest amount any currency takes (15 digits above its minor units, ETH's 18 below).
AMOUNT_DIGITS = MAX_MAJOR_DIGITS + max(CURRENCY_EXPONENTS.values())
# What str.strip() strips: a text of these alone is blank (spelled out: ``\s`` differs
# between Python's Unicode reading, its ASCII one and JSON Schema's).
WHITESPACE = "".join(f"\\u{code:04x}" for code in range(0x10000) if chr(code).isspace())


def _not_blank(refused: str) -> str:
    """A pattern: no character of the class ``refused``, and one that is not whitespace."""
    return f"^[^{refused}]*[^{WHITESPACE}{refused}][^{refused}]*$"


def _private_text(limit: int, description: str, required: bool = True) -> fields.String:
    """Text kept private: 1-``limit`` characters, not blank, no control characters but tab,
    line feed and carriage return (422 ``invalid_text``)."""
    return Text(
        required=required,
        metadata={
            "description": description,
            "minLength": 1,
            "maxLength": limit,
            "pattern": _not_blank(CONTROL_CHARACTERS),
        },
    )


SCREENED = (
    "Public: written to the permanent log. Besides the length and the characters this "
    "schema states (422 invalid_text), the ledger screens it for personal data, which no "
    "pattern can state: text that looks like an email address, a phone number, an IBAN or "
    "a payment card number is refused with 422 personal_data_suspected."
)


def _public_text(
    limit: int, *, one_line: bool, description: str = "", required: bool = True
) -> fields.String:
    """Text bound for the public log: 1-``limit`` characters, not blank, none of the
    characters the ledger's screening refuses (controls, line breaks where ``one_line``,
    bidirectional and zero-width characters)."""
    return Text(
        required=required,
        metadata={
            "description": f"{description} {SCREENED}".strip(),
            "minLength": 1,
            "maxLength": limit,
            "pattern": _not_blank(refused_characters(one_line=one_line)),
        },
    )


def _slug(description: str = "", **kwargs: Any) -> fields.String:
    metadata = {"pattern": SLUG_PATTERN, "minLength": 1, "maxLength": 64}
    if description:
        metadata["description"] = description
    return Text(metadata=metadata, **kwargs)


PSEUDONYM = {
    "pattern": f"^{PSEUDONYM_NO_NUMBER}{PSEUDONYM_REGEX}$",
    "minLength": 1,
    "maxLength": 64,
}


def _pseudonym(description: str, **kwargs: Any) -> fields.String:
    """A public pseudonym: 1-64 of [a-z0-9._-], no run of six digits (422
    ``invalid_pseudonym``)."""
    return Text(metadata={"description": description, **PSEUDONYM}, **kwargs)


def _currency(**kwargs: Any) -> fields.String:
    return Text(metadata={"enum": CURRENCIES, "example": "EUR"}, **kwargs)


def _amount(required: bool = True) -> fields.String:
    return Text(
        required=required,
        metadata={
            "description": "Minor units as a string of digits (a JSON number is refused); "
            f"at most 15 digits above the currency's minor units ({AMOUNT_DIGITS} for "
            "the currencies with 18 decimals; more is 422 amount_too_large)",
            "pattern": "^[1-9][0-9]*$",
            "maxLength": AMOUNT_DIGITS,
            "example": "1500",
        },
    )


def _one_of(values: tuple[str, ...], required: bool = True) -> fields.String:
    return Text(required=required, metadata={"enum": list(values)})


def _event_types(events: tuple[str, ...], description: str) -> fields.List[Any]:
    return fields.List(
        Text(metadata={"enum": list(events)}),
        metadata={"description": description, "minItems": 1},
    )


def _amounts_by_currency(example: str) -> fields.Dict:
    return fields.Dict(
        keys=Text(metadata={"enum": CURRENCIES}),
        values=_amount(),
        metadata={
            "example": {"EUR": example},
            "description": "Amounts by currency; each currency must be one of the pool's "
            "currencies (else 422 invalid_currencies)",
        },
    )


class NewPool(Strict):
    slug = _slug(required=True)
    name = _public_text(200, one_line=True)
    currencies = fields.List(
        _currency(),
        required=True,
        metadata={"example": ["EUR"], "minItems": 1, "uniqueItems": True},
    )
    fast_lane_cap = _amounts_by_currency("5000")
    cycle_allowance = _amounts_by_currency("20000")
    urgent_deadline_hours = WholeOrAsIs(
        metadata={
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_DEADLINE_HOURS,
            "description": "Decision deadline for urgent grants, in hours (default 72)",
        }
    )
    overdue_approval = fields.Raw(
        metadata={
            "type": "boolean",
            "description": "Past the deadline, any single custodian member may approve an "
            "urgent grant within the fast-lane cap (default false)",
        }
    )


class NewCollective(Strict):
    slug = _slug(required=True)
    name = _public_text(200, one_line=True)
    quorum = Whole(
        allow_none=True,
        metadata={"description": "Default: a majority", "minimum": 1, "maximum": 1000},
    )


class NewMember(Strict):
    member = _pseudonym("Public pseudonym", required=True)


class Roster(Strict):
    collectives = fields.List(
        _slug(),
        required=True,
        metadata={
            "description": "Custody order: registered collectives (else 422 "
            "unknown_collective), each once",
            "minItems": 1,
            "uniqueItems": True,
        },
    )


class QuickLoad(Strict):
    """A Strict schema with a fast path: what :meth:`quick_load` returns (not None) for a
    plain ``load`` is the result; otherwise marshmallow's full load runs, and its errors."""

    def quick_load(self, data: Any) -> Any:
        return None

    def load(
        self,
        data: Any,
        *,
        many: bool | None = None,
        partial: bool | Any = None,
        unknown: Any = None,
    ) -> Any:
        many = self.many if many is None else many
        if not many and not partial and unknown in (None, ma.RAISE):
            loaded = self.quick_load(data)
            if loaded is not None:
                return loaded
        return super().load(data, many=many, partial=partial, unknown=unknown)


class TextOnly(QuickLoad):
    """A Strict schema of Text fields, with a fast path for input that is right as it stands.

    Such input (an object of declared keys, every required one present, every value storable
    text) loads as a copy of itself, which is what marshmallow would return, without its
    per-field machinery (tens of microseconds a field: a donations batch has 1,000 items).
    Anything else takes marshmallow's full load, so errors are exactly its own."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        loaded = {field.data_key or name: field for name, field in self.load_fields.items()}
        # Only plain Text fields are known to load a string as itself; otherwise no fast path.
        self._plain = all(type(field) is Text for field in loaded.values())
        self._names = frozenset(loaded)
        self._required = frozenset(key for key, field in loaded.items() if field.required)

    def loads_as_itself(self, item: Any) -> bool:
        if not self._plain or type(item) is not dict:
            return False
        keys = item.keys()
        if not keys <= self._names or not self._required <= keys:
            return False
        for value in item.values():  # (a loop: a generator costs more than these checks)
            if type(value) is not str or "\x00" in value or not _valid_unicode(value):
                return False
        return True

    def quick_load(self, data: Any) -> Any:
        return dict(data) if self.loads_as_itself(data) else None


class NewDonation(TextOnly):
    amount = _amount()
    currency = _currency(required=True)
    channel = _one_of(CHANNELS)
    external_reference = _private_text(200, "Bank or chain reference; kept private")
    donor_reference = _private_text(200, "Kept private", required=False)
    display_name = _public_text(
        64, one_line=True, description="Shown only if the donor opts in.", required=False
    )
    note = _private_text(500, "Kept private", required=False)


class DonationBatch(QuickLoad):
    donations = fields.List(
        fields.Nested(NewDonation),
        required=True,
        metadata={"minItems": 1, "maxItems": MAX_BATCH},
    )

    def quick_load(self, data: Any) -> Any:
        """Items that load as themselves (see TextOnly) skip marshmallow, which would take
        about as long as recording them; a batch with any other item takes the full load."""
        if type(data) is not dict or data.keys() != {"donations"}:
            return None
        items = data["donations"]
        if type(items) is not list or not all(_DONATION.loads_as_itself(i) for i in items):
            return None
        return {"donations": [dict(item) for item in items]}


_DONATION = NewDonation()


class NewGrant(Strict):
    amount = _amount()
    currency = _currency(required=True)
    purpose = _public_text(2000, one_line=False)
    urgency = _one_of(URGENCIES, required=False)
    recipient = _pseudonym("Public pseudonym", required=True)
    recipient_details = _private_text(2000, "Kept private", required=False)


class NewVote(Strict):
    vote = _one_of(VOTES)
    note = _public_text(500, one_line=False, required=False)
    fast_lane = Flag(
        metadata={
            "description": "Approve alone an urgent grant within the fast-lane cap; only "
            "with vote approve (else 422 invalid_vote)"
        }
    )
    overdue = Flag(
        metadata={
            "description": "Approve alone an urgent grant past the pool's decision deadline, "
            "within the fast-lane cap, where the pool's policy allows it; only with vote "
            "approve (else 422 invalid_vote)"
        }
    )


class NewDisbursement(Strict):
    payment_reference = _private_text(200, "Kept private")


class Cancellation(Strict):
    reason = _public_text(500, one_line=False)


class NewCorrection(Strict):
    corrects = Whole(
        required=True,
        validate=ma.validate.Range(min=0, max=MAX_SAFE_INTEGER),
        metadata={"description": "seq of the donation or disbursement to reverse"},
    )
    reason = _public_text(500, one_line=False)


class NewToken(Strict):
    role = _one_of(ROLES)
    label = _private_text(200, "Private note for admins")
    collective = _slug("member tokens only (else 422 invalid_role)")
    member = _pseudonym(
        "member tokens only, with collective: an active member of it (else 422 unknown_member)"
    )
    expires = fields.AwareDateTime(
        metadata={"description": "RFC 3339 instant, in the future (else 422 invalid_expiry)"}
    )


class GrantQuery(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # a query string may carry a cache-buster

    status = _one_of(GRANT_STATUSES, required=False)
    after = fields.Integer(
        validate=ma.validate.Range(min=0, max=MAX_SAFE_INTEGER),
        metadata={"description": "Cursor: the last grant id of a page"},
    )
    limit = fields.Integer(load_default=50, metadata={"maximum": MAX_PAGE, "minimum": 1})


# -- responses ------------------------------------------------------------------------------


def _data(field: fields.Field[Any], name: str) -> fields.Field[Any]:
    """A field read from the written entry's data, as readers see it: a public text (a
    purpose, a note, a reason) is its text, or ``[redacted]``."""
    field.attribute = f"shown.{name}"
    return field


def _texts(attribute: str = "texts") -> fields.Field[Any]:
    """The public texts served beside the entry, as ``/api/v1/ledger/entries`` serves them."""
    return fields.Dict(
        attribute=attribute,
        metadata={
            "description": "The public texts the entry commits to, by field: {commitment, "
            "text, salt, redacted_seq} (see /api/v1/ledger/entries)"
        },
    )


class Posting(ma.Schema):
    account = fields.String()
    currency = fields.String()
    amount = fields.String(metadata={"description": "Signed minor units"})


class CycleSpan(ma.Schema):
    number = fields.Integer(metadata={"description": "Meeus lunation number"})
    start = fields.String()
    end = fields.String()


class WrittenEntry(ma.Schema):
    seq = fields.Integer(metadata={"description": "Log sequence number of the entry"})
    ts = fields.String()
    entry_hash = fields.String(metadata={"description": "RFC 9162 leaf hash, hex"})


class PoolCreated(WrittenEntry):
    slug = _data(fields.String(), "slug")
    name = _data(fields.String(), "name")
    currencies = _data(fields.List(fields.String()), "currencies")
    fast_lane_cap = _data(
        fields.Dict(keys=fields.String(), values=fields.String()), "fast_lane_cap"
    )
    cycle_allowance = _data(
        fields.Dict(keys=fields.String(), values=fields.String()), "cycle_allowance"
    )
    cycle = _data(fields.Nested(CycleSpan), "cycle")
    urgent_deadline_hours = _data(fields.Integer(), "urgent_deadline_hours")
    overdue_approval = _data(fields.Boolean(), "overdue_approval")


class CollectiveRegistered(WrittenEntry):
    slug = _data(fields.String(), "slug")
    name = _data(fields.String(), "name")
    quorum = _data(fields.Integer(allow_none=True), "quorum")


class RosterSet(WrittenEntry):
    pool = _data(fields.String(), "pool")
    collectives = _data(fields.List(fields.String()), "collectives")
    effective_cycle = _data(fields.Integer(), "effective_cycle")
    custodian_now = _data(fields.String(allow_none=True), "custodian_now")


class Token(ma.Schema):
    id = fields.String()
    role = fields.String()
    collective = fields.String(allow_none=True)
    member = fields.String(allow_none=True)
    label = fields.String()
    created = fields.String()
    expires = fields.String(allow_none=True)
    revoked = fields.String(allow_none=True)


class IssuedToken(ma.Schema):
    token = fields.String(
        allow_none=True,
        metadata={"description": "The bearer token, shown once; null on an idempotent replay"},
    )
    id = fields.String(attribute="info.id")
    role = fields.String(attribute="info.role")
    collective = fields.String(attribute="info.collective", allow_none=True)
    member = fields.String(attribute="info.member", allow_none=True)
    label = fields.String(attribute="info.label")
    created = fields.String(attribute="info.created")
    expires = fields.String(attribute="info.expires", allow_none=True)


class MemberAdded(ma.Schema):
    seq = fields.Integer(attribute="entry.seq")
    ts = fields.String(attribute="entry.ts")
    entry_hash = fields.String(attribute="entry.entry_hash")
    collective = fields.String(attribute="entry.data.collective")
    member = fields.String(attribute="entry.data.member")
    token = fields.Nested(IssuedToken)


class Receipt(ma.Schema):
    seq = fields.Integer()
    receipt_id = fields.Integer()
    entry_hash = fields.String()
    ts = fields.String()
    pool = fields.String()
    amount = fields.String()
    currency = fields.String()
    channel = fields.String()
    cycle = fields.Integer()
    commitment = fields.String(metadata={"description": "SHA-256(salt || donor reference)"})
    salt = fields.String(
        allow_none=True, metadata={"description": "Hex; the donor keeps it to open the commitment"}
    )
    display_name = fields.String(allow_none=True)


class Receipts(ma.Schema):
    receipts = fields.List(fields.Nested(Receipt))

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """A batch's receipts (up to 1,000) are plain values already: copied out attribute by
        attribute, which is what the Receipt schema's String and Integer fields of the same
        names return, without marshmallow's per-field machinery. Anything else: marshmallow."""
        plain_call = not (self.many if many is None else many) and type(obj) is dict
        if plain_call and obj.keys() == {"receipts"}:
            receipts = obj["receipts"]
            if all(type(receipt) is views.Receipt for receipt in receipts):
                return {"receipts": [_receipt_values(receipt) for receipt in receipts]}
        return super().dump(obj, many=many)


_RECEIPT_FIELDS = tuple(Receipt._declared_fields)


def _receipt_values(receipt: views.Receipt) -> dict[str, Any]:
    return {name: getattr(receipt, name) for name in _RECEIPT_FIELDS}


class GrantProposed(WrittenEntry):
    id = fields.Method("_grant_id", metadata={"type": "integer", "description": "= seq"})
    pool = _data(fields.String(), "pool")
    amount = _data(fields.String(), "amount")
    currency = _data(fields.String(), "currency")
    purpose = _data(fields.String(), "purpose")
    urgency = _data(fields.String(), "urgency")
    recipient = _data(fields.String(), "recipient")
    cycle = _data(fields.Integer(), "cycle")
    status = fields.Constant("proposed")
    texts = _texts()

    def _grant_id(self, written: Any) -> int:
        grant_id: int = written.seq
        return grant_id


class Decision(ma.Schema):
    seq = fields.Integer()
    decision = fields.String()
    lane = fields.String()
    cycle = fields.Integer()
    approvals = fields.List(fields.String())
    rejections = fields.List(fields.String())
    quorum = fields.Integer(allow_none=True)
    allowance_left = fields.String(allow_none=True)


class VoteResult(ma.Schema):
    seq = fields.Integer(attribute="vote.seq")
    ts = fields.String(attribute="vote.ts")
    entry_hash = fields.String(attribute="vote.entry_hash")
    grant = fields.Integer()
    member = fields.String(attribute="vote.data.member")
    collective = fields.String(attribute="vote.data.collective")
    vote = fields.String(attribute="vote.data.vote")
    fast_lane = fields.Boolean(attribute="vote.data.fast_lane")
    note = fields.String(attribute="vote.shown.note")
    cycle = fields.Integer(attribute="vote.data.cycle")
    status = fields.String(metadata={"description": "The grant's status after this vote"})
    approvals = fields.List(fields.String())
    rejections = fields.List(fields.String())
    decision = fields.Nested(Decision, allow_none=True)
    texts = _texts("vote.texts")


class _MoneyEntry(WrittenEntry):
    grant = _data(fields.Integer(), "grant")
    pool = _data(fields.String(), "pool")
    amount = _data(fields.String(), "amount")
    currency = _data(fields.String(), "currency")
    cycle = _data(fields.Integer(), "cycle")
    postings = _data(fields.List(fields.Nested(Posting)), "postings")


class GrantDisbursed(_MoneyEntry):
    reference = _data(fields.String(), "reference")  # commits to the private payment reference


class GrantCancelled(_MoneyEntry):
    reason = _data(fields.String(), "reason")
    was = _data(fields.String(), "was")
    texts = _texts()


class CorrectionWritten(_MoneyEntry):
    corrects = _data(fields.Integer(), "corrects")
    corrected_kind = _data(fields.String(), "corrected_kind")
    fund_change = _data(fields.String(), "fund_change")
    reason = _data(fields.String(), "reason")
    texts = _texts()


class CurrencyBooks(ma.Schema):
    currency = fields.String()
    donations = fields.String()
    committed = fields.String()
    disbursed = fields.String()
    available = fields.String()
    fast_lane_cap = fields.String()
    fast_lane_allowance = fields.String()
    fast_lane_left = fields.String(metadata={"description": "Left in the current cycle"})


class Pool(ma.Schema):
    slug = fields.String()
    name = fields.String()
    currencies = fields.List(fields.String())
    created_seq = fields.Integer()
    cycle = fields.Nested(CycleSpan, metadata={"description": "The cycle in force now"})
    custodian = fields.String(allow_none=True)
    next_handover = fields.String(metadata={"description": "The next new moon"})
    roster = fields.List(fields.String())
    books = fields.List(fields.Nested(CurrencyBooks))


class ResponseFigures(ma.Schema):
    deadline_hours = fields.Integer()
    on_time = fields.Integer(metadata={"description": "Urgent grants decided within it"})
    counted = fields.Integer(metadata={"description": "Urgent grants decided or due"})
    decided = fields.Integer(metadata={"description": "Urgent grants decided in the cycle"})
    median_seconds = fields.Integer(allow_none=True)


class CycleResponse(ma.Schema):
    cycle = fields.Integer()
    start = fields.String()
    end = fields.String()
    closed = fields.Boolean()
    figures = fields.Nested(ResponseFigures)
    stated = fields.Boolean(metadata={"description": "As the handover entry states them"})
    carried_over = fields.List(fields.Integer(), metadata={"description": "Grants passed on"})
    voided_votes = fields.List(fields.Integer())
    handover_seq = fields.Integer(allow_none=True)


class UrgencyPolicy(ma.Schema):
    deadline_hours = fields.Integer()
    overdue_approval = fields.Boolean()


class PoolResponses(ma.Schema):
    policy = fields.Nested(UrgencyPolicy)
    cycles = fields.List(fields.Nested(CycleResponse), metadata={"description": "Newest first"})


class Cycle(ma.Schema):
    pool = fields.String()
    number = fields.Integer()
    start = fields.String()
    end = fields.String()
    custodian = fields.String(allow_none=True)
    opening = fields.Dict(keys=fields.String(), values=fields.String())
    flows = fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String()))
    statement = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.String()),
        allow_none=True,
        metadata={"description": "Roll-forward per currency, once the cycle is closed"},
    )
    opened_seq = fields.Integer()
    closed_seq = fields.Integer(allow_none=True)


class Collective(ma.Schema):
    slug = fields.String()
    name = fields.String()
    quorum = fields.Integer()
    quorum_policy = fields.String(metadata={"enum": ["fixed", "majority"]})
    members = fields.List(fields.String())
    created_seq = fields.Integer()


class Vote(ma.Schema):
    seq = fields.Integer()
    member = fields.String()
    collective = fields.String()
    vote = fields.String()
    note = fields.String(allow_none=True)
    cycle = fields.Integer()
    void = fields.Boolean()


class GrantSummary(ma.Schema):
    id = fields.Integer()
    pool = fields.String()
    amount = fields.String()
    currency = fields.String()
    purpose = fields.String()
    urgency = fields.String()
    recipient = fields.String()
    proposer = fields.String()
    proposed_at = fields.String()
    proposed_cycle = fields.Integer()
    status = fields.String()
    lane = fields.String(allow_none=True)
    decided_seq = fields.Integer(allow_none=True)
    disbursed_seq = fields.Integer(allow_none=True)
    cancelled_seq = fields.Integer(allow_none=True)
    approvals = fields.Integer(metadata={"description": "Counted (non-void) approvals"})
    rejections = fields.Integer()
    deadline = fields.String(
        allow_none=True, metadata={"description": "Urgent grants: decide by then"}
    )
    overdue = fields.Boolean(metadata={"description": "Urgent, open and past its deadline"})
    age_seconds = fields.Integer(
        allow_none=True, metadata={"description": "Since the proposal, while still proposed"}
    )


class Grant(GrantSummary):
    votes = fields.List(fields.Nested(Vote))
    decision = fields.Nested(Decision, allow_none=True)


class GrantPage(ma.Schema):
    items = fields.List(fields.Nested(GrantSummary))
    next = fields.Integer(allow_none=True, metadata={"description": "Pass as after="})


# -- notifications: webhooks and mail (ledger.fund.webhooks, ledger.fund.mail) ---------------


class NewWebhook(Strict):
    url = Text(
        required=True,
        metadata={
            "description": "http(s) URL whose host resolves to a public address (else 422 "
            "invalid_url or private_target)",
            "example": "https://x.example/h",
            "minLength": 1,
            "maxLength": webhooks.MAX_URL,
            "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[\\x21-\\x7e]+$",
        },
    )
    events = _event_types(EVENT_TYPES, "Event types (docs/formats.md); default: all")


class Webhook(ma.Schema):
    id = fields.String()
    url = fields.String()
    collective = fields.String(allow_none=True, metadata={"description": "null: the whole fund"})
    events = fields.List(fields.String())
    created = fields.String()
    disabled_at = fields.String(allow_none=True)
    disabled_reason = fields.String(allow_none=True)
    failures_in_a_row = fields.Integer()


class CreatedWebhook(Webhook):
    secret = fields.String(
        allow_none=True,
        metadata={"description": "whsec_… signing secret, shown once; null on a replay"},
    )


class WebhookDelivery(ma.Schema):
    id = fields.Integer()
    event_id = fields.String(metadata={"description": "The webhook-id header"})
    event_type = fields.String()
    status = fields.String(metadata={"enum": ["pending", "delivered", "failed", "cancelled"]})
    attempts = fields.Integer()
    created = fields.String()
    last_attempt = fields.String(allow_none=True)
    last_status = fields.Integer(allow_none=True, metadata={"description": "HTTP status"})
    last_error = fields.String(allow_none=True)
    next_attempt = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)


class NewMailSubscription(Strict):
    email = Text(
        required=True,
        metadata={
            "description": "Kept sealed and erasable",
            "maxLength": mail.MAX_ADDRESS,
            # ledger.fund.mail's rule, with its \\s spelled out
            "pattern": f'^[^@{WHITESPACE}<>()\\[\\],;:"\\\\]+'
            "@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$",
        },
    )
    language = Text(required=True, metadata={"enum": list(mail.LANGUAGES)})
    events = _event_types(mail.MAIL_EVENTS, "Event types; default: all but checkpoints")


class MailSubscription(ma.Schema):
    member = fields.String()
    collective = fields.String()
    language = fields.String()
    events = fields.List(fields.String())
    created = fields.String()


class StatementUpload(Strict):
    statement = fields.String(
        required=True,
        metadata={
            "description": "The statement file's text: ISO 20022 camt.053 or camt.054 XML, "
            "SWIFT MT940, or CSV read with the pool's saved column mapping"
        },
    )


class ImportQuery(Strict):
    dry_run = fields.Boolean(
        load_default=False, metadata={"description": "Show what would be recorded; record nothing"}
    )


class CsvMappingBody(Strict):
    mapping = fields.Dict(
        keys=fields.String(),
        required=True,
        metadata={
            "description": "Column names: date, amount, reference (required), remittance, "
            "currency or fixed_currency, direction and credit_mark, iban, name; delimiter, "
            "decimal_comma"
        },
    )


class ImportedStatement(Strict):
    format = fields.String(required=True)
    id = fields.String(required=True)
    currency = fields.String(required=True)
    closing = fields.String(allow_none=True, metadata={"description": "Signed minor units"})
    closing_date = fields.String(allow_none=True)
    lines = fields.Integer(required=True)


class ImportLine(Strict):
    number = fields.Integer(required=True)
    direction = fields.String(required=True, metadata={"enum": ["credit", "debit"]})
    amount = fields.String(required=True)
    currency = fields.String(required=True)
    reference = fields.String(required=True, metadata={"description": "The bank's reference"})
    booked = fields.String(required=True)
    action = fields.String(
        required=True, metadata={"enum": ["record", "skip", "matched", "unmatched"]}
    )
    reason = fields.String(required=True)
    detail = fields.String(required=True)
    grant = fields.Integer(allow_none=True)
    seq = fields.Integer(allow_none=True)


class ImportReport(Strict):
    pool = fields.String(required=True)
    dry_run = fields.Boolean(required=True)
    statement = fields.Nested(ImportedStatement, required=True)
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    recorded = fields.Integer(required=True)
    pledge_payments = fields.Integer(
        metadata={"description": "Credits matched to pledges by their payment reference"}
    )
    lines = fields.List(fields.Nested(ImportLine), required=True)


# -- pledges (api/pledges.py) -----------------------------------------------------------------


class NewPledge(Strict):
    currency = _currency(required=True)
    amount = _amount()


class PledgeMade(ma.Schema):
    id = fields.String(required=True)
    secret = fields.String(required=True, metadata={"description": "Shown once; keep it"})
    link = fields.String(required=True, metadata={"description": "The pledge's secret page"})
    reference = fields.String(
        required=True,
        metadata={"description": "Put it in every transfer", "example": "LUN-39SX-ADD6"},
    )
    pool = fields.String(required=True)
    currency = fields.String(required=True)
    amount = fields.String(required=True, metadata={"description": "Minor units per cycle"})
    created = fields.String(required=True)


class PledgePayment(ma.Schema):
    cycle = fields.Integer(required=True)
    amount = fields.String(required=True)


class PledgeStatus(ma.Schema):
    id = fields.String(required=True)
    reference = fields.String(required=True)
    pool = fields.String(required=True)
    currency = fields.String(required=True)
    amount = fields.String(required=True)
    created = fields.String(required=True)
    ended = fields.String(allow_none=True)
    state = fields.String(required=True, metadata={"enum": ["active", "lapsed", "ended"]})
    payments = fields.List(
        fields.Nested(PledgePayment), metadata={"description": "Received per cycle, oldest first"}
    )
