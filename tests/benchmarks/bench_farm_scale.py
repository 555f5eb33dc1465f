"""Benchmark: farms of 1, 3 and 6 nodes reached over SSH, each node a user host (a unix user of
its own with its own sshd on loopback and /bin/sh as its shell, tests/fixtures/user_hosts.py),
each mining one market of one emulated exchange (tests/fixtures/scale_farm.py), and the same
one-node farm on this machine (`host = "local"`) as the yardstick. Measured, for each size:
* `sfarm deploy` of fresh nodes (their python already has this sfarm: no venv to build), and a
  redeploy with nothing changed;
* `sfarm status --json` as a process (what a script or CI runs);
* a status refresh with the connections kept (`Farm(keep_connections=True)`: what
  `status --watch` and the dashboard do), once the agents are up.
Medians of 5 (deploy: of 3). The nodes, their sshd and the controller share this machine's
cores: six nodes' Python starts compete with the controller for them.

Run: `pytest tests/benchmarks/bench_farm_scale.py -s -o addopts=""`.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence

import pytest

from tests.fixtures.scale_farm import ScaleFarm, scale_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for

SIZES = (1, 3, 6)


def timed(function: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    """Best and median wall seconds of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def measure(farm: ScaleFarm, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[float, float]]:
    from sfarm.farm import Farm

    rows = {"deploy, fresh nodes": timed(lambda: farm.sfarm("deploy"), 1)}
    rows["deploy, nothing changed"] = timed(lambda: farm.sfarm("deploy"), 3)
    farm.sfarm("start")
    wait_for(farm.running_with_rows, what="every node mining")
    rows["status --json (process)"] = timed(lambda: farm.sfarm("status", "--json"))
    monkeypatch.setenv("HOME", str(farm.home))
    with Farm.open(farm.inventory, None, keep_connections=True) as kept:
        first = time.perf_counter()
        kept.status()
        rows["status, kept connections: first"] = (time.perf_counter() - first,) * 2
        rows["status, kept connections: refresh"] = timed(kept.status, 10)
    return rows


def report(title: str, columns: Sequence[str],
           results: dict[str, dict[str, tuple[float, float]]]) -> None:
    print(f"\n{title} (best / median, load {os.getloadavg()[0]:.1f})")
    print(f"{'':<36}" + "".join(f"{column:>18}" for column in columns))
    for row in next(iter(results.values())):
        cells = "".join(f"{results[c][row][0]:>8.2f}s/{results[c][row][1]:>7.2f}s"
                        for c in columns)
        print(f"{row:<36}{cells}")


def test_bench_farm_scale(user_hosts: Callable[[int], list[SSHServer]],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    servers = user_hosts(max(SIZES))
    results: dict[str, dict[str, tuple[float, float]]] = {}
    with scale_farm([None]) as farm:
        results["1 local"] = measure(farm, monkeypatch)
    for size in SIZES:
        with scale_farm(servers[:size]) as farm:
            results[f"{size} SSH"] = measure(farm, monkeypatch)
    report("farms of many nodes", list(results), results)
    status = {name: rows["status --json (process)"][1] for name, rows in results.items()}
    print(f"status, 6 SSH / 1 SSH: {status['6 SSH'] / status['1 SSH']:.2f}x; "
          f"1 SSH / 1 local: {status['1 SSH'] / status['1 local']:.2f}x (medians)")
