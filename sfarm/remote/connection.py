"""The one contract every transport to a node's machine implements, and the local transport.

A `Connection` runs argv commands, writes and reads files, and copies directory trees with rsync
on a node's machine. `LocalConnection` (this machine, a node with `host = "local"`) and
`sfarm.remote.ssh.SSHConnection` implement it, so deploy and status code never knows which one it
holds. Failures are `TransportError`s (a `RunError` with a `cause`), one clear message per cause.

Paths on the node may start with `~/` (expanded with `home()`); relative paths are best avoided
(the SSH transport starts in the login directory, the local one in the current directory).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

from sfarm.errors import RunError, UsageError
from sfarm.rsync import (
    SyncResult,
    local_rsync_path,
    parse_itemized,
    rsync_options,
)

log = logging.getLogger(__name__)

TERMINATE_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a command that timed out
STDERR_TAIL_LINES = 5
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Failure(StrEnum):
    """Why a transport operation failed; each cause has one message (sfarm.remote.ssh_errors)."""

    REFUSED = "connection refused"
    UNRESOLVED = "name not resolved"
    TIMEOUT = "timeout"
    AUTH = "authentication failed"
    HOST_KEY_UNKNOWN = "host key unknown"
    HOST_KEY_CHANGED = "host key changed"
    RSYNC_MISSING = "rsync missing"
    COMMAND_FAILED = "command failed"
    TRANSFER_FAILED = "transfer failed"
    SSH = "ssh error"


class TransportError(RunError):
    """A transport operation failed; `cause` says why, the message says it to a person."""

    def __init__(self, cause: Failure, message: str, *, hint: str | None = None,
                 result: CommandResult | None = None) -> None:
        super().__init__(message, hint=hint)
        self.cause = cause
        self.result = result


@dataclass(frozen=True)
class CommandResult:
    """What a command did: exit code (negative or -1 when killed by a signal) and its output."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    argv: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    def stderr_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        """The last non-empty lines of stderr, each cut to 300 characters."""
        kept = [line[:300] for line in self.stderr_text.splitlines() if line.strip()]
        return "\n".join(kept[-lines:])


def remote_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """One POSIX shell command line that runs `argv` literally (each word quoted), env first."""
    if not argv:
        raise UsageError("a command needs at least one word")
    words = list(argv)
    if env:
        words = ["env", *env_assignments(env), *words]
    return shlex.join(words)


def env_assignments(env: Mapping[str, str]) -> list[str]:
    for name in env:
        if not _ENV_NAME.match(name):
            raise UsageError(f"invalid environment variable name {name!r}")
    return [f"{name}={value}" for name, value in env.items()]


def describe_command(argv: Sequence[str], limit: int = 200) -> str:
    """argv as a person would type it, cut to `limit` characters (never includes env values)."""
    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def command_failed(where: str, result: CommandResult) -> TransportError:
    tail = result.stderr_tail()
    message = (f"{where}: `{describe_command(result.argv)}` failed with exit code "
               f"{result.exit_code}")
    return TransportError(Failure.COMMAND_FAILED,
                          message + (f"; stderr ends with:\n{tail}" if tail else " (no stderr)"),
                          result=result)


def expand_home(path: str, home: str) -> str:
    """`~` and `~/x` become paths under `home`; anything else is returned as it is."""
    if path == "~":
        return home
    if path.startswith("~/"):
        return home.rstrip("/") + path[1:]
    return path


def require_local_rsync() -> str:
    path = shutil.which("rsync")
    if path is None:
        raise TransportError(Failure.RSYNC_MISSING, "rsync is not installed on this machine",
                             hint="install it (for example: sudo apt-get install rsync)")
    return path


class Connection(Protocol):
    """A way to act on one node's machine: commands, files and rsync."""

    @property
    def where(self) -> str:
        """The machine, as messages name it: "this machine", "node lab (sfarm@10.0.0.5:22)"."""
        ...

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            check: bool = True) -> CommandResult:
        """Run argv (no shell interpretation); raise TransportError on a non-zero exit if check.

        `env` adds variables; on SSH they travel on the command line (visible to `ps` on the
        node), so send secrets with `put(..., mode=0o600)` or `input`. A command that outlives
        `timeout` seconds is terminated and TransportError(TIMEOUT) raised, whatever `check`.
        """
        ...

    def put(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        """Write `data` atomically (temp file + rename, same directory) with exactly `mode`."""
        ...

    def get(self, remote_path: str) -> bytes | None:
        """A file's content, or None when it does not exist."""
        ...

    def rsync(self, source: str, destination: str, *, pull: bool, delete: bool = False,
              excludes: Sequence[str] = (), link_dest: str | None = None) -> SyncResult:
        """Copy with rsync (archive mode, rsync's trailing-slash rules): node -> here if `pull`,
        here -> node otherwise. The destination's parent directory must exist. A pull copies
        no symlink, device or special file (the node is not trusted)."""
        ...

    def home(self) -> str:
        """The node user's home directory (what `~` means in paths)."""
        ...

    def close(self) -> None: ...


class LocalConnection:
    """This machine: subprocesses, files and a local rsync (both sides are local paths)."""

    where = "this machine"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            check: bool = True) -> CommandResult:
        words = tuple(argv)
        remote_command(words, env)  # the same validation as on SSH
        log.debug("local run: %s", describe_command(words))
        result = self._execute(words, input, timeout, env)
        if check and not result.ok:
            raise command_failed(self.where, result)
        return result

    def _execute(self, argv: tuple[str, ...], input: bytes | None, timeout: float | None,
                 env: Mapping[str, str] | None) -> CommandResult:
        environment = {**os.environ, **env} if env else None
        try:
            # A new session, so a timeout can end the command and everything it started.
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, env=environment,
                                       start_new_session=True)
        except FileNotFoundError:  # as a shell reports it, so both transports agree
            return CommandResult(127, b"", f"{argv[0]}: command not found\n".encode(), argv)
        except PermissionError:
            return CommandResult(126, b"", f"{argv[0]}: permission denied\n".encode(), argv)
        try:
            stdout, stderr = process.communicate(input or b"", timeout=timeout)
        except subprocess.TimeoutExpired:
            _terminate_group(process)
            raise TransportError(
                Failure.TIMEOUT,
                f"{self.where}: `{describe_command(argv)}` timed out after {timeout:g} s "
                "and was terminated") from None
        return CommandResult(process.returncode, stdout, stderr, argv)

    def put(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        path = os.path.expanduser(remote_path)
        directory, name = os.path.split(os.path.abspath(path))
        try:
            handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".sfarm-tmp",
                                                 dir=directory)  # created 0600: nothing leaks
        except OSError as exc:
            raise _file_error(self.where, "write", path, exc) from None
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
                os.fchmod(file.fileno(), mode)
            os.replace(temporary, path)
        except OSError as exc:
            os.unlink(temporary)
            raise _file_error(self.where, "write", path, exc) from None

    def get(self, remote_path: str) -> bytes | None:
        path = os.path.expanduser(remote_path)
        try:
            with open(path, "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _file_error(self.where, "read", path, exc) from None

    def rsync(self, source: str, destination: str, *, pull: bool, delete: bool = False,
              excludes: Sequence[str] = (), link_dest: str | None = None) -> SyncResult:
        # Both sides are on this machine, so `pull` only says which side is the node's.
        argv = [require_local_rsync(),
                *rsync_options(pull=pull, delete=delete, excludes=excludes, link_dest=link_dest),
                "--", local_rsync_path(os.path.expanduser(source)),
                local_rsync_path(os.path.expanduser(destination))]
        result = self._execute(tuple(argv), None, None, None)
        if not result.ok:
            raise TransportError(
                Failure.TRANSFER_FAILED,
                f"{self.where}: rsync {source} -> {destination} failed with exit code "
                f"{result.exit_code}:\n{result.stderr_tail()}", result=result)
        return parse_itemized(result.stdout_text)

    def home(self) -> str:
        return os.path.expanduser("~")

    def close(self) -> None:
        """Nothing to release: every call starts and ends its own process."""


def _terminate_group(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.communicate(timeout=TERMINATE_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def _file_error(where: str, verb: str, path: str, exc: OSError) -> TransportError:
    return TransportError(Failure.TRANSFER_FAILED,
                          f"{where}: could not {verb} {path}: {exc.strerror or exc}")
