"""The farm key's forced command on a producer: `python -m sfarm.resolver.gate ROOT [ROOT...]`.

sshd runs it, instead of whatever the key's holder asked for, with the request in
`SSH_ORIGINAL_COMMAND`. Two requests are served, for the node roots ROOT named on the command
line (absolute paths; several roots of one unix user share one authorized line):

* `sfarm-watch ROOT ID [ID...]`: a change stream on stdout, one line at a time: `changed ID`
  for each dataset whose manifest exists, then again whenever its manifest changes (polled
  every WATCH_INTERVAL_S), and `alive` after ALIVE_INTERVAL_S of silence. Ends quietly when
  the reader goes away or on SIGHUP/SIGTERM.
* `rsync --server --sender OPTIONS . ROOT/data/ID/`: what rsync's client sends for a pull of
  `host:ROOT/data/ID/`. The dataset is snapshotted (hard links, under its shared lock, so the
  producer's writers wait only for the linking) into `ROOT/.snapshots/<random>/`, and rsync's
  own guard `rrsync -ro` serves that snapshot (it checks the options, refuses writes, deletes
  and paths outside its directory). The snapshot is removed when the transfer ends.

Anything else (a login, another command, another path) is refused with one line on stderr
saying what the key may do, exit status 1. This runs on every pull: it imports only the stdlib
and `sfarm.data.layout` / `fsio` / `snapshot`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import posixpath
import re
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from sfarm.data.layout import DATA_DIR, MANIFEST_NAME, DatasetNotFound, dataset_dir
from sfarm.data.snapshot import remove_snapshot, snapshot_dataset
from sfarm.errors import UsageError

WATCH_COMMAND = "sfarm-watch"
WATCH_INTERVAL_S = 0.05
ALIVE_INTERVAL_S = 1.0
SNAPSHOTS_DIR = ".snapshots"  # in the node root: the same filesystem as data/, for hard links
STALE_SNAPSHOT_S = 600.0  # a snapshot this old, and unlocked, is a killed gate's leftover
RRSYNC_PLACES = ("/usr/bin/rrsync", "/usr/local/bin/rrsync")
PREFIX = "sfarm farm key:"

# One part of a dataset id as the gate admits it: the store's ids are made of exchange, market,
# timeframe, indicator key and task names; never empty, `.`, `..` or hidden, never a character
# a shell or rsync's argument escaping would touch.
_ID_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:+@=,-]*", re.ASCII)
# An option word of the rsync server command line: passed on to rrsync, which splits its
# command on whitespace and reads backslashes as escapes, so neither may appear.
_RSYNC_OPTION = re.compile(r"-[A-Za-z0-9_.:+@=,%/-]*", re.ASCII)


class Refused(Exception):
    """The request is not one the farm key may make; `str()` says why."""


@dataclass(frozen=True)
class WatchRequest:
    root: str
    dataset_ids: tuple[str, ...]


@dataclass(frozen=True)
class PullRequest:
    root: str
    dataset_id: str
    options: tuple[str, ...]  # the client's rsync server options, for rrsync to check


def normalised_roots(roots: Sequence[str]) -> tuple[str, ...]:
    """The allowed roots as compared with requests; ValueError when one is not absolute or has
    a `..` component (the authorized line is wrong, not the request)."""
    if not roots:
        raise ValueError("no node root given")
    checked = []
    for root in roots:
        if not posixpath.isabs(root) or ".." in root.split("/"):
            raise ValueError(f"node root {root!r} is not an absolute path without `..`")
        checked.append(posixpath.normpath(root))
    return tuple(checked)


def parse_request(command: str | None, roots: Sequence[str]) -> WatchRequest | PullRequest:
    """The request `command` (SSH_ORIGINAL_COMMAND, None for a login) makes, for the
    normalised allowed `roots`; Refused when the farm key may not make it."""
    if command is None or not command.strip():
        raise Refused("refused a login (no command)")
    try:
        words = shlex.split(command)
    except ValueError:
        raise Refused("refused a command that does not parse") from None
    if words[0] == WATCH_COMMAND:
        return _parse_watch(words[1:], roots)
    if words[:3] == ["rsync", "--server", "--sender"]:
        return _parse_pull(words[3:], roots)
    if words[:2] == ["rsync", "--server"]:
        raise Refused("refused an rsync that would write (the key only reads)")
    raise Refused(f"refused the command {_shorten(words[0])!r}")


def _parse_watch(arguments: list[str], roots: Sequence[str]) -> WatchRequest:
    if len(arguments) < 2:
        raise Refused(f"{WATCH_COMMAND} needs a node root and at least one dataset id")
    root = _allowed_root(arguments[0], roots)
    return WatchRequest(root, tuple(_dataset_id(word) for word in arguments[1:]))


def _parse_pull(arguments: list[str], roots: Sequence[str]) -> PullRequest:
    if len(arguments) < 2 or arguments[-2] != ".":
        raise Refused("refused an rsync pull that does not name one directory (expected "
                      "`rsync --server --sender OPTIONS . ROOT/data/ID/`; a client's -s, "
                      "--secluded-args, hides the path and is refused)")
    options = arguments[:-2]
    for option in options:
        if not _RSYNC_OPTION.fullmatch(option):
            raise Refused(f"refused the rsync argument {_shorten(option)!r}")
    path = arguments[-1]
    if not path.endswith("/"):
        raise Refused("refused a pull of a path without a trailing `/` (pull ROOT/data/ID/)")
    if ".." in path.split("/"):
        raise Refused("refused a path with `..`")
    for root in roots:
        prefix = posixpath.join(root, DATA_DIR) + "/"
        normal = posixpath.normpath(path)
        if normal.startswith(prefix):
            return PullRequest(root, _dataset_id(normal[len(prefix):]), tuple(options))
    raise Refused(f"refused the path {_shorten(path)!r}: not a dataset in a node root's data/")


def _allowed_root(word: str, roots: Sequence[str]) -> str:
    if posixpath.isabs(word) and ".." not in word.split("/"):
        normal = posixpath.normpath(word)
        if normal in roots:
            return normal
    raise Refused(f"refused the node root {_shorten(word)!r}")


def _dataset_id(word: str) -> str:
    parts = word.split("/")
    if not 3 <= len(parts) <= 5 or not all(_ID_PART.fullmatch(part) for part in parts):
        raise Refused(f"refused {_shorten(word)!r}: not a dataset id")
    try:
        dataset_dir("/", word)  # the store's own check of the shape (kind, parts, timeframe)
    except UsageError:
        raise Refused(f"refused {_shorten(word)!r}: not a dataset id") from None
    return word


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def what_the_key_may_do(roots: Sequence[str]) -> str:
    return (f"it may only run `{WATCH_COMMAND} ROOT ID...` or pull ROOT/data/ID/ with rsync, "
            f"for ROOT in {', '.join(roots)}")


# -- the change stream ------------------------------------------------------------------------

class _Stop(Exception):
    """SIGHUP or SIGTERM: the reader is done with us."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def serve_watch(request: WatchRequest, out_fd: int = 1) -> int:
    """Write the change stream of `request` to `out_fd` until the reader goes away (exit 0)."""
    signal.signal(signal.SIGHUP, _stop)
    signal.signal(signal.SIGTERM, _stop)
    manifests = {dataset_id: dataset_dir(request.root, dataset_id) / MANIFEST_NAME
                 for dataset_id in request.dataset_ids}
    try:
        seen = {dataset_id: _manifest_state(path) for dataset_id, path in manifests.items()}
        for dataset_id, state in seen.items():
            if state is not None:
                os.write(out_fd, f"changed {dataset_id}\n".encode())
        last_write = time.monotonic()
        while True:
            time.sleep(WATCH_INTERVAL_S)
            for dataset_id, path in manifests.items():
                state = _manifest_state(path)
                if state != seen[dataset_id]:
                    seen[dataset_id] = state
                    if state is not None:  # a manifest that vanished has nothing to pull
                        os.write(out_fd, f"changed {dataset_id}\n".encode())
                        last_write = time.monotonic()
            if time.monotonic() - last_write >= ALIVE_INTERVAL_S:
                os.write(out_fd, b"alive\n")
                last_write = time.monotonic()
    except (BrokenPipeError, _Stop):
        return 0


