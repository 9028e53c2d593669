"""Read models: what the API and the web pages show, under one name (``views.list_pools``).

They live by what they read: pools, their lunar cycles and collectives in
:mod:`ledger.fund.pool_views`; grants, votes and decisions in :mod:`ledger.fund.grant_views`;
what writes appended, receipts and entries of the log in :mod:`ledger.fund.entry_views`.
This module only gathers them; modules inside ``ledger`` import from where a name is defined.
"""

from __future__ import annotations

from ledger.fund.entry_views import (
    EntryPlace,
    Receipt,
    Written,
    donation_receipt,
    donation_receipts,
    entry_place,
    newest_pool_entries,
    pool_entries,
    pool_entry_page,
    published_vkey,
    recorded_receipts,
    written,
)
from ledger.fund.grant_views import (
    GRANT_STATUSES,
    MAX_PAGE,
    DecisionView,
    GrantPage,
    GrantView,
    VoteResult,
    VoteView,
    grant_detail,
    grant_queue,
    recent_decisions,
    vote_result,
)
from ledger.fund.pool_views import (
    MOON_PHASES,
    CollectiveView,
    CurrencyBooks,
    CycleSpan,
    CycleView,
    LunarNow,
    PoolView,
    collective_detail,
    current_cycle,
    custodian_quorum,
    list_collectives,
    list_pools,
    lunar_now,
    lunar_position,
    pool_cycles,
    pool_detail,
)
from ledger.fund.urgency_views import CycleResponse, PoolResponses, pool_responses

__all__ = [
    "GRANT_STATUSES",
    "MAX_PAGE",
    "MOON_PHASES",
    "CollectiveView",
    "CurrencyBooks",
    "CycleResponse",
    "CycleSpan",
    "CycleView",
    "DecisionView",
    "EntryPlace",
    "GrantPage",
    "GrantView",
    "LunarNow",
    "PoolResponses",
    "PoolView",
    "Receipt",
    "VoteResult",
    "VoteView",
    "Written",
    "collective_detail",
    "current_cycle",
    "custodian_quorum",
    "donation_receipt",
    "donation_receipts",
    "entry_place",
    "grant_detail",
    "grant_queue",
    "list_collectives",
    "list_pools",
    "lunar_now",
    "lunar_position",
    "newest_pool_entries",
    "pool_cycles",
    "pool_detail",
    "pool_entries",
    "pool_entry_page",
    "pool_responses",
    "published_vkey",
    "recent_decisions",
    "recorded_receipts",
    "vote_result",
    "written",
]
