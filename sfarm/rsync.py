"""rsync's command line and output, as sfarm uses it everywhere (pure): the options of every
copy and the parsing of `--itemize-changes`. The controller's transports (sfarm.remote) and the
node's data resolver (sfarm.resolver) both run rsync with these."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

ChangeKind = Literal["transfer", "create", "link", "attributes", "delete"]
_KINDS: dict[str, ChangeKind] = {"<": "transfer", ">": "transfer", "c": "create", "h": "link",
                                 ".": "attributes"}


@dataclass(frozen=True)
class SyncChange:
    """One line of rsync's `--itemize-changes`: the path (relative to the source) and its flags."""

    path: str
    kind: ChangeKind
    flags: str


@dataclass(frozen=True)
class SyncResult:
    """What an rsync run changed at the destination; empty when the trees were already equal."""

    changes: tuple[SyncChange, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def paths(self, *kinds: ChangeKind) -> list[str]:
        return [change.path for change in self.changes if not kinds or change.kind in kinds]


def parse_itemized(output: str) -> SyncResult:
    """Parse rsync `--itemize-changes` lines (`%i %n%L`); other lines (notes, stats) are skipped."""
    changes: list[SyncChange] = []
    for line in output.splitlines():
        if line.startswith("*deleting "):
            changes.append(SyncChange(line[len("*deleting"):].strip(), "delete", "*deleting"))
            continue
        flags, space, name = line.partition(" ")
        if not space or len(flags) < 9 or flags[0] not in _KINDS or flags[1] not in "fdLDS":
            continue
        changes.append(SyncChange(name.split(" -> ")[0], _KINDS[flags[0]], flags))
    return SyncResult(tuple(changes))


def local_rsync_path(path: str) -> str:
    """A local path rsync will not mistake for `host:path` (a colon before the first slash)."""
    if ":" in path.split("/", 1)[0]:
        return "./" + path
    return path


def rsync_options(*, pull: bool, delete: bool, excludes: Iterable[str],
                  link_dest: str | None = None, secluded: bool = True) -> list[str]:
    """The options every sfarm rsync uses: archive mode, literal (secluded) args, itemized output.

    `-s` (`secluded`) keeps paths with spaces or shell characters literal on the remote side;
    a guard that checks the remote command (rrsync) needs them on the command line instead.
    `link_dest`: a local directory whose unchanged files are hard-linked instead of sent. A
    `pull` takes the node's files as untrusted: no symlink, device or special file is created
    here (a dataset is regular files only; the store refuses anything else too).
    """
    options = ["--archive", *(["-s"] if secluded else []), "--itemize-changes"]
    if pull:
        options += ["--no-links", "--no-devices", "--no-specials"]
    if delete:
        options.append("--delete")
    options += [f"--exclude={pattern}" for pattern in excludes]
    if link_dest is not None:
        # Compare times to the nanosecond: a file rewritten in place within the same second and
        # at the same size (a dataset's manifest) must not pass for the one already held.
        options += [f"--link-dest={os.path.abspath(os.path.expanduser(link_dest))}",
                    "--modify-window=-1"]
    return options


