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
costs ~0.12 s at the start of every command that loads a strategy.) Pure: text in, the text
polars is given out (`canonical_condition`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEYWORDS = frozenset({"AND", "OR", "NOT", "BETWEEN", "IS", "NULL", "TRUE", "FALSE", "LAG",
                      "OVER", "ORDER", "BY", "ASC"})
FUNCTIONS = frozenset({"ABS", "COALESCE", "LAG"})
COMPARISONS = frozenset({"<", "<=", ">", ">=", "=", "<>", "!="})
# Bounds of a condition: real ones are a few dozen tokens. Beyond them polars' planning grows
# faster than linearly (3,000 terms took minutes) and deep nesting exhausts Python's stack.
MAX_TOKENS = 500
MAX_DEPTH = 40  # parentheses and function calls inside each other
MAX_LAG = 10_000_000  # candles: 19 years of 1m candles; more overflows polars' shift
LANGUAGE = ("columns, numbers, < <= > >= = <> !=, AND OR NOT, BETWEEN, IS [NOT] NULL, "
            "+ - * / %, ABS(x), COALESCE(x, ...) and LAG(col[, n]) OVER (ORDER BY ts)")

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted>"[A-Za-z_][A-Za-z0-9_]*")
  | (?P<op><=|>=|<>|!=|[=<>+\-*/%(),])
""", re.VERBOSE)


class ConditionSyntaxError(ValueError):
    """Text outside the condition language: `what` was found at `column` (1-based)."""

    def __init__(self, what: str, column: int) -> None:
        super().__init__(f"{what} at column {column}")
        self.what = what
        self.column = column


@dataclass(frozen=True)
class Token:
    kind: str  # number, name, quoted, op, end
    text: str
    column: int  # 1-based

    @property
    def word(self) -> str:
        """A name's keyword form (upper case); other tokens as written."""
        return self.text.upper() if self.kind == "name" else self.text


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an `end` token; ConditionSyntaxError at the first
    character no token starts with (a quote ', a semicolon, a dot in a name...) and at a
    comment (`--`)."""
    tokens, position = [], 0
    while position < len(text):
        if text.startswith("--", position):  # SQL's comment: the rest would go unread
            raise ConditionSyntaxError("a comment (--) is not part of conditions", position + 1)
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConditionSyntaxError(f"unexpected character {text[position]!r}", position + 1)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), position + 1))
        position = match.end()
        if len(tokens) > MAX_TOKENS:
            raise ConditionSyntaxError(f"too long: a condition has at most {MAX_TOKENS} "
                                       "tokens (names, numbers, operators)", position + 1)
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def canonical_condition(text: str) -> str:
    """`text` as polars is given it: its tokens again, every column double-quoted (so that no
    name can be read as SQL: a column called SELECT is a column), keywords in upper case.
    ConditionSyntaxError unless `text` is one condition of the language above."""
    tokens = tokenize(text)
    parser = _Parser(tokens)
    parser.condition()
    parser.expect_end()
    return " ".join(_canonical(token, index in parser.columns) for index, token
                    in enumerate(tokens[:-1]))


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
    """Recursive descent over the grammar; it only accepts or refuses (polars compiles)."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0
        self.columns: set[int] = set()  # the indices of the tokens that name a column
        self.depth = 0  # parentheses and calls open at the current token

    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def take(self, *words: str) -> bool:
        """Consume the token when it is one of `words` (keywords in any case)."""
        if self.token.kind in ("name", "op") and self.token.word in words:
            self.at += 1
            return True
        return False

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

    def condition(self) -> None:
        self.conjunction()
        while self.take("OR"):
            self.conjunction()

    def conjunction(self) -> None:
        self.negation()
        while self.take("AND"):
            self.negation()

    def negation(self) -> None:
        while self.take("NOT"):  # a loop, not recursion: NOT NOT ... never exhausts the stack
            pass
        self.predicate()

    def predicate(self) -> None:
        self.sum()
        if self.token.kind == "op" and self.token.text in COMPARISONS:
            self.at += 1
            self.sum()
        elif self.take("IS"):
            self.take("NOT")
            self.need("NULL", "after IS [NOT]")
        else:
            negated = self.take("NOT")
            if self.take("BETWEEN"):
                self.sum()
                self.need("AND", "in BETWEEN ... AND ...")
                self.sum()
            elif negated:
                raise self.unexpected("expected BETWEEN after NOT")

    def sum(self) -> None:
        self.product()
        while self.take("+", "-"):
            self.product()

    def product(self) -> None:
        self.unary()
        while self.take("*", "/", "%"):
            self.unary()

    def unary(self) -> None:
        while self.take("+", "-"):
            pass
        self.atom()

    def atom(self) -> None:
        token = self.token
        if token.kind == "number":
            self.at += 1
        elif self.take("TRUE", "FALSE"):
            pass
        elif self.take("("):
            self.enter()
            self.condition()
            self.need(")", "to close (")
            self.depth -= 1
        elif token.kind == "name" and self.tokens[self.at + 1].text == "(":
            self.call(token)
        elif token.kind in ("name", "quoted"):
            self.column()
        else:
            raise self.unexpected("expected a column, a number or (")

    def call(self, name: Token) -> None:
        if name.word not in FUNCTIONS:
            raise ConditionSyntaxError(f"function {name.text} is not part of conditions "
                                       "(only ABS, COALESCE and LAG)", name.column)
        self.at += 2  # the name and its (
        if name.word == "LAG":
            self.lag()
            return
        self.enter()
        self.condition()
        while name.word == "COALESCE" and self.take(","):
            self.condition()
        self.need(")", f"to close {name.word}(")
        self.depth -= 1

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.unexpected(f"nested too deeply (at most {MAX_DEPTH} levels of "
                                  "parentheses)")

    def lag(self) -> None:
        self.column()
        if self.take(","):
            if self.token.kind != "number" or not self.token.text.isdigit():
                raise self.unexpected("expected a whole number of candles in LAG")
            if int(self.token.text) > MAX_LAG:
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

    def column(self) -> None:
        token = self.token
        if token.kind == "quoted" or (token.kind == "name" and token.word not in KEYWORDS):
            self.columns.add(self.at)
            self.at += 1
            return
        raise self.unexpected("expected a column")
