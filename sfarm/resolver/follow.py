"""Following one peer: its change stream in, pulls of what changed out, its outages on the board.

A follower holds the peer's shared SSH connection (the master ssh), reads the gate's change
stream (`changed ID` at start for each dataset that exists, then on each commit; `alive` every
second) and pulls each changed dataset, the latest version once however many commits arrived
meanwhile. When the stream ends or falls silent the peer is down: its inputs turn stale and the
follower reconnects with a capped backoff; the gate's first lines after a reconnect name every
dataset again, so nothing committed meanwhile is missed.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
import time
from pathlib import Path

from sfarm.backoff import Backoff
from sfarm.data.fsio import StorageError
from sfarm.data.layout import format_ts
from sfarm.data.mirror import StagedCopyInvalid
from sfarm.errors import RunError
from sfarm.resolver.link import LinkDown, PeerLink, PullFailed, pull
from sfarm.resolver.state import Board

log = logging.getLogger("sfarm.resolver")

SILENCE_S = 3.5  # the gate says `alive` every second: this much silence means a dead link
RETRY_S = 2.0  # a failed pull of one dataset is tried again after this long
RECONNECT = Backoff(base_s=0.5, cap_s=10.0)  # a peer that fails is tried again after this
MASTER_TIMEOUT_S = 10.0
_EOF = ""


class Follower(threading.Thread):
    def __init__(self, root: Path, link: PeerLink, datasets: tuple[str, ...], board: Board,
                 stop: threading.Event) -> None:
        super().__init__(name=f"follow-{link.node}", daemon=True)
        self.root = root
        self.link = link
        self.datasets = datasets
        self.board = board
        self.stop = stop
        self.last_contact: float | None = None

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                self._follow()
                failures = 0
            except (LinkDown, OSError) as error:
                message = error.message if isinstance(error, RunError) else str(error)
                self.board.stale(self.link.node, self.last_contact or time.time(), message)
                failures += 1
                delay = RECONNECT.delay(failures)
                log.warning("%s; trying again in %.1f s", message, delay)
                self.stop.wait(delay)

    def _follow(self) -> None:
        master = self._start_master()
        watch = subprocess.Popen(self.link.watch_command(self.datasets), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 bufsize=1)
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(watch, lines), daemon=True)
        reader.start()
        try:
            self._serve(lines, watch)
        finally:
            _end(watch)
            if master is not None:
                _end(master)

    def _serve(self, lines: queue.Queue[str], watch: subprocess.Popen[str]) -> None:
        pending: set[str] = set()
        retry_at: dict[str, float] = {}
        heard = time.monotonic()
        while not self.stop.is_set():
            due = min(retry_at.values(), default=time.monotonic() + 0.5)
            said = _take(lines, timeout=max(0.0, min(0.5, due - time.monotonic())))
            for line in said:
                if line == _EOF:
                    raise LinkDown(f"node {self.link.node} ended the change stream: "
                                   f"{_stderr_tail(watch) or 'no reason given'}")
                words = line.split()
                if words[:1] == ["changed"] and len(words) == 2 and words[1] in self.datasets:
                    pending.add(words[1])
            if said:
                heard = time.monotonic()
                self.last_contact = time.time()
            elif time.monotonic() - heard > SILENCE_S:
                raise LinkDown(f"node {self.link.node} stopped answering "
                               f"(nothing for {SILENCE_S:g} s)")
            now = time.monotonic()
            pending |= {dataset for dataset, when in retry_at.items() if when <= now}
            for dataset in sorted(pending):
                retry_at.pop(dataset, None)
                if not self._pull(dataset):
                    retry_at[dataset] = time.monotonic() + RETRY_S
            pending.clear()

    def _pull(self, dataset_id: str) -> bool:
        """Pull one dataset; False when it failed for this dataset only (LinkDown propagates).
        A write this machine refuses is this dataset's failure too, not the peer's: the peer
        stays fresh, and the pull is retried."""
        try:
            result = pull(self.link, dataset_id, self.root)
        except (PullFailed, StagedCopyInvalid, StorageError) as error:
            log.warning("%s", error.message)
            self.board.fail(self.link.node, dataset_id, error.message)
            return False
        manifest = result.manifest
        changes: dict[str, object] = {"last_ts": manifest.last_ts, "rows": manifest.rows,
                                      "stale_since": None, "error": None}
        if result.changed:
            changes["pulled_at"] = time.time()
            last = "-" if manifest.last_ts is None else format_ts(manifest.last_ts)
            log.info("%s from %s: %d rows, last %s (%d files, %d bytes moved)", dataset_id,
                     self.link.node, manifest.rows, last, result.files, result.bytes)
        self.board.update(self.link.node, dataset_id, **changes)
        return True

    def _start_master(self) -> subprocess.Popen[bytes] | None:
        """The shared connection (None for a peer without one). LinkDown if it cannot be made."""
        if self.link.master is None or self.link.control_path is None:
            return None
        self.link.control_path.parent.mkdir(parents=True, exist_ok=True)
        self.link.control_path.unlink(missing_ok=True)  # a killed master's socket
        master = subprocess.Popen(self.link.master, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + MASTER_TIMEOUT_S
        while not self.link.control_path.exists():
            if master.poll() is not None or time.monotonic() > deadline or self.stop.is_set():
                _end(master)
                said = (master.stderr.read() if master.stderr else b"").decode(errors="replace")
                raise LinkDown(f"cannot reach node {self.link.node}: "
                               f"{said.strip().splitlines()[-1] if said.strip() else 'timeout'}")
            time.sleep(0.02)
        return master


def _take(lines: queue.Queue[str], timeout: float) -> list[str]:
    """The next line (waiting up to `timeout`) and every line already queued behind it: the
    changes said meanwhile cost one pull per dataset."""
    try:
        taken = [lines.get(timeout=timeout)]
    except queue.Empty:
        return []
    while not lines.empty() and taken[-1] != _EOF:
        taken.append(lines.get_nowait())
    return taken


def _read_lines(process: subprocess.Popen[str], into: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.put(line.strip() or "alive")
    into.put(_EOF)


def _stderr_tail(process: subprocess.Popen[str]) -> str:
    if process.poll() is None or process.stderr is None:
        return ""
    lines = process.stderr.read().strip().splitlines()
    return lines[-1] if lines else ""


def _end(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
