"""Auditor reports of one pool and lunar cycle: PDF, CSV, JSON, JSONL and beancount.

Reads ``ledger/`` (the public log and the projections as an index), never writes it, and never
reads ``private_records`` or ``tokens``.

``data``              :func:`~exports.data.gather` reads the cycle's entries once and builds
                      the frozen ``CycleReport``; every format renders from it
``report``            the ``CycleReport`` value and its rows (roll-forward, grants, custody)
``cycle``             which entries belong to a cycle, and their roll-forward (no database)
``rows``              from decoded entries to the report's rows
``pdf``               the deterministic PDF (reportlab, fonts in ``fonts/``): the document
``pdf_sections``      its cover, roll-forward, charts and how to verify
``pdf_tables``        its tables of entries: donations, grants, corrections, custody
``pdf_layout``        its page, fonts, styles and monospaced tables
``csv_export``        one row per entry; ``fields=`` and a ``since``/``until`` range
``json_export``       the report as typed JSON; JSONL of the raw entries with inclusion proofs
``beancount_export``  the postings, with exact balance assertions at the handover
``formats``           the entry point for the CLI and the HTTP routes:
                      ``make_options`` (checks lang, fields, range), ``write_report`` (streams
                      to a file, returns size, SHA-256, media type, file name), ``render_report``
``verify``            ``python -m exports.verify cycle.jsonl --vkey VKEY``: the offline check
``i18n``              the report's strings in en, es and uk, and the language choice
``errors``            not_found (ledger), cycle_not_started, cycle_before_pool, invalid_cycle,
                      unknown_format, invalid_fields, invalid_range, inconsistent_log
"""
