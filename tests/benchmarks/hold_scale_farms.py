"""Not a benchmark by itself: brings up the farms of bench_farm_scale.py (1 local node; 1, 3 and
6 SSH nodes on user hosts, the nodes' python running this checkout) and holds them up, so that
whole processes can be timed from outside (`sfarm status --json -i INVENTORY`, with HOME set),
until the file named by $SFARM_HOLD_STOP exists (or 40 minutes pass). The inventories and the
HOME of each farm are written as JSON to $SFARM_HOLD_FARMS.

Run: `SFARM_HOLD_FARMS=/tmp/farms.json SFARM_HOLD_STOP=/tmp/farms.stop \
pytest tests/benchmarks/hold_scale_farms.py -s -o addopts=""`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.scale_farm import scale_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for
from tests.test_node_resident_agent import checkout_python

SIZES = (1, 3, 6)
HOLD_S = 40 * 60


def test_hold_scale_farms(user_hosts: Callable[[int], list[SSHServer]]) -> None:
    servers = user_hosts(max(SIZES))
    assert servers[0].python is not None
    with contextlib.ExitStack() as stack:
        python = str(stack.enter_context(checkout_python(servers[0].python)))
        farms = {"1-local": stack.enter_context(scale_farm([None]))}
        for size in SIZES:
            farms[f"{size}-ssh"] = stack.enter_context(scale_farm(servers[:size],
                                                                  python=python))
        for farm in farms.values():
            farm.sfarm("up")
        for farm in farms.values():
            wait_for(farm.running_with_rows, what="every node mining", timeout_s=300)
        Path(os.environ["SFARM_HOLD_FARMS"]).write_text(json.dumps(
            {name: {"inventory": str(farm.inventory), "home": str(farm.home)}
             for name, farm in farms.items()}, indent=1))
        stop = Path(os.environ["SFARM_HOLD_STOP"])
        deadline = time.monotonic() + HOLD_S
        while not stop.exists() and time.monotonic() < deadline:
            time.sleep(2)
