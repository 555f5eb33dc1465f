"""The trading engine: one candle-by-candle simulation shared by backtest, paper and live.

`run(candles, params, state)` walks the candles in order and returns the closed trades, the
equity and position at every candle's close, and the new `EngineState`. A backtest calls it
once over all candles; paper mode calls it with each new candle, carrying the state; both give
the same trades and equity (tests/test_trading_engine.py checks it). The loop is compiled with
numba (`_simulate`); the rules it implements are written down in docs/trading.md.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from itertools import accumulate, pairwise
from typing import Final

import numpy as np
import polars as pl

from sfarm.trading.kernel import REASONS, STATE_FIELDS, TRADE_FIELDS, simulate


@dataclass(frozen=True)
class EngineParams:
    """Execution rules of a strategy; a stop, target or trailing stop of 0 is off."""

    fee: float = 0.0
    slippage: float = 0.0
    stop_loss: float = 0.0
    take_profit: float = 0.0
    trailing_stop: float = 0.0
    size_fraction: float = 1.0  # of equity per entry, fees included; ignored with size_quote
    size_quote: float = 0.0  # fixed quote amount per entry, fees included (capped at equity)
    allow_short: bool = False

    @classmethod
    def from_strategy(cls, strategy: object) -> EngineParams:
        """Build from a `sfarm.trading.strategy.Strategy` (duck-typed to keep this module pure)."""
        get = strategy.__getattribute__
        return cls(fee=get("fee"), slippage=get("slippage"),
                   stop_loss=get("stop_loss") or 0.0, take_profit=get("take_profit") or 0.0,
                   trailing_stop=get("trailing_stop") or 0.0,
                   size_fraction=get("size_fraction"), size_quote=get("size_quote") or 0.0,
                   allow_short=get("allows_short"))

    @property
    def has_stops(self) -> bool:
        """Whether a run reads the candles' high and low (only stops and targets do)."""
        return self.stop_loss > 0 or self.take_profit > 0 or self.trailing_stop > 0

    def to_array(self) -> np.ndarray:
        return np.array([self.fee, self.slippage, self.stop_loss, self.take_profit,
                         self.trailing_stop, self.size_fraction, self.size_quote,
                         1.0 if self.allow_short else 0.0], dtype=np.float64)


@dataclass(frozen=True)
class EngineState:
    """Everything needed to continue a run with the next candle (persisted by paper mode)."""

    cash: float
    position: float = 0.0  # units of the base currency: > 0 long, < 0 short
    entry_price: float = math.nan  # fill price of the open position, slippage included
    entry_ts: int = -1
    entry_bar: int = -1
    entry_fee: float = 0.0
    extreme: float = math.nan  # best price since entry (high for long, low for short)
    pending_exit: bool = False  # close the position at the next candle's open
    pending_entry: int = 0  # open long (+1) or short (-1) at the next candle's open
    last_ts: int = -1  # open time of the last candle processed
    bars: int = 0  # candles processed so far: the index of the next candle

    @classmethod
    def initial(cls, cash: float) -> EngineState:
        if not cash > 0:
            raise ValueError(f"initial cash must be > 0, got {cash}")
        return cls(cash=float(cash))

    def to_array(self) -> np.ndarray:
        values = asdict(self)
        return np.array([float(values[name]) for name in STATE_FIELDS], dtype=np.float64)

    @classmethod
    def from_array(cls, array: np.ndarray) -> EngineState:
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for name, value in zip(STATE_FIELDS, array.tolist(), strict=True):
            kind = types[name]
            values[name] = (int(value) if kind == "int" else bool(value) if kind == "bool"
                            else float(value))
        return cls(**values)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, object]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, document: dict[str, object]) -> EngineState:
        nan_fields = ("entry_price", "extreme")
        return cls(**{k: (math.nan if k in nan_fields and v is None else v)
                      for k, v in document.items()})  # type: ignore[arg-type]

    def equity(self, price: float) -> float:
        """Cash plus the position marked at `price`."""
        return self.cash + (self.position * price if self.position else 0.0)


