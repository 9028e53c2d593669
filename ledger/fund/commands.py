"""The fund's commands, one class: each capability lives in its own module.

Every command runs in one write transaction on the log (see :mod:`ledger.fund.transaction`)
and returns the :class:`~ledger.fund.rules.Outcome` of its first entry.
"""

from __future__ import annotations

from ledger.fund.custody import CustodyCommands
from ledger.fund.donations import DonationCommands
from ledger.fund.grants import GrantCommands
from ledger.fund.organisation import OrganisationCommands
from ledger.fund.redaction import RedactionCommands


class Fund(
    OrganisationCommands, CustodyCommands, DonationCommands, GrantCommands, RedactionCommands
):
    """Commands on the fund: pools and collectives, custody, donations, grants and votes, and
    the redaction of public text."""
