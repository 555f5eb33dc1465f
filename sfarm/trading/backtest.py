"""Backtests: candles and indicators from a data root, signals, the engine, metrics, sessions.

`run_backtest(frame, strategy, ...)` is pure (a frame in, a result out); `backtest(root, ...)`
reads the datasets around it; `run_backtest_task(...)` is what a `trade` task with
`mode = "backtest"` calls: a backtest whose trades and equity land in `sessions/<task>/...`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from sfarm import DEFAULT_CASH
from sfarm.data.ids import candles_id, indicator_id, session_id
from sfarm.errors import UsageError
from sfarm.timeframes import timeframe_ms
from sfarm.trading.conditions import CANDLE_COLUMNS
from sfarm.trading.curve import downsample_indices
from sfarm.trading.engine import Candles, EngineParams, EngineState, RunResult, run
from sfarm.trading.metrics import Metrics, compute_metrics
from sfarm.trading.signals import compute_signals
from sfarm.trading.strategy import Strategy, load_strategy
from sfarm.trading.strategy_checks import strategy_warnings

if TYPE_CHECKING:
    from sfarm.indicators.spec import IndicatorSpec

# Extra candles read before --from when sfarm computes indicators itself, in multiples of the
# longest look-back: smoothed indicators (EMA, RSI, ATR) depend on all earlier candles and need
# a few look-backs to settle on the values a full-history indicator dataset holds.
WARMUP_FACTOR = 5
EQUITY_POINTS = 2000  # the equity curve in a report: enough for any chart, small to send
TRADE_COLUMNS = ("side", "entry_ts", "exit_ts", "entry_price", "exit_price", "size", "pnl")
TRADE_LIST_COLUMNS = (*TRADE_COLUMNS, "fees", "reason")
# A top-level key's array items sit at this depth in a document indented by two (print_json).
TRADE_LIST_INDENT = 4


def trades_json(trades: pl.DataFrame, indent: int) -> str:
    """A JSON array of the trades as objects, one trade a line at `indent` spaces, encoded by
    polars: parsed, the same values as orjson gives for `trades.to_dicts()` (shortest
    round-trip floats, null for NaN and infinities) at a fraction of the cost."""
    if trades.height == 0:
        return "[]"
    separator = ",\n" + " " * indent
    body = trades.select(pl.struct(pl.all()).struct.json_encode().str.join(separator)).item()
    return f"[{separator[1:]}{body}\n{' ' * (indent - 2)}]"


@dataclass(frozen=True)
class BacktestResult:
    strategy: str
    timeframe: str
    ts: pl.Series  # open time of every candle run
    close: pl.Series
    run: RunResult
    metrics: Metrics
    dataset_id: str = ""
    indicator_sources: dict[str, str] = field(default_factory=dict)  # spec -> dataset|computed
    warnings: tuple[str, ...] = ()  # about the strategy on these candles (a constant condition)

    def trade_list(self) -> list[dict[str, object]]:
        return self.run.trades.select(*TRADE_LIST_COLUMNS).to_dicts()

    def trade_list_text(self) -> str:
        """`trade_list` as the JSON text of a document's top-level key (see `trades_json`)."""
        return trades_json(self.run.trades.select(*TRADE_LIST_COLUMNS), TRADE_LIST_INDENT)

    def open_position(self) -> dict[str, object] | None:
        state = self.run.state
        if state.position == 0:
            return None
        last = float(self.close[-1])
        return {"side": "long" if state.position > 0 else "short", "entry_ts": state.entry_ts,
                "entry_price": state.entry_price, "size": abs(state.position),
                "mark_price": last,
                "unrealized_pnl": state.position * (last - state.entry_price) - state.entry_fee}

    def equity_frame(self) -> pl.DataFrame:
        """The whole equity curve: each candle's open time, the equity and the position held
        at its close."""
        return pl.DataFrame({"ts": self.ts, "equity": self.run.equity,
                             "position": self.run.position})

    def equity_curve(self, points: int = EQUITY_POINTS) -> list[list[float]]:
        """The curve as [ts, equity] pairs, at most `points` of them (each stretch's lowest and
        highest kept, and the first and last: sfarm.trading.curve)."""
        # The kept points' ts only: the whole column (in a piece per month file) is not copied.
        indices = downsample_indices(self.run.equity, points)
        ts, values = self.ts.gather(indices).to_list(), self.run.equity[indices].tolist()
        return [[stamp, value] for stamp, value in zip(ts, values, strict=True)]

    def to_json(self, *, encoded_trades: bool = False) -> dict[str, object]:
        """The report: the SPEC's keys first, then every metric, the context and the equity
        curve (downsampled: `equity_frame` is the whole of it).

        `encoded_trades=True` puts the trade list in already encoded, as an `orjson.Fragment`
        (for `sfarm.cli.console.print_json`, which embeds it as is): building 40k trades as
        Python dicts cost more than the rest of `--json`; the document parses the same."""
        metrics = self.metrics.to_json()
        head = {key: metrics.pop(key) for key in ("initial_equity", "final_equity", "return",
                                                   "sharpe", "max_drawdown", "trades")}
        trade_list: object
        if encoded_trades:
            import orjson

            trade_list = orjson.Fragment(self.trade_list_text())
        else:
            trade_list = self.trade_list()
        return {**head, "trade_list": trade_list, **metrics,
                "open_position": self.open_position(), "strategy": self.strategy,
                "dataset": self.dataset_id, "timeframe": self.timeframe,
                "start_ts": int(self.ts[0]) if len(self.ts) else None,
                "end_ts": int(self.ts[-1]) if len(self.ts) else None,
                "indicators": self.indicator_sources, "warnings": list(self.warnings),
                "equity_curve": self.equity_curve()}


