"""The fund: pools, collectives, lunar custody, donations, grants and votes, as log entries.

Commands (:class:`Fund`, split by capability across :mod:`.organisation`, :mod:`.custody`,
:mod:`.donations` and :mod:`.grants`), the rules they check (:mod:`.rules`, :mod:`.state`),
the projections that the log is replayed into (:mod:`.projections`, :mod:`.replay`), read
models (:mod:`.views`, which gathers :mod:`.pool_views`, :mod:`.grant_views` and
:mod:`.entry_views`), personal data (:mod:`.privacy`), public text and its redaction
(:mod:`.public_text`, :mod:`.redaction`), tokens (:mod:`.access`), the
governance replay of an outside audit (:mod:`.governance`, :mod:`.audit`) and the demo.

The fund builds on :mod:`ledger.log`, never the other way round. What other packages use is
re-exported here; import it from ``ledger.fund``.
"""

from __future__ import annotations

from ledger.fund import access, mail, public_text, views, webhooks
from ledger.fund.access import TokenInfo, Unauthorized, authenticate, list_tokens, revoke_token
from ledger.fund.audit import audit
from ledger.fund.bank_import import (
    ImportReport,
    csv_mapping,
    import_statement,
    save_csv_mapping,
)
from ledger.fund.chain import (
    ChainReorg,
    ChainScan,
    Receiver,
    add_receiver,
    held_transfers,
    ingest_chain,
    receivers,
)
from ledger.fund.commands import Fund
from ledger.fund.delivery import DeliverySettings, notification_tasks
from ledger.fund.demo import load_demo, start_of_demo
from ledger.fund.entry_views import newest_pool_entries, pool_entry_page
from ledger.fund.events import EVENT_TYPES
from ledger.fund.grant_views import GRANT_STATUSES, MAX_PAGE
from ledger.fund.intake import (
    decline_request,
    intake_list,
    propose_request,
    request_status,
    submit_request,
)
from ledger.fund.lunar import Cycle
from ledger.fund.money import (
    CURRENCY_EXPONENTS,
    MAX_MAJOR_DIGITS,
    display_decimals,
    display_major,
    format_major,
    minor_units,
)
from ledger.fund.pledges import (
    PledgeFigures,
    PledgeStatus,
    create_pledge,
    cycle_pledge_figures,
    end_pledge,
    find_references,
    payment_reference,
    pledge_status,
    pool_pledge_figures,
)
from ledger.fund.privacy import (
    erase,
    erase_recipient_details,
    index_references,
    recipient_commitment,
    seal_legacy_records,
)
from ledger.fund.reconcile import last_reconciliation, reconcile
from ledger.fund.redaction import OPERATOR, REASONS
from ledger.fund.replay import check_replay
from ledger.fund.rules import (
    CHANNELS,
    CONTROL_CHARACTERS,
    MAX_BATCH,
    PSEUDONYM_NO_NUMBER,
    PSEUDONYM_REGEX,
    ROLES,
    SLUG_REGEX,
    URGENCIES,
    VOTES,
    Actor,
    Outcome,
    require_role,
)
from ledger.fund.schema import cycles
from ledger.fund.screening import refused_characters
from ledger.fund.sign_in import (
    NO_COLLECTIVE,
    STAFF_ROLES,
    Ceremony,
    InvitationRefused,
    MemberSession,
    SignInRefused,
    StaffAccount,
    all_invitations,
    begin_ceremony,
    check_invitation,
    create_invitation,
    create_staff_account,
    csrf_matches,
    end_all_sessions,
    end_session,
    invitations_of,
    invite_staff,
    new_recovery_codes,
    passkey,
    passkeys_of,
    recovery_codes_left,
    register_passkey,
    revoke_invitation,
    revoke_member_access,
    revoke_staff_account,
    session_for,
    sign_in_with_passkey,
    sign_in_with_recovery_code,
    staff_account,
    staff_accounts,
    staff_principal,
    take_ceremony,
)
from ledger.fund.state import load_schedule, pool_row
from ledger.fund.statements import StatementError, parse_statement
from ledger.fund.urgency import MAX_DEADLINE_HOURS
from ledger.fund.vault import Sealed, Vault, VaultError
from ledger.fund.worker import Periodic, Worker
from ledger.fund.worker_lock import worker_lock
from ledger.fund.workspace_views import me as workspace_me
from ledger.fund.workspace_views import my_queue

__all__ = [
    "CHANNELS",
    "CONTROL_CHARACTERS",
    "CURRENCY_EXPONENTS",
    "EVENT_TYPES",
    "GRANT_STATUSES",
    "MAX_BATCH",
    "MAX_DEADLINE_HOURS",
    "MAX_MAJOR_DIGITS",
    "MAX_PAGE",
    "NO_COLLECTIVE",
    "OPERATOR",
    "PSEUDONYM_NO_NUMBER",
    "PSEUDONYM_REGEX",
    "REASONS",
    "ROLES",
    "SLUG_REGEX",
    "STAFF_ROLES",
    "URGENCIES",
    "VOTES",
    "Actor",
    "Ceremony",
    "ChainReorg",
    "ChainScan",
    "Cycle",
    "DeliverySettings",
    "Fund",
    "ImportReport",
    "InvitationRefused",
    "MemberSession",
    "Outcome",
    "Periodic",
    "PledgeFigures",
    "PledgeStatus",
    "Receiver",
    "Sealed",
    "SignInRefused",
    "StaffAccount",
    "StatementError",
    "TokenInfo",
    "Unauthorized",
    "Vault",
    "VaultError",
    "Worker",
    "access",
    "add_receiver",
    "all_invitations",
    "audit",
    "authenticate",
    "begin_ceremony",
    "check_invitation",
    "check_replay",
    "create_invitation",
    "create_pledge",
    "create_staff_account",
    "csrf_matches",
    "csv_mapping",
    "cycle_pledge_figures",
    "cycles",
    "decline_request",
    "display_decimals",
    "display_major",
    "end_all_sessions",
    "end_pledge",
    "end_session",
    "erase",
    "erase_recipient_details",
    "find_references",
    "format_major",
    "held_transfers",
    "import_statement",
    "index_references",
    "ingest_chain",
    "intake_list",
    "invitations_of",
    "invite_staff",
    "last_reconciliation",
    "list_tokens",
    "load_demo",
    "load_schedule",
    "mail",
    "minor_units",
    "my_queue",
    "new_recovery_codes",
    "newest_pool_entries",
    "notification_tasks",
    "parse_statement",
    "passkey",
    "passkeys_of",
    "payment_reference",
    "pledge_status",
    "pool_entry_page",
    "pool_pledge_figures",
    "pool_row",
    "propose_request",
    "public_text",
    "receivers",
    "recipient_commitment",
    "reconcile",
    "recovery_codes_left",
    "refused_characters",
    "register_passkey",
    "request_status",
    "require_role",
    "revoke_invitation",
    "revoke_member_access",
    "revoke_staff_account",
    "revoke_token",
    "save_csv_mapping",
    "seal_legacy_records",
    "session_for",
    "sign_in_with_passkey",
    "sign_in_with_recovery_code",
    "staff_account",
    "staff_accounts",
    "staff_principal",
    "start_of_demo",
    "submit_request",
    "take_ceremony",
    "views",
    "webhooks",
    "worker_lock",
    "workspace_me",
]
