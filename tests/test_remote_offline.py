"""Offline nodes: a node whose pip reaches no package index installs sfarm from a wheelhouse the
controller makes (its dependencies packed again from this environment) and sends only where it
changed. The node is a user host (a unix user with its own sshd and its own pip.conf, whose
index is a closed port on 127.0.0.1) running the system's python, which has no sfarm."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfarm import __version__
from sfarm.errors import RunError
from sfarm.remote.provision import pinned_requirements, provision
from sfarm.remote.repack import (
    pack_installed,
    read_installed_wheel,
    wheel_filename,
    wheel_tags,
)
from sfarm.remote.ssh import SSHConnection
from sfarm.remote.wheel import cached_wheel
from sfarm.remote.wheelhouse import (
    Interpreter,
    choose_source,
    download_wheels,
    pack_all,
    runtime_closure,
    this_interpreter,
    wheelhouse,
)
from sfarm.rsync import SyncResult
from tests.fixtures.cli import Run, run_sfarm
from tests.fixtures.inventories import ssh_node
from tests.fixtures.projects import copy_project, edit
from tests.fixtures.ssh_farm import user_base
from tests.fixtures.sshd import SSHServer
from tests.fixtures.user_hosts import UserHostPool, ssh
from tests.fixtures.venvs import make_venv, pip_install
from tests.fixtures.wheelhouse import seed_cache, served

CLOSED_INDEX = "http://127.0.0.1:9/simple"  # the discard port: nothing listens there


# -- what the wheelhouse is made of (fast) ------------------------------------------------------

def test_a_wheel_name_compresses_its_tags_as_builders_do() -> None:
    tags = ["cp311-cp311-manylinux_2_27_x86_64", "cp311-cp311-manylinux_2_28_x86_64"]
    assert wheel_filename("numpy-2.4.6", tags) == \
        "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
    assert wheel_filename("six-1.0", ["py2-none-any", "py3-none-any"]) == \
        "six-1.0-py2.py3-none-any.whl"
    # Not a product of interpreters x ABIs x platforms: named by its first tag only.
    assert wheel_filename("odd-1.0", ["cp311-cp311-linux_x86_64", "py3-none-any"]) == \
        "odd-1.0-cp311-cp311-linux_x86_64.whl"


def test_the_closure_is_what_a_node_runs_and_nothing_of_the_extras() -> None:
    names = {dist.metadata["Name"].lower() for dist in runtime_closure()}
    assert {"polars", "numpy", "numba", "llvmlite", "ccxt", "ta-lib", "textual",
            "textual-serve", "fabric", "paramiko", "supervisor"} <= names
    assert not names & {"sfarm", "pytest", "duckdb", "pyarrow", "pandas", "backtesting"}


def test_the_source_of_the_wheels_follows_the_nodes_interpreter() -> None:
    here = this_interpreter()
    closure = runtime_closure()
    assert choose_source(here, here, closure) == "installed"
    newer = Interpreter("3.13", here.implementation, here.platform,
                        tuple(tag.replace("cp311", "cp313") for tag in here.tags))
    assert choose_source(newer, here, closure) == "download"
    arm = Interpreter(here.version, here.implementation, "linux-aarch64",
                      tuple(tag.replace("x86_64", "aarch64") for tag in here.tags))
    assert choose_source(arm, here, closure) == "download"
    # An older libc (glibc 2.17): some wheels installed here need a newer one (cryptography
    # 50 is manylinux_2_34 only), so pip must find the ones that fit.
    old = Interpreter(here.version, here.implementation, here.platform,
                      tuple(tag for tag in here.tags if "manylinux_2_" not in tag
                            or int(tag.split("manylinux_2_")[1].split("_")[0]) <= 17))
    needs_newer = [dist.metadata["Name"] for dist in closure
                   if not set(old.tags) & set(wheel_tags(dist.read_text("WHEEL") or ""))]
    assert needs_newer and choose_source(old, here, closure) == "download"


def test_another_platform_with_no_index_here_is_one_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = this_interpreter()
    arm = Interpreter(here.version, here.implementation, "linux-aarch64",
                      ("cp311-cp311-manylinux_2_28_aarch64", "cp311-abi3-manylinux_2_28_aarch64",
                       "cp311-none-manylinux_2_28_aarch64", "py3-none-any"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", CLOSED_INDEX)
    monkeypatch.setenv("PIP_RETRIES", "0")
    with pytest.raises(RunError) as raised:
        wheelhouse(arm, pinned_requirements(), where="node pi (sfarm@10.0.0.9:22)")
    error = raised.value
    assert error.message.startswith("node pi (sfarm@10.0.0.9:22): cannot make its wheelhouse")
    assert f"({arm.describe()}) is not this machine's ({here.describe()})" in error.message
    assert error.hint is not None and "package index" in error.hint
    assert here.version in error.hint and "`python`" in error.hint
    # Nothing half-built is left to pass for a wheelhouse.
    assert not list((tmp_path / "cache" / "sfarm" / "wheelhouse").iterdir())


@pytest.mark.slow
def test_pip_downloads_the_wheels_of_a_node_from_the_controllers_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, controller_wheelhouse: Path) -> None:
    """The path of a node of another kind, with an index: pip told the node's version, ABIs
    and platforms. The index is this environment's wheels, served on 127.0.0.1 as find-links."""
    with served(controller_wheelhouse) as url:
        monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        monkeypatch.setenv("PIP_FIND_LINKS", url)
        (tmp_path / "downloaded").mkdir()
        download_wheels(this_interpreter(), pinned_requirements(), tmp_path / "downloaded",
                        "node far")
    assert sorted(path.name for path in (tmp_path / "downloaded").iterdir()) == \
        sorted(path.name for path in controller_wheelhouse.iterdir())


