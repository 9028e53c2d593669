"""Tables of the fund (SQLAlchemy Core), on the log's metadata; migrations create them.

The projections are the relational view of the log, rebuilt by replaying it (``lunaria replay
--check`` compares). The rest are not derived from the log: the persisted lunar boundaries,
the private (erasable) records, the public (redactable) texts and the API tokens.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ledger.log.schema import entries, metadata

# -- Projections: rebuilt by replaying the log (``lunaria replay --check`` compares). ----------
# Amounts are digit strings (minor units), as in the log, so no engine rounds them.

pools = Table(
    "pools",
    metadata,
    Column("slug", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("currencies", Text, nullable=False),  # JSON list
    Column("fast_lane_cap", Text, nullable=False),  # JSON {currency: amount}
    Column("cycle_allowance", Text, nullable=False),  # JSON {currency: amount}
    Column("created_seq", BigInteger, nullable=False),
    Column("created_cycle", Integer, nullable=False),
    # The cycle the pool's books are in: its last custody_transferred (or creation) cycle.
    Column("current_cycle", Integer, nullable=False),
    # The urgency policy (ledger.fund.urgency): pool_created data version 2, else the defaults.
    Column("urgent_deadline_hours", Integer, nullable=False, server_default="72"),
    Column("overdue_approval", Integer, nullable=False, server_default="0"),
)

collectives = Table(
    "collectives",
    metadata,
    Column("slug", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("quorum", Integer, nullable=True),  # NULL: majority of active members
    Column("created_seq", BigInteger, nullable=False),
)

members = Table(
    "members",
    metadata,
    Column("id", String(64), primary_key=True),  # public pseudonym
    Column("collective", String(64), nullable=False, index=True),
    Column("active", Integer, nullable=False),
    Column("added_seq", BigInteger, nullable=False),
    Column("removed_seq", BigInteger, nullable=True),
)

rosters = Table(
    "rosters",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("pool", String(64), nullable=False, index=True),
    Column("effective_cycle", Integer, nullable=False),
    Column("collectives", Text, nullable=False),  # JSON list, rotation order
)

cycles = Table(
    "cycles",
    metadata,
    Column("pool", String(64), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("starts_at", String(27), nullable=False),
    Column("ends_at", String(27), nullable=False),
    Column("custodian", String(64), nullable=True),
    Column("opened_seq", BigInteger, nullable=False),
    Column("opening", Text, nullable=False),  # JSON {currency: fund at the start}
    Column("statement", Text, nullable=True),  # JSON roll-forward, set at the handover
    Column("closed_seq", BigInteger, nullable=True),
    # JSON response figures of urgent grants, from a handover of data version 2.
    Column("response", Text, nullable=True),
)

grants = Table(
    "grants",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # seq of the proposal
    Column("pool", String(64), nullable=False, index=True),
    Column("amount", String(40), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("purpose", Text, nullable=False),  # version 1: the text; version 2: ""
    Column("purpose_commitment", String(64), nullable=True),  # version 2 (public_texts)
    Column("urgency", String(8), nullable=False),
    Column("recipient", String(64), nullable=False),
    Column("proposer", String(100), nullable=False),
    Column("proposed_ts", String(27), nullable=False),
    Column("proposed_cycle", Integer, nullable=False),
    Column("status", String(12), nullable=False),
    Column("lane", String(12), nullable=True),
    Column("decided_seq", BigInteger, nullable=True),
    Column("decided_cycle", Integer, nullable=True),
    Column("disbursed_seq", BigInteger, nullable=True),
    Column("closed_seq", BigInteger, nullable=True),  # cancelled
    Column("decided_ts", String(27), nullable=True),  # ts of the grant_decided entry
    Column("closed_ts", String(27), nullable=True),  # ts of the grant_cancelled entry
)

votes = Table(
    "votes",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("grant_id", BigInteger, nullable=False, index=True),
    Column("member", String(64), nullable=False),
    Column("collective", String(64), nullable=False),
    Column("vote", String(8), nullable=False),
    Column("note", Text, nullable=True),  # version 1: the text; version 2: NULL
    Column("note_commitment", String(64), nullable=True),  # version 2 (public_texts)
    Column("cycle", Integer, nullable=False),
    Column("void", Integer, nullable=False),
)

balances = Table(
    "balances",
    metadata,
    Column("pool", String(64), primary_key=True),
    Column("currency", String(8), primary_key=True),
    Column("account", String(16), primary_key=True),
    Column("amount", String(48), nullable=False),  # signed digit string
)

cycle_flows = Table(
    "cycle_flows",
    metadata,
    Column("pool", String(64), primary_key=True),
    Column("cycle", Integer, primary_key=True, autoincrement=False),
    Column("currency", String(8), primary_key=True),
    Column("donations", String(48), nullable=False),
    Column("disbursements", String(48), nullable=False),
    Column("corrections", String(48), nullable=False),  # signed: net effect on the fund
    Column("fast_lane_used", String(48), nullable=False),
)

donations = Table(
    "donations",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("pool", String(64), nullable=False, index=True),
    Column("amount", String(40), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("donor", Text, nullable=False),  # commitment hex, or "name:<opt-in display name>"
    Column("ts", String(27), nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("corrected_seq", BigInteger, nullable=True),
)

# Which entries are a pool's (``data.pool``, or the slug a ``pool_created`` names), for the
# pool's page, its feed and ``?pool=`` on the public entry list: newest first by the key.
entry_pools = Table(
    "entry_pools",
    metadata,
    Column("pool", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
)

# Each pool's entries (``entry_pools``) with the entries themselves, read by the pool's key.
pools_entries = entry_pools.join(entries, entries.c.seq == entry_pools.c.seq)

PROJECTION_TABLES = (
    pools,
    collectives,
    members,
    rosters,
    cycles,
    grants,
    votes,
    balances,
    cycle_flows,
    donations,
    entry_pools,
)

# -- Not derived from the log. --------------------------------------------------------------

lunar_boundaries = Table(
    "lunar_boundaries",
    metadata,
    Column("lunation", Integer, primary_key=True, autoincrement=False),
    Column("starts_at", String(27), nullable=False),
)

# One bank or chain reference, one donation: the reference is private, so it is compared
# through a keyed hash (see ledger.fund.privacy.reference_digest), unique per pool.
donation_references = Table(
    "donation_references",
    metadata,
    Column("digest", String(64), primary_key=True),  # (its HMAC message names the pool)
    Column("pool", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
)

# Personal data, keyed by the public commitment, sealed (ledger.fund.vault): the salt and the
# data encrypted under a data key of its own, wrapped by the vault key ``key_id``. Nothing
# public reads this table; erasing a row (``lunaria erase``) leaves every hash and proof valid.
private_records = Table(
    "private_records",
    metadata,
    Column("commitment", String(64), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)

# Public text (a donor's display name, a grant's purpose, vote notes, cancellation and
# correction reasons) behind the commitments of entry data version 2 (ledger.fund.public_text):
# served beside the entry at ``seq`` so anyone can check it. Redacting one sets text and salt
# to NULL and records the ``text_redacted`` entry; replaying the log cannot rebuild this table.
public_texts = Table(
    "public_texts",
    metadata,
    Column("commitment", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False, index=True),
    Column("field", String(16), nullable=False),  # where in the entry's data: "donor.name"
    Column("text", Text, nullable=True),
    Column("salt", String(64), nullable=True),  # hex
    Column("redacted_seq", BigInteger, nullable=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("role", String(12), nullable=False),
    Column("collective", String(64), nullable=True),
    Column("member", String(64), nullable=True),
    Column("label", Text, nullable=False),
    Column("created_ts", String(27), nullable=False),
    Column("expires_ts", String(27), nullable=True),
    Column("revoked_ts", String(27), nullable=True),
)

# -- Notifications (ledger.fund.events, webhooks, mail, delivery): not derived from the log. --

# How far the event derivation has read: "entries" (a seq) and "checkpoints" (a tree size).
# Created at the first subscription; until then nobody listens and nothing is derived.
notification_cursors = Table(
    "notification_cursors",
    metadata,
    Column("name", String(16), primary_key=True),
    Column("position", BigInteger, nullable=False),
)

# The outbox: each event once, its payload as the exact bytes every delivery sends. The id is
# derived from what caused it ("e42.grant.proposed"), so deriving it again finds it.
notification_events = Table(
    "notification_events",
    metadata,
    Column("id", String(120), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("created_ts", String(27), nullable=False),
    Column("payload", Text, nullable=False),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("url", Text, nullable=False),
    Column("collective", String(64), nullable=True, index=True),  # NULL: the whole fund
    Column("events", Text, nullable=False),  # JSON list of event types
    Column("created_by", String(100), nullable=False),
    Column("created_ts", String(27), nullable=False),
    Column("failures_in_a_row", Integer, nullable=False),
    Column("disabled_ts", String(27), nullable=True),
    Column("disabled_reason", Text, nullable=True),
)

# An endpoint's signing secret (whsec_…), sealed by the vault as a private record is: AES-GCM
# under a data key of its own, wrapped by the vault key ``key_id``; the associated data names
# the endpoint, so a row copied to another endpoint does not open (ledger.fund.webhooks).
webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("endpoint", String(16), primary_key=True),
    Column("key_id", String(16), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)

# A member's opt-in to mail; the address is a sealed private record (kind "email") under
# ``commitment``, erased with the subscription.
email_subscriptions = Table(
    "email_subscriptions",
    metadata,
    Column("member", String(64), primary_key=True),
    Column("collective", String(64), nullable=False, index=True),
    Column("commitment", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("events", Text, nullable=False),  # JSON list of event types
    Column("created_ts", String(27), nullable=False),
)

# One row per event and target ("webhook" endpoint id, or "email" member), with its retries.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("event_id", String(120), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("target", String(64), nullable=False),
    Column("status", String(10), nullable=False),  # pending, delivered, failed, cancelled
    Column("attempts", Integer, nullable=False),
    Column("created_ts", String(27), nullable=False),
    Column("next_attempt_ts", String(27), nullable=True),  # set while pending
    Column("last_attempt_ts", String(27), nullable=True),
    Column("last_status", Integer, nullable=True),  # the HTTP status of the last answer
    Column("last_error", Text, nullable=True),
    Column("delivered_ts", String(27), nullable=True),
    UniqueConstraint("event_id", "channel", "target", name="uq_deliveries_event_target"),
    Index("ix_deliveries_due", "status", "next_attempt_ts"),
    Index("ix_deliveries_target", "channel", "target", "id"),
)
