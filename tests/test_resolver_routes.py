"""routes.json as a node reads it: absent before the first deploy, a clear error when damaged,
and a node's status that survives a damaged one (only the inputs' view is lost)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfarm.errors import RunError
from sfarm.resolver.routes import ROUTES_FILE, load_routes
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.node import node_task_status


def test_no_routes_before_the_first_deploy(tmp_path: Path) -> None:
    assert load_routes(tmp_path) is None


@pytest.mark.parametrize("content", [b"{broken", b'{"network": "n"}', b"[]"])
def test_a_damaged_routes_file_is_named_with_what_to_do(tmp_path: Path, content: bytes) -> None:
    (tmp_path / ROUTES_FILE).write_bytes(content)
    with pytest.raises(RunError, match=r"routes\.json is damaged") as raised:
        load_routes(tmp_path)
    assert raised.value.hint == "`sfarm deploy` writes it again"
    (status,) = node_task_status(NodeRoot(tmp_path), {"mine": "mine"})
    assert status.name == "mine" and status.inputs == []
