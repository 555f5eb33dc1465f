"""Applying a deployment to a node root, run on that node: each step compares what is with what
the deployment wants (content, mode), changes only what differs, and says so.

A dry run takes the same steps with the same comparisons and changes nothing: no directory
made, no file written, removed or chmodded, no authorized_keys line touched, supervisord
neither started nor reloaded. Its "changed" steps read "would ..." in their detail.

A node root is its user's alone: the root and every directory in it 0700, every file 0600
(other local users would read logs, heartbeats and the inventory, and could hold a dataset's
lock forever). Deploy makes it so, and tightens what an older sfarm or a hand left looser
(`_tighten_tree`); what is written later is private by itself (sfarm.data.fsio, and
supervisord's umask: sfarm.runtime.supervisor).
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

from sfarm.data.fsio import PRIVATE_DIR, make_private_dirs, write_atomic
from sfarm.runtime import audit
from sfarm.runtime.build import sfarm_build
from sfarm.runtime.emulator_account import keep_emulator_account
from sfarm.runtime.former import record_network
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.node_lock import node_turn
from sfarm.runtime.protocol import AuthorizedKeyLine, Deployment, NodeFile, StepResult
from sfarm.runtime.supervisor import (
    ProgramChanges,
    Supervisor,
    config_path,
    program_changes,
    render_config,
    write_config,
)

# Directories of a node root and their modes: the user's alone, as the root is.
DIRECTORIES = dict.fromkeys(("data", "mirror", "run", "logs", "secrets", "supervisor"),
                            PRIVATE_DIR)
# Left as pip made them by `_tighten_tree`: public code (sfarm's venv, its wheels), behind the
# 0700 root; walking them on every deploy would cost seconds.
NOT_TIGHTENED = frozenset({"venv", "wheelhouse"})
TIGHTENED_SHOWN = 5  # paths named in the step's detail
OWNER_BITS = 0o700  # what a tightened mode keeps (a file sfarm writes is 0600 already)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None


def _ensure_directories(root: NodeRoot, dry_run: bool) -> StepResult:
    changed = []
    wanted = {"root": PRIVATE_DIR} | DIRECTORIES
    for name, mode in wanted.items():
        directory = root.path if name == "root" else root.path / name
        if not directory.is_dir():
            if not dry_run:
                # The base directory above the root is the operator's: made, not closed.
                directory.parent.mkdir(parents=True, exist_ok=True)
                make_private_dirs(directory)
            changed.append(name)
        if _mode(directory) != mode:  # a directory a dry run did not make has no mode yet
            if not dry_run:
                directory.chmod(mode)
            if directory.exists():
                changed.append(f"{name} mode")
    detail = ", ".join(changed)
    if dry_run and changed:
        detail = f"would make or set: {detail}"
    return StepResult("directories", "changed" if changed else "ok", detail)


def _sync_file(root: NodeRoot, file: NodeFile, dry_run: bool) -> StepResult:
    target = root.path / file.path
    same_content = _digest(target) == hashlib.sha256(file.content).hexdigest()
    same_mode = _mode(target) == file.mode
    if same_content and same_mode:
        return StepResult(f"file {file.path}", "ok")
    if dry_run:
        what = ("would write" if not target.exists() else "would rewrite" if not same_content
                else f"would set mode {file.mode:04o}")
        return StepResult(f"file {file.path}", "changed", what)
    make_private_dirs(target.parent)
    if not same_content:
        write_atomic(target.parent, target.name, file.content)
    target.chmod(file.mode)
    return StepResult(f"file {file.path}", "changed")


def _loose_entries(root: Path) -> list[tuple[Path, int]]:
    """Every directory and file under `root` that others may use, with the mode it should have
    (the owner's bits alone); symlinks, other file systems (an sshfs mount in mirror/: the
    producer's files) and NOT_TIGHTENED are left alone."""
    device = root.stat().st_dev
    loose = []
    for directory, subdirectories, files in os.walk(root):
        base = Path(directory)
        if base == root:
            subdirectories[:] = [name for name in subdirectories if name not in NOT_TIGHTENED]
        kept = []
        for name in [*subdirectories, *files]:
            path = base / name
            try:
                info = path.lstat()
            except OSError:  # gone meanwhile, or a mount that no longer answers
                continue
            if stat.S_ISLNK(info.st_mode) or info.st_dev != device:
                continue
            if stat.S_ISDIR(info.st_mode):
                kept.append(name)
            if stat.S_IMODE(info.st_mode) & ~OWNER_BITS:
                loose.append((path, stat.S_IMODE(info.st_mode) & OWNER_BITS))
        subdirectories[:] = [name for name in subdirectories if name in kept]
    return loose


def _tighten_tree(root: NodeRoot, dry_run: bool) -> StepResult:
    """Whatever in the root others could read or write (written by an older sfarm, a process
    without the umask, a hand) made the user's alone: group and other bits removed."""
    step = "private files"
    if not root.path.is_dir():  # a dry run of a first deploy: nothing there yet
        return StepResult(step, "ok")
    loose = _loose_entries(root.path)
    if not loose:
        return StepResult(step, "ok")
    names = [str(path.relative_to(root.path)) for path, _ in loose]
    shown = ", ".join(names[:TIGHTENED_SHOWN]) + (", ..." if len(names) > TIGHTENED_SHOWN else "")
    if dry_run:
        return StepResult(step, "changed", f"would make {len(loose)} private: {shown}")
    for path, mode in loose:
        try:
            path.chmod(mode)
        except FileNotFoundError:  # a temp file renamed meanwhile
            continue
    return StepResult(step, "changed", f"made {len(loose)} private: {shown}")


def _remove_file(root: NodeRoot, path: str, dry_run: bool) -> StepResult:
    target = root.path / path
    if not target.exists():
        return StepResult(f"no file {path}", "ok")
    if dry_run:
        return StepResult(f"no file {path}", "changed", "would remove")
    target.unlink()
    return StepResult(f"no file {path}", "changed", "removed")


def _sync_authorized(authorized: AuthorizedKeyLine, dry_run: bool) -> StepResult:
    """A network key's line in this user's ~/.ssh/authorized_keys (added, replaced, removed)."""
    from sfarm.resolver.authorized import sync_authorized_keys

    changed = sync_authorized_keys(Path.home() / ".ssh" / "authorized_keys",
                                   authorized.marker, authorized.line, check_only=dry_run)
    key = authorized.marker.split(":", 1)[0].removeprefix("sfarm-").replace("-", " ")
    what = f"{key} authorized" if authorized.line else f"{key} not authorized"
    detail = f"would update: {authorized.marker}" if dry_run and changed else authorized.marker
    return StepResult(what, "changed" if changed else "ok", detail)


def _check_fuse() -> StepResult:
    """A node that mounts its peers with sshfs must be able to: say why not, before it runs."""
    from sfarm.resolver.sshfs import fuse_problem

    problem = fuse_problem()
    if problem is None:
        return StepResult("fuse", "ok", "sshfs mounts possible")
    return StepResult("fuse", "failed", f"transport = \"sshfs\" needs FUSE: {problem}")


def _program_steps(changes: ProgramChanges, dry_run: bool) -> list[StepResult]:
    """A step per program that loading the config removed, restarted or added, as `docker
    compose up` says which services it recreated."""
    def detail(would: str, did: str, why: str) -> str:
        return f"{'would ' + would if dry_run else did}: {why}"

    return ([StepResult(f"remove {name}", "changed",
                        detail("stop it", "stopped", "no longer on this node"))
             for name in changes.removed]
            + [StepResult(f"restart {name}", "changed",
                          detail("restart it", "restarted", "its definition changed"))
               for name in changes.changed]
            + [StepResult(f"add {name}", "changed", detail("add it", "added", "new on this node"))
               for name in changes.added])


def _supervisor_steps(root: NodeRoot, config: str, dry_run: bool) -> list[StepResult]:
    """supervisord's config written, and supervisord running with it (started, or its changed
    config loaded: then a step per program it removed, restarted or added)."""
    supervisor = Supervisor(root)
    if dry_run:
        path = config_path(root)
        old = path.read_text() if path.exists() else None
        changed = old != config
        running = supervisor.is_running()
        steps = [StepResult("supervisor config", "changed" if changed else "ok",
                            "would write" if changed else ""),
                 StepResult("supervisord", "ok" if running else "changed",
                            ("running, would load the new config" if changed else "running")
                            if running else "would start")]
        if running and changed and old is not None:
            steps += _program_steps(program_changes(old, config), dry_run=True)
        return steps
    changed = write_config(root, config)
    was_running = supervisor.is_running()
    supervisor.start_daemon()
    programs = supervisor.apply_config() if was_running and changed else ProgramChanges()
    return [StepResult("supervisor config", "changed" if changed else "ok"),
            StepResult("supervisord", "ok" if was_running else "changed",
                       "running" if was_running else "started"),
            *_program_steps(programs, dry_run=False)]


def apply_deployment(root: NodeRoot, deployment: Deployment, *, dry_run: bool = False,
                     boot: bool = False, operator: str = "") -> list[StepResult]:
    """Make the node root match `deployment` and (re)load its supervisord; with `boot`, last,
    make that supervisord start at boot (sfarm.runtime.boot). With `dry_run`, the same steps
    as they would go ("changed": would change), and nothing changed on this machine. A
    deploy (not its dry run) is in the audit log, by `operator`, with what it changed. Past
    its directories, a deploy holds the node's lock (sfarm.runtime.node_lock): two deploys of
    one node take turns."""
    steps = [_ensure_directories(root, dry_run)]
    if dry_run:
        return steps + _apply_steps(root, deployment, dry_run=True, boot=boot)
    with node_turn(root, operator) as turn:
        steps += turn.steps() + _apply_steps(root, deployment, dry_run=False, boot=boot)
        changed = [step.step for step in steps if step.status == "changed"]
        failed = [step.step for step in steps if step.status == "failed"]
        audit.record(root.logs, operator, "deploy",
                     f"changed: {', '.join(changed) or 'nothing'}"
                     + (f"; failed: {', '.join(failed)}" if failed else ""))
    return steps


def _apply_steps(root: NodeRoot, deployment: Deployment, *, dry_run: bool,
                 boot: bool) -> list[StepResult]:
    """apply_deployment's steps after the directories."""
    steps = [_sync_file(root, file, dry_run) for file in deployment.files]
    if deployment.network_nodes is not None:
        steps += record_network(root, deployment.network_nodes, dry_run)
    steps.append(_tighten_tree(root, dry_run))
    steps += [_remove_file(root, path, dry_run) for path in deployment.absent]
    steps += [keep_emulator_account(root, name, dry_run) for name in deployment.emulators]
    steps += [StepResult("secrets", "ok", notice) for notice in deployment.notices]
    steps += [_sync_authorized(line, dry_run) for line in deployment.authorized]
    if deployment.fuse:
        steps.append(_check_fuse())
    config = render_config(root, deployment.network, deployment.node, deployment.programs,
                           build=sfarm_build())
    steps += _supervisor_steps(root, config, dry_run)
    if boot:
        from sfarm.runtime.boot import boot_step

        # The interpreter serving this request is the one supervisord was started with.
        steps.append(boot_step(root, deployment.network, deployment.node, sys.executable,
                               dry_run=dry_run))
    return steps
