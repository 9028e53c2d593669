"""gunicorn's former settings for Lunaria, now used only by tests/test_witness.py, whose
witnesses gunicorn serves. ``make run`` and every benchmark serve with ``lunaria serve``
(waitress, api/serve_cli.py; bench/serving.py).

Command-line options override them.
"""

# Two processes: writes serialise on the database's write lock anyway, and reads scale out on
# more hosts or replicas rather than more workers per host.
workers = 2

# Threads, not sync workers: a sync worker closes the connection after every response, so each
# request paid a new TCP connection, and it sits idle while the database commits; a thread
# keeps the client's connection alive and lets another request parse, authenticate and
# answer meanwhile.
worker_class = "gthread"
threads = 4
keepalive = 30  # seconds an idle client connection stays open
