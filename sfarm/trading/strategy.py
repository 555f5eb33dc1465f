"""Strategy files (SPEC section 8): the validated model and the loader with file:line errors.

A strategy is a `[strategy]` table: indicators, SQL-style entry/exit conditions (see
`sfarm.trading.conditions`) or `class = "module:Class"` (see `sfarm.trading.custom`), stops,
sizing, fee and slippage. `load_strategy(path)` returns a `Strategy` or raises `UsageError`
naming the file, the line, the key and the expression.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from sfarm.errors import UsageError
from sfarm.printable import Printable
from sfarm.trading.condition_grammar import Condition
from sfarm.trading.conditions import (
    CANDLE_COLUMNS,
    ExpressionError,
    check_conditions,
    read_condition,
)

if TYPE_CHECKING:
    from sfarm.trading.expressions import SignalExpression

SIGNALS: tuple[str, ...] = ("entry_long", "exit_long", "entry_short", "exit_short")


class Strategy(BaseModel):
    """One strategy: what it computes, when it enters and exits, how much it risks."""

    # Strict types, as the inventory's: TOML has numbers, so `size = "1.0"` is a mistake to name,
    # not a value to convert (an integer where a float is expected stays fine: `size = 1`).
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)

    name: Printable = Field(min_length=1)  # printed in every report
    indicators: list[str] = Field(default_factory=list)
    entry_long: str | None = None
    exit_long: str | None = None
    entry_short: str | None = None
    exit_short: str | None = None
    class_path: str | None = Field(default=None, alias="class",
                                   pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    params: dict[str, Any] = Field(default_factory=dict)
    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    take_profit: float | None = Field(default=None, gt=0, lt=1)
    trailing_stop: float | None = Field(default=None, gt=0, lt=1)
    size: float | None = Field(default=None, gt=0, le=1)
    size_quote: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    fee: float = Field(default=0.001, ge=0, lt=1)
    slippage: float = Field(default=0.0, ge=0, lt=1)

    _conditions: dict[str, Condition] = PrivateAttr(default_factory=dict)
    _compiled: dict[str, SignalExpression] | None = PrivateAttr(default=None)
    _source: Path | None = PrivateAttr(default=None)
    _text: str = PrivateAttr(default="")

    @field_validator("indicators")
    @classmethod
    def _parse_indicators(cls, specs: list[str]) -> list[str]:
        from sfarm.indicators import parse_spec

        for spec in specs:
            parse_spec(spec)  # IndicatorSpecError is a ValueError: pydantic reports it
        return specs

    @field_validator(*SIGNALS)
    @classmethod
    def _parse_expression(cls, text: str | None) -> str | None:
        if text is not None:
            read_condition(text)
        return text

    @model_validator(mode="after")
    def _check_combination(self) -> Strategy:
        expressions = [signal for signal in SIGNALS if getattr(self, signal) is not None]
        if self.class_path is not None:
            if expressions:
                raise ValueError(f"give either class or expressions ({', '.join(expressions)}), "
                                 "not both")
        elif not (self.entry_long or self.entry_short):
            raise ValueError("a strategy needs entry_long or entry_short (or class)")
        if self.params and self.class_path is None:
            raise ValueError("params are passed to a class strategy; this strategy has no class")
        if self.size is not None and self.size_quote is not None:
            raise ValueError("give size (fraction of equity) or size_quote (quote amount), "
                             "not both")
        for signal in expressions:
            self._conditions[signal] = read_condition(getattr(self, signal))
        return self

    # -- what the strategy needs and can read ---------------------------------------------

    @property
    def allows_short(self) -> bool:
        if self.class_path is not None:
            return bool(getattr(self.load_class(), "allows_short", False))
        return self.entry_short is not None

    @property
    def size_fraction(self) -> float:
        """Fraction of equity per entry (1.0 when neither size nor size_quote is given)."""
        if self.size_quote is not None:
            return 0.0
        return 1.0 if self.size is None else self.size

    @property
    def conditions(self) -> dict[str, Condition]:
        """The conditions given (entry_long, ...), read and checked, not compiled."""
        return dict(self._conditions)

    @property
    def expressions(self) -> dict[str, SignalExpression]:
        """The conditions compiled into polars expressions, for what runs the strategy
        (compiled on first use: loading and checking a strategy does not load polars)."""
        if self._compiled is None:
            from sfarm.trading.expressions import compile_condition

            compiled = {}
            for signal, condition in self._conditions.items():
                try:
                    compiled[signal] = compile_condition(condition)
                except ExpressionError as error:
                    raise self._error(signal, str(error), error.hint) from None
            self._compiled = compiled
        return dict(self._compiled)

    def all_indicators(self) -> list[str]:
        """The indicators the file declares: a class strategy's too, so that loading an
        inventory plans them without importing the class (see `load_class`)."""
        return list(self.indicators)

    def indicator_columns(self) -> list[str]:
        from sfarm.indicators import parse_spec

        return [column for spec in self.all_indicators() for column in parse_spec(spec).columns]

    def available_columns(self) -> set[str]:
        return set(CANDLE_COLUMNS) | set(self.indicator_columns())

    def required_columns(self) -> set[str]:
        """Columns the conditions read (a class strategy reads what it likes: the candle and
        its indicators)."""
        if self.class_path is not None:
            return set(CANDLE_COLUMNS) | set(self.indicator_columns())
        return set().union(*(c.columns for c in self._conditions.values()))

    def check_columns(self, available: set[str] | None = None) -> None:
        """Raise UsageError for a condition over a column not in `available` (by default the
        candle's and the indicators' columns). That each gives true/false is checked as it is
        read (the strategy would not load)."""
        available = self.available_columns() if available is None else set(available)
        try:
            check_conditions(self._conditions, available)
        except ExpressionError as error:
            raise self._error(error.key or "", str(error), error.hint) from None

    def load_class(self) -> type:
        """Import the class of a class strategy: trusted code, run only by what trades or
        backtests with it, never by loading or validating an inventory. The indicators it
        declares must be in the file's `indicators`, which the inventory plans."""
        from sfarm.trading.custom import load_strategy_class

        assert self.class_path is not None
        try:
            cls = load_strategy_class(self.class_path, self._base)
        except ValueError as error:
            raise self._error("class", str(error)) from None
        declared = getattr(cls, "indicators", None) or []
        if not isinstance(declared, (list, tuple)) or \
                not all(isinstance(spec, str) for spec in declared):
            raise self._error("class", f"{self.class_path}.indicators must be a list of "
                                       f"indicator specs such as [\"rsi(14)\"], not {declared!r}")
        undeclared = [spec for spec in declared if spec not in self.indicators]
        if undeclared:
            raise self._error("indicators", f"{self.class_path} reads {undeclared} but the "
                                            f"file's indicators do not list them",
                              hint=f"add them: indicators = {self.indicators + undeclared}")
        return cls

    def check_class(self) -> None:
        """UsageError unless the class strategy's module can be found (beside the file or
        installed), without importing it."""
        from sfarm.trading.custom import find_strategy_module

        assert self.class_path is not None
        try:
            find_strategy_module(self.class_path, self._base)
        except ValueError as error:
            raise self._error("class", str(error)) from None

    def module_file(self) -> Path | None:
        """The file of a class strategy's module when it lies beside the strategy file (what
        deploy ships with it); None for an installed module or a condition strategy."""
        from sfarm.trading.custom import module_beside

        if self.class_path is None or self._base is None:
            return None
        return module_beside(self.class_path, self._base)

    @property
    def _base(self) -> Path | None:
        return self._source.parent if self._source is not None else None

    def locate(self, key: str) -> str:
        """`file:line: strategy.key` for a message about `key` (as much as is known)."""
        line = key_line(self._text, key) if self._text else None
        return f"{_where(self._source, line)}strategy.{key}"

    def _error(self, key: str, message: str, hint: str | None = None) -> UsageError:
        return UsageError(f"{self.locate(key)}: {message}", hint=hint)


