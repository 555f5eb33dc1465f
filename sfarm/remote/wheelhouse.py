"""The wheelhouse of an offline node: every wheel its venv needs, made on the controller.

A node that reaches no package index installs with `pip install --no-index --find-links`. Its
wheelhouse holds the wheels of sfarm's dependencies and of theirs (sfarm's own wheel is
sfarm.remote.wheel's and travels beside it), at the controller's versions, for the node's
interpreter: its version and the tags pip accepts there, learnt on the node (`probe`).

Where the wheels come from (the choice, and why):

- When the node's interpreter is the controller's kind (same implementation and major.minor
  version) and each installed distribution has a tag the node accepts, they are packed again
  from this environment (sfarm.remote.repack): no index is needed on either side, and the node
  runs byte for byte what the controller runs. This is the usual case (nodes of one OS image)
  and the one tests can cover (they never reach beyond 127.0.0.0/8).
- Otherwise (another Python version, another architecture or libc), the controller cannot make
  them: `pip download --only-binary=:all:` fetches them for the node's version, ABIs and
  platforms from the controller's index. pip is the tool that knows which wheel fits; without
  an index on the controller either, that is an error saying what the node needs.

The wheelhouse is built once and kept in `$XDG_CACHE_HOME/sfarm/wheelhouse/<key>/`, the key
naming the node's interpreter tag and platform and a digest of what it holds (each
distribution's name, version and tags; or the pins and the node's tags for a download), so
every node of a kind shares it and a dependency upgrade makes a new one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sfarm.errors import RunError
from sfarm.remote.repack import (
    InstalledWheel,
    pack_installed,
    read_installed_wheel,
    wheel_tags,
)
from sfarm.remote.wheel import cache_directory, prune_cache

# Run by the node's venv python (pip's own copy of packaging when packaging is not installed):
# what pip there accepts, in its order of preference.
PROBE = """
import json, sys, sysconfig
try:
    from packaging.tags import sys_tags
except ImportError:
    from pip._vendor.packaging.tags import sys_tags
print(json.dumps({"version": "%d.%d" % sys.version_info[:2],
                  "implementation": sys.implementation.name,
                  "platform": sysconfig.get_platform(),
                  "tags": [str(tag) for tag in sys_tags()]}))
"""
IMPLEMENTATIONS = {"cpython": "cp", "pypy": "pp"}  # pip download --implementation
KEEP = 2  # wheelhouses kept in the cache (each is hundreds of MB), the most recently used
DOWNLOAD_TIMEOUT_S = 1800.0
# Deflate level 6, as wheel builders write: 168 MB against 191 at level 1, for 36 s of CPU
# against 13 s. The build happens once; the wheelhouse crosses the network to every node.
LEVEL = 6

Source = Literal["installed", "download"]


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter as pip sees it: "3.11", "cpython", "linux-x86_64", its tags."""

    version: str
    implementation: str
    platform: str
    tags: tuple[str, ...]

    @classmethod
    def from_json(cls, text: str) -> Interpreter:
        document = json.loads(text)
        return cls(str(document["version"]), str(document["implementation"]),
                   str(document["platform"]), tuple(str(tag) for tag in document["tags"]))

    @property
    def python_tag(self) -> str:
        short = IMPLEMENTATIONS.get(self.implementation, self.implementation)
        return short + self.version.replace(".", "")

    def describe(self) -> str:
        return f"{self.implementation} {self.version} on {self.platform}"

    def axis(self, index: int) -> list[str]:
        """The distinct ABIs (1) or platforms (2) of the tags, in order of preference."""
        return list(dict.fromkeys(tag.split("-")[index] for tag in self.tags))


@functools.cache
def this_interpreter() -> Interpreter:
    """The controller's own interpreter, probed as a node's is."""
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            check=True, timeout=60)
    return Interpreter.from_json(result.stdout)


def runtime_closure(root: str = "sfarm") -> list[importlib.metadata.Distribution]:
    """The installed distributions `root` needs at run time (its requirements without extras,
    and theirs, markers evaluated here), by name; `root` itself not included."""
    wanted: dict[str, set[str]] = {}  # canonical name -> extras asked of it
    found: dict[str, importlib.metadata.Distribution] = {}
    todo: list[tuple[str | None, Requirement]] = [
        (None, Requirement(line)) for line in importlib.metadata.requires(root) or []]
    while todo:
        extras_of_parent, requirement = todo.pop()
        asked = [{"extra": extra} for extra in (extras_of_parent or "").split(",") if extra]
        if requirement.marker is not None and not any(
                requirement.marker.evaluate(environment)
                for environment in asked or [{"extra": ""}]):
            continue
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in wanted and extras <= wanted[name]:
            continue
        wanted.setdefault(name, set()).update(extras)
        if name not in found:
            try:
                found[name] = importlib.metadata.distribution(requirement.name)
            except importlib.metadata.PackageNotFoundError:
                raise RunError(f"{requirement.name}, which {root} needs, is not installed "
                               "here: there is no wheel of it to send",
                               hint=f"reinstall {root} (pip install {root})") from None
        all_extras = ",".join(sorted(wanted[name]))
        todo += [(all_extras, Requirement(line)) for line in found[name].requires or []]
    return [found[name] for name in sorted(found)]


