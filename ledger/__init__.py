"""Lunaria's core, no Flask: two libraries.

- :mod:`ledger.log`: the verifiable log (canonical entries, the Merkle tree, signed checkpoints,
  the append path, receipts, tiles, verification). Usable alone; it never imports the fund.
- :mod:`ledger.fund`: the fund's domain on top of the log (pools, collectives, custody,
  donations, grants, votes, projections, read models, the outside audit).

:mod:`ledger.errors` is the one error hierarchy of both; :mod:`ledger.migrate` applies the
schema migrations of both.
"""
