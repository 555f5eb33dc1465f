"""A class strategy for tests: long when the close rises above the previous close."""

from __future__ import annotations

from typing import ClassVar

import polars as pl


class Breakout:
    indicators: ClassVar[list[str]] = ["sma(5)"]
    allows_short = False

    def __init__(self, lookback: int = 1) -> None:
        self.lookback = lookback

    def signals(self, frame: pl.DataFrame) -> pl.DataFrame:
        previous = pl.col("close").shift(self.lookback)
        return frame.select(entry_long=pl.col("close") > previous,
                            exit_long=pl.col("close") < previous)
