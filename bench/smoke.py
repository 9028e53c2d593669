"""The ``--smoke`` option every benchmark takes (a module of the benchmarks, not one of them).

``--smoke`` is a benchmark's smallest run that still takes every step and prints every table,
in seconds. Its figures mean nothing: it shows that the benchmark still works, and ``make
test`` runs every ``bench/*.py`` script that way (tests/test_bench_smoke.py).
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = (
    "tiny sizes: every step runs, every table prints, in seconds; the figures mean nothing "
    "(tests/test_bench_smoke.py runs it)"
)


def add_size_options(parser: argparse.ArgumentParser, *names: str, **options: Any) -> None:
    """``--smoke``, and the benchmark's own option for the size of a run (``--quick``,
    ``--anchors``) when it has one: ``names`` and ``options`` as for ``add_argument``. A run
    takes one or the other."""
    sizes = parser.add_mutually_exclusive_group()
    if names:
        sizes.add_argument(*names, **options)
    sizes.add_argument("--smoke", action="store_true", help=HELP)
