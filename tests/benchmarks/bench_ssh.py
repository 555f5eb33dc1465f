"""Benchmark: farm commands on nodes reached over SSH (real sshd servers on loopback).

Two SSH nodes of the test farm in tests/test_farm_ssh.py, up and running. Measured:
* `sfarm status --json` as a process (what a script or CI runs), best and median of 5;
* `FarmController.status()` in-process, a connection per call, and with the connections kept
  (what `status --watch` and the dashboard do);
* `sfarm deploy` of the two nodes when nothing changed;
* `sfarm data pull` of one node's candles into a local mirror: first pull, then a pull with
  nothing new.
Both nodes and the controller share this machine's cores, so a node's own work (a Python start
of `sfarm node ...`, ~0.4 s) runs twice on the same 2 cores here.

Run: `pytest tests/benchmarks/bench_ssh.py -s -o addopts=""`.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import pytest

from tests.fixtures.ssh_farm import ssh_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for


def timed(function: Callable[[], object], repeats: int = 5) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def test_bench_ssh_farm(sshd_factory: Callable[[int], list[SSHServer]],
                        monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
                        ) -> None:
    from sfarm.inventory import load_inventory
    from sfarm.remote.controller import FarmController

    with ssh_farm(sshd_factory(2)) as farm:
        farm.sfarm("up")
        wait_for(farm.running_with_rows, what="every task running")
        monkeypatch.setenv("HOME", str(farm.home))
        inventory = load_inventory(farm.inventory)
        rows = [("sfarm status --json (process)",
                 timed(lambda: farm.sfarm("status", "--json", check=False)))]
        once = FarmController(inventory, "edge")
        rows.append(("controller.status(), connect each time", timed(once.status)))
        kept = FarmController(inventory, "edge", keep_connections=True)
        kept.status()
        rows.append(("controller.status(), connections kept", timed(kept.status)))
        kept.close()
        rows.append(("sfarm deploy, nothing changed", timed(lambda: farm.sfarm("deploy"), 3)))
        lab = tmp_path_factory.mktemp("lab")
        first = time.perf_counter()
        farm.sfarm("data", "pull", "node-a", "--root", str(lab))
        first_s = time.perf_counter() - first
        rows.append(("sfarm data pull node-a, first", (first_s, first_s)))
        rows.append(("sfarm data pull node-a, nothing new",
                     timed(lambda: farm.sfarm("data", "pull", "node-a", "--root", str(lab)), 3)))
        print(f"\n{'two SSH nodes on loopback':<44} {'best':>8} {'median':>8}   (load "
              f"{os.getloadavg()[0]:.1f})")
        for label, (best, median) in rows:
            print(f"{label:<44} {best:>7.2f}s {median:>7.2f}s")