WHEEL = "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
METADATA = "Metadata-Version: 2.1\nName: tool-kit\nVersion: 1.2\n"
ENTRY_POINTS = "[console_scripts]\ntool-kit = tool_kit:main\n"


def test_a_distribution_with_scripts_and_data_is_packed_as_its_wheel(
        tmp_path: Path, third_party: Path) -> None:
    """Scripts and data live outside site-packages: they go back under .data/, a script's
    #! line as the original had it; the generated console script is left out."""
    original = {
        "tool_kit/__init__.py": b"def main() -> None:\n    print('tool')\n",
        "tool_kit-1.2.data/scripts/tool-run": b"#!python\nimport tool_kit\ntool_kit.main()\n",
        "tool_kit-1.2.data/data/share/tool-kit/table.json": b'{"a": 1}\n',
        "tool_kit-1.2.dist-info/METADATA": METADATA.encode(),
        "tool_kit-1.2.dist-info/WHEEL": WHEEL.encode(),
        "tool_kit-1.2.dist-info/entry_points.txt": ENTRY_POINTS.encode(),
    }
    built = tmp_path / "tool_kit-1.2-py3-none-any.whl"
    with zipfile.ZipFile(built, "w") as archive:
        for name, content in original.items():
            archive.writestr(name, content)
        archive.writestr("tool_kit-1.2.dist-info/RECORD",
                         "".join(f"{name},,\n" for name in
                                 [*original, "tool_kit-1.2.dist-info/RECORD"]))
    venv = tmp_path / "venv"
    python = make_venv(venv, third_party)
    pip_install(python, str(built))
    scheme = sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})
    (installed,) = importlib.metadata.distributions(path=[scheme["purelib"]])
    assert (venv / "bin" / "tool-kit").exists()  # what pip generated
    assert not (venv / "bin" / "tool-run").read_bytes().startswith(b"#!python\n")

    repacked = read_installed_wheel(installed, scheme)
    (tmp_path / "out").mkdir()
    wheel = pack_installed(repacked, tmp_path / "out")
    assert wheel.name == built.name
    with zipfile.ZipFile(wheel) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
        mode = archive.getinfo("tool_kit-1.2.data/scripts/tool-run").external_attr >> 16
    record = files.pop("tool_kit-1.2.dist-info/RECORD").decode().splitlines()
    assert files == original
    assert mode & 0o111
    assert sorted(line.split(",")[0] for line in record) == sorted(
        [*original, "tool_kit-1.2.dist-info/RECORD"])


def installed_by_hand(site: Path, name: str, files: dict[str, bytes]) -> None:
    """A distribution `name` 1.0 installed in `site` as an installer leaves it (RECORD last)."""
    dist_info = f"{name}-1.0.dist-info"
    listed = {**files, f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\n"
              "Version: 1.0\n".encode(), f"{dist_info}/WHEEL": WHEEL.encode()}
    for relative, content in listed.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(content)
    (site / dist_info / "RECORD").write_text(
        "".join(f"{relative},,\n" for relative in [*listed, f"{dist_info}/RECORD"]))


