"""A node's supervisord at boot (`sfarm deploy --boot`), run on the node.

Where systemd runs, a systemd user unit (`~/.config/systemd/user/sfarm-<network>-<node>.service`)
runs the node's supervisord in the foreground, enabled for default.target, with the user's
lingering on (logind then starts the user's manager at boot, with no login). The unit starts
supervisord exactly as deploy does (`sfarm.runtime.supervisor.daemon_command`: same interpreter,
same config, same 0700 socket under the root's supervisor/), so deploy and the CLI talk to the
supervisord it runs, and deploy never starts a second one (it starts one only when none answers
on that socket). The unit is enabled, not started: after a deploy supervisord already runs,
started by deploy, and the unit takes over at the next boot.

Before supervisord starts, the unit removes the root's `run/*.live` arm files: a boot never arms
a live task by itself (sfarm.trading.live_guard; the operator arms with `sfarm start --live`).
Nor does the unit ever start a second supervisord: when one already answers on the root's
socket (deploy started it after the unit's had died), the unit is skipped (ExecCondition), so
it neither disarms the running workers nor fails and restarts in a loop.

Without systemd (a container, another init) nothing is written: the step fails and says what to
put in the init system instead (an @reboot crontab line), the deploy's other steps stand.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sfarm.data.fsio import write_atomic
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import StepResult
from sfarm.runtime.supervisor import DAEMON_UMASK, daemon_command, socket_path
from sfarm.trading.live_guard import arm_file

STEP = "boot"
UNIT_DIR = ".config/systemd/user"  # under the home of the node's user
WANTED_BY = "default.target"
SYSTEMD_RUNNING = Path("/run/systemd/system")  # sd_booted(): systemd is the init system
LINGER_DIR = Path("/var/lib/systemd/linger")  # logind's record: one file per lingering user
SYSTEMCTL_TIMEOUT_S = 30.0
RELOAD_ATTEMPTS = 10  # half a second apart, while the user's manager starts
_UNIT_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def unit_name(network: str, node: str) -> str:
    """`sfarm-<network>-<node>.service`; ValueError for a name a unit name cannot hold."""
    for value in (network, node):
        if not _UNIT_WORD.fullmatch(value):
            raise ValueError(f"{value!r} cannot be part of a systemd unit name")
    return f"sfarm-{network}-{node}.service"


def _arm_files(root: NodeRoot) -> tuple[str, str]:
    """The directory of the root's live arm files and the shell pattern of their names."""
    example = arm_file(root.path, "task")
    return str(example.parent), "*" + example.suffix


def _quoted(word: str) -> str:
    """One word of an Exec line: double-quoted, with systemd's specifiers (%) and variables
    ($) kept literal."""
    if any(char in word for char in "\n\r\x00"):
        raise ValueError(f"{word!r} cannot be a word of a systemd unit")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


def _path_setting(path: Path) -> str:
    """A path as a setting's value (WorkingDirectory=): unquoted, % doubled."""
    text = str(path)
    if any(char in text for char in "\n\r\x00") or not path.is_absolute():
        raise ValueError(f"{text!r} cannot be a path of a systemd unit")
    return text.replace("%", "%%")


def render_unit(root: NodeRoot, network: str, node: str, python: str) -> str:
    """The unit's text (pure): supervisord of `root` in the foreground, as deploy starts it,
    restarted when it fails (not when `sfarm down` stops it: a clean exit), after the root's
    live arm files are removed."""
    start = " ".join(_quoted(word) for word in [*daemon_command(root, python), "--nodaemon"])
    # Exit 1 (skip the unit) when a supervisord answers on the root's socket.
    free = " ".join(_quoted(word) for word in [
        python, "-c", "import socket, sys; "
        "sys.exit(socket.socket(socket.AF_UNIX).connect_ex(sys.argv[1]) == 0)",
        str(socket_path(root))])
    run, pattern = _arm_files(root)
    disarm = " ".join(_quoted(word) for word in ["/bin/sh", "-c", f'rm -f -- "$0"/{pattern}',
                                                 run])
    return (
        "# Rendered by `sfarm deploy --boot`. Do not edit: deploy rewrites it.\n"
        "[Unit]\n"
        f"Description=sfarm node {node} of network {network}: supervisord of its node root\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"WorkingDirectory={_path_setting(root.path)}\n"
        "Environment=PYTHONUNBUFFERED=1\n"
        "# What supervisord and its workers write is the user's alone, as when deploy starts it.\n"
        f"UMask={DAEMON_UMASK:04o}\n"
        "# Not when a supervisord of this root runs already (deploy's).\n"
        f"ExecCondition={free}\n"
        "# A boot never arms live trading by itself: the operator arms with `start --live`.\n"
        f"ExecStartPre={disarm}\n"
        f"ExecStart={start}\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        "# supervisord alone gets SIGTERM and stops its workers (each finishes its step).\n"
        "KillMode=mixed\n"
        "TimeoutStopSec=120\n"
        "\n"
        "[Install]\n"
        f"WantedBy={WANTED_BY}\n"
    )


def crontab_line(root: NodeRoot, python: str) -> str:
    """An @reboot line of the user's crontab that does what the unit does (pure): for a node
    whose init system is not systemd."""
    run, pattern = _arm_files(root)
    command = (f"cd {shlex.quote(str(root.path))} && rm -f -- {shlex.quote(run)}/{pattern}; "
               f"umask {DAEMON_UMASK:03o}; "
               f"PYTHONUNBUFFERED=1 {shlex.join(daemon_command(root, python))}")
    return "@reboot " + command.replace("%", "\\%")  # cron ends a command at a bare %


