"""Benchmark: farms of 1, 3 and 6 nodes reached over SSH, each node a user host (a unix user of
its own with its own sshd on loopback and /bin/sh as its shell, tests/fixtures/user_hosts.py),
each mining one market of one emulated exchange (tests/fixtures/scale_farm.py), and the same
one-node farm on this machine (`host = "local"`) as the yardstick. All four farms are up at
once (the SSH farms share the first hosts: each node has a root of its own) and every measure
takes the farms in turn, round after round, so that the machine's load drifting during the
run weighs on all of them alike; ratios are taken round by round, then their median. Measured:
* `sfarm deploy` of fresh nodes (their python already has this sfarm: no venv to build), once;
  a redeploy with nothing changed (3 rounds);
* `sfarm status --json` as a process (what a script or CI runs; 7 rounds);
* a status refresh with the connections kept (`Farm(keep_connections=True)`: what
  `status --watch` and the dashboard do), once the agents are up (10 rounds).
The nodes, their sshd and the controller share this machine's cores: six nodes' Python starts
compete with each other and with the controller for them.

Run: `pytest tests/benchmarks/bench_farm_scale.py -s -o addopts=""`.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable

import pytest

from tests.fixtures.scale_farm import ScaleFarm, scale_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for

SIZES = (1, 3, 6)
Rows = dict[str, dict[str, list[float]]]  # measure: farm: seconds, one per round


def seconds(function: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def rounds(rows: Rows, measure: str, farms: dict[str, ScaleFarm], count: int,
           function: Callable[[ScaleFarm], object]) -> None:
    """`function(farm)` on every farm in turn, `count` rounds."""
    row = rows.setdefault(measure, {name: [] for name in farms})
    for _ in range(count):
        for name, farm in farms.items():
            row[name].append(seconds(function, farm))


def kept_refreshes(farm: ScaleFarm, monkeypatch: pytest.MonkeyPatch) -> tuple[float, list[float]]:
    from sfarm.farm import Farm

    monkeypatch.setenv("HOME", str(farm.home))
    with Farm.open(farm.inventory, None, keep_connections=True) as kept:
        first = seconds(kept.status)
        return first, [seconds(kept.status) for _ in range(10)]


def ratio(row: dict[str, list[float]], a: str, b: str) -> float:
    """The median of the round-by-round ratios a / b."""
    return statistics.median(x / y for x, y in zip(row[a], row[b], strict=True))


def test_bench_farm_scale(user_hosts: Callable[[int], list[SSHServer]],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    servers = user_hosts(max(SIZES))
    rows: Rows = {}
    with contextlib.ExitStack() as stack:
        farms = {"1 local": stack.enter_context(scale_farm([None]))}
        for size in SIZES:
            farms[f"{size} SSH"] = stack.enter_context(scale_farm(servers[:size]))
        rounds(rows, "deploy, fresh nodes", farms, 1, lambda farm: farm.sfarm("deploy"))
        rounds(rows, "deploy, nothing changed", farms, 3, lambda farm: farm.sfarm("deploy"))
        for farm in farms.values():
            farm.sfarm("start")
        for farm in farms.values():
            wait_for(farm.running_with_rows, what="every node mining")
        rounds(rows, "status --json (process)", farms, 7,
               lambda farm: farm.sfarm("status", "--json"))
        kept = {name: kept_refreshes(farm, monkeypatch) for name, farm in farms.items()}
        rows["status, kept connections: first"] = {name: [first] for name, (first, _) in
                                                    kept.items()}
        rows["status, kept connections: refresh"] = {name: refreshes for name, (_, refreshes)
                                                     in kept.items()}
    print(f"\nfarms of many nodes: best / median (load {os.getloadavg()[0]:.1f})")
    print(f"{'':<36}" + "".join(f"{name:>18}" for name in rows["deploy, fresh nodes"]))
    for measure, row in rows.items():
        print(f"{measure:<36}" + "".join(f"{min(times):>8.3f}s/{statistics.median(times):>7.3f}s"
                                         for times in row.values()))
    for measure in ("status --json (process)", "deploy, nothing changed"):
        row = rows[measure]
        print(f"{measure}, medians of the round-by-round ratios: 6 SSH / 1 SSH "
              f"{ratio(row, '6 SSH', '1 SSH'):.2f}x, 3 SSH / 1 SSH "
              f"{ratio(row, '3 SSH', '1 SSH'):.2f}x, 1 SSH / 1 local "
              f"{ratio(row, '1 SSH', '1 local'):.2f}x")
