"""sfarm as a user installs it: its wheel, not editable, in a fresh venv, away from the checkout.

`sfarm init` writes a farm from the templates inside the wheel, `validate` reads it, `up` brings
the local farm up (supervisord, the emulator, the workers: all from the venv) and `down` leaves
no process behind; and deploy, with no source tree to build from, packs the installed sfarm.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from sfarm import __version__
from sfarm.remote.wheel import build_wheel, read_source_tree
from sfarm.scaffold import EMULATOR_PORTS
from tests.fixtures.network import free_port
from tests.fixtures.processes import processes_under
from tests.fixtures.venvs import make_venv, pip_install
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sfarm's wheel, built from this checkout as `pip wheel .` builds it."""
    return build_wheel(read_source_tree(PROJECT), tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, third_party: Path, wheel: Path) -> Path:
    """The bin/ directory of a fresh venv with sfarm's wheel installed (not editable)."""
    python = make_venv(tmp_path_factory.mktemp("fresh") / "venv", third_party)
    pip_install(python, "--no-deps", str(wheel))
    return python.parent


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short: supervisord's unix socket path, under the farm's directory, must fit in ~100 bytes.
    directory = Path(tempfile.mkdtemp(prefix="sf-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def run(bin_dir: Path, cwd: Path, *argv: str, check: bool = True,
        env: Mapping[str, str] | None = None) -> str:
    """ARGV[0] from the venv's bin/, in `cwd` (never the checkout) with `env` added; no
    traceback, and exit 0 unless not `check`."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([str(bin_dir / argv[0]), *argv[1:]], cwd=cwd,
                            env={**environment, **(env or {})}, timeout=120,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 or not check, f"{argv}: {result.stderr}{result.stdout}"
    assert "Traceback" not in result.stderr
    return result.stdout


def running_with_candles(installed: Path, farm: Path) -> bool:
    """Every task of the scaffold running under supervisord, and the miner's candles stored."""
    # Exit status 1 until every task runs: the document tells which.
    status = json.loads(run(installed, farm, "sfarm", "status", "--json", check=False))
    tasks = {task["name"]: task for task in status["nodes"][0]["tasks"]}
    assert set(tasks) == {"mine", "studies", "rsi-paper"}
    candles = tasks["mine"]["datasets"]
    running = all(task["state"] == "running" for task in tasks.values())
    return running and bool(candles) and all(dataset["rows"] > 0 for dataset in candles)


def test_the_installed_wheel_scaffolds_validates_and_runs_a_local_farm(
        installed: Path, workdir: Path) -> None:
    where = run(installed, workdir, "python", "-c", "import sfarm; print(sfarm.__file__)")
    assert Path(where.strip()).is_relative_to(installed.parent)  # not the checkout's sfarm
    assert not Path(where.strip()).is_relative_to(PROJECT)
    assert run(installed, workdir, "sfarm", "--version").split() == ["sfarm", __version__]

    run(installed, workdir, "sfarm", "init", "farm")
    farm = workdir / "farm"
    assert (farm / "strategies" / "rsi_revert.toml").is_file() and (farm / ".gitignore").is_file()
    inventory = farm / "sfarm.toml"
    text = inventory.read_text()
    scaffolded = re.search(r"127\.0\.0\.1:(\d+)", text)
    assert scaffolded is not None and int(scaffolded[1]) in EMULATOR_PORTS
    # Its own emulator port, and three hours of history to mine rather than three days.
    text = text.replace(scaffolded[0], f"127.0.0.1:{free_port()}")
    inventory.write_text(text.replace('since = "3d"', 'since = "3h"'))
    run(installed, farm, "sfarm", "validate")

    root = farm / ".sfarm" / "local" / "lab"
    try:
        up = json.loads(run(installed, farm, "sfarm", "up", "--json"))
        assert up["ok"] is True, up
        wait_for(lambda: running_with_candles(installed, farm),
                 what="every task running, candles")
        workers = [line for line in processes_under(root) if "worker run" in line]
        assert len(workers) == 3 and all(str(installed) in line for line in workers), workers
        run(installed, farm, "sfarm", "down")
        wait_for(lambda: not processes_under(root), what="no process left")
    finally:
        subprocess.run([str(installed / "sfarm"), "down"], cwd=farm, capture_output=True,
                       timeout=60, check=False)


def test_an_installed_sfarm_deploys_itself(installed: Path, wheel: Path, workdir: Path,
                                           third_party: Path) -> None:
    """No source tree: deploy packs the installed files into a wheel, the same as the wheel that
    was installed (templates included), and installs it in the node's venv."""
    root = workdir / "node"
    node_python = make_venv(root / "venv", third_party)  # with the dependencies, not sfarm
    code = ("import sys; from sfarm.remote.connection import LocalConnection; "
            "from sfarm.remote.provision import provision; from sfarm.remote.wheel import "
            "running_sfarm; snapshot = running_sfarm(); print(snapshot.origin); "
            "print(provision(LocalConnection(), sys.argv[1], 'python3')[-1].status)")
    cache = workdir / "cache"
    output = run(installed, workdir, "python", "-c", code, str(root),
                 env={"XDG_CACHE_HOME": str(cache)})
    assert output.split() == ["installed", "changed"]
    (packed,) = (cache / "sfarm" / "wheels").glob("*/*.whl")
    with zipfile.ZipFile(wheel) as original, zipfile.ZipFile(packed) as again:
        record = f"sfarm-{__version__}.dist-info/RECORD"
        names = sorted(original.namelist())
        assert sorted(again.namelist()) == names and "sfarm/templates/inventory.toml" in names
        assert all(original.read(name) == again.read(name) for name in names if name != record)
    where = run(node_python.parent, workdir, "python", "-c", "import sfarm; print(sfarm.__file__)")
    assert Path(where.strip()).is_relative_to(root / "venv")
    assert run(node_python.parent, workdir, "sfarm", "--version").split() == ["sfarm", __version__]
    # The checkout's sfarm (this process) finds that venv running its own code: a deploy from
    # the controller after one from an installed sfarm (any node) installs nothing again.
    from sfarm.remote.connection import LocalConnection
    from sfarm.remote.provision import provision

    assert [step.status for step in provision(LocalConnection(), str(root), "python3")] == ["ok"]


def test_the_installed_wheel_is_the_same_build_as_its_checkout(installed: Path,
                                                               workdir: Path, wheel: Path) -> None:
    """The build id (what restarts workers on other code) is the code's, not the install's: a
    checkout, its wheel's files and an install of that wheel agree."""
    from sfarm.runtime.build import code_digest, sfarm_build

    printed = run(installed, workdir, "python", "-c",
                  "from sfarm.runtime.build import sfarm_build; print(sfarm_build())")
    with zipfile.ZipFile(wheel) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    assert printed.strip() == sfarm_build() == code_digest(members)
    assert code_digest(read_source_tree(PROJECT).files) == sfarm_build()
