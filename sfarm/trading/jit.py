"""numba kernels compiled when a run is large enough to gain from it.

Importing numba and loading a kernel from its on-disk cache takes about a second; a backtest of
a thousand candles, or a paper session's one new candle, runs in milliseconds as plain Python.
`@jit(...)` marks a function as a numba kernel (the options are numba.njit's) without importing
numba: called directly it runs its own Python source, and `for_size(n)` gives the compiled
kernel for runs of `INTERPRETED_BELOW` candles or more, the same source otherwise. One source,
so both give the same results (tests/test_trading_jit.py runs the two side by side).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

# Below this many candles the Python source finishes before numba would have loaded (~1 s).
INTERPRETED_BELOW = 20_000


class Kernel:
    """A function numba compiles on first need (see the module's docstring)."""

    def __init__(self, function: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = function  # numba's name for a kernel's Python source
        self.options = options
        self._compiled: Callable[..., Any] | None = None
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any) -> Any:
        return self.py_func(*args)

    def compiled(self) -> Callable[..., Any]:
        """The numba dispatcher (loaded from numba's cache when it holds one)."""
        if self._compiled is None:
            from numba import njit

            # numba reads the kernels this one calls from its module's globals when it compiles
            # it (at its first call): the module's other kernels become numba's dispatchers
            # there. This one's name stays the Kernel: callers reach it through `for_size`.
            module = sys.modules[self.py_func.__module__]
            for name, value in list(vars(module).items()):
                if isinstance(value, Kernel):
                    if value._compiled is None:
                        value._compiled = njit(**value.options)(value.py_func)
                    if value is not self:
                        setattr(module, name, value._compiled)
        assert self._compiled is not None
        return self._compiled

    def for_size(self, candles: int) -> Callable[..., Any]:
        """The kernel to run on `candles` candles: compiled for large runs, else the source."""
        return self.compiled() if candles >= INTERPRETED_BELOW else self.py_func


def jit(**options: Any) -> Callable[[Callable[..., Any]], Kernel]:
    """Mark a numba kernel; `options` are numba.njit's (cache=True, inline="always", ...)."""
    return lambda function: Kernel(function, options)
