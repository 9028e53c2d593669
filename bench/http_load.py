"""A closed-loop HTTP load generator: GET requests from processes of their own, each with
threads on ``http.client`` (a module of the benchmarks, not one of them).

Each thread keeps one connection alive and sends its next request when the last one is
answered; latencies count only the requests sent within the measured seconds, and every
answer but a 200 is an error.
"""

from __future__ import annotations

import http.client
import multiprocessing
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def client_process(
    port: int, paths: Sequence[str], threads: int, warmup: float, duration: float, out: Any
) -> None:
    """One load process: ``threads`` closed loops; sends (latencies, errors) when done."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    measure_from, stop = start + warmup, start + warmup + duration

    def loop(offset: int) -> None:
        mine: list[float] = []
        failed = 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = offset
        while time.perf_counter() < start:
            time.sleep(0.001)
        while True:
            path = paths[i % len(paths)]
            i += threads
            began = time.perf_counter()
            if began >= stop:
                break
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            ended = time.perf_counter()
            if began >= measure_from:
                mine.append(ended - began)
                failed += not ok
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    workers = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.send((latencies, errors[0]))
    out.close()


@dataclass(frozen=True)
class Result:
    requests: int
    errors: int
    seconds: float
    p50: float
    p99: float
    worst: float = float("nan")  # the slowest request

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def load(
    port: int,
    paths: Sequence[str],
    connections: int,
    processes: int,
    warmup: float,
    duration: float,
    preload: Sequence[str] = (),
) -> Result:
    """GET ``paths`` in turn over ``connections`` kept-alive connections from ``processes``
    processes for ``warmup`` seconds, then ``duration`` seconds measured.

    The processes inherit no connection: they fork from a server that imported the modules
    in ``preload`` once (the calling script's own, so that each process starts in
    milliseconds rather than after a second of imports; Python 3.11 ignores a preloaded
    ``"__main__"``, so name the module)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    pipes, children = [], []
    per = [connections // processes + (n < connections % processes) for n in range(processes)]
    for n, threads in enumerate(per):
        if not threads:
            continue
        receive, send = context.Pipe(duplex=False)
        mine = list(paths[n::processes]) or list(paths)
        child = context.Process(
            target=client_process, args=(port, mine, threads, warmup, duration, send)
        )
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)
    latencies: list[float] = []
    errors = 0
    for receive in pipes:
        got, failed = receive.recv()
        latencies.extend(got)
        errors += failed
    for child in children:
        child.join()
    latencies.sort()
    return Result(
        requests=len(latencies),
        errors=errors,
        seconds=duration,
        p50=statistics.median(latencies) if latencies else float("nan"),
        p99=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        if latencies
        else float("nan"),
        worst=latencies[-1] if latencies else float("nan"),
    )