_FLAGS = ("entry_long", "exit_long", "entry_short", "exit_short")


@dataclass(frozen=True)
class Candles:
    """Candle columns and the strategy's signals on them, as contiguous numpy arrays."""

    ts: np.ndarray  # int64, candle open time in ms
    open: np.ndarray  # float64 ...
    high: np.ndarray  # may be empty, with low, for a run without stops (nothing else reads them)
    low: np.ndarray
    close: np.ndarray
    entry_long: np.ndarray  # bool: the condition holds at this candle's close
    exit_long: np.ndarray
    entry_short: np.ndarray
    exit_short: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, start: int, stop: int) -> Candles:
        return Candles(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, signals: pl.DataFrame | None = None) -> Candles:
        """All rows of a candle frame as one Candles (columns stored in pieces are copied)."""
        return cls.stretches(frame.rechunk(), signals)[0]

    @classmethod
    def stretches(cls, frame: pl.DataFrame, signals: pl.DataFrame | None = None) -> list[Candles]:
        """The rows of a candle frame as consecutive Candles without copying its prices: one
        per stretch of rows that every price column holds in one piece of memory (a frame read
        from a dataset holds a piece per Parquet file), as read-only numpy views of it.

        Signal columns come from `signals` (default: `frame`); a missing one means never. They
        are converted once (polars stores bits, the engine reads bytes) and sliced. Without
        high and low columns both are empty arrays (enough for a run without stops)."""
        source = frame if signals is None else signals
        height = frame.height
        flags = {name: _flags(source, name, height) for name in _FLAGS}
        names = ["ts", "open", "close"]
        if {"high", "low"} <= set(frame.columns):
            names += ["high", "low"]
        columns = {name: frame.get_column(name).cast(pl.Int64 if name == "ts" else pl.Float64)
                   for name in names}
        cuts = {0, height}
        for column in columns.values():
            cuts.update(accumulate(column.chunk_lengths()))
        bounds = sorted(cuts)
        empty = _read_only(np.empty(0, dtype=np.float64))
        parts = []
        for start, stop in pairwise(bounds):
            view = {name: _read_only(np.ascontiguousarray(column.slice(start, stop - start)
                                                          .to_numpy()))
                    for name, column in columns.items()}
            parts.append(cls(ts=view["ts"], open=view["open"], high=view.get("high", empty),
                             low=view.get("low", empty), close=view["close"],
                             **{name: flags[name][start:stop] for name in _FLAGS}))
        return parts or [cls(ts=_read_only(np.empty(0, dtype=np.int64)), open=empty, high=empty,
                             low=empty, close=empty, **flags)]


def _flags(source: pl.DataFrame, name: str, height: int) -> np.ndarray:
    if name not in source.columns:
        return _read_only(np.zeros(height, dtype=np.bool_))
    column = source.get_column(name)
    if column.null_count():
        column = column.fill_null(False)
    if column.dtype != pl.Boolean:
        return _read_only(np.ascontiguousarray(column.to_numpy().astype(np.bool_, copy=False)))
    if not column.any():  # a signal the strategy does not use: zeroed pages, no unpacking
        return _read_only(np.zeros(height, dtype=np.bool_))
    return _read_only(_unpacked(column))


def _unpacked(column: pl.Series) -> np.ndarray:
    """A Boolean column (no nulls) as one byte a row. numpy unpacks arrow's bitmap ~10x faster
    than polars' `to_numpy` does (2e6 rows: 0.3 ms against 3.4), but reaching the bitmap takes
    pyarrow, whose import (~80 ms) costs a `sfarm backtest` more than it saves on 1e7 rows:
    it is used when a caller has already loaded it (a session, a notebook, a benchmark)."""
    if "pyarrow" not in sys.modules:
        return column.to_numpy()
    array = column.to_arrow()
    bits = np.frombuffer(array.buffers()[1], dtype=np.uint8)
    start = array.offset
    unpacked = np.unpackbits(bits, count=start + len(array), bitorder="little")
    return unpacked[start:].view(np.bool_)


