"""The candle feed of a forward session (paper, live): closed candles as they reach the store,
with the strategy's indicator columns and signals, one step after another.

Candles and indicator datasets are this node's own (`data/`) or pulled into `mirror/<node>/`.
Each indicator comes, for the whole session, from one source chosen when the session starts:
its dataset when one exists then, else computed here with `sfarm.indicators.incremental`,
seeded over the same warm-up window a backtest reads (`WARMUP_FACTOR` look-backs before the
first candle) and continued one candle at a time, so a value never depends on how candles were
batched. The feed carries the last rows the conditions look back at (`LAG`, a class strategy's
`lookback`) in its state, so signals on a candle are the ones a backtest computes.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sfarm import data
from sfarm.data.ids import candles_id, indicator_id
from sfarm.indicators.incremental import IndicatorState, update
from sfarm.indicators.spec import IndicatorSpec, parse_spec
from sfarm.timeframes import timeframe_ms
from sfarm.trading.backtest import warmup_rows
from sfarm.trading.conditions import CANDLE_COLUMNS
from sfarm.trading.signals import compute_signals
from sfarm.trading.strategy import Strategy

# Rows a class strategy sees before the new candles when it declares no `lookback`.
DEFAULT_CLASS_LOOKBACK = 300
DATASET, COMPUTED = "dataset", "computed"


@dataclass(frozen=True, eq=False)
class FeedState:
    """Where the feed stands: the last candle fed, each indicator's source (and its state when
    computed here), and the last feature rows the conditions may look back at."""

    last_ts: int
    sources: dict[str, str]  # spec text -> "dataset" | "computed"
    indicators: dict[str, IndicatorState] = field(default_factory=dict)
    tail: pl.DataFrame = field(default_factory=pl.DataFrame)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeedState) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def to_json(self) -> dict[str, Any]:
        return {"last_ts": self.last_ts, "sources": dict(self.sources),
                "indicators": {k: v.to_json() for k, v in self.indicators.items()},
                "tail": {name: [_encode_float(v) for v in self.tail.get_column(name).to_list()]
                         for name in self.tail.columns}}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> FeedState:
        tail = document.get("tail") or {}
        schema = {name: pl.Int64 if name == "ts" else pl.Float64 for name in tail}
        return cls(last_ts=int(document["last_ts"]), sources=dict(document["sources"]),
                   indicators={k: IndicatorState.from_json(v)
                               for k, v in (document.get("indicators") or {}).items()},
                   tail=pl.DataFrame(tail, schema=schema))


@dataclass(frozen=True)
class FeedStep:
    """New candles with their features and signals, and the feed state after them."""

    frame: pl.DataFrame  # ts, candle columns, indicator columns
    signals: pl.DataFrame  # entry_long, exit_long, entry_short, exit_short
    state: FeedState


class WaitingFor(Exception):
    """An input the feed needs is not there yet; `str()` names the dataset."""


class Feed:
    """The inputs of one session: `exchange`/`market`/`timeframe` candles under `root`."""

    def __init__(self, root: Path | str, strategy: Strategy, *, exchange: str, market: str,
                 timeframe: str, produced: Collection[str] = ()) -> None:
        self.root = Path(root)
        # Indicator datasets a task of the network produces: wait for them, never compute them.
        self.produced = frozenset(produced)
        self.strategy = strategy
        self.timeframe = timeframe
        self.candles_id = candles_id(exchange, market, timeframe)
        self.specs: list[IndicatorSpec] = [parse_spec(t) for t in strategy.all_indicators()]
        self.indicator_ids = {spec.text: indicator_id(exchange, market, timeframe, spec.key)
                              for spec in self.specs}
        self.columns = feature_columns(strategy)
        self.lookback = signal_lookback(strategy)
        strategy.check_columns(set(CANDLE_COLUMNS) | set(strategy.indicator_columns()))

    @property
    def dataset_ids(self) -> tuple[str, ...]:
        """Every dataset the session may read: its candles and each indicator's dataset."""
        return (self.candles_id, *self.indicator_ids.values())

    # -- where the inputs are -------------------------------------------------------------

    def _where(self, dataset: str) -> str | None:
        """The producer node whose mirror holds `dataset`, None for this node's own data."""
        location = data.locate(self.root, dataset)
        if location is None:
            raise WaitingFor(dataset)
        return location.node

    def _read(self, dataset: str, start: int | None = None,
              end: int | None = None) -> pl.DataFrame:
        return data.read(self.root, dataset, start, end, mirror_of=self._where(dataset))

    def last_candle_ts(self) -> int | None:
        """The newest stored candle (None when the dataset does not exist yet)."""
        location = data.locate(self.root, self.candles_id)
        if location is None:
            return None
        manifest = data.load_manifest(self.root, self.candles_id, mirror_of=location.node,
                                      with_partitions=False)
        return None if manifest is None else manifest.last_ts

    # -- starting a session ---------------------------------------------------------------

    def _choose_sources(self) -> dict[str, str]:
        """Each indicator's source: its dataset when one exists now; else WaitingFor it when a
        task of the network produces it (computed once, read by every session); else computed
        here."""
        sources = {}
        for spec in self.specs:
            dataset = self.indicator_ids[spec.text]
            if data.locate(self.root, dataset) is not None:
                sources[spec.text] = DATASET
            elif dataset in self.produced:
                raise WaitingFor(dataset)
            else:
                sources[spec.text] = COMPUTED
        return sources

    def warmup_candles(self) -> int:
        """Candles read before the first one run: the backtest's rule, so values agree."""
        return warmup_rows(self.specs)

    def start(self, first_ts: int | None) -> FeedState:
        """A new feed whose first candle is the first at or after `first_ts` (the newest stored
        candle when None). Raises WaitingFor when there are no candles yet."""
        last = self.last_candle_ts()
        if last is None:
            raise WaitingFor(self.candles_id)
        start = last if first_ts is None else first_ts
        history = self._read(self.candles_id, start - self.warmup_candles()
                             * timeframe_ms(self.timeframe), start)
        sources = self._choose_sources()
        features, indicators = self._features(history, sources, {})
        return FeedState(last_ts=start - 1, sources=sources, indicators=indicators,
                         tail=self._tail(features))

    def history(self, start: int | None, end: int | None = None
                ) -> tuple[pl.DataFrame, dict[str, str]]:
        """Candles from the warm-up before `start` (all when None) up to `end`, with every
        indicator column, cut after the last candle all stored indicators cover: the frame a
        backtest of [start, end) runs on (`sfarm.trading.backtest.run_backtest`)."""
        first = None if start is None else start - self.warmup_candles() * timeframe_ms(
            self.timeframe)
        candles = self._read(self.candles_id, first, end)
        sources = self._choose_sources()
        if candles.height:
            probe = FeedState(last_ts=-1, sources=sources)
            candles, _ = self._covered(candles, probe)
        frame, _ = self._features(candles, sources, {})
        return frame, sources

    # -- the next candles -------------------------------------------------------------------

    def next(self, state: FeedState, *, max_rows: int, end: int | None = None) -> FeedStep:
        """Up to `max_rows` candles after `state.last_ts` (and before `end`), with features and
        signals. Candles whose stored indicator rows are not there yet are held back; when that
        leaves none, WaitingFor names the indicator dataset."""
        if max_rows <= 0:
            raise ValueError("max_rows must be positive")
        candles = self._read(self.candles_id, state.last_ts + 1, end).head(max_rows)
        if candles.height == 0:
            return FeedStep(candles, pl.DataFrame(), state)
        candles, lagging = self._covered(candles, state)
        if candles.height == 0:
            raise WaitingFor(lagging or self.candles_id)
        features, indicators = self._features(candles, state.sources, state.indicators)
        window = pl.concat([state.tail, features.select(self.columns)], how="vertical_relaxed") \
            if state.tail.width else features.select(self.columns)
        signals = compute_signals(window, self.strategy).tail(candles.height)
        next_state = replace(state, last_ts=int(candles["ts"][-1]), indicators=indicators,
                             tail=self._tail(window))
        return FeedStep(features, signals, next_state)

    def _covered(self, candles: pl.DataFrame, state: FeedState) -> tuple[pl.DataFrame, str]:
        """The candles every stored indicator has a row for (the indicators task may lag)."""
        lagging = ""
        for text, source in state.sources.items():
            if source != DATASET:
                continue
            dataset = self.indicator_ids[text]
            location = data.locate(self.root, dataset)
            manifest = None if location is None else data.load_manifest(
                self.root, dataset, mirror_of=location.node, with_partitions=False)
            last = -1 if manifest is None or manifest.last_ts is None else manifest.last_ts
            if last < int(candles["ts"][-1]):
                candles = candles.filter(pl.col("ts") <= last)
                lagging = dataset
                if candles.height == 0:
                    break
        return candles, lagging

    def _features(self, candles: pl.DataFrame, sources: dict[str, str],
                  states: dict[str, IndicatorState]
                  ) -> tuple[pl.DataFrame, dict[str, IndicatorState]]:
        """`candles` with every indicator column added, and the computed indicators' states."""
        frame = candles
        next_states = dict(states)
        start, end = (int(candles["ts"][0]), int(candles["ts"][-1]) + 1) if candles.height \
            else (None, None)
        for spec in self.specs:
            if sources[spec.text] == DATASET:
                stored = self._read(self.indicator_ids[spec.text], start, end) \
                    if candles.height else pl.DataFrame()
                columns = [pl.col(c).cast(pl.Float64) for c in spec.columns]
                aligned = candles.select("ts").join(stored.select("ts", *columns), on="ts",
                                                    how="left") if stored.height else \
                    candles.select("ts").with_columns(pl.lit(None, pl.Float64).alias(c)
                                                      for c in spec.columns)
                frame = frame.with_columns(aligned.get_column(c) for c in spec.columns)
            else:
                values, state = _compute(spec, states.get(spec.text), candles)
                if state is not None:
                    next_states[spec.text] = state
                frame = frame.with_columns(values.get_column(c) for c in spec.columns)
        return frame, next_states

    def _tail(self, features: pl.DataFrame) -> pl.DataFrame:
        frame = features.select(self.columns) if features.height else pl.DataFrame(
            schema={c: pl.Int64 if c == "ts" else pl.Float64 for c in self.columns})
        return frame.tail(self.lookback) if self.lookback else frame.clear()


