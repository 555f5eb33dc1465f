"""The candles an exchange served with impossible values, as one miner tallies them: each open
counted once, however often it is asked for again (a following miner asks for its holes again
from time to time, and a broken feed serves the same broken candles), and the text that tells
the operator what was refused."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from sfarm import data
from sfarm.data.checks import candle_faults


@dataclass
class RefusedCandles:
    dataset_id: str
    exchange_id: str
    kinds: dict[str, int] = field(default_factory=dict)  # what is wrong -> candles
    opens: set[int] = field(default_factory=set)

    def add(self, bad: pl.DataFrame) -> bool:
        """Count the candles of `bad` not counted before; False when there were none."""
        new = bad.filter(~pl.col("ts").is_in(list(self.opens))) if self.opens else bad
        if new.is_empty():
            return False
        for what, count, _first in candle_faults(new):
            self.kinds[what] = self.kinds.get(what, 0) + count
        self.opens.update(new["ts"].to_list())
        return True

    @property
    def count(self) -> int:
        return len(self.opens)

    def text(self) -> str:
        """What the exchange served wrong, for `last_error` and the `mine` summary."""
        what = "; ".join(f"{count} with {kind}" for kind, count in self.kinds.items())
        return (f"{self.dataset_id}: {self.exchange_id} served {self.count} candles with "
                f"impossible values ({what}), first at {data.format_ts(min(self.opens))}; not "
                "stored, so the dataset has a hole there (sfarm data verify lists it)")