def _read_only(array: np.ndarray) -> np.ndarray:
    """Inputs of the kernel are read-only whatever their origin (zero-copy views of polars
    memory are), so numba compiles the kernel for one signature only."""
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class RunResult:
    trades: pl.DataFrame  # closed trades, see TRADE_SCHEMA
    equity: np.ndarray  # cash + position at each candle's close
    position: np.ndarray  # units held at each candle's close (signed)
    state: EngineState


TRADE_SCHEMA: dict[str, type[pl.DataType]] = {
    "side": pl.String, "entry_ts": pl.Int64, "exit_ts": pl.Int64, "entry_price": pl.Float64,
    "exit_price": pl.Float64, "size": pl.Float64, "pnl": pl.Float64, "fees": pl.Float64,
    "reason": pl.String, "entry_bar": pl.Int64, "exit_bar": pl.Int64,
}


def run(candles: Candles | Sequence[Candles], params: EngineParams,
        state: EngineState) -> RunResult:
    """Process `candles`, or consecutive stretches of candles as one run (`Candles.stretches`),
    all newer than `state.last_ts`; return the trades, the equity and position at every
    candle's close, and the new state."""
    parts = [candles] if isinstance(candles, Candles) else list(candles)
    n = sum(len(part) for part in parts)
    if params.has_stops and not all(len(p.high) == len(p.low) == len(p) for p in parts):
        raise ValueError("a run with stops needs the candles' high and low")
    first = next((part for part in parts if len(part)), None)
    if first is not None and first.ts[0] <= state.last_ts:
        raise ValueError(f"candle {int(first.ts[0])} is not newer than the last one "
                         f"processed ({state.last_ts})")
    state_array = state.to_array()
    params_array = params.to_array()
    equity = np.empty(n, dtype=np.float64)
    position = np.empty(n, dtype=np.float64)
    rows, offset = [], 0
    for part in parts:
        stop = offset + len(part)
        trade_rows, count = simulate.for_size(n)(
            part.ts, part.open, part.high, part.low, part.close, part.entry_long,
            part.exit_long, part.entry_short, part.exit_short, params_array, state_array,
            equity[offset:stop], position[offset:stop])
        rows.append(trade_rows[:count])
        offset = stop
    return RunResult(trades=trades_frame(np.concatenate(rows)), equity=equity,
                     position=position, state=EngineState.from_array(state_array))


# Most runs of a live or paper step close no trade: building the empty frame from its columns
# took ~0.9 ms, nearly all of such a step's engine time; clearing this one takes ~2 us.
_NO_TRADES: Final = pl.DataFrame(schema=TRADE_SCHEMA)


def trades_frame(rows: np.ndarray) -> pl.DataFrame:
    """The kernel's float rows as a typed frame (side and reason spelled out)."""
    if len(rows) == 0:
        return _NO_TRADES.clear()  # a new frame: the caller may add to it
    columns = {name: rows[:, index] for index, name in enumerate(TRADE_FIELDS)}
    sides = pl.Series(["short", "long"]).gather((columns["side"] > 0).astype(np.int64))
    reasons = pl.Series(REASONS).gather(columns["reason"].astype(np.int64))
    return pl.DataFrame({
        "side": sides,
        "entry_ts": columns["entry_ts"].astype(np.int64),
        "exit_ts": columns["exit_ts"].astype(np.int64),
        "entry_price": columns["entry_price"], "exit_price": columns["exit_price"],
        "size": columns["size"], "pnl": columns["pnl"], "fees": columns["fees"],
        "reason": reasons,
        "entry_bar": columns["entry_bar"].astype(np.int64),
        "exit_bar": columns["exit_bar"].astype(np.int64),
    }, schema=TRADE_SCHEMA)