def run_backtest(frame: pl.DataFrame, strategy: Strategy, *, timeframe: str,
                 cash: float = DEFAULT_CASH, start: int | None = None,
                 dataset_id: str = "") -> BacktestResult:
    """Backtest over `frame` (candles + indicator columns, sorted by ts). Rows before `start`
    only feed the conditions (a LAG, a warm-up); the engine runs from `start` on."""
    if not strategy.required_columns() <= set(frame.columns):
        strategy.check_columns(set(frame.columns))  # raises, naming the column and the key
    signals = compute_signals(frame, strategy)
    first = 0 if start is None else int(np.searchsorted(frame["ts"].to_numpy(), start))
    if first:
        frame, signals = frame.slice(first), signals.slice(first)
    if frame.height == 0:
        raise UsageError(f"no candles to backtest{' in ' + dataset_id if dataset_id else ''}")
    # Stretches: the engine reads the frame's price columns where they are, without a copy.
    result = run(Candles.stretches(frame, signals), EngineParams.from_strategy(strategy),
                 EngineState.initial(cash))
    ts = frame.get_column("ts")
    metrics = compute_metrics(result.equity, result.position, result.trades, cash,
                              timeframe_ms(timeframe), ts[0], ts[-1])
    return BacktestResult(strategy=strategy.name, timeframe=timeframe, ts=ts,
                          close=frame.get_column("close").cast(pl.Float64), run=result,
                          metrics=metrics, dataset_id=dataset_id,
                          warnings=tuple(strategy_warnings(strategy, frame, signals, first)))


def backtest(root: Path | str, strategy: Strategy | Path | str, *, exchange: str, market: str,
             timeframe: str, start: int | None = None, end: int | None = None,
             cash: float = DEFAULT_CASH) -> BacktestResult:
    """Backtest a strategy on the candles of `root` with start <= ts < end (ms)."""
    if not isinstance(strategy, Strategy):
        strategy = load_strategy(strategy)
    dataset = candles_id(exchange, market, timeframe)
    frame, sources = load_frame(root, strategy, exchange=exchange, market=market,
                                timeframe=timeframe, start=start, end=end)
    result = run_backtest(frame, strategy, timeframe=timeframe, cash=cash, start=start,
                          dataset_id=dataset)
    return replace(result, indicator_sources=sources)


def warmup_rows(specs: Sequence[IndicatorSpec]) -> int:
    """Candles to read before a run's start so that every indicator is warm at its start (a
    paper session's feed seeds over the same window: sfarm.trading.feed)."""
    return max((spec.warmup for spec in specs), default=0) * WARMUP_FACTOR + 1


