"""The wheel `deploy` installs on nodes: the very sfarm that runs here, built once per content.

sfarm runs in one of two ways, and each makes its wheel its own way:

- From a source tree (`pip install -e .`, a developer's checkout): the files the build reads
  (`SOURCE_PARTS`) are read once, and setuptools builds them in a temporary directory with
  `pip wheel --no-build-isolation --no-index`: offline, with the setuptools of this environment
  (the `test` extra brings it), the checkout left without build/ or egg-info, and the wheel made
  of exactly the bytes that were hashed.
- From an installed wheel (`pip install .`, pipx): there is no source tree, and neither pip nor
  pipx keeps the wheel it installed, so the wheel is packed again from the installed files its
  RECORD lists, without what the installer added (RECORD, INSTALLER, REQUESTED,
  direct_url.json, the console script, bytecode): sfarm.remote.repack, which also packs the
  dependencies of an offline node's wheelhouse. A wheel installed and packed again holds the
  same files as the original; it needs nothing but the standard library.

The digest, a sha256 over the files' names and contents, names the build in the cache
(`$XDG_CACHE_HOME/sfarm/wheels/<digest>/`) and the install on a node: a code change makes a new
wheel although the version string stays the same, and an unchanged tree is never built twice.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sfarm
from sfarm.errors import RunError
from sfarm.remote.repack import (
    is_cache,
    read_installed_wheel,
    script_content,
    wheel_filename,
    wheel_tags,
    write_wheel,
)

PACKAGE = "sfarm"
# What setuptools reads to build sfarm (pyproject.toml and setup.py name the rest). A file the
# build starts to read (a LICENSE) belongs here, or the node's wheel goes without it.
SOURCE_PARTS = ("pyproject.toml", "setup.py", "README.md", "sfarm", "templates")
CACHE_KEEP = 8  # wheels kept in the cache, the most recently used
STALE_STAGING_S = 86400.0  # a build directory this old in the cache was left by a dead process
BUILD_TIMEOUT_S = 300.0

Origin = Literal["source tree", "installed"]


@dataclass(frozen=True)
class Snapshot:
    """The files one wheel of sfarm is made of, read once: name (in the source tree, or in the
    wheel for an installed sfarm) -> content."""

    origin: Origin
    where: Path  # the source tree, or the directory the distribution is installed in
    files: Mapping[str, bytes]
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", content_digest(self.files))


def content_digest(files: Mapping[str, bytes]) -> str:
    """sha256 over every file's name and the sha256 of its content, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def read_source_tree(project: Path) -> Snapshot:
    """The files of the checkout at `project` that its wheel is built from."""
    missing = [part for part in SOURCE_PARTS if not (project / part).exists()]
    if missing:
        raise RunError(f"cannot build sfarm's wheel: {', '.join(missing)} missing in {project}")
    files = {}
    for part in SOURCE_PARTS:
        path = project / part
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            relative = file.relative_to(project)
            if file.is_file() and not is_cache(relative.parts):
                files[relative.as_posix()] = file.read_bytes()
    return Snapshot("source tree", project, files)


def read_installed(distribution: importlib.metadata.Distribution) -> Snapshot:
    """The files of an installed sfarm that make its wheel again, by their names in the wheel
    (sfarm.remote.repack says which)."""
    installed = read_installed_wheel(distribution)
    data_scripts = installed.dist_info.removesuffix(".dist-info") + ".data/scripts/"
    files = {}
    for name, path in installed.files.items():
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise RunError(f"the installed {PACKAGE} is incomplete: cannot read {path}: "
                           f"{exc.strerror}", hint="reinstall sfarm") from None
        files[name] = script_content(content) if name.startswith(data_scripts) else content
    return Snapshot("installed", Path(str(distribution.locate_file(""))), files)


@functools.cache
def running_sfarm() -> Snapshot:
    """The sfarm this process runs: its source tree when it runs from one, else the installed
    distribution that holds the imported package. Read once a process: deploy provisions every
    node in parallel, and each would otherwise read and hash every file again."""
    package = Path(sfarm.__file__).resolve().parent
    project = package.parent
    if all((project / part).exists() for part in ("pyproject.toml", "setup.py", "templates")):
        return read_source_tree(project)
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        distribution = None
    located = (Path(str(distribution.locate_file(f"{PACKAGE}/__init__.py"))).resolve()
               if distribution is not None else None)
    if distribution is None or located != package / "__init__.py":
        raise RunError(f"sfarm runs from {package}, which is neither a source tree nor an "
                       "installed distribution: there is no wheel to ship to the nodes",
                       hint="install sfarm with pip or pipx, or run it from its checkout")
    return read_installed(distribution)


