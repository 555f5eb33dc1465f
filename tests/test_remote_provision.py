"""What deploy installs in a node's venv: sfarm's wheel, built once per content, and pinned
dependencies; and the wheel itself, from a checkout or packed again from an installed sfarm."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sfarm import __version__
from sfarm.remote.connection import LocalConnection
from sfarm.remote.provision import NODE_WHEELS, STAMP, pinned_requirements, provision
from sfarm.remote.wheel import (
    CACHE_KEEP,
    SOURCE_PARTS,
    build_wheel,
    cached_wheel,
    read_installed,
    read_source_tree,
)
from sfarm.rsync import SyncResult
from tests.fixtures.projects import PROJECT, copy_project, edit
from tests.fixtures.venvs import make_venv


def wheel_files(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_dependencies_are_pinned_to_the_controllers_versions() -> None:
    pins = dict(pin.split("==") for pin in pinned_requirements())
    assert {"polars", "numpy", "ta-lib", "ccxt", "supervisor"} <= set(pins)
    assert all(version == importlib.metadata.version(name) for name, version in pins.items())
    assert "pytest" not in pins and "vectorbt" not in pins  # extras stay on the controller


def test_the_digest_changes_with_the_code_and_ignores_caches(tmp_path: Path) -> None:
    copy = copy_project(tmp_path / "project")
    digest = read_source_tree(copy).digest
    assert digest == read_source_tree(PROJECT).digest  # caches in the real tree do not count
    cache = copy / "sfarm" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert read_source_tree(copy).digest == digest
    assert edit(copy, "one").digest != digest
    (copy / "templates" / "supervisord.conf").write_text("changed")
    assert read_source_tree(copy).digest not in (digest, edit(copy, "one").digest)


@pytest.mark.slow
def test_the_wheel_carries_the_package_and_its_templates(tmp_path: Path) -> None:
    copy = copy_project(tmp_path / "project")
    (tmp_path / "out").mkdir()
    wheel = build_wheel(read_source_tree(copy), tmp_path / "out")
    assert wheel.name == f"sfarm-{__version__}-py3-none-any.whl"
    files = wheel_files(wheel)
    for module in (copy / "sfarm").rglob("*.py"):
        name = module.relative_to(copy).as_posix()
        assert files[name] == module.read_bytes(), name
    templates = [path for path in (copy / "templates").iterdir() if path.is_file()]
    assert {"inventory.toml", "strategy.toml", "supervisord.conf"} <= {t.name for t in templates}
    for template in templates:
        assert files[f"sfarm/templates/{template.name}"] == template.read_bytes()
    entry_points = files[f"sfarm-{__version__}.dist-info/entry_points.txt"].decode()
    assert "sfarm = sfarm.cli.entry:main" in entry_points
    # Built in a temporary copy: the checkout gains no build/ nor egg-info.
    assert sorted(path.name for path in copy.iterdir()) == sorted(SOURCE_PARTS)


@pytest.mark.slow
def test_an_installed_sfarm_makes_its_wheel_again(tmp_path: Path) -> None:
    """pip installs a wheel; packed again from what was installed, it holds the same files."""
    (tmp_path / "built").mkdir()
    original = build_wheel(read_source_tree(copy_project(tmp_path / "project")),
                           tmp_path / "built")
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                             "--no-index", "--target", str(site), str(original)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    (distribution,) = importlib.metadata.distributions(path=[str(site)])
    snapshot = read_installed(distribution)
    assert snapshot.origin == "installed" and not any(".pyc" in name for name in snapshot.files)
    (tmp_path / "packed").mkdir()
    packed = build_wheel(snapshot, tmp_path / "packed")
    assert packed.name == original.name
    before, after = wheel_files(original), wheel_files(packed)
    record = f"sfarm-{__version__}.dist-info/RECORD"
    assert sorted(before) == sorted(after)  # no console script, no INSTALLER, no bytecode
    assert {name: content for name, content in before.items() if name != record} == \
        {name: content for name, content in after.items() if name != record}
    # Its RECORD vouches for every file, as pip checks on install.
    lines = after[record].decode().splitlines()
    assert sorted(line.split(",")[0] for line in lines) == sorted(after)
    # The same installed files make the same wheel, byte for byte.
    (tmp_path / "again").mkdir()
    assert build_wheel(read_installed(distribution), tmp_path / "again").read_bytes() == \
        packed.read_bytes()


@pytest.mark.slow
def test_a_wheel_is_built_once_per_content(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    copy = copy_project(tmp_path / "project")
    snapshot = read_source_tree(copy)
    wheel = cached_wheel(snapshot)
    assert wheel.parent == tmp_path / "cache" / "sfarm" / "wheels" / snapshot.digest
    built = wheel.stat()
    assert cached_wheel(read_source_tree(copy)) == wheel
    assert (wheel.stat().st_ino, wheel.stat().st_mtime_ns) == (built.st_ino, built.st_mtime_ns)

    changed = cached_wheel(edit(copy, "two"))
    assert changed.parent.name != snapshot.digest and changed.name == wheel.name
    assert b"DEPLOY_MARKER = 'two'" in wheel_files(changed)["sfarm/errors.py"]

    # Every code change makes a wheel: the cache keeps the most recently used ones.
    for number in range(CACHE_KEEP + 2):
        old = tmp_path / "cache" / "sfarm" / "wheels" / f"{number:064x}"
        old.mkdir()
        os.utime(old, (number, number))
    assert cached_wheel(snapshot) == wheel  # used now
    kept = sorted(path.name for path in wheel.parent.parent.iterdir())
    assert len(kept) == CACHE_KEEP and snapshot.digest in kept and changed.parent.name in kept


class RecordingConnection(LocalConnection):
    """This machine, with a log of every call that acts on the node and what rsync sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.synced: list[SyncResult] = []

    def run(self, argv: Sequence[str], **options: Any) -> Any:
        self.calls.append(("run", list(argv)))
        return super().run(argv, **options)

    def put(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        self.calls.append(("put", remote_path))
        super().put(data, remote_path, mode=mode)

    def rsync(self, source: str, destination: str, **options: Any) -> SyncResult:
        self.calls.append(("rsync", (source, destination)))
        self.synced.append(super().rsync(source, destination, **options))
        return self.synced[-1]


def node_sfarm(python: Path, code: str) -> str:
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.slow
def test_deploy_installs_the_wheel_once_and_again_after_a_code_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, third_party: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # `python -m sfarm` on the node must not find a checkout in cwd
    copy = copy_project(tmp_path / "project")
    root = tmp_path / "node"
    # The node's venv exists with sfarm's dependencies (installing them takes minutes), and
    # holds what a deploy before the wheel left there: the source tree, its digest and .pth.
    venv_python = make_venv(root / "venv", third_party)
    (root / "venv" / "src" / "sfarm").mkdir(parents=True)
    (root / "venv" / "sfarm-source.sha256").write_text("old")
    site = Path(node_sfarm(venv_python, "import sysconfig; print(sysconfig.get_path('purelib'))"))
    (site / "sfarm-source.pth").write_text(f"{root / 'venv' / 'src'}\n")

    node = RecordingConnection()
    [first] = provision(node, str(root), "python3", snapshot=read_source_tree(copy))
    assert (first.step, first.status) == ("sfarm venv", "changed"), first
    where = "import sfarm; print(sfarm.__file__)"
    assert node_sfarm(venv_python, where) == str(site / "sfarm" / "__init__.py")
    assert node_sfarm(venv_python, "import sfarm; print(sfarm.__version__)") == __version__
    assert len(node.synced) == 1 and node.synced[0].changed  # the wheel was sent
    leftovers = [root / "venv" / "src", root / "venv" / "sfarm-source.sha256",
                 site / "sfarm-source.pth", root / "venv" / NODE_WHEELS]
    assert not [path for path in leftovers if path.exists()]

    # A second deploy reads the stamp and does nothing else: no build, no transfer, no pip.
    node.calls.clear()
    [again] = provision(node, str(root), "python3", snapshot=read_source_tree(copy))
    assert again.status == "ok" and node.calls == []

    # A code change (same version string) is a new wheel. Its deploy was interrupted once the
    # wheel had been sent: the next one installs it without sending it again.
    wheel = cached_wheel(edit(copy, "three"))
    (root / "venv" / NODE_WHEELS).mkdir()
    shutil.copytree(wheel.parent, root / "venv" / NODE_WHEELS / wheel.parent.name)
    node.synced.clear()
    [third] = provision(node, str(root), "python3", snapshot=read_source_tree(copy))
    assert third.status == "changed" and wheel.parent.name[:12] in third.detail
    assert not [path for path in node.synced[0].paths() if path.endswith(".whl")]  # not sent
    marker = "import sfarm.errors as e; print(e.DEPLOY_MARKER)"
    assert node_sfarm(venv_python, marker) == "three"
    assert (root / "venv" / STAMP).exists() and not (root / "venv" / NODE_WHEELS).exists()
