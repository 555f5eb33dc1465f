"""The spec language: `rsi(14)`, `macd(12, 26, 9)`, `bbands(20, nbdev=2.5)`, `obv` -> IndicatorSpec.

A spec is a registry name (case-insensitive) with optional arguments, positional or
`name=value`; missing arguments take the declared defaults. Errors are IndicatorSpecError, a
message meant to be shown to a person verbatim.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from sfarm.errors import UsageError
from sfarm.indicators.definitions import IndicatorDef, Number, Param, format_number, key_fragment
from sfarm.indicators.registry import REGISTRY

_SPEC_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_KEYWORD_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", re.DOTALL)


class IndicatorSpecError(UsageError, ValueError):
    """A spec that cannot be used; `str()` is a complete message for a person."""

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class IndicatorSpec:
    """A parsed, validated indicator spec: a registry name and all its typed parameters."""

    name: str
    params: tuple[Number, ...]

    @property
    def definition(self) -> IndicatorDef:
        return REGISTRY[self.name]

    @property
    def text(self) -> str:
        """Canonical spec string, e.g. `macd(12,26,9)`; parses back to an equal spec."""
        args = ",".join(format_number(p) for p in self.params)
        return f"{self.name}({args})"

    @cached_property
    def key(self) -> str:
        """Dataset key and main column name: `macd_12_26_9`, `bbands_20_2p5`, `obv`."""
        return "_".join((self.name, *(key_fragment(p) for p in self.params)))

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """Output column names, in the order of the definition's outputs."""
        return tuple(self.column(output) for output in self.definition.outputs)

    def column(self, output: str) -> str:
        if output == self.definition.main_output:
            return self.key
        return "_".join((self.name, output, *(key_fragment(p) for p in self.params)))

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.definition.inputs

    @property
    def warmup(self) -> int:
        """Rows before the first value: TA-Lib's look-back for these parameters."""
        definition = self.definition
        if definition.lookback is not None:
            return definition.lookback(self.params)
        assert definition.talib_name is not None
        kwargs = definition.talib_kwargs(self.params)
        return _talib_lookback(definition.talib_name, tuple(sorted(kwargs.items())))

    def __str__(self) -> str:
        return self.text


@lru_cache(maxsize=1024)
def _talib_lookback(talib_name: str, kwargs: tuple[tuple[str, Number], ...]) -> int:
    from talib import abstract  # imported here: abstract builds its function table on import

    from sfarm.indicators.ta import talib  # noqa: F401  # without pandas, before abstract

    # talib's abstract.pyi declares the indicator functions but not the Function class.
    function = abstract.Function(talib_name)  # type: ignore[attr-defined]
    function.set_parameters(**dict(kwargs))
    return int(function.lookback)


def parse_spec(text: str | IndicatorSpec) -> IndicatorSpec:
    """Parse and validate `text`; raise IndicatorSpecError with a user-ready message."""
    if isinstance(text, IndicatorSpec):
        return text
    if not isinstance(text, str):
        raise IndicatorSpecError(f"indicator spec must be a string like 'rsi(14)', got {text!r}")
    return _parse(text)


@lru_cache(maxsize=4096)  # specs are few and immutable; compute() parses on every call
def _parse(text: str) -> IndicatorSpec:
    match = _SPEC_RE.match(text)
    if match is None:
        raise IndicatorSpecError(
            f"bad indicator spec {text!r}: expected a name with optional arguments, "
            "like 'rsi', 'rsi(14)' or 'macd(12,26,9)'")
    name = match.group(1).lower()
    definition = REGISTRY.get(name)
    if definition is None:
        raise _unknown_name(text, name)
    raw_args = match.group(2)
    args = [] if raw_args is None or not raw_args.strip() else raw_args.split(",")
    values = _bind_arguments(text, definition, args)
    params = tuple(_typed(text, definition, param, raw) for param, raw in zip(
        definition.params, values, strict=True))
    if definition.check is not None:
        problem = definition.check(params)
        if problem is not None:
            raise IndicatorSpecError(f"{text!r}: {problem}; usage: {definition.signature()}")
    return IndicatorSpec(name, params)


def _unknown_name(text: str, name: str) -> IndicatorSpecError:
    close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.6)
    suggestion = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return IndicatorSpecError(
        f"unknown indicator {name!r} in {text!r}{suggestion}",
        hint="known indicators: " + ", ".join(REGISTRY))


def _bind_arguments(text: str, definition: IndicatorDef, args: list[str]) -> list[str | Number]:
    """Positional then keyword arguments -> one raw value per declared parameter."""
    params = definition.params
    usage = f"usage: {definition.signature()}"
    if len(args) > len(params):
        allowed = (f"at most {len(params)} argument{'s' if len(params) != 1 else ''} "
                   f"({', '.join(p.name for p in params)})" if params else "no arguments")
        raise IndicatorSpecError(
            f"{text!r}: {definition.name} takes {allowed}, got {len(args)}; {usage}")
    values: list[str | Number | None] = [None] * len(params)
    names = [p.name for p in params]
    seen_keyword = False
    for position, arg in enumerate(args):
        keyword = _KEYWORD_RE.match(arg)
        if keyword is None and seen_keyword:
            raise IndicatorSpecError(
                f"{text!r}: positional argument after a keyword argument; {usage}")
        if keyword is None:
            values[position] = arg.strip()
            continue
        seen_keyword = True
        key = keyword.group(1).lower()
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise IndicatorSpecError(
                f"{text!r}: {definition.name} has no parameter {key!r}{hint} {usage}")
        index = names.index(key)
        if values[index] is not None:
            raise IndicatorSpecError(f"{text!r}: {key} given twice; {usage}")
        values[index] = keyword.group(2)
    return [p.default if v is None else v for p, v in zip(params, values, strict=True)]


def _typed(text: str, definition: IndicatorDef, param: Param, raw: str | Number) -> Number:
    where = f"{text!r}: {definition.name} {param.name}"
    if isinstance(raw, str):
        if raw == "":
            raise IndicatorSpecError(f"{where} is empty; usage: {definition.signature()}")
        try:
            number = float(raw)
        except ValueError:
            raise IndicatorSpecError(f"{where} must be a number, got {raw!r}") from None
    else:
        number = float(raw)
    if not math.isfinite(number):
        raise IndicatorSpecError(f"{where} must be a finite number, got {raw!r}")
    if param.kind is int:
        if not number.is_integer():
            raise IndicatorSpecError(f"{where} must be a whole number, got {raw!r}")
        value: Number = int(number)
    else:
        value = number
    if not param.low <= value <= param.high:
        raise IndicatorSpecError(
            f"{where} must be between {format_number(param.low)} and "
            f"{format_number(param.high)}, got {format_number(value)}",
            hint=f"{param.name}: {param.doc}")
    return value
