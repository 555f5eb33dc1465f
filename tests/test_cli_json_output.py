"""`--json` documents (sfarm.cli.console.print_json): indented, strict JSON, unknown values
as str(), as before orjson encoded them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sfarm.cli.console import print_json


@dataclass
class Point:
    x: int


def strict(text: str) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_documents_are_strict_json_with_the_old_text_for_known_values(
        capsys: pytest.CaptureFixture[str]) -> None:
    moment = datetime(2024, 1, 5, 13, 0, tzinfo=UTC)
    print_json({"trades": 2, "trade_list": [{"side": "long", "pnl": 1.5}], "none": None,
                "root": Path("/tmp/node"), "at": moment, "point": Point(3), 7: "int key",
                "sharpe": float("nan"), "calmar": float("inf")})
    out = capsys.readouterr().out
    assert out.endswith("}\n") and out.count("\n") > 5  # indented, one document
    assert strict(out) == {"trades": 2, "trade_list": [{"side": "long", "pnl": 1.5}],
                           "none": None, "root": "/tmp/node", "at": str(moment),
                           "point": str(Point(3)), "7": "int key",
                           "sharpe": None, "calmar": None}
    plain = {"trades": 2, "trade_list": [{"side": "long", "pnl": 1.5}], "name": "x"}
    print_json(plain)
    assert capsys.readouterr().out == json.dumps(plain, indent=2) + "\n"
