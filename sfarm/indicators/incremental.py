"""Incremental updates: append candles to an indicator series at a cost of O(k + look-back).

`update(spec, state, new_rows)` returns the indicator rows for `new_rows` and the state to pass
next time. The state is small and JSON-ready (`IndicatorState.to_json()`), meant for the
indicator dataset's manifest (`extra`). Two strategies, chosen per indicator:

* window (finite look-back: SMA, WMA, BBANDS, TRANGE, STOCH, CCI, ROC, MOM, WILLR, AROON, MFI):
  the state keeps the last `warmup + period` input rows and TA-Lib recomputes over them plus the
  new rows. The window start keeps TA-Lib's circular-buffer alignment (CCI sums in buffer order).
* recurrence (infinite memory: EMA, DEMA, TEMA, KAMA, RSI, MACD, ATR, NATR, ADX, PLUS_DI,
  MINUS_DI, STOCHRSI, OBV, SAR, VWAP): the state is the recurrence itself (`recurrences.py`,
  `directional.py`), continued candle by candle with TA-Lib's arithmetic.

With no state, `new_rows` is the whole history: values come from TA-Lib's batch functions and the
state is read from TA-Lib's outputs (`seeding.py`; window kinds just keep the tail), or, for
short histories and SAR, rebuilt by one replay over the history (over the last session for
VWAP). Values agree with a TA-Lib batch run over the whole series to ~1e-14 relative (TA-Lib's
build picks FMA code paths per CPU, so even TA-Lib differs from itself in the last bits across
machines); NaN exactly where TA-Lib has NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from sfarm.indicators import directional as dm
from sfarm.indicators import recurrences as rec
from sfarm.indicators.batch import compute_arrays, input_array
from sfarm.indicators.seeding import seed_from_outputs
from sfarm.indicators.spec import IndicatorSpec, parse_spec
from sfarm.indicators.vwap import VwapReplica

STATE_VERSION = 1

REPLICAS: dict[str, Callable[..., Any]] = {
    "ema": rec.Ema, "dema": rec.Dema, "tema": rec.Tema, "macd": rec.Macd, "kama": rec.Kama,
    "rsi": rec.Rsi, "atr": rec.Atr, "natr": rec.Natr, "stochrsi": rec.StochRsi,
    "obv": rec.Obv, "plus_di": dm.PlusDi, "minus_di": dm.MinusDi, "adx": dm.Adx,
    "sar": dm.Sar, "vwap": VwapReplica,
}


@dataclass
class IndicatorState:
    """Where an indicator series stands after `rows` candles (the last at `last_ts`)."""

    spec: str
    rows: int = 0
    last_ts: int | None = None
    window: dict[str, list[float]] = field(default_factory=dict)
    recurrence: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (non-finite floats written as strings); exact float round trip."""
        return _encode({"version": STATE_VERSION, "spec": self.spec, "rows": self.rows,
                        "last_ts": self.last_ts, "window": self.window,
                        "recurrence": self.recurrence})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IndicatorState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"indicator state version {data.get('version')!r} is not "
                             f"{STATE_VERSION}; recompute the indicator from its history")
        decoded = _decode(dict(data))
        return cls(spec=decoded["spec"], rows=int(decoded["rows"]), last_ts=decoded["last_ts"],
                   window=decoded["window"], recurrence=decoded["recurrence"])


def update(spec: str | IndicatorSpec, state: IndicatorState | Mapping[str, Any] | None,
           new_rows: pl.DataFrame | Mapping[str, np.ndarray]) -> tuple[pl.DataFrame,
                                                                       IndicatorState]:
    """Indicator rows for `new_rows` (ts, if given, then the spec's columns) and the next state.

    `state=None` starts a series: `new_rows` is then its whole history. New rows must follow the
    state's last candle (ts strictly increasing when ts is given).

    Example:
        >>> out, state = update("rsi(14)", None, history)          # doctest: +SKIP
        >>> more, state = update("rsi(14)", state.to_json(), latest)  # doctest: +SKIP
    """
    spec = parse_spec(spec)
    if state is not None and not isinstance(state, IndicatorState):
        state = IndicatorState.from_json(state)
    if state is not None and parse_spec(state.spec) != spec:
        raise ValueError(f"state is for {state.spec}, not {spec.text}")
    arrays = _input_arrays(spec, new_rows)
    ts = _timestamps(new_rows)
    _check_order(state, ts)
    if spec.name in REPLICAS:
        outputs, next_state = _update_recurrence(spec, state, arrays)
    else:
        outputs, next_state = _update_window(spec, state, arrays)
    count = len(next(iter(arrays.values()))) if arrays else 0
    next_state.rows = (state.rows if state else 0) + count
    next_state.last_ts = int(ts[-1]) if ts is not None and len(ts) else (
        state.last_ts if state else None)
    columns: dict[str, Any] = {} if ts is None else {"ts": ts}
    columns.update({name: pl.Series(name, values, dtype=pl.Float64, nan_to_null=False)
                    for name, values in zip(spec.columns, outputs, strict=True)})
    return pl.DataFrame(columns), next_state


