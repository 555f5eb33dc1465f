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
saying what the key may do, exit status 1 (the parsing is sfarm.resolver.gate_request). This
runs on every pull: it imports only the stdlib and `sfarm.data.layout` / `fsio` / `snapshot`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import posixpath
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from sfarm.data.layout import DATA_DIR, MANIFEST_NAME, DatasetNotFound, dataset_dir
from sfarm.data.snapshot import remove_snapshot, snapshot_dataset
from sfarm.resolver.gate_request import (
    PREFIX,
    PullRequest,
    Refused,
    WatchRequest,
    normalised_roots,
    parse_request,
    what_the_key_may_do,
)

WATCH_INTERVAL_S = 0.05
ALIVE_INTERVAL_S = 1.0
SNAPSHOTS_DIR = ".snapshots"  # in the node root: the same filesystem as data/, for hard links
STALE_SNAPSHOT_S = 600.0  # a snapshot this old, and unlocked, is a killed gate's leftover
RRSYNC_PLACES = ("/usr/bin/rrsync", "/usr/local/bin/rrsync")

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
