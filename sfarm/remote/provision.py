"""Install this sfarm on a node: `<root>/venv` with the controller's own version of every
dependency, and the controller's source tree beside it.

A node then runs exactly what the controller runs (the same polars, the same TA-Lib build), and
a redeploy after a code change ships the change. The source goes by rsync (only what changed);
a digest of it, written last, tells the next deploy that nothing is left to do, and that an
interrupted install must be finished. The venv reaches the package index the node's pip is
configured for (a mirror or a proxy through pip.conf, if the node has no direct access).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import posixpath
import re
from pathlib import Path

from sfarm import __version__
from sfarm.errors import RunError
from sfarm.remote.connection import Connection, TransportError
from sfarm.resources import PROJECT_DIR
from sfarm.runtime.node import StepResult

SOURCE_PARTS = ("pyproject.toml", "sfarm", "templates")
EXCLUDED = ("__pycache__", "*.pyc", "*.nbi", "*.nbc")  # bytecode and numba's compile cache
PIP_TIMEOUT_S = 1800.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def pinned_requirements() -> list[str]:
    """This sfarm's dependencies (not the extras) at the versions installed here."""
    pins = []
    for requirement in importlib.metadata.requires("sfarm") or []:
        if ";" in requirement:  # an extra (test, bench) or a platform marker
            continue
        match = _NAME.match(requirement)
        if match is not None:
            name = match.group(0)
            pins.append(f"{name}=={importlib.metadata.version(name)}")
    return pins


def _source_files(project: Path) -> list[Path]:
    files = []
    for part in SOURCE_PARTS:
        path = project / part
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        files += [file for file in candidates if file.is_file() and not any(
            file.match(pattern) or pattern in file.parts for pattern in EXCLUDED)]
    return files


def source_digest(project: Path = PROJECT_DIR) -> str:
    """sha256 over the shipped files' paths and contents, and the pinned requirements."""
    digest = hashlib.sha256()
    for file in _source_files(project):
        digest.update(file.relative_to(project).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    digest.update("\n".join(pinned_requirements()).encode())
    return digest.hexdigest()


def provision(connection: Connection, root: str, python: str,
              project: Path = PROJECT_DIR) -> StepResult:
    """Make `<root>/venv` run this sfarm; "ok" when it already does."""
    missing = [part for part in SOURCE_PARTS if not (project / part).exists()]
    if missing:
        raise RunError(f"cannot ship sfarm to nodes: {', '.join(missing)} missing in {project}",
                       hint="deploy from sfarm's source tree (pip install -e .)")
    venv = posixpath.join(root, "venv")
    venv_python = posixpath.join(venv, "bin", "python")
    source = posixpath.join(venv, "src")
    stamp = posixpath.join(venv, "sfarm-source.sha256")
    digest = source_digest(project)
    if connection.get(stamp) == digest.encode():
        return StepResult("sfarm venv", "ok", f"sfarm {__version__} in {venv}")
    if not connection.run(["test", "-x", venv_python], check=False).ok:
        try:
            connection.run([python, "-m", "venv", venv], timeout=PIP_TIMEOUT_S)
        except TransportError as error:
            raise RunError(f"{connection.where}: cannot create {venv} with {python}: "
                           f"{error.message}",
                           hint="the node needs Python >= 3.11 with its venv module (on "
                                "Debian: apt-get install python3-venv), or set `python`") from None
    connection.run([venv_python, "-m", "pip", "install", "--disable-pip-version-check",
                    "--quiet", *pinned_requirements()], timeout=PIP_TIMEOUT_S)
    connection.run(["mkdir", "-p", source])
    for part in SOURCE_PARTS:
        path = project / part
        connection.rsync(f"{path}/" if path.is_dir() else str(path),
                         posixpath.join(source, part), pull=False, delete=True,
                         excludes=EXCLUDED)
    where_packages = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = connection.run([venv_python, "-c", where_packages]).stdout_text.strip()
    # What `pip install -e` leaves behind: the source directory on the venv's path.
    connection.put(f"{source}\n".encode(), posixpath.join(site, "sfarm-source.pth"))
    installed = connection.run([venv_python, "-m", "sfarm", "--version"]).stdout_text.split()
    if installed[-1:] != [__version__]:
        raise RunError(f"{connection.where}: {venv} runs {' '.join(installed) or 'nothing'}, "
                       f"not sfarm {__version__}")
    connection.put(digest.encode(), stamp)  # last: an interrupted install is redone
    return StepResult("sfarm venv", "changed", f"sfarm {__version__} installed in {venv}")
