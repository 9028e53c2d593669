"""gunicorn's settings for Lunaria: ``make run`` and the benchmarks (bench/api_write.py,
bench/public_read.py) all serve with these, so the figures are the server as deployed.

Command-line options override them (``make run`` adds the bind address and the access log).
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
