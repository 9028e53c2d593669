"""Where exports write: anything with ``write(bytes)`` (a file, a BytesIO, a hashing tee)."""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...
