"""Benchmark: time to first result (issue 18, item 1), each command as a whole process against
a bare Python process timed in the same run, as ratios.

Pairs (command / reference), run in turn A B A B ... (SFARM_BENCH_RUNS pairs, default 7, after
one warm-up pair), each pair's ratio taken, the medians printed:
  * `sfarm --help`                         / python -c "import typer, rich.console"
  * `sfarm status` of a local farm, up     / python -c "import typer, rich.console"
  * `sfarm validate` of inventory/local.toml / python -c "import polars"
  * `sfarm backtest` of 1,000 candles      / python -c "import polars"
  * shell completion of a node name        / python -c "import typer", and / python -c pass
    (answered from the cached command tree, sfarm.cli.quick_complete: target under 0.3 s)
As users run them: bytecode caching on (PYTHONDONTWRITEBYTECODE unset), numba's cache warm
(the warm-up pair), for status a farm made by `sfarm init` and brought up here (`up --wait`,
`down` at the end). The machine's load average is printed with the figures: the runs are
paired because a shared machine's speed drifts, and the CPU time (user + sys of the process)
ratio is printed beside the wall one (it suffers less from a loaded machine). Also printed:
the floor of any command with options, `import typer, rich.console` plus the pydantic typer
itself imports to convert option values (typer._adapters), against the same reference.
Checks that every command succeeds; it does not judge the times.

Run: `pytest tests/benchmarks/test_startup.py -p no:cacheprovider -o addopts="" -s`.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfarm.data import append
from tests.fixtures.cli import sfarm_env
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.processes import PROJECT

RUNS = int(os.environ.get("SFARM_BENCH_RUNS", "7"))
TYPER_RICH = [sys.executable, "-c", "import typer, rich.console"]
POLARS = [sys.executable, "-c", "import polars"]
TYPER = [sys.executable, "-c", "import typer"]
IDLE = [sys.executable, "-c", "pass"]
SFARM = [sys.executable, "-m", "sfarm"]
STRATEGY = PROJECT / "inventory" / "strategies" / "rsi_revert.toml"


def _env(**extra: str) -> dict[str, str]:
    env = sfarm_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users have bytecode caching on
    env["PYTHONPATH"] = str(PROJECT)
    return {**env, **extra}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one run of `argv`."""
    cpu = _children_cpu()
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, f"{argv}: {result.stderr}{result.stdout}"
    assert "Traceback" not in result.stderr
    return elapsed, _children_cpu() - cpu


def _paired(command: list[str], reference: list[str], cwd: Path,
            env: dict[str, str]) -> tuple[float, float, float, float]:
    """Medians of (command s, reference s, command/reference pair by pair, the same ratio of
    CPU times)."""
    _wall(command, cwd, env)  # warm-up: bytecode written, numba's cache loaded
    _wall(reference, cwd, env)
    times, references, ratios, cpu_ratios = [], [], [], []
    for _ in range(RUNS):
        a, a_cpu = _wall(command, cwd, env)
        b, b_cpu = _wall(reference, cwd, env)
        times.append(a)
        references.append(b)
        ratios.append(a / b)
        cpu_ratios.append(a_cpu / b_cpu)
    return (statistics.median(times), statistics.median(references),
            statistics.median(ratios), statistics.median(cpu_ratios))


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A farm made by `sfarm init` (its own emulator port), up until the module ends."""
    directory = tmp_path_factory.mktemp("startup") / "benchfarm"
    env = _env()
    subprocess.run([*SFARM, "init", str(directory)], env=env, check=True, capture_output=True)
    up = subprocess.run([*SFARM, "up", "--wait", "240"], cwd=directory, env=env, check=False,
                        capture_output=True, text=True, timeout=600)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        yield directory
    finally:
        subprocess.run([*SFARM, "down"], cwd=directory, env=env, check=False,
                       capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def candles_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("candles")
    append(root, "candles/sim/BTC-USDT/1h", make_candles(T0, 1_000, "1h"))
    return root


def _report(name: str, command: str, reference: str,
            figures: tuple[float, float, float, float]) -> None:
    median, base, ratio, cpu_ratio = figures
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\n{name}: {command} {median:.3f} s, {reference} {base:.3f} s, "
          f"ratio {ratio:.2f}, CPU ratio {cpu_ratio:.2f} (medians of {RUNS} pairs; load "
          f"average {load}; {os.cpu_count()} cores)")


def test_floor_of_a_command_with_options() -> None:
    # typer converts every option value with pydantic (typer._adapters): no command that
    # takes one starts faster than this.
    floor = [sys.executable, "-c", "import typer, rich.console, typer._adapters"]
    _report("floor", "import typer, rich.console, typer._adapters",
            "import typer, rich.console", _paired(floor, TYPER_RICH, PROJECT, _env()))


def test_help() -> None:
    _report("help", "sfarm --help", "import typer, rich.console",
            _paired([*SFARM, "--help"], TYPER_RICH, PROJECT, _env()))


def test_validate() -> None:
    figures = _paired([*SFARM, "validate", "-i", "inventory/local.toml"], POLARS, PROJECT,
                      _env())
    _report("validate", "sfarm validate -i inventory/local.toml", "import polars", figures)


def test_backtest(candles_root: Path) -> None:
    command = [*SFARM, "backtest", str(STRATEGY), "--root", str(candles_root),
               "--exchange", "sim", "--market", "BTC/USDT", "--timeframe", "1h"]
    _report("backtest", "sfarm backtest (1,000 candles)", "import polars",
            _paired(command, POLARS, PROJECT, _env()))


def test_completion(farm: Path, tmp_path: Path) -> None:
    env = _env(COMP_WORDS="sfarm logs ", COMP_CWORD="2", _SFARM_COMPLETE="complete_bash",
               XDG_CACHE_HOME=str(tmp_path))  # the first run caches the command tree there
    names = subprocess.run(SFARM, cwd=farm, env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    assert names, "no node name completed"
    _report("completion", "node names (complete_bash)", "import typer",
            _paired(SFARM, TYPER, farm, env))
    _report("completion", "node names (complete_bash)", "python -c pass",
            _paired(SFARM, IDLE, farm, env))


def test_status(farm: Path) -> None:
    _report("status", "sfarm status (local farm, up)", "import typer, rich.console",
            _paired([*SFARM, "status"], TYPER_RICH, farm, _env()))