def build_wheel(snapshot: Snapshot, directory: Path) -> Path:
    """Write the wheel of `snapshot` into `directory`; its path."""
    if snapshot.origin == "source tree":
        return _build_source(snapshot, directory)
    return _pack_installed(snapshot, directory)


def _build_source(snapshot: Snapshot, directory: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="sfarm-build-") as stage:
        for name, content in snapshot.files.items():
            target = Path(stage, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                   "--no-index", "--disable-pip-version-check", "--quiet",
                   "--wheel-dir", str(directory), stage]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False,
                                    timeout=BUILD_TIMEOUT_S, cwd=stage)
        except subprocess.TimeoutExpired:
            raise RunError(f"building sfarm's wheel took more than {BUILD_TIMEOUT_S:g} s") from None
    wheels = sorted(directory.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise RunError(f"building sfarm's wheel from {snapshot.where} failed:\n{tail}",
                       hint="the build runs offline with this environment's setuptools (>= 77): "
                            "pip install -e '.[test]' brings it")
    return wheels[0]


def _pack_installed(snapshot: Snapshot, directory: Path) -> Path:
    dist_info = next((name.split("/")[0] for name in snapshot.files
                      if name.endswith(".dist-info/WHEEL") and name.count("/") == 1), None)
    if dist_info is None:
        raise RunError(f"the installed {PACKAGE} has no .dist-info/WHEEL: it was not installed "
                       "from a wheel", hint="reinstall sfarm with pip or pipx")
    tags = wheel_tags(snapshot.files[f"{dist_info}/WHEEL"].decode())
    path = directory / wheel_filename(dist_info.removesuffix(".dist-info"), tags)
    return write_wheel(path, dist_info, snapshot.files, snapshot.files.__getitem__)


def cache_directory() -> Path:
    """Where built wheels are kept: `$XDG_CACHE_HOME/sfarm/wheels`, else `~/.cache/...`."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"  # XDG: absolute only
    return root / "sfarm" / "wheels"


_BUILDING = threading.Lock()  # deploy provisions nodes in threads: one build per process


def cached_wheel(snapshot: Snapshot) -> Path:
    """The wheel of `snapshot`, built unless the cache holds it already."""
    cache = cache_directory()
    entry = cache / snapshot.digest
    with _BUILDING:
        try:
            if not any(entry.glob("*.whl")):
                cache.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
                try:
                    build_wheel(snapshot, staging)
                    # All or nothing: an entry is a finished build. Failing here means another
                    # process has just stored the same build (or the cache is not writable).
                    with contextlib.suppress(OSError):
                        staging.rename(entry)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
            wheels = sorted(entry.glob("*.whl"))
            if not wheels:
                raise RunError(f"cannot store sfarm's wheel in {entry}")
            os.utime(entry)  # used now: pruning keeps it
            prune_cache(cache, CACHE_KEEP)  # every code change makes a wheel
        except OSError as exc:
            raise RunError(f"cannot use the wheel cache {cache}: {exc.strerror}",
                           hint="set XDG_CACHE_HOME to a writable directory") from None
    return wheels[0]


def prune_cache(cache: Path, keep: int) -> None:
    """Drop all but the `keep` most recently used entries of a build cache (sfarm's wheels, the
    nodes' wheelhouses), and build directories (`.building-*`) of processes that died."""
    used: dict[Path, float] = {}
    for path in cache.iterdir():
        with contextlib.suppress(FileNotFoundError):  # another deploy pruned it meanwhile
            used[path] = path.stat().st_mtime
    finished = sorted((path for path in used if not path.name.startswith(".")),
                      key=used.__getitem__)
    abandoned = [path for path in used if path.name.startswith(".building-")
                 and time.time() - used[path] > STALE_STAGING_S]
    for stale in finished[:-keep] + abandoned:
        shutil.rmtree(stale, ignore_errors=True)
