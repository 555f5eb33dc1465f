"""Market symbols as sfarm accepts them: ccxt's unified `BASE/QUOTE` (optionally `:SETTLE`).

`check_market` is the one place a market's shape is checked (inventory tasks, `sfarm mine`,
`sfarm backtest`); its error quotes the value and, for a near miss such as `SOLUSDT`,
`sol/usdt` or `SOL-USDT`, names the canonical symbol (`SOL/USDT`).
"""

from __future__ import annotations

import re

# BASE/QUOTE, optionally :SETTLE for derivatives; ccxt's unified symbol shape.
_MARKET = re.compile(r"^[A-Z0-9][A-Z0-9._]*/[A-Z0-9][A-Z0-9._]*(:[A-Z0-9][A-Z0-9._]*)?$")

# Quote currencies recognised at the end of a symbol written without its slash (`SOLUSDT`),
# longest first so that `...FDUSD` is not read as `...USD`. A short list of the common ones on
# spot exchanges; a pair quoted in anything else gets no suggestion, only the expected form.
QUOTE_CURRENCIES: tuple[str, ...] = (
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "TRY", "BRL", "JPY",
    "BTC", "ETH", "BNB",
)
_BY_LENGTH = sorted(QUOTE_CURRENCIES, key=len, reverse=True)

EXPECTED = "expected a market such as BTC/USDT (BASE/QUOTE, upper case)"


class BadMarket(ValueError):
    """A market symbol not in ccxt's unified form; `str()` is a complete message for a person.

    `suggestion` is the canonical symbol the value was probably meant to be, if any.
    """

    def __init__(self, value: object) -> None:
        self.value = value
        self.suggestion = suggest_market(value) if isinstance(value, str) else None
        message = f"{EXPECTED}, got {value!r}"
        if self.suggestion is not None:
            message += f"; did you mean {self.suggestion!r}?"
        super().__init__(message)


def is_market(value: str) -> bool:
    return _MARKET.match(value) is not None


def suggest_market(value: str) -> str | None:
    """The canonical symbol a near miss stands for, or None.

    >>> suggest_market("SOLUSDT"), suggest_market("btc-usdt"), suggest_market("ethbtc")
    ('SOL/USDT', 'BTC/USDT', 'ETH/BTC')
    """
    upper = value.strip().upper()
    for separator in ("-", "_", " "):
        if "/" not in upper and upper.count(separator) == 1:
            upper = upper.replace(separator, "/")
    if "/" not in upper:
        upper = _split_quote(upper) or upper
    if upper != value and is_market(upper):
        return upper
    return None


def _split_quote(symbol: str) -> str | None:
    """`SOLUSDT` -> `SOL/USDT` when it ends in a known quote currency after a base of its own."""
    for quote in _BY_LENGTH:
        base = symbol.removesuffix(quote)
        if base != symbol and len(base) >= 2:
            return f"{base}/{quote}"
    return None


def check_market(value: str) -> str:
    """`value` when it is a unified market symbol; else BadMarket quoting it."""
    if not isinstance(value, str) or not is_market(value):
        raise BadMarket(value)
    return value
