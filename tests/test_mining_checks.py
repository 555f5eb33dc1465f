"""Checks of a mining request against what an exchange declares (pure, ccxt's own metadata)."""

from __future__ import annotations

import ccxt
import pytest

from sfarm.errors import UsageError
from sfarm.mining.checks import (
    check_markets,
    check_ohlcv,
    check_timeframes,
    page_limit,
    suggest_markets,
)

SYMBOLS = {s: {} for s in ("BTC/USDT", "ETH/USDT", "ETH/BTC", "SOL/USDT", "LTC/USDT")}


def test_suggestions_catch_common_misspellings() -> None:
    assert suggest_markets("BTCUSDT", SYMBOLS) == ["BTC/USDT"]
    assert suggest_markets("btc-usdt", SYMBOLS) == ["BTC/USDT"]
    assert "BTC/USDT" in suggest_markets("BTC/USDX", SYMBOLS)
    assert suggest_markets("ZZZ/QQQ", SYMBOLS) == []


def test_unknown_market_names_it_and_suggests() -> None:
    check_markets("binance", ["BTC/USDT"], SYMBOLS)
    with pytest.raises(UsageError) as caught:
        check_markets("binance", ["BTC/USDT", "ETHUSDT"], SYMBOLS)
    assert "binance has no market 'ETHUSDT'" in caught.value.message
    assert caught.value.hint and "ETH/USDT" in caught.value.hint


def test_timeframes_checked_against_the_drivers_list() -> None:
    kraken = ccxt.kraken()
    check_timeframes("kraken", ["1m", "1h"], kraken.timeframes)
    with pytest.raises(UsageError) as caught:
        check_timeframes("kraken", ["1h", "3m"], kraken.timeframes)
    assert caught.value.message == "kraken does not offer the timeframe 3m"
    assert caught.value.hint and "1m" in caught.value.hint
    check_timeframes("odd", ["3m"], None)  # no list: the first request will tell


def test_exchange_without_candles() -> None:
    with pytest.raises(UsageError, match="does not serve candles"):
        check_ohlcv("x", {"fetchOHLCV": False})


def test_page_limit_follows_ccxt_features() -> None:
    assert page_limit(ccxt.binance().features, {"type": "spot"}) == 1000
    assert page_limit(ccxt.okx().features, {"type": "spot"}) == 300
    features = ccxt.binance().features
    linear = features["swap"]["linear"]["fetchOHLCV"]["limit"]
    assert page_limit(features, {"type": "swap", "linear": True}) == linear
    assert page_limit(None, {"type": "spot"}) == 500
