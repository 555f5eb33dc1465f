"""sfarm.inventory.load: finding the inventory, reading the strategies its trade tasks name, and
what a loaded inventory offers (the broken inventories are in test_inventory_corpus.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sfarm.errors import UsageError
from sfarm.inventory import find_inventory, load_inventory
from sfarm.inventory.load import read_strategy_indicators
from sfarm.plan import Transfer, plan_network
from tests.fixtures.processes import PROJECT

INVENTORY = '''\
version = 1

[exchanges.ex]
ccxt = "binance"

[tasks.mine]
kind = "mine"
exchange = "ex"
markets = ["BTC/USDT"]
timeframes = ["1h"]
since = 2024-01-01            # a TOML date, not a string

[tasks.studies]
kind = "indicators"
exchange = "ex"
markets = ["BTC/USDT"]
timeframes = ["1h"]
indicators = ["sma(20)", "ema(50)", "rsi(14)"]

[tasks.breakout]
kind = "trade"
mode = "backtest"
exchange = "ex"
market = "BTC/USDT"
timeframe = "1h"
strategy = "strategies/breakout.toml"
cash = 5000                   # an integer where a float is expected is fine
until = 2024-06-01T00:00:00Z

[networks.prod.nodes.miner]
host = "10.0.0.1"
tasks = ["mine", "studies"]

[networks.prod.nodes.trader]
host = "10.0.0.2"
tasks = ["breakout"]
'''

CLASS_STRATEGY = '''\
[strategy]
name = "breakout"
class = "breakout_rules:Breakout"
indicators = ["rsi(14)", "sma(20)", "ema(50)"]
'''

CLASS_MODULE = '''\
import polars as pl


class Breakout:
    indicators = ["sma(20)", "ema(50)"]

    def signals(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(entry_long=pl.col("close") > pl.col("sma_20"),
                            exit_long=pl.col("close") < pl.col("ema_50"))
'''


@pytest.fixture
def class_strategy_farm(tmp_path: Path) -> Path:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "breakout.toml").write_text(CLASS_STRATEGY, encoding="utf-8")
    (tmp_path / "strategies" / "breakout_rules.py").write_text(CLASS_MODULE, encoding="utf-8")
    (tmp_path / "sfarm.toml").write_text(INVENTORY, encoding="utf-8")
    return tmp_path / "sfarm.toml"


def test_a_class_strategy_declares_indicators_the_plan_moves(class_strategy_farm: Path) -> None:
    loaded = load_inventory(class_strategy_farm)
    # Planned from the file: loading an inventory never imports a class strategy's module.
    assert not any(name.endswith("breakout_rules") for name in sys.modules)
    assert loaded.strategy_indicators == {"breakout": ("rsi(14)", "sma(20)", "ema(50)")}
    plan = plan_network(loaded, "prod")
    assert plan.problems == ()
    for key in ("rsi_14", "sma_20", "ema_50"):
        assert Transfer(f"indicators/ex/BTC-USDT/1h/{key}", "miner", "trader") in plan.transfers


def test_read_strategy_indicators_of_an_expression_strategy() -> None:
    path = PROJECT / "inventory" / "strategies" / "rsi_revert.toml"
    assert read_strategy_indicators(path) == ("rsi(14)", "sma(200)")


def test_toml_dates_and_integer_cash(class_strategy_farm: Path) -> None:
    loaded = load_inventory(class_strategy_farm, strategy_reader=lambda path: ())
    mine, trade = loaded.model.tasks["mine"], loaded.model.tasks["breakout"]
    assert mine.since.at_ms == 1_704_067_200_000  # type: ignore[union-attr]
    assert trade.cash == 5000.0  # type: ignore[union-attr]
    assert trade.until.at_ms == 1_717_200_000_000  # type: ignore[union-attr]


def test_the_strategy_reader_sees_absolute_paths(class_strategy_farm: Path) -> None:
    seen: list[Path] = []

    def reader(path: Path) -> tuple[str, ...]:
        seen.append(path)
        return ()

    load_inventory(class_strategy_farm, strategy_reader=reader)
    assert seen == [class_strategy_farm.parent / "strategies" / "breakout.toml"]
    assert seen[0].is_absolute()


# --- which inventory ---------------------------------------------------------------------------


def test_find_inventory_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, from_env, default = (tmp_path / name for name in ("a.toml", "b.toml", "sfarm.toml"))
    for path in (explicit, from_env, default):
        path.write_text("version = 1\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SFARM_INVENTORY", str(from_env))
    assert find_inventory(explicit) == explicit
    assert find_inventory(None) == from_env
    monkeypatch.delenv("SFARM_INVENTORY")
    assert find_inventory(None) == Path("sfarm.toml")


def test_find_inventory_explains_what_to_do(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SFARM_INVENTORY", raising=False)
    with pytest.raises(UsageError) as raised:
        find_inventory(tmp_path / "nowhere.toml")
    assert raised.value.message == f"no inventory at {tmp_path / 'nowhere.toml'}"
    assert "sfarm init" in (raised.value.hint or "")
    with pytest.raises(UsageError, match="is not a file"):
        find_inventory(tmp_path)
