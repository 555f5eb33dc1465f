"""Checks of a strategy against the candles it runs on, for warnings (not errors): an
indicator with no value on any candle run (too few candles before it: the strategy never warmed
up), and a condition that has one value on every candle (`close > 0` is always true,
`rsi_14 < 0` never), which does not depend on the data: almost always a typo or a threshold out
of range."""

from __future__ import annotations

import math
import re

import polars as pl

from sfarm.trading.strategy import Strategy


def strategy_warnings(strategy: Strategy, frame: pl.DataFrame, signals: pl.DataFrame,
                      candles_before: int) -> list[str]:
    """The warnings of a run over `frame` (candles and indicator columns, from the first
    candle run) with `signals`; `candles_before` candles preceded it (a warm-up)."""
    unwarmed = unwarmed_indicators(strategy, frame, candles_before)
    blind = {column for spec in unwarmed for column in _spec_columns(spec)}
    return [message for _, message in unwarmed.items()] + constant_conditions(
        strategy, signals, skip=blind)


def unwarmed_indicators(strategy: Strategy, frame: pl.DataFrame,
                        candles_before: int) -> dict[str, str]:
    """Spec -> warning, for each indicator of `strategy` with no value on any candle of
    `frame`: it needs more candles before its first value than the run had."""
    from sfarm.indicators import parse_spec

    warnings = {}
    available = frame.height + candles_before
    for text in strategy.all_indicators():
        spec = parse_spec(text)
        columns = [frame.get_column(column) for column in spec.columns if column in frame.columns]
        if not columns or any(_has_value(column) for column in columns):
            continue
        warnings[text] = (f"{text} has no value on any of the {frame.height:,} candles run: it "
                          f"needs {spec.warmup + 1:,} candles for its first value and had "
                          f"{available:,}, so the strategy never warmed up and conditions that "
                          "read it never fire (run over more candles: an earlier --from)")
    return warnings


def _has_value(column: pl.Series) -> bool:
    """Whether some row of `column` holds a value (TA-Lib's warm-up rows are NaN or null).
    The last row answers for a warmed-up indicator without a pass over millions of rows."""
    if column.is_empty():
        return False
    last = column[-1]
    if last is not None and not (column.dtype.is_float() and math.isnan(last)):
        return True
    if column.dtype.is_float():
        return bool(column.is_not_nan().any())  # null rows count as neither
    return column.null_count() < column.len()


def _spec_columns(text: str) -> tuple[str, ...]:
    from sfarm.indicators import parse_spec

    return parse_spec(text).columns


def constant_conditions(strategy: Strategy, signals: pl.DataFrame,
                        skip: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """One warning per condition of `strategy` that is true on every row of `signals` (the
    Boolean columns of `compute_signals` over the candles run) or false on every row; not for
    a condition that reads a column of `skip` (an indicator with no value: said already)."""
    rows = signals.height
    if rows < 2:  # one candle says nothing about a condition
        return []
    warnings = []
    for name in strategy.conditions:
        fired = int(signals.get_column(name).sum())
        if fired not in (0, rows):
            continue
        text = getattr(strategy, name)
        if any(re.search(rf"\b{re.escape(column)}\b", text) for column in skip):
            continue
        if fired:
            effect = "it does not depend on the data (a typo, or a threshold out of range?)"
        else:
            effect = "it never fires (a threshold out of range, or a typo?)"
        warnings.append(f"{strategy.locate(name)}: `{text}` is {'true' if fired else 'false'} "
                        f"on every one of the {rows:,} candles run: {effect}")
    return warnings
