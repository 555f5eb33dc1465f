"""Checks of a strategy against the candles it runs on, for warnings (not errors): a condition
that has one value on every candle (`close > 0` is always true, `rsi_14 < 0` never) does not
depend on the data, which is almost always a typo or a threshold out of range."""

from __future__ import annotations

import polars as pl

from sfarm.trading.strategy import Strategy


def constant_conditions(strategy: Strategy, signals: pl.DataFrame) -> list[str]:
    """One warning per condition of `strategy` that is true on every row of `signals` (the
    Boolean columns of `compute_signals` over the candles run) or false on every row."""
    rows = signals.height
    if rows < 2:  # one candle says nothing about a condition
        return []
    warnings = []
    for name in strategy.expressions:
        fired = int(signals.get_column(name).sum())
        if fired not in (0, rows):
            continue
        text = getattr(strategy, name)
        if fired:
            effect = "it does not depend on the data (a typo, or a threshold out of range?)"
        else:
            effect = "it never fires (a threshold out of range, or a typo?)"
        warnings.append(f"{strategy.locate(name)}: `{text}` is {'true' if fired else 'false'} "
                        f"on every one of the {rows:,} candles run: {effect}")
    return warnings
