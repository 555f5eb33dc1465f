"""Capped exponential backoff: how long to wait before trying again after `failures` failures
in a row (a worker's engine, a resolver's link to a peer)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.cap_s, self.base_s * 2 ** max(0, failures - 1))
