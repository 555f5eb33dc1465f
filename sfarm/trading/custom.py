"""Strategies written in Python, for rules that expressions cannot say.

A strategy file names the class with ``class = "module:Class"``; the module is imported from
`sys.path` or, failing that, from ``<module>.py`` beside the strategy file. The class follows
`SignalStrategy`: it is constructed with the file's ``[strategy.params]`` as keyword arguments
and turns the candle frame (candles plus indicator columns, NaN warm-up values as null) into
boolean signal columns. Stops, sizing, fee and slippage stay in the file and in the engine, so
a class strategy fills exactly like an expression strategy.

Example::

    class Breakout:
        indicators = ["sma(20)"]
        allows_short = False

        def __init__(self, lookback: int = 20) -> None:
            self.lookback = lookback

        def signals(self, frame: pl.DataFrame) -> pl.DataFrame:
            prev_high = pl.col("high").rolling_max(self.lookback).shift(1)
            return frame.select(entry_long=pl.col("close") > prev_high,
                                exit_long=pl.col("close") < pl.col("sma_20"))
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import polars as pl


@runtime_checkable
class SignalStrategy(Protocol):
    """What a `class = "module:Class"` strategy provides.

    `indicators`: indicator specs it reads (added to the file's `indicators`).
    `allows_short`: whether entry_short signals are acted on (default False).
    `signals(frame)`: a frame of the same height with Boolean columns among entry_long,
    exit_long, entry_short, exit_short (a missing column means never; null means false). The
    value on row i may only use rows <= i: the engine acts on it at row i+1's open.
    """

    indicators: ClassVar[list[str]]

    def signals(self, frame: pl.DataFrame) -> pl.DataFrame: ...


def load_strategy_class(class_path: str, base: Path | None = None) -> type:
    """Import `module:Class`; raise ValueError with what was tried when it cannot."""
    module_name, _, class_name = class_path.partition(":")
    module = _import(module_name, base)
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ValueError(f"module {module_name!r} has no class {class_name!r}")
    if not callable(getattr(cls, "signals", None)):
        raise ValueError(f"{class_path} has no signals(frame) method; see "
                         "sfarm.trading.custom.SignalStrategy")
    return cls


def module_beside(class_path: str, base: Path) -> Path | None:
    """`<module>.py` beside the strategy file (in `base`) when it exists."""
    module_name = class_path.partition(":")[0]
    candidate = base.joinpath(*module_name.split(".")).with_suffix(".py")
    return candidate if candidate.is_file() else None


def find_strategy_module(class_path: str, base: Path | None = None) -> None:
    """Raise ValueError unless the module of `class_path` is beside the strategy file or
    installed; nothing is imported (only a dotted name's parent packages, as Python finds it)."""
    module_name = class_path.partition(":")[0]
    if base is not None and module_beside(class_path, base) is not None:
        return
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        where = f" (nor {base / (module_name.replace('.', '/') + '.py')})" if base else ""
        raise ValueError(f"cannot find module {module_name!r}{where}")


def _import(module_name: str, base: Path | None) -> object:
    if base is not None:
        candidate = module_beside(module_name, base)
        if candidate is not None:
            return _import_file(module_name, candidate)
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        where = f" (nor {base / (module_name.replace('.', '/') + '.py')})" if base else ""
        raise ValueError(f"cannot import module {module_name!r}{where}: {error}") from None


def _import_file(module_name: str, path: Path) -> object:
    # A private name so a strategy module never shadows an installed package of the same name.
    unique = f"sfarm_strategy_{abs(hash(str(path.resolve())))}_{module_name.replace('.', '_')}"
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # user code: report whatever it raised, with where it came from
        del sys.modules[unique]
        raise ValueError(f"importing {path} failed: {type(error).__name__}: {error}") from None
    return module