def test_the_wheelhouse_packs_in_threads_what_one_at_a_time_would(tmp_path: Path) -> None:
    """Packing every distribution at once gives each the bytes it has packed alone; a file
    gone since its RECORD listed it is named, whichever thread meets it."""
    site = tmp_path / "site"
    for index in range(6):
        installed_by_hand(site, f"part{index}", {
            f"part{index}/__init__.py": b"x = 1\n" * (index + 1),
            f"part{index}/blob.bin": os.urandom(200_000 * index)})
    closure = sorted(importlib.metadata.distributions(path=[str(site)]),
                     key=lambda dist: dist.metadata["Name"])
    (tmp_path / "alone").mkdir()
    (tmp_path / "at-once").mkdir()
    for distribution in closure:
        pack_installed(read_installed_wheel(distribution), tmp_path / "alone")
    pack_all(closure, tmp_path / "at-once")
    alone = {path.name: path.read_bytes() for path in (tmp_path / "alone").iterdir()}
    assert len(alone) == 6
    assert {path.name: path.read_bytes() for path in (tmp_path / "at-once").iterdir()} == alone

    (site / "part3" / "blob.bin").unlink()
    (tmp_path / "broken").mkdir()
    with pytest.raises(RunError) as raised:
        pack_all(closure, tmp_path / "broken")
    assert raised.value.message.startswith("the installed part3 is incomplete")
    assert "blob.bin" in raised.value.message


# -- an offline node over SSH (slow) ------------------------------------------------------------

@pytest.fixture(scope="module")
def cache(controller_wheelhouse: Path) -> Iterator[Path]:
    """The controller's cache for this module, holding the run's wheelhouse (a first deploy
    sends it; building it is controller_wheelhouse's, once for the run)."""
    directory = Path(tempfile.mkdtemp(prefix="sfarm-offline-cache-"))
    seed_cache(directory, controller_wheelhouse)
    yield directory
    subprocess.run(["rm", "-rf", str(directory)], check=False)


@pytest.fixture(scope="module")
def offline_host(user_host_pool: UserHostPool) -> Iterator[SSHServer]:
    """A user host whose pip's index is a closed port, its python the system's (no sfarm)."""
    server = user_host_pool.start()
    try:
        assert server.home is not None
        conf = server.home / ".config" / "pip"
        conf.mkdir(parents=True)
        (conf / "pip.conf").write_text(f"[global]\nindex-url = {CLOSED_INDEX}\n")
        owner = server.node_root.stat()
        for path in (conf.parent, conf, conf / "pip.conf"):
            os.chown(path, owner.st_uid, owner.st_gid)
        yield server
    finally:
        user_host_pool.stop(server)


def system_python(server: SSHServer) -> str:
    """The base interpreter of the host's shared python: the system's, without sfarm."""
    assert server.python is not None
    return str(Path(server.python).resolve())




