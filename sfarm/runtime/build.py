"""Which build of sfarm runs here: a digest of its code, the same for a checkout and for any
installation of the wheel built from it.

Deploy puts it into every supervised program's environment (`SFARM_BUILD`), so that a deploy
that installs other code (an upgrade, or a checkout edited on a local farm) changes their
configuration, and supervisord restarts them on the new code; the version string alone stays
the same across such changes.

The code is what runs: the package's modules and data (`sfarm/**` with the suffixes a wheel
ships) and its templates, which a checkout keeps in `templates/` and a wheel in
`sfarm/templates/`; caches, build leftovers and packaging metadata are not code.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

import sfarm

BUILD_VARIABLE = "SFARM_BUILD"
PACKAGE = "sfarm"
TEMPLATES = "templates"
CODE_SUFFIXES = (".py", ".pyi", ".tcss")  # with py.typed: what the wheel ships of sfarm/
_CACHES = ("__pycache__",)


def code_name(name: str) -> str | None:
    """`name` (a path relative to a checkout or to site-packages) as the code digest names
    it, or None when it is no code: `templates/x` and `sfarm/templates/x` are both
    `templates/x`."""
    parts = PurePosixPath(name).parts
    if not parts or any(part in _CACHES for part in parts):
        return None
    if parts[0] == TEMPLATES:
        return name
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    if parts[1] == TEMPLATES:
        return "/".join(parts[1:])
    if parts[-1] == "py.typed" or PurePosixPath(name).suffix in CODE_SUFFIXES:
        return name
    return None


def code_digest(files: Mapping[str, bytes]) -> str:
    """A short sha256 over the code among `files` (name -> content), by code_name."""
    code = {named: content for name, content in files.items()
            if (named := code_name(name)) is not None}
    digest = hashlib.sha256()
    for name in sorted(code):
        digest.update(name.encode() + b"\0" + hashlib.sha256(code[name]).digest())
    return digest.hexdigest()[:16]


def _code_paths() -> Iterator[tuple[str, Path]]:
    """The code files of the running sfarm, by code name (only those: a cache such as a
    bytecode file written 0600 by a worker under umask 077 may be unreadable to another user)."""
    package = Path(sfarm.__file__).resolve().parent
    checkout_templates = package.parent / TEMPLATES  # a checkout: beside the package
    trees = [(package, PACKAGE)]
    if not (package / TEMPLATES).is_dir() and checkout_templates.is_dir():
        trees.append((checkout_templates, TEMPLATES))
    for top, prefix in trees:
        for path in top.rglob("*"):
            name = f"{prefix}/{path.relative_to(top).as_posix()}"
            if code_name(name) is not None and path.is_file():
                yield name, path


def _running_files() -> Iterator[tuple[str, bytes]]:
    for name, path in _code_paths():
        yield name, path.read_bytes()


@functools.cache
def code_stamp() -> str:
    """A cheap key for what the code digest keys, for a cache that every shell completion
    reads (sfarm.cli.completion_cache): a digest of the code files' names, sizes and
    modification times, read from the directory alone (a fifth of sfarm_build's time). It
    changes whenever the code does, and also when a file is only touched."""
    digest = hashlib.sha256()
    for name, path in sorted(_code_paths()):
        status = path.stat()
        digest.update(f"{name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@functools.cache
def sfarm_build() -> str:
    """The code digest of the sfarm this process runs (read once a process)."""
    return code_digest(dict(_running_files()))
