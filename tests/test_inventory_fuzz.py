"""Whatever a person does to a valid inventory, sfarm answers with a message, never a crash.

Hypothesis edits inventory/farm.toml the way people do (a line deleted or doubled, a value
replaced by one of the wrong type or shape, a key or name misspelt) and checks that
`load_inventory` either accepts the result or raises UsageError whose problems all name the
file, a line inside it and a key path.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfarm.errors import UsageError
from sfarm.inventory import InventoryError, load_inventory
from sfarm.inventory.source import format_key_path

PROJECT = Path(__file__).parent.parent
FARM_TEXT = (PROJECT / "inventory" / "farm.toml").read_text(encoding="utf-8")
FARM_LINES = FARM_TEXT.splitlines()
VALUE_LINES = [i for i, line in enumerate(FARM_LINES) if re.match(r"^[a-z_]+ = ", line)]
NAMED_LINES = [i for i, line in enumerate(FARM_LINES) if '"' in line or line.startswith("[")]

# Values of every TOML type, and strings of the shapes the inventory checks.
VALUES = ['"x"', '""', "0", "-1", "65536", "1.5", "nan", "inf", "true", "[]", '["a"]', "[1, 2]",
          "{}", "{ a = 1 }", '"BTC-USDT"', '"btc/usdt"', '"1H"', '"2m"', '"rsi(0)"', '"rsx(14)"',
          '"local"', '"2024-13-01"', "2024-01-01", "12:30:00", '"candles/x"', '"live"', '"a b"',
          '"sessions/rsi-paper/equity"', '["mine-binance", "mine-binance"]']


def strategy_indicators(path: Path) -> tuple[str, ...]:
    return tuple(tomllib.loads(path.read_text(encoding="utf-8"))["strategy"].get("indicators", ()))


@st.composite
def edited_farms(draw: st.DrawFn) -> str:
    lines = list(FARM_LINES)
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(st.sampled_from(("delete", "double", "value", "misspell")))
        if edit == "delete":
            del lines[draw(st.integers(0, len(lines) - 1))]
        elif edit == "double":
            at = draw(st.integers(0, len(lines) - 1))
            lines.insert(at, lines[at])
        elif edit == "value":
            at = draw(st.sampled_from(VALUE_LINES))
            if at < len(lines) and " = " in lines[at]:
                lines[at] = lines[at].split(" = ")[0] + " = " + draw(st.sampled_from(VALUES))
        else:
            at = draw(st.sampled_from(NAMED_LINES))
            if at < len(lines) and len(lines[at]) > 3:
                line = lines[at]
                cut = draw(st.integers(1, len(line) - 2))
                lines[at] = line[:cut] + draw(st.sampled_from(("", "x", "-", " ", "."))) \
                    + line[cut + 1:]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def farm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(PROJECT / "inventory" / "strategies", directory / "strategies")
    return directory


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=edited_farms())
def test_an_edited_inventory_is_valid_or_explained(farm_dir: Path, text: str) -> None:
    path = farm_dir / "sfarm.toml"
    path.write_text(text, encoding="utf-8")
    line_count = len(text.splitlines())
    try:
        load_inventory(path, strategy_reader=strategy_indicators)
    except InventoryError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.file == path
            assert problem.line is None or 1 <= problem.line <= line_count
            assert problem.message
            assert format_key_path(problem.path) in problem.render()
    except UsageError as error:  # a syntax error: tomllib stopped at one place
        match = re.match(re.escape(str(path)) + r":(\d+): not valid TOML: ", error.message)
        assert match, error.message
        assert 1 <= int(match.group(1)) <= line_count + 1