class Controller:
    """`sfarm` commands against the offline host, with a HOME that trusts it and the cache."""

    def __init__(self, server: SSHServer, cache: Path, directory: Path) -> None:
        self.server = server
        self.home = directory / "home"
        (self.home / ".ssh").mkdir(parents=True)
        (self.home / ".ssh" / "known_hosts").write_text(server.known_hosts_line + "\n")
        self.inventory = directory / "sfarm.toml"
        self.cache = cache
        self.root = server.node_root / "edge" / "far"
        self.write_inventory()

    def write_inventory(self, defaults: str = "") -> None:
        self.inventory.write_text(f"version = 1\n\n[defaults]\n{defaults}" + ssh_node(
            "edge", "far", self.server, python=system_python(self.server),
            base=self.server.node_root))

    def deploy(self, *args: str, check: bool = True) -> Run:
        return run_sfarm(self.inventory, "deploy", *args, check=check, timeout=900,
                         env={"HOME": str(self.home), "XDG_CACHE_HOME": str(self.cache)})

    def steps(self, *args: str) -> dict[str, dict[str, Any]]:
        """Deploy with --json: the node's install steps by name."""
        document = json.loads(self.deploy("--json", *args).stdout)
        (node,) = document["nodes"]
        return {step["step"]: step for step in node["steps"] if step["step"].startswith("sfarm")}

    def on_node(self, command: str) -> str:
        result = ssh(self.server, command, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


@pytest.mark.slow
@pytest.mark.timeout(900)  # two to three installs of ~700 MB on a shared machine
def test_a_node_without_an_index_deploys_offline_and_sends_its_wheels_once(
        offline_host: SSHServer, cache: Path, tmp_path: Path) -> None:
    node = Controller(offline_host, cache, tmp_path)
    refused = node.deploy(check=False)
    assert refused.returncode == 1
    assert "reaches no package index" in refused.stderr
    assert "deploy with --offline" in refused.stderr and "offline = true" in refused.stderr

    planned = node.steps("--offline", "--dry-run")  # sends, builds and installs nothing
    assert {name: step["status"] for name, step in planned.items()} == \
        {"sfarm wheelhouse": "changed", "sfarm venv": "changed"}, planned
    assert node.on_node(f"test -e {node.root}/wheelhouse || echo none") == "none"

    first = node.steps("--offline")
    assert first["sfarm wheelhouse"]["status"] == "changed", first
    assert first["sfarm venv"]["status"] == "changed", first
    sfarm = node.on_node(f"{node.root}/venv/bin/sfarm --version")
    assert sfarm == f"sfarm {__version__}"
    # The wheels the node holds are this environment's, sfarm's beside them.
    held = set(node.on_node(f"ls {node.root}/wheelhouse").split())
    assert any(name.startswith("polars-") for name in held)
    assert any(name.startswith("sfarm-") for name in held)

    again = node.steps("--offline")
    assert {name: step["status"] for name, step in again.items()} == \
        {"sfarm wheelhouse": "ok", "sfarm venv": "ok"}
    assert node.steps("--offline", "--dry-run") == again

    # The venv gone (broken, removed): the node installs again from what it holds, and the
    # node key `offline = true`, inherited from [defaults], does what --offline does.
    node.on_node(f"rm -rf {node.root}/venv")
    node.write_inventory(defaults="offline = true\n")
    rebuilt = node.steps()
    assert rebuilt["sfarm wheelhouse"]["status"] == "ok", rebuilt
    assert "holds them" in rebuilt["sfarm wheelhouse"]["detail"]
    assert rebuilt["sfarm venv"]["status"] == "changed"
    assert node.on_node(f"{node.root}/venv/bin/sfarm --version") == f"sfarm {__version__}"


class RecordingSSH(SSHConnection):
    """The SSH connection, with what each rsync changed on the node."""

    synced: list[SyncResult]

    def rsync(self, source: str, destination: str, **options: Any) -> SyncResult:
        result = super().rsync(source, destination, **options)
        self.synced.append(result)
        return result


@pytest.mark.slow
@pytest.mark.timeout(900)  # two to three installs of ~700 MB on a shared machine
def test_a_changed_sfarm_sends_only_its_own_wheel(
        offline_host: SSHServer, cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    base = user_base(offline_host)  # a node root of its own on the same host: it starts empty
    copy = copy_project(tmp_path / "project")
    spec = offline_host.node("far", base_dir=str(base), python=system_python(offline_host))
    root = str(base / "test" / "far")
    connection = RecordingSSH(spec, known_hosts=offline_host.known_hosts)
    connection.synced = []
    with connection:
        first = provision(connection, root, spec.python, snapshot=edit(copy, "one"),
                          offline=True)
        assert [step.status for step in first] == ["changed", "changed"]
        assert "MB" in first[0].detail and "sent" in first[0].detail

        connection.synced.clear()
        snapshot = edit(copy, "two")
        changed = provision(connection, root, spec.python, snapshot=snapshot, offline=True)
        assert [step.status for step in changed] == ["changed", "changed"]
        dependencies, own = connection.synced
        assert dependencies.paths("transfer", "delete") == []  # nothing else moved
        wheel = cached_wheel(snapshot)
        assert own.paths("transfer") == [wheel.name]
        assert changed[0].detail.startswith("sent 1 wheel(s)")
        marker = ssh(offline_host, f"{root}/venv/bin/python -c "
                                   "'import sfarm.errors as e; print(e.DEPLOY_MARKER)'")
        assert marker.stdout.strip() == "two", marker.stderr
        held = ssh(offline_host, f"ls {root}/wheelhouse").stdout.split()
        assert [name for name in held if name.startswith("sfarm-")] == [wheel.name]
