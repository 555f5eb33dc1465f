"""What an indicator declares: its inputs, parameters (type, default, bounds), outputs and how
TA-Lib computes it. Plain data; the table of indicators is in `registry.py`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy only for the type: parsing specs (every inventory load) needs none
    import numpy as np

Number = int | float
# A batch engine: the input arrays (float64, contiguous, one per declared input, in order) and
# the typed parameters -> one float64 array per declared output, each as long as the inputs.
BatchFn = Callable[[tuple["np.ndarray", ...], tuple[Number, ...]], tuple["np.ndarray", ...]]


@dataclass(frozen=True)
class Param:
    """One parameter of an indicator, as written in a spec (`bbands(20, 2)`: period, nbdev)."""

    name: str
    kind: type[int] | type[float]
    default: Number
    low: Number
    high: Number
    doc: str
    # TA-Lib keyword(s) this parameter feeds (nbdev feeds both nbdevup and nbdevdn).
    talib: tuple[str, ...] = ()

    def describe_bounds(self) -> str:
        return f"{format_number(self.low)}..{format_number(self.high)}"


@dataclass(frozen=True)
class IndicatorDef:
    """An indicator of the registry.

    `outputs` are short output names; `main_output` (if any) is the output whose column keeps the
    bare key (`macd_12_26_9`), the others are `<name>_<output>_<params>`.
    `talib_name` is the TA-Lib function used for batch computation and for the look-back;
    `batch` overrides it for indicators TA-Lib lacks (their `lookback` is then given).
    """

    name: str
    title: str
    inputs: tuple[str, ...]
    params: tuple[Param, ...]
    outputs: tuple[str, ...] = ("value",)
    main_output: str | None = "value"
    talib_name: str | None = None
    fixed_talib_kwargs: dict[str, Number] = field(default_factory=dict)
    batch: BatchFn | None = None
    lookback: Callable[[tuple[Number, ...]], int] | None = None
    # Cross-parameter rule: returns an error message or None.
    check: Callable[[tuple[Number, ...]], str | None] | None = None

    def talib_kwargs(self, params: tuple[Number, ...]) -> dict[str, Number]:
        kwargs: dict[str, Number] = dict(self.fixed_talib_kwargs)
        for param, value in zip(self.params, params, strict=True):
            for keyword in param.talib:
                kwargs[keyword] = value
        return kwargs

    def signature(self) -> str:
        """`macd(fast=12, slow=26, signal=9)`: the spec syntax with defaults, for help texts."""
        args = ", ".join(f"{p.name}={format_number(p.default)}" for p in self.params)
        return f"{self.name}({args})"


def format_number(value: Number) -> str:
    """Shortest plain decimal: 2.0 -> '2', 0.02 -> '0.02', 1e-05 -> '0.00001' (never exponent)."""
    if isinstance(value, int) or not math.isfinite(value):
        return str(value)
    # repr is the shortest decimal that reads back as the same float; Decimal spells it out
    # without an exponent. Same text as numpy's format_float_positional(value, trim="-").
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def key_fragment(value: Number) -> str:
    """A parameter as it appears in keys and column names: path-safe, '.' written as 'p'."""
    return format_number(value).replace(".", "p").replace("-", "m")
