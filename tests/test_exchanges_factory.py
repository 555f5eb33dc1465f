"""make_exchange, the only ccxt constructor in sfarm: ids, url override, sandbox, options."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

from sfarm.errors import UsageError
from sfarm.exchanges import (
    Credentials,
    exchange_ids,
    known_exchange,
    make_exchange,
    suggest_exchange,
)
from sfarm.exchanges.factory import rebase_url


def urls_in(tree: Any) -> Iterator[str]:
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for value in tree.values():
            yield from urls_in(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from urls_in(value)


def test_url_replaces_scheme_and_host_of_every_rest_endpoint_paths_kept() -> None:
    original = ccxt.binance().urls["api"]
    exchange = make_exchange("binance", url="http://127.0.0.1:8900")
    assert exchange.urls["api"]["public"] == "http://127.0.0.1:8900/api/v3"
    assert exchange.urls["api"]["sapi"] == "http://127.0.0.1:8900/sapi/v1"
    assert exchange.urls["api"]["fapiPublic"] == "http://127.0.0.1:8900/fapi/v1"
    for key, value in original.items():
        if isinstance(value, str) and value.startswith("http"):
            assert exchange.urls["api"][key] == rebase_url(value, "http://127.0.0.1:8900")
    assert all(u.startswith("http://127.0.0.1:8900/") for u in urls_in(exchange.urls["api"])
               if u.startswith("http"))


def test_url_with_a_path_prefixes_the_original_paths() -> None:
    exchange = make_exchange("kraken", url="https://proxy.example/kraken/")
    assert exchange.urls["api"]["public"] == "https://proxy.example/kraken"  # ccxt adds /0/...
    assert exchange.urls["api"]["zendesk"] == \
        "https://proxy.example/kraken/api/v2/help_center/en-us/articles"
    assert rebase_url("wss://stream.binance.com:9443/ws", "http://h:1") == \
        "wss://stream.binance.com:9443/ws"


def test_sandbox_uses_test_urls_and_url_rebases_them() -> None:
    exchange = make_exchange("binance", sandbox=True)
    assert "testnet" in exchange.urls["api"]["public"]
    rebased = make_exchange("binance", sandbox=True, url="http://127.0.0.1:9000")
    assert rebased.urls["api"]["public"] == "http://127.0.0.1:9000/api/v3"
    assert rebased.urls["test"]["public"] == "http://127.0.0.1:9000/api/v3"


def test_sandbox_where_ccxt_has_none_is_a_usage_error() -> None:
    no_sandbox = next(i for i in exchange_ids() if not getattr(ccxt, i)().urls.get("test"))
    with pytest.raises(UsageError, match="no sandbox"):
        make_exchange(no_sandbox, sandbox=True)


def test_unknown_ids_get_a_did_you_mean() -> None:
    assert known_exchange("binance") and not known_exchange("binanse")
    assert "binance" in exchange_ids() and exchange_ids() == list(ccxt.exchanges)
    assert "binance" in suggest_exchange("binanse")
    with pytest.raises(UsageError) as caught:
        make_exchange("binanse")
    assert "binance" in (caught.value.hint or "")


def test_bad_url_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="must be http"):
        make_exchange("binance", url="127.0.0.1:8900")


def test_rate_limit_always_on_and_options_merge_over_spot_defaults() -> None:
    exchange = make_exchange("binance")
    assert exchange.enableRateLimit
    assert exchange.options["fetchMarkets"]["types"] == ["spot"]
    assert exchange.options["fetchMarkets"]["loadAllOptions"] is False  # ccxt's own key kept
    custom = make_exchange("binance", options={"fetchMarkets": {"types": ["spot", "linear"]},
                                               "recvWindow": 10_000})
    assert custom.options["fetchMarkets"]["types"] == ["spot", "linear"]
    assert custom.options["recvWindow"] == 10_000
    assert make_exchange("kraken").enableRateLimit


def test_credentials_reach_ccxt_but_not_its_repr() -> None:
    credentials = Credentials("AKIA-1234567890-abcdef", "s3cr3t-value-xyz", "pass-phrase")
    exchange = make_exchange("okx", credentials=credentials)
    assert exchange.apiKey == credentials.api_key and exchange.secret == credentials.secret
    assert exchange.password == "pass-phrase"
    for shown in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert "1234567890" not in shown and "s3cr3t" not in shown and "phrase" not in shown