def _update_window(spec: IndicatorSpec, state: IndicatorState | None,
                   arrays: dict[str, np.ndarray]) -> tuple[tuple[np.ndarray, ...],
                                                          IndicatorState]:
    k = len(arrays[spec.inputs[0]])
    align = _alignment(spec)
    capacity = spec.warmup + align
    held = {name: np.asarray((state.window.get(name, []) if state else []), dtype=np.float64)
            for name in spec.inputs}
    kept = len(held[spec.inputs[0]])
    rows_before = state.rows if state else 0
    start_global = rows_before - kept
    # Drop the oldest held rows that are not needed, keeping >= warmup of them and the
    # circular-buffer phase TA-Lib had when it started at row 0.
    offset = 0
    if kept > spec.warmup:
        offset = kept - spec.warmup
        offset -= (start_global + offset) % align
    joined = {name: np.concatenate((held[name][offset:], arrays[name])) for name in spec.inputs}
    outputs = tuple(out[len(out) - k:] for out in compute_arrays(spec, joined))
    window = {name: values[-capacity:].tolist() for name, values in joined.items()}
    return outputs, IndicatorState(spec=spec.text, window=window)


def _update_recurrence(spec: IndicatorSpec, state: IndicatorState | None,
                       arrays: dict[str, np.ndarray]) -> tuple[tuple[np.ndarray, ...],
                                                              IndicatorState]:
    replica = REPLICAS[spec.name](*spec.params)
    if state is None:
        # A fresh series: TA-Lib computes the values; the replica only needs to reach the end.
        outputs = compute_arrays(spec, arrays)
        if not seed_from_outputs(replica, arrays, outputs):
            start = replica.replay_start(arrays) if hasattr(replica, "replay_start") else 0
            _run(replica, arrays, start)
    else:
        if state.recurrence is not None:
            replica.load(state.recurrence)
        outputs = _run(replica, arrays, 0)
    return outputs, IndicatorState(spec=spec.text, recurrence=replica.dump())


def _run(replica: Any, arrays: dict[str, np.ndarray], start: int) -> tuple[np.ndarray, ...]:
    columns = [arrays[name][start:].tolist() for name in replica.inputs]
    count = len(columns[0]) if columns else 0
    out = np.empty((replica.n_outputs, count), dtype=np.float64)
    step = replica.step
    for i, row in enumerate(zip(*columns, strict=True)):
        out[:, i] = step(*row)
    return tuple(out)


def _alignment(spec: IndicatorSpec) -> int:
    first = spec.params[0] if spec.params else 1
    return first if isinstance(first, int) and first > 0 else 1


def _input_arrays(spec: IndicatorSpec,
                  rows: pl.DataFrame | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = [name for name in spec.inputs if name not in rows]
    if missing:
        raise ValueError(f"{spec.text}: new rows lack column(s) {', '.join(missing)}")
    arrays: dict[str, np.ndarray] = {}
    for name in spec.inputs:
        column = rows[name]
        series = column if isinstance(column, pl.Series) else pl.Series(name, column)
        arrays[name] = input_array(series.alias(name))
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        raise ValueError(f"{spec.text}: input columns have different lengths {sorted(lengths)}")
    return arrays


def _timestamps(rows: pl.DataFrame | Mapping[str, np.ndarray]) -> np.ndarray | None:
    if "ts" not in rows:
        return None
    column = rows["ts"]
    series = column if isinstance(column, pl.Series) else pl.Series("ts", column)
    return input_array(series.alias("ts"))


def _check_order(state: IndicatorState | None, ts: np.ndarray | None) -> None:
    if ts is None or not len(ts):
        return
    if len(ts) > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        raise ValueError("new rows must have strictly increasing ts")
    if state is not None and state.last_ts is not None and int(ts[0]) <= state.last_ts:
        raise ValueError(f"new rows start at ts {int(ts[0])}, not after the state's last "
                         f"candle {state.last_ts}: already appended?")


def _encode(value: Any) -> Any:
    if isinstance(value, np.generic):  # a numpy scalar that slipped into a state
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


__all__ = ["REPLICAS", "IndicatorState", "update"]
