"""A strategy's conditions, checked without polars: read by the condition language
(sfarm.trading.condition_grammar), their columns checked against those a strategy can read.

Loading a strategy (and so checking an inventory: `sfarm validate`, `up`, `deploy`) stops here;
what runs one compiles its conditions into polars expressions (sfarm.trading.expressions).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import lru_cache

from sfarm.trading.condition_grammar import (
    BOOLEAN,
    LANGUAGE,
    Condition,
    ConditionTypeError,
    NotTrueFalse,
    parse_condition,
)
from sfarm.trading.condition_tokens import ConditionSyntaxError

#: Columns every strategy can use: the candle itself.
CANDLE_COLUMNS: tuple[str, ...] = ("ts", "open", "high", "low", "close", "volume")

_KINDS_HINT = (f"AND, OR and NOT take {BOOLEAN}; arithmetic, ABS and BETWEEN take numbers; a "
               "comparison compares two values of one kind, e.g. `close > sma_200`")


class ExpressionError(ValueError):
    """An expression that cannot be used; `str()` is a complete message for a person."""

    def __init__(self, message: str, *, hint: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.key = key  # which of the conditions checked together (check_conditions)


@lru_cache(maxsize=256)  # a strategy's model parses each condition twice (field, then model)
def read_condition(text: str) -> Condition:
    """`text` as a Condition; ExpressionError saying where and why when it is not one."""
    if not text.strip():
        raise ExpressionError("empty expression")
    try:
        return parse_condition(text)
    except ConditionSyntaxError as error:
        raise ExpressionError(f"expression {text!r} is not a condition: {error}",
                              hint=f"a condition is made of {LANGUAGE}") from None
    except NotTrueFalse:
        raise ExpressionError(f"expression {text!r} gives a number, not a {BOOLEAN} condition",
                              hint="compare values, e.g. `close > sma_200`") from None
    except ConditionTypeError as error:
        raise ExpressionError(f"expression {text!r} cannot be evaluated: {error}",
                              hint=_KINDS_HINT) from None


def check_conditions(conditions: Mapping[str, Condition], available: set[str]) -> None:
    """Raise ExpressionError, its `key` naming the condition, for the first one that reads a
    column not in `available`, with the closest name."""
    for key, condition in conditions.items():
        missing = sorted(condition.columns - available)
        if missing:
            name = missing[0]
            close = suggest(name, available)
            did_you_mean = f"; did you mean {close!r}?" if close else ""
            raise ExpressionError(
                f"unknown column {name!r} in expression {condition.text!r}{did_you_mean}",
                hint="columns available: " + ", ".join(sorted(available, key=_column_order)),
                key=key)


def suggest(name: str, available: set[str]) -> str | None:
    """The closest available column name, for a "did you mean" hint."""
    matches = difflib.get_close_matches(name, sorted(available), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _column_order(name: str) -> tuple[int, str]:
    return (CANDLE_COLUMNS.index(name), "") if name in CANDLE_COLUMNS else (len(CANDLE_COLUMNS),
                                                                            name)