def _compute(spec: IndicatorSpec, state: IndicatorState | None,
             candles: pl.DataFrame) -> tuple[pl.DataFrame, IndicatorState | None]:
    """The indicator over `candles`, continued from `state`: all at once to seed a series,
    then one candle at a time (values independent of how candles arrive)."""
    if candles.height == 0:
        empty = pl.DataFrame(schema=dict.fromkeys(spec.columns, pl.Float64))
        return empty, state
    if state is None:
        return update(spec, None, candles)
    arrays = {name: candles.get_column(name).to_numpy() for name in ("ts", *spec.inputs)}
    parts = []
    for i in range(candles.height):
        rows, state = update(spec, state, {k: v[i:i + 1] for k, v in arrays.items()})
        parts.append(rows)
    return pl.concat(parts), state


def feature_columns(strategy: Strategy) -> list[str]:
    """Columns the signals read (ts first): the conditions' columns, or every candle and
    indicator column for a class strategy."""
    needed = strategy.required_columns() | {"ts"}
    ordered = [c for c in CANDLE_COLUMNS if c in needed]
    return ordered + sorted(needed - set(ordered))


def signal_lookback(strategy: Strategy) -> int:
    """Rows before a candle its signal may read: the largest LAG, or a class's `lookback`."""
    if strategy.class_path is not None:
        return int(getattr(strategy.load_class(), "lookback", DEFAULT_CLASS_LOOKBACK))
    return max((lag.periods for c in strategy.conditions.values() for lag in c.lags), default=0)


def _encode_float(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None  # NaN (warm-up) and null mean the same to a condition: false
    if isinstance(value, np.generic):
        return value.item()
    return value
