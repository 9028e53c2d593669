"""Anchoring the log's checkpoints on an EVM chain (the LedgerAnchor contract).

:mod:`contracts.anchor` is the contract's client, :mod:`contracts.anchoring` what the ledger
does with it. Both import web3, which is heavy (about half a second) and raises Python's
recursion limit as it loads; this package and :mod:`contracts.errors` import neither, so the
web app and the other commands never load web3.
"""

DEFAULT_RPC_TIMEOUT = 10.0  # seconds for a JSON-RPC call to the node
DEFAULT_RECEIPT_TIMEOUT = 120.0  # seconds for a transaction to be mined