def _tags_of(distribution: importlib.metadata.Distribution) -> tuple[str, ...]:
    return wheel_tags(distribution.read_text("WHEEL") or "")


def choose_source(node: Interpreter, here: Interpreter,
                  closure: Iterable[importlib.metadata.Distribution]) -> Source:
    """"installed" when every distribution installed here fits the node, else "download"."""
    if (node.implementation, node.version) != (here.implementation, here.version):
        return "download"
    accepted = set(node.tags)
    fits = all(accepted.intersection(_tags_of(dist)) for dist in closure)
    return "installed" if fits else "download"


def wheelhouse_key(node: Interpreter, source: Source,
                   closure: list[importlib.metadata.Distribution], pins: list[str]) -> str:
    """`<python tag>-<platform>-<digest>`: what the wheelhouse holds, for which interpreter."""
    if source == "installed":
        content = [source] + [f"{dist.metadata['Name']}=={dist.version} {_tags_of(dist)}"
                              for dist in closure]
    else:
        content = [source, node.version, node.implementation, *node.tags, *sorted(pins)]
    digest = hashlib.sha256(json.dumps(content).encode()).hexdigest()[:16]
    platform = node.platform.replace("-", "_").replace(".", "_")
    return f"{node.python_tag}-{platform}-{digest}"


def cache_root() -> Path:
    return cache_directory().parent / "wheelhouse"


_BUILDING = threading.Lock()  # deploy installs nodes in threads: one build at a time


def wheelhouse(node: Interpreter, pins: list[str], *, where: str) -> Path:
    """The directory of wheels that installs `pins` on `node` with no index, built unless
    the cache holds it. `where` names the node in errors."""
    closure = runtime_closure()
    source = choose_source(node, this_interpreter(), closure)
    cache = cache_root()
    entry = cache / wheelhouse_key(node, source, closure, pins)
    with _BUILDING:
        try:
            if not entry.is_dir():
                cache.mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
                try:
                    if source == "installed":
                        pack_all(closure, staging)
                    else:
                        download_wheels(node, pins, staging, where)
                    with contextlib.suppress(OSError):  # another process stored it meanwhile
                        staging.rename(entry)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
            os.utime(entry)  # used now: pruning keeps it
            prune_cache(cache, KEEP)
        except OSError as exc:
            raise RunError(f"cannot use the wheelhouse cache {cache}: {exc.strerror}",
                           hint="set XDG_CACHE_HOME to a writable directory") from None
    return entry


def pack_all(closure: list[importlib.metadata.Distribution], directory: Path) -> None:
    """Pack every distribution of `closure` again into `directory`, on every core: zlib's
    deflate, file reads and sha256 release the GIL, so threads suffice (sfarm's 61 wheels:
    36.7 s one at a time, 20.4 s on 2 cores). The largest first, so none is left alone last."""
    installed = [read_installed_wheel(distribution) for distribution in closure]
    installed.sort(key=_size, reverse=True)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in pool.map(lambda wheel: pack_installed(wheel, directory, level=LEVEL),
                          installed):
            pass  # an error (a file gone since RECORD listed it) raises here


def _size(wheel: InstalledWheel) -> int:
    """The bytes of `wheel`'s files (a file gone counts nothing: packing names it)."""
    total = 0
    for path in wheel.files.values():
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def download_wheels(node: Interpreter, pins: list[str], directory: Path, where: str) -> None:
    """Download into `directory`, from this machine's package index, the wheels that install
    `pins` on `node` (pip resolves them for its version, ABIs and platforms)."""
    here = this_interpreter()
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
               "--quiet", "--only-binary=:all:", "--dest", str(directory),
               "--python-version", node.version,
               "--implementation", IMPLEMENTATIONS.get(node.implementation, "py")]
    command += [f"--abi={abi}" for abi in node.axis(1)]
    command += [f"--platform={platform}" for platform in node.axis(2) if platform != "any"]
    try:
        result = subprocess.run([*command, *pins], capture_output=True, text=True,
                                check=False, timeout=DOWNLOAD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RunError(f"{where}: downloading its wheels took more than "
                       f"{DOWNLOAD_TIMEOUT_S:g} s") from None
    if result.returncode != 0:
        tail = "\n".join(line for line in result.stderr.strip().splitlines()[-4:])
        raise RunError(
            f"{where}: cannot make its wheelhouse: its python ({node.describe()}) is not this "
            f"machine's ({here.describe()}), so its wheels must come from a package index, "
            f"and pip could not download them here:\n{tail}",
            hint="give this machine a package index (pip.conf: index-url, a mirror or a "
                 f"proxy), or give the node a python like this machine's ({here.describe()}) "
                 "and set it as the node's `python`")


