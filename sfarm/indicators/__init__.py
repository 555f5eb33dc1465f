"""Technical indicators: the spec language, the registry, batch and incremental computation.

May import numpy, polars, talib, sfarm.errors and sfarm.lazy; the dataset store, the engines'
task context (sfarm.context) and the task models (sfarm.tasks) only from `task.py`, the
`indicators` task's engine. The inventory checks specs with the spec language below.

Specs
    A spec is a registry name, case-insensitive, with optional arguments, positional or by name:
    ``rsi``, ``rsi()``, ``rsi(14)``, ``macd(12, 26, 9)``, ``bbands(20, nbdev=2.5)``. Missing
    arguments take the defaults listed by :func:`describe`. :func:`parse_spec` returns an
    :class:`IndicatorSpec` or raises :class:`IndicatorSpecError` (a ``ValueError`` and a
    ``UsageError``) whose message can be shown to a person as is.

Keys and column names
    The key is the name followed by every parameter (defaults filled), joined by ``_``:
    ``rsi(14)`` -> ``rsi_14``, ``macd`` -> ``macd_12_26_9``, ``obv`` -> ``obv``. Integral float
    parameters print without ``.0`` and other floats write the dot as ``p`` so keys are
    path-safe: ``bbands(20,2)`` -> ``bbands_20_2``, ``bbands(20,2.5)`` -> ``bbands_20_2p5``,
    ``sar`` -> ``sar_0p02_0p2``. The key names the dataset
    ``indicators/<exchange>/<BASE-QUOTE>/<tf>/<key>``.

    A single-output indicator's column is its key. A multi-output indicator's columns are
    ``<name>_<output>_<params>``, except that MACD's main line keeps the bare key:
    ``macd_12_26_9``, ``macd_signal_12_26_9``, ``macd_hist_12_26_9``;
    ``bbands_upper_20_2``, ``bbands_middle_20_2``, ``bbands_lower_20_2``;
    ``stoch_slowk_14_3_3``, ``stoch_slowd_14_3_3``; ``stochrsi_fastk_14_14_3``,
    ``stochrsi_fastd_14_14_3``; ``aroon_down_14``, ``aroon_up_14``.

Values
    TA-Lib computes every indicator it has, with its default settings (no unstable period,
    TA-Lib compatibility mode), so values agree with TA-Lib exactly. Columns are Float64 and,
    like TA-Lib, hold NaN (not null) where there is no value: the first ``spec.warmup`` rows,
    and wherever an input NaN propagates. The session VWAP (sfarm's own) resets at 00:00 UTC and
    is NaN while the session has had no volume.

Incremental updates
    ``update(spec, state, new_rows)`` returns the rows for new candles and the next
    :class:`IndicatorState` (JSON-ready, kept in the indicator dataset's manifest) at a cost of
    O(new rows + look-back); see ``incremental.py``. The ``indicators`` task is ``task.py``.

Example:
    >>> from sfarm.indicators import compute, parse_spec
    >>> parse_spec("MACD( 12, 26, 9 )").columns
    ('macd_12_26_9', 'macd_signal_12_26_9', 'macd_hist_12_26_9')
    >>> frame = compute(candles, ["rsi(14)", "bbands(20,2)"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfarm.lazy import lazy_exports

# Spec parsing (what validating an inventory needs) must not load TA-Lib and pandas.
_EXPORTS = {
    "compute": "sfarm.indicators.batch",
    "compute_arrays": "sfarm.indicators.batch",
    "IndicatorDef": "sfarm.indicators.definitions",
    "Param": "sfarm.indicators.definitions",
    "IndicatorState": "sfarm.indicators.incremental",
    "update": "sfarm.indicators.incremental",
    "REGISTRY": "sfarm.indicators.registry",
    "describe": "sfarm.indicators.registry",
    "IndicatorSpec": "sfarm.indicators.spec",
    "IndicatorSpecError": "sfarm.indicators.spec",
    "parse_spec": "sfarm.indicators.spec",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from sfarm.indicators.batch import compute, compute_arrays  # noqa: F401
    from sfarm.indicators.definitions import IndicatorDef, Param  # noqa: F401
    from sfarm.indicators.incremental import IndicatorState, update  # noqa: F401
    from sfarm.indicators.registry import REGISTRY, describe  # noqa: F401
    from sfarm.indicators.spec import IndicatorSpec, IndicatorSpecError, parse_spec  # noqa: F401
