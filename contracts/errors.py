"""What can go wrong anchoring on chain: one hierarchy under :class:`AnchorError`, a
:class:`~ledger.errors.LedgerError` with a stable ``code``.

Kept apart from :mod:`contracts.anchor` so that catching them does not import web3.
"""

from __future__ import annotations

from ledger.errors import LedgerError


class AnchorError(LedgerError):
    """Anchoring on chain failed: a revert, a rejected transaction or a malformed artifact."""

    code = "anchor_error"


class NotOwner(AnchorError):
    """The signing account is not the contract's owner (the account that deployed it)."""

    code = "anchor_not_owner"

    def __init__(self, caller: str, contract: str) -> None:
        self.caller = caller
        self.contract = contract
        super().__init__(
            f"account {caller} is not the owner of LedgerAnchor {contract}; "
            "only the account that deployed it may anchor"
        )


class TreeSizeNotIncreasing(AnchorError):
    """The tree size is not larger than the latest anchored one."""

    code = "anchor_size_not_increasing"

    def __init__(self, previous: int, given: int, contract: str) -> None:
        self.previous = previous
        self.given = given
        self.contract = contract
        if previous == 0:
            detail = "the first anchor needs a tree size of at least 1"
        else:
            detail = f"it must be larger than the latest anchored tree size {previous}"
        super().__init__(f"cannot anchor tree size {given} on LedgerAnchor {contract}: {detail}")


class AnchorIndexOutOfRange(AnchorError):
    """No anchor exists at the requested index."""

    code = "anchor_index_out_of_range"

    def __init__(self, index: int, count: int, contract: str) -> None:
        self.index = index
        self.count = count
        super().__init__(
            f"LedgerAnchor {contract} has {count} anchor(s); there is none at index {index}"
        )


class AnchorKeyError(AnchorError):
    """The anchoring key file is missing, unsafe or malformed."""

    code = "anchor_key_invalid"


class ChainUnavailable(AnchorError):
    """The chain node cannot be reached, or did not answer (or mine) in time."""

    code = "anchor_chain_unavailable"
