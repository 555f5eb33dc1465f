"""Unexpected exceptions at the command line's edge: the traceback goes to a private log file,
the person gets one line saying what failed and where the details are.

A crash is a bug in sfarm, never something the person did: SfarmError is how sfarm speaks to
people, so whatever else escapes a command lands here. The log is written where the person will
look: the node root's logs/ when the command ran for one (`--root R` holding logs/: a worker, a
node's side of a farm command), else `$XDG_STATE_HOME/sfarm/crash/` (`~/.local/state/...`),
else the temporary directory. Files 0600, directories 0700; every line passes through
`sfarm.redact`, and the values of secret-named options are masked in the command line it
records.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from sfarm import __version__
from sfarm.redact import MASK, redact

# `--api-key VALUE`, `--secret=VALUE`...: the values of such options are masked in the log.
_SECRET_OPTION = re.compile(r"(?i)^--?[\w-]*(key|secret|token|password|passphrase)[\w-]*$")
_MESSAGE_CHARS = 200  # of the exception's first line, in the one line a person sees


def crash_directories(argv: Sequence[str]) -> list[Path]:
    """Where a crash log may go, best first (see the module's doc)."""
    directories = []
    root = _option_value(argv, "--root")
    if root is not None and (Path(root).expanduser() / "logs").is_dir():
        directories.append(Path(root).expanduser() / "logs" / "crash")
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"  # XDG
    directories.append(base / "sfarm" / "crash")
    directories.append(Path(tempfile.gettempdir()) / f"sfarm-crash-{os.getuid()}")
    return directories


def _option_value(argv: Sequence[str], option: str) -> str | None:
    for index, argument in enumerate(argv):
        if argument == "--":
            return None
        if argument == option and index + 1 < len(argv):
            return argv[index + 1]
        if argument.startswith(option + "="):
            return argument.partition("=")[2]
    return None


def masked_argv(argv: Sequence[str]) -> list[str]:
    """`argv` with the value of every secret-named option masked."""
    masked, hide_next = [], False
    for argument in argv:
        name, equals, _ = argument.partition("=")
        if hide_next:
            masked.append(MASK)
        elif equals and _SECRET_OPTION.match(name):
            masked.append(f"{name}={MASK}")
        else:
            masked.append(argument)
        hide_next = not equals and bool(_SECRET_OPTION.match(argument))
    return masked


def crash_report(error: BaseException, argv: Sequence[str]) -> str:
    """The log's text: when, which sfarm and Python, the command, the traceback; redacted."""
    lines = [
        f"time: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        f"sfarm: {__version__}", f"python: {sys.version.split()[0]} ({sys.executable})",
        f"command: sfarm {' '.join(masked_argv(argv))}",
        f"cwd: {os.getcwd() if os.path.exists('.') else '(deleted)'}",
        "",
        *traceback.format_exception(error),
    ]
    return redact("\n".join(line.rstrip("\n") for line in lines) + "\n")


def write_crash_log(error: BaseException, argv: Sequence[str],
                    directories: Sequence[Path] | None = None) -> Path | None:
    """Write the crash report into the first directory that takes it; its path, or None when
    none does (a full disk, no home): the one line then says so."""
    from sfarm.data.fsio import make_private_dirs

    text = crash_report(error, argv).encode()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for directory in directories if directories is not None else crash_directories(argv):
        try:
            make_private_dirs(directory)
            descriptor, name = tempfile.mkstemp(prefix=f"crash-{stamp}-", suffix=".log",
                                                dir=directory)  # O_EXCL, 0600
            with os.fdopen(descriptor, "wb") as file:
                file.write(text)
        except Exception:  # this place cannot take it (a file in the way...): the next one
            continue
        return Path(name)
    return None


def crash_line(error: BaseException, command: str, log: Path | None) -> str:
    """The one line a person sees: what failed, and where the details are."""
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    if len(first) > _MESSAGE_CHARS:
        first = first[:_MESSAGE_CHARS - 3] + "..."
    what = type(error).__name__ + (f": {first}" if first else "")
    where = (f"the traceback is in {log}" if log is not None else
             "no crash log could be written (no writable state or temporary directory)")
    return redact(f"{command} failed unexpectedly ({what}); this is a bug in sfarm: {where}")