def _manifest_state(path: Path) -> tuple[int, int, int] | None:
    """What changes when a writer commits: the manifest is renamed over (a new inode)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


# -- the pull ---------------------------------------------------------------------------------

def find_rrsync() -> str | None:
    for place in (*RRSYNC_PLACES, *(posixpath.join(directory, "rrsync") for directory in
                                    os.environ.get("PATH", "").split(":") if directory)):
        if os.access(place, os.X_OK):
            return place
    return None


def remove_stale_snapshots(snapshots: Path, now: float, max_age: float = STALE_SNAPSHOT_S) -> None:
    """Remove the snapshots older than `max_age` that no gate holds (a killed gate's)."""
    try:
        names = os.listdir(snapshots)
    except FileNotFoundError:
        return
    for name in names:
        path = snapshots / name
        with contextlib.suppress(OSError):
            if now - os.lstat(path).st_mtime < max_age:
                continue
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError when a gate serves it
                remove_snapshot(path)
            finally:
                os.close(fd)


def rrsync_command(options: Sequence[str]) -> str:
    """The SSH_ORIGINAL_COMMAND rrsync gets: the client's options, the snapshot's top as path
    (rrsync runs in the snapshot directory and confines every path to it)."""
    return " ".join(["rsync", "--server", "--sender", *options, ".", "./"])


def serve_pull(request: PullRequest, rrsync: str) -> int:
    """Snapshot the dataset, serve the snapshot with `rrsync -ro`, remove it; rrsync's status
    (128 + the signal when it was killed)."""
    import subprocess  # here, not at the top: the watch and refusals start without it

    root = Path(request.root)
    source = dataset_dir(root, request.dataset_id)
    data = os.path.realpath(root / DATA_DIR)
    if not os.path.realpath(source).startswith(data + "/"):
        raise Refused(f"refused {request.dataset_id}: it leads out of {root / DATA_DIR}")
    missing = f"{PREFIX} no dataset {request.dataset_id} in {root / DATA_DIR}"
    if not (source / MANIFEST_NAME).is_file():  # before anything is made in the root
        print(missing, file=sys.stderr)
        return 1
    snapshots = root / SNAPSHOTS_DIR
    snapshots.mkdir(mode=0o700, exist_ok=True)
    remove_stale_snapshots(snapshots, time.time())
    snapshot = snapshots / os.urandom(8).hex()
    try:
        snapshot_dataset(source, snapshot)
    except DatasetNotFound:
        print(missing, file=sys.stderr)
        return 1
    lock = os.open(snapshot, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while served: no other gate removes it
        environment = dict(os.environ, SSH_ORIGINAL_COMMAND=rrsync_command(request.options))
        # -no-lock: rrsync execs rsync instead of waiting on it, so a signal forwarded to the
        # child reaches rsync itself (-ro needs no lock: it never writes).
        child = subprocess.Popen([rrsync, "-ro", "-no-lock", str(snapshot)], env=environment)

        def forward(signum: int, frame: FrameType | None) -> None:
            child.send_signal(signum)

        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)
        status = child.wait()
    finally:
        remove_snapshot(snapshot)
        os.close(lock)
    return status if status >= 0 else 128 - status


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    try:
        roots = normalised_roots(arguments)
    except ValueError as error:
        print(f"{PREFIX} the authorized line is wrong: {error}", file=sys.stderr)
        return 1
    try:
        request = parse_request(os.environ.get("SSH_ORIGINAL_COMMAND"), roots)
        if isinstance(request, WatchRequest):
            return serve_watch(request)
        rrsync = find_rrsync()
        if rrsync is None:
            print(f"{PREFIX} rrsync is not installed on this node (it comes with rsync 3.2.4 "
                  "or later); pulls cannot be served", file=sys.stderr)
            return 1
        return serve_pull(request, rrsync)
    except Refused as refusal:
        print(f"{PREFIX} {refusal}; {what_the_key_may_do(roots)}", file=sys.stderr)
        return 1
    except OSError as error:  # a full disk, a data/ on another filesystem (no hard links)
        print(f"{PREFIX} cannot serve the request: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