@dataclass(frozen=True)
class BootFacts:
    """What the node has of its boot start (read by `read_facts`, judged by `boot_changes`)."""

    systemd: bool  # systemd is the init system
    unit_text: str | None  # the unit file as it is, None when missing
    enabled: bool  # the unit is wanted by default.target
    lingering: bool  # logind starts the user's manager at boot


def boot_changes(facts: BootFacts, wanted_unit: str) -> list[str]:
    """What is missing for the node to start at boot (pure), in the order it is done; empty
    when nothing is (and with no systemd: see `boot_step`)."""
    changes = []
    if facts.unit_text != wanted_unit:
        changes.append("write unit" if facts.unit_text is None else "rewrite unit")
    if not facts.enabled:
        changes.append("enable unit")
    if not facts.lingering:
        changes.append("enable lingering")
    return changes


def _user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def unit_path(home: Path, network: str, node: str) -> Path:
    return home / UNIT_DIR / unit_name(network, node)


def wants_link(home: Path, network: str, node: str) -> Path:
    """What `systemctl --user enable` makes for a unit wanted by default.target."""
    return home / UNIT_DIR / f"{WANTED_BY}.wants" / unit_name(network, node)


def read_facts(home: Path, network: str, node: str) -> BootFacts:
    """The node's boot facts, read from files only (no systemctl: a dry run asks nothing)."""
    try:
        text: str | None = unit_path(home, network, node).read_text()
    except FileNotFoundError:
        text = None
    return BootFacts(systemd=SYSTEMD_RUNNING.is_dir(), unit_text=text,
                     enabled=wants_link(home, network, node).exists(),
                     lingering=(LINGER_DIR / _user()).exists())


def boot_step(root: NodeRoot, network: str, node: str, python: str, *,
              dry_run: bool = False, home: Path | None = None) -> StepResult:
    """Make the node's supervisord start at boot (the step's result says how, or, failed,
    what to do instead); with `dry_run`, what would be done, nothing changed."""
    home = Path.home() if home is None else home
    facts = read_facts(home, network, node)
    if not facts.systemd:
        return StepResult(STEP, "failed", (
            f"systemd does not run here ({SYSTEMD_RUNNING} is missing: a container or "
            "another init system), so nothing starts supervisord at boot; put this line in "
            f"the crontab of user {_user()} (crontab -e), or its command in the init "
            f"system: {crontab_line(root, python)}"))
    wanted = render_unit(root, network, node, python)
    changes = boot_changes(facts, wanted)
    unit = unit_name(network, node)
    if not changes:
        return StepResult(STEP, "ok", f"{unit} enabled, lingering on")
    if dry_run:
        return StepResult(STEP, "changed", "would " + ", ".join(changes) + f" ({unit})")
    return _apply_changes(home, network, node, wanted, changes)


def _apply_changes(home: Path, network: str, node: str, wanted: str,
                   changes: list[str]) -> StepResult:
    unit = unit_name(network, node)
    path = unit_path(home, network, node)
    user = _user()
    problems = []
    if "enable lingering" in changes:
        # Often allowed to a user for itself (polkit); else it needs root.
        failure = _run(["loginctl", "enable-linger", user])
        if failure is not None:
            problems.append(f"lingering could not be enabled ({failure}): run as root "
                            f"`loginctl enable-linger {user}`, else supervisord starts only "
                            f"when {user} logs in")
    written = "write unit" in changes or "rewrite unit" in changes
    if written:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path.parent, path.name, wanted.encode())
        path.chmod(0o644)
    # logind starts the user's manager on its own once lingering is on: give it a moment.
    attempts = RELOAD_ATTEMPTS if "enable lingering" in changes else 1
    failure = None
    for attempt in range(attempts):
        failure = _run(["systemctl", "--user", "daemon-reload"])
        if failure is None or attempt == attempts - 1:
            break
        time.sleep(0.5)
    failure = failure or _run(["systemctl", "--user", "enable", unit])
    if failure is not None:
        problems.append(f"{unit} could not be enabled ({failure}): once lingering is on, run "
                        f"as {user} `systemctl --user daemon-reload && systemctl --user "
                        f"enable {unit}`")
    if problems:
        return StepResult(STEP, "failed", f"{path} {'written' if written else 'in place'}; "
                          + "; ".join(problems))
    return StepResult(STEP, "changed", ", ".join(changes) + f" ({unit}: starts supervisord "
                      "at the next boot; now it runs as deploy started it)")


def _run(command: list[str]) -> str | None:
    """Run a systemd tool; None when it succeeded, else what went wrong (its last words)."""
    environment = dict(os.environ)
    # systemctl --user finds the user's manager through XDG_RUNTIME_DIR, which a session
    # without pam_systemd (some sshd setups) lacks.
    runtime = Path(f"/run/user/{os.getuid()}")
    if "XDG_RUNTIME_DIR" not in environment and runtime.is_dir():
        environment["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=environment,
                                timeout=SYSTEMCTL_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{shlex.join(command)}: {error}"
    if result.returncode == 0:
        return None
    said = (result.stderr or result.stdout).strip().splitlines()
    return f"{shlex.join(command)}: {said[-1] if said else f'exit {result.returncode}'}"