class _StrategyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Strategy


def load_strategy(path: Path | str, *, check: bool = True) -> Strategy:
    """Read and validate a strategy file; with `check`, also check every condition's columns."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read strategy file {path}: {error.strerror}",
                         file=path) from None
    except UnicodeDecodeError as error:
        raise UsageError(f"cannot read strategy file {path}: not UTF-8 text (byte "
                         f"{error.start})", hint="a strategy is a TOML file", file=path) from None
    return parse_strategy(text, source=path, check=check)


def parse_strategy(text: str, *, source: Path | None = None, check: bool = True) -> Strategy:
    """Validate the text of a strategy file (`source` only names it in errors)."""
    try:
        document = tomllib.loads(text)
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise UsageError(f"{_where(source, None)}invalid TOML: arrays or tables nested too "
                         "deeply") from None
    except tomllib.TOMLDecodeError as error:
        line = getattr(error, "lineno", None) or _line_from_message(str(error))
        raise UsageError(f"{_where(source, line)}invalid TOML: {error}", file=source,
                         line=line) from None
    try:
        strategy = _StrategyFile.model_validate(document).strategy
    except ValidationError as error:
        raise _validation_error(error, text, source) from None
    strategy._source = source
    strategy._text = text
    if strategy.class_path is not None:
        strategy.check_class()
    if check:
        strategy.check_columns()
    return strategy


def _validation_error(error: ValidationError, text: str, source: Path | None) -> UsageError:
    """One line per problem: `file:line: strategy.key: what is wrong (got value)`."""
    problems = error.errors()
    lines = [_problem_line(problem, text, source) for problem in problems]
    # A condition's own hint (what the condition language is) says more than the generic one.
    hints = [cause.hint for problem in problems
             if isinstance(cause := problem.get("ctx", {}).get("error"), ExpressionError)
             and cause.hint]
    return UsageError("\n".join(lines),
                      hint=hints[0] if hints else
                      "see docs/trading.md for the keys of a strategy file")


def _problem_line(problem: Any, text: str, source: Path | None) -> str:
    loc = [str(part) for part in problem["loc"]]
    key = ".".join(loc) if loc else "strategy"
    leaf = loc[1] if len(loc) > 1 else None
    line = key_line(text, leaf) if leaf else _table_line(text)
    message = problem["msg"].removeprefix("Value error, ")
    # In the inventory's words: `expected greater than 0`, not `Input should be ...`.
    message = message.replace("Input should be", "expected").replace("String should have",
                                                                     "expected")
    if problem["type"] == "extra_forbidden":
        message = "unknown key" + _suggest_key(leaf)
    elif problem["type"] == "missing":
        message = "required key is missing"
    value = problem.get("input")
    # Every refused value is quoted, `size = 0` and `name = ""` too, unless the validator's
    # own message already says what it got (an indicator spec, a condition).
    if leaf and problem["type"] not in ("extra_forbidden", "missing") \
            and isinstance(value, (str, int, float, date, time)) \
            and "got " not in message and (not isinstance(value, str) or not value
                                           or repr(value) not in message):
        message += f" (got {_toml_value(value)})"
    return f"{_where(source, line)}{key}: {message}"


def _toml_value(value: str | float | date | time) -> str:
    """A value as the strategy file wrote it: `true`, `2024-01-01`, `'text'`, `0.5`."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (date, time)):
        return value.isoformat()
    return repr(value)


def _suggest_key(key: str | None) -> str:
    import difflib

    known = [n if f.alias is None else f.alias for n, f in Strategy.model_fields.items()]
    close = difflib.get_close_matches(key or "", known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def key_line(text: str, key: str) -> int | None:
    """1-based line of `key = ...` inside the [strategy] table of `text` (None if absent)."""
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[+\s*([^\]]+?)\s*\]+", line)
        if header:
            in_table = header.group(1).strip() in ("strategy", "strategy.params")
            continue
        if in_table and pattern.match(line):
            return number
    return _table_line(text)


def _table_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(r"^\s*\[\s*strategy\s*\]", line):
            return number
    return None


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


def _where(source: Path | None, line: int | None) -> str:
    if source is None:
        return f"line {line}: " if line else ""
    return f"{source}:{line}: " if line else f"{source}: "