def load_frame(root: Path | str, strategy: Strategy, *, exchange: str, market: str,
               timeframe: str, start: int | None = None, end: int | None = None,
               ) -> tuple[pl.DataFrame, dict[str, str]]:
    """Candles (with warm-up rows before `start`) joined with the strategy's indicator columns:
    from the root's indicator datasets when they cover the range, else computed here."""
    from sfarm.data import DatasetNotFound
    from sfarm.indicators import compute, parse_spec

    specs = [parse_spec(text) for text in strategy.all_indicators()]
    # The warm-up (TA-Lib's look-back, through talib.abstract: 12-16 ms of import) matters
    # only when the run starts after the dataset's first candle.
    read_from = None if start is None else start - warmup_rows(specs) * timeframe_ms(timeframe)
    dataset = candles_id(exchange, market, timeframe)
    # Only what the run reads: high and low serve stops (and indicators such as ATR) only.
    wanted = {"ts", "open", "close"} | {i for s in specs for i in s.inputs}
    if EngineParams.from_strategy(strategy).has_stops:
        wanted |= {"high", "low"}
    wanted |= strategy.required_columns()
    try:
        candles = read_columns(root, dataset, [c for c in CANDLE_COLUMNS if c in wanted],
                               read_from, end)
    except DatasetNotFound:
        raise UsageError(
            f"no candles dataset {dataset} under {root}",
            hint=f"download it with `sfarm mine` or import a CSV with `sfarm data import "
                 f"FILE.csv --id {dataset} --root {root}`") from None
    run_rows = candles if start is None else candles.filter(pl.col("ts") >= start)
    if run_rows.height == 0:
        raise UsageError(f"{dataset} under {root} has no candles in the range asked",
                         hint="`sfarm data show` gives the dataset's first and last ts")
    sources: dict[str, str] = {}
    to_compute = []
    for spec in specs:
        stored = _stored_indicator(root, indicator_id(exchange, market, timeframe, spec.key),
                                   candles, run_rows, spec.columns, read_from, end)
        if stored is None:
            to_compute.append(spec)
            sources[spec.text] = "computed"
        else:
            candles = candles.with_columns(stored)
            sources[spec.text] = "dataset"
    if to_compute:
        candles = compute(candles, to_compute)
    return candles, sources


def read_columns(root: Path | str, dataset: str, columns: list[str], start: int | None = None,
                 end: int | None = None) -> pl.DataFrame:
    """`sfarm.data.read` restricted to `columns`: the Parquet reader skips the others (a
    backtest rarely needs volume; ~20% less to decode on large ranges)."""
    from sfarm.data import read

    return read(root, dataset, start, end, columns=columns)


def _stored_indicator(root: Path | str, dataset: str, candles: pl.DataFrame,
                      run_rows: pl.DataFrame, columns: tuple[str, ...], start: int | None,
                      end: int | None) -> list[pl.Series] | None:
    """The indicator's columns aligned on `candles`, or None when the dataset is missing or
    lacks a row or a column for some candle that will be run."""
    from sfarm.data import DatasetNotFound, read

    try:
        stored = read(root, dataset, start, end)
    except DatasetNotFound:
        return None
    if not set(columns) <= set(stored.columns):
        return None
    covered = run_rows.select("ts").join(stored.select("ts"), on="ts", how="semi")
    if covered.height != run_rows.height:
        return None
    aligned = candles.select("ts").join(stored.select("ts", *columns), on="ts", how="left")
    return [aligned.get_column(name) for name in columns]


def session_frames(result: BacktestResult) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows of `sessions/<task>/trades` and `sessions/<task>/equity`.

    Trades are keyed by exit time: `ts` is the exit candle's open time for an exit at the open
    and that plus 1 ms for an exit inside the candle (stop, target, trailing stop). A signal
    exit at an open and the stop of the trade opened at that same open are then two keys, in
    the order they happened; two exits can share nothing else (entries happen at opens only).
    """
    trades = result.run.trades
    intrabar = (pl.col("reason") != "signal").cast(pl.Int64)
    trades_rows = trades.select((pl.col("exit_ts") + intrabar).alias("ts"), *TRADE_COLUMNS,
                                "fees", "reason")
    equity_rows = pl.DataFrame({"ts": result.ts, "equity": result.run.equity,
                                "position": result.run.position, "close": result.close},
                               schema={"ts": pl.Int64, "equity": pl.Float64,
                                       "position": pl.Float64, "close": pl.Float64})
    return trades_rows, equity_rows


def write_session(root: Path | str, task: str, result: BacktestResult) -> None:
    """Append the run's trades and equity to `sessions/<task>/trades` and `.../equity`."""
    from sfarm.data import append

    trades_rows, equity_rows = session_frames(result)
    summary = {"strategy": result.strategy, "dataset": result.dataset_id,
               "metrics": result.metrics.to_json()}
    append(root, session_id(task, "trades"), trades_rows, extra={"backtest": summary})
    append(root, session_id(task, "equity"), equity_rows, extra={"backtest": summary})


def run_backtest_task(root: Path | str, task: str, strategy: Strategy | Path | str, *,
                      exchange: str, market: str, timeframe: str, start: int | None = None,
                      end: int | None = None, cash: float = DEFAULT_CASH) -> BacktestResult:
    """A `trade` task in backtest mode: backtest, then write the session datasets."""
    result = backtest(root, strategy, exchange=exchange, market=market, timeframe=timeframe,
                      start=start, end=end, cash=cash)
    write_session(root, task, result)
    return result
