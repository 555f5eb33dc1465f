"""The language of strategy conditions, checked before polars sees the text.

polars' SQL parser does more than parse: `close IN (SELECT c FROM read_csv('/etc/hostname'))`
reads the file and `read_csv('http://...')` makes a request while the text is compiled. So a
condition is first read by this small grammar, which accepts only what a condition over candles
needs, and nothing reaches `pl.sql_expr` that it refused:

    condition  := or
    or         := and (OR and)*
    and        := not (AND not)*
    not        := NOT not | predicate
    predicate  := sum [ (< | <= | > | >= | = | <> | !=) sum
                      | [NOT] BETWEEN sum AND sum
                      | IS [NOT] NULL ]
    sum        := product ((+ | -) product)*
    product    := unary ((* | / | %) unary)*
    unary      := (+ | -) unary | atom
    atom       := number | TRUE | FALSE | column | ( condition )
                | ABS ( condition ) | COALESCE ( condition [, condition]* )
                | LAG ( column [, integer] ) OVER ( ORDER BY ts [ASC] )
    column     := name | "name"          (letters, digits, _; not a keyword)

No strings, no other functions, no subqueries, no other windows. Keywords in any case.
(Written by hand rather than with a parser library: the grammar is small, and lark alone
costs ~0.12 s at the start of every command that loads a strategy.) Its words, and the text
cut into them, are sfarm.trading.condition_tokens.

Every value is a number (columns, numbers, arithmetic, ABS, LAG) or true/false (comparisons,
AND/OR/NOT, TRUE, FALSE, IS NULL, BETWEEN): AND, OR and NOT take true/false; arithmetic, signs,
ABS and BETWEEN take numbers; a comparison and COALESCE take values of one kind; a condition is
true/false. polars would take some mixtures (`NOT close`, `(close > 1) = 1`) with meanings of
its own; they are refused here, so that what this grammar accepts polars evaluates
(tests/test_trading_conditions.py checks it on generated conditions). Pure: text in, the
`Condition` out (the text polars is given, the columns read, the look-backs), no polars: an
inventory's strategies are checked without loading it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final

from sfarm.trading.condition_tokens import (
    COMPARISONS,
    FUNCTIONS,
    KEYWORDS,
    ConditionError,
    ConditionSyntaxError,
    Token,
    tokenize,
)

# Nesting beyond this exhausts Python's stack (real conditions nest a few levels).
MAX_DEPTH = 40  # parentheses and function calls inside each other
MAX_LAG = 10_000_000  # candles: 19 years of 1m candles; more overflows polars' shift
LANGUAGE = ("columns, numbers, < <= > >= = <> !=, AND OR NOT, BETWEEN, IS [NOT] NULL, "
            "+ - * / %, ABS(x), COALESCE(x, ...) and LAG(col[, n]) OVER (ORDER BY ts)")

# Closes `NULLIF(` around an arithmetic operation in the text polars is given: NaN -> null.
_NAN_TO_NULL_END: Final = ", CAST('NaN' AS DOUBLE))"
NUMBER: Final = "a number"
BOOLEAN: Final = "true/false"


class ConditionTypeError(ConditionError):
    """A value of one kind (a number, true/false) where the other is needed."""


class NotTrueFalse(ConditionTypeError):
    """A well-formed expression whose value is a number: not a condition."""


@dataclass(frozen=True)
class Lag:
    """`LAG(column, periods) OVER (ORDER BY ts)`: the column shifted down by `periods` rows,
    named `name` in the text polars is given (a shift costs ~10x less than polars' window)."""

    name: str
    column: str
    periods: int


@dataclass(frozen=True)
class Condition:
    """A condition of the language: its text, the text polars is given (its tokens again, every
    column double-quoted so that no name can be read as SQL, keywords in upper case, each LAG
    its `Lag.name`), the columns it reads (LAG's included) and its look-backs."""

    text: str
    polars_text: str
    columns: frozenset[str]
    lags: tuple[Lag, ...] = ()


@dataclass(frozen=True)
class _Value:
    kind: str  # NUMBER or BOOLEAN
    column: int  # where it starts in the text, for a message
    constant: bool = False  # reads no column
    at: int = 0  # the index of its first token


def parse_condition(text: str) -> Condition:
    """`text` as a `Condition`; ConditionSyntaxError unless it is one condition of the
    language above, ConditionTypeError unless its values are of the kinds it needs."""
    tokens = tokenize(text)
    parser = _Parser(tokens)
    value = parser.condition()
    parser.expect_end()
    if value.kind != BOOLEAN:
        raise NotTrueFalse(f"it gives {value.kind}, not {BOOLEAN}", value.column)
    opens = Counter(start for start, _ in parser.computed)
    closes = Counter(end for _, end in parser.computed)
    parts, index = [], 0
    while index < len(tokens) - 1:
        parts += [_NAN_TO_NULL_END] * closes[index] + ["NULLIF("] * opens[index]
        span = parser.lag_spans.get(index)
        if span is not None:
            end, lag = span
            parts.append(f'"{lag.name}"')
            index = end
            continue
        parts.append(_canonical(tokens[index], index in parser.columns))
        index += 1
    parts += [_NAN_TO_NULL_END] * closes[index]
    columns = frozenset(tokens[at].text.strip('"') for at in parser.columns)
    lags = tuple(dict.fromkeys(lag for _, lag in parser.lag_spans.values()))
    return Condition(text, " ".join(parts), columns, lags)


def _canonical(token: Token, column: bool) -> str:
    if column:
        return f'"{token.text.strip(chr(34))}"'
    if token.kind == "name" and token.word in KEYWORDS | FUNCTIONS:
        return token.word
    if token.kind == "number" and "." in token.text and not {"e", "E"} & set(token.text):
        # polars' SQL reads 0.5 as a Decimal, and `0.5 / 0` then fails where `close / 0` is
        # inf: with an exponent it is a float, as every column but ts is.
        return token.text + "e0"
    return token.text.strip('"')  # a number, an operator, ts in LAG's ORDER BY


class _Parser:
    """Recursive descent over the grammar: each rule returns the kind of its value."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0
        self.columns: set[int] = set()  # the indices of the tokens that name a column
        self.lag_spans: dict[int, tuple[int, Lag]] = {}  # LAG's first token -> end, the Lag
        self.computed: list[tuple[int, int]] = []  # the token spans of arithmetic operations
        self.depth = 0  # parentheses and calls open at the current token

    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def take(self, *words: str) -> Token | None:
        """Consume the token when it is one of `words` (keywords in any case)."""
        token = self.token
        if token.kind in ("name", "op") and token.word in words:
            self.at += 1
            return token
        return None

    def need(self, word: str, context: str) -> None:
        if not self.take(word):
            raise self.unexpected(f"expected {word} {context}")

    def unexpected(self, expected: str) -> ConditionSyntaxError:
        token = self.token
        found = "the end of the condition" if token.kind == "end" else repr(token.text)
        return ConditionSyntaxError(f"{expected}, found {found}", token.column)

    def expect_end(self) -> None:
        if self.token.kind != "end":
            raise self.unexpected("expected an operator or the end")

    def condition(self) -> _Value:
        value = self.conjunction()
        while operator := self.take("OR"):
            value = _both(operator, BOOLEAN, value, self.conjunction())
        return value

    def conjunction(self) -> _Value:
        value = self.negation()
        while operator := self.take("AND"):
            value = _both(operator, BOOLEAN, value, self.negation())
        return value

    def negation(self) -> _Value:
        first = self.take("NOT")
        while self.take("NOT"):  # a loop, not recursion: NOT NOT ... never exhausts the stack
            pass
        value = self.predicate()
        if first is None:
            return value
        _expect(value, BOOLEAN, "NOT")
        return _Value(BOOLEAN, first.column, value.constant)

    def predicate(self) -> _Value:
        left = self.sum()
        token = self.token
        if token.kind == "op" and token.text in COMPARISONS:
            self.at += 1
            right = self.sum()
            if right.kind != left.kind:
                raise ConditionTypeError(f"{token.text} compares {left.kind} with {right.kind}",
                                         token.column)
            return _Value(BOOLEAN, left.column, left.constant and right.constant)
        if self.take("IS"):
            self.take("NOT")
            self.need("NULL", "after IS [NOT]")
            return _Value(BOOLEAN, left.column, left.constant)
        negated = self.take("NOT")
        if self.take("BETWEEN"):
            low = self.sum()
            self.need("AND", "in BETWEEN ... AND ...")
            high = self.sum()
            for value in (left, low, high):
                _expect(value, NUMBER, "BETWEEN")
            return _Value(BOOLEAN, left.column, left.constant and low.constant and high.constant)
        if negated:
            raise self.unexpected("expected BETWEEN after NOT")
        return left

    def sum(self) -> _Value:
        value = self.product()
        while operator := self.take("+", "-"):
            value = self.arithmetic(operator, value, self.product())
        return value

    def product(self) -> _Value:
        value = self.unary()
        while operator := self.take("*", "/", "%"):
            value = self.arithmetic(operator, value, self.unary())
        return value

    def arithmetic(self, operator: Token, left: _Value, right: _Value) -> _Value:
        """`left operator right`, which has just been read. Its NaN (0/0, inf - inf, x % 0)
        is no value, as a column's NaN is (sfarm.trading.expressions): null in the text polars
        is given, where a NaN would compare above every number (a doji's
        `(close - open) / (high - low) > 0.5` would fire)."""
        value = _both(operator, NUMBER, left, right)
        self.computed.append((left.at, self.at))
        return value

    def unary(self) -> _Value:
        start = self.at
        sign = self.take("+", "-")
        while self.take("+", "-"):
            pass
        value = self.atom()
        if sign is None:
            return value
        _expect(value, NUMBER, f"the sign {sign.text}")
        return _Value(NUMBER, sign.column, value.constant, start)

    def atom(self) -> _Value:
        token, start = self.token, self.at
        if token.kind == "number":
            self.at += 1
            return _Value(NUMBER, token.column, True, start)
        if self.take("TRUE", "FALSE"):
            return _Value(BOOLEAN, token.column, True, start)
        if self.take("("):
            self.enter()
            value = self.condition()
            self.need(")", "to close (")
            self.depth -= 1
            return _Value(value.kind, token.column, value.constant, start)
        if token.kind == "name" and self.tokens[self.at + 1].text == "(":
            return self.call(token)
        if token.kind in ("name", "quoted"):
            self.column()
            return _Value(NUMBER, token.column, False, start)
        raise self.unexpected("expected a column, a number or (")

    def call(self, name: Token) -> _Value:
        if name.word not in FUNCTIONS:
            raise ConditionSyntaxError(f"function {name.text} is not part of conditions "
                                       "(only ABS, COALESCE and LAG)", name.column)
        start = self.at
        self.at += 2  # the name and its (
        if name.word == "LAG":
            self.lag(start)
            return _Value(NUMBER, name.column, False, start)
        self.enter()
        values = [self.condition()]
        while name.word == "COALESCE" and self.take(","):
            values.append(self.condition())
        self.need(")", f"to close {name.word}(")
        self.depth -= 1
        if name.word == "ABS":
            _expect(values[0], NUMBER, "ABS")
        for value in values[1:]:
            if value.kind != values[0].kind:
                raise ConditionTypeError(f"COALESCE takes values of one kind, not "
                                         f"{values[0].kind} and {value.kind}", value.column)
        if len(values) > 1 and values[0].constant:
            # Pointless (its first value is its value), and polars 2.1 evaluates
            # `0 <= COALESCE(0, open)` to one row instead of one per candle.
            raise ConditionSyntaxError("COALESCE's first value must read a column (the values "
                                       "after a constant are never used)", values[0].column)
        return _Value(values[0].kind, name.column, all(value.constant for value in values), start)

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.unexpected(f"nested too deeply (at most {MAX_DEPTH} levels of "
                                  "parentheses)")

    def lag(self, start: int) -> None:
        column = self.token
        self.column()
        periods = 1
        if self.take(","):
            if self.token.kind != "number" or not self.token.text.isdigit():
                raise self.unexpected("expected a whole number of candles in LAG")
            periods = int(self.token.text)
            if periods > MAX_LAG:
                raise self.unexpected(f"expected at most {MAX_LAG:,} candles in LAG")
            self.at += 1
        self.need(")", "to close LAG(")
        for word in ("OVER", "(", "ORDER", "BY"):
            self.need(word, "in LAG(...) OVER (ORDER BY ts)")
        if self.token.kind == "quoted" and self.token.text == '"ts"':
            self.at += 1
        elif not self.take("TS"):
            raise self.unexpected("expected ts (a condition looks back in time order only)")
        self.take("ASC")
        self.need(")", "to close OVER (")
        name = column.text.strip('"')
        self.lag_spans[start] = (self.at, Lag(f"__lag{periods}__{name}", name, periods))

    def column(self) -> None:
        token = self.token
        if token.kind == "quoted" or (token.kind == "name" and token.word not in KEYWORDS):
            self.columns.add(self.at)
            self.at += 1
            return
        raise self.unexpected("expected a column")


def _expect(value: _Value, kind: str, taker: str) -> None:
    if value.kind != kind:
        raise ConditionTypeError(f"{taker} takes {kind}, not {value.kind}", value.column)


def _both(operator: Token, kind: str, left: _Value, right: _Value) -> _Value:
    """The value of `left operator right`, both of `kind`."""
    for value in (left, right):
        _expect(value, kind, operator.word)
    return _Value(kind, left.column, left.constant and right.constant, left.at)
