"""Which build of sfarm this node runs: a digest of the package's files as installed.

Deploy puts it into every supervised program's environment (`SFARM_BUILD`), so that a deploy
that installs other code (an upgrade, or a checkout edited on a local farm) changes their
configuration, and supervisord restarts them on the new code; the version string alone stays
the same across such changes.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import sfarm

BUILD_VARIABLE = "SFARM_BUILD"
_SKIPPED_PARTS = ("__pycache__",)
_SKIPPED_SUFFIXES = (".pyc", ".nbi", ".nbc")  # bytecode and numba's compile cache


@functools.cache
def sfarm_build() -> str:
    """A short sha256 over the names and contents of the running sfarm package's files
    (caches left out): equal for equal code, wherever and however it was installed."""
    package = Path(sfarm.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if (not path.is_file() or path.suffix in _SKIPPED_SUFFIXES
                or any(part in _SKIPPED_PARTS for part in relative.parts)):
            continue
        digest.update(relative.as_posix().encode() + b"\0"
                      + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]
