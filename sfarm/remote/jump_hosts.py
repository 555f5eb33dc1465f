"""Jump hosts (`proxy_jump`) on the way from consumers to a producer: what the controller learns
of them, and their lines for the network's keys (forward to the next hop, run nothing).

A jump host that is a node of the network gets its line with its deployment; one that is not (a
bastion) gets it here, from the controller, over the connection that reaches the producer
through it: a short POSIX shell script, as sfarm is not installed there.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from sfarm.remote.connection import Connection, Failure, TransportError
from sfarm.remote.wiring import NodeSurvey
from sfarm.resolver.routes import Hop
from sfarm.runtime.protocol import AuthorizedKeyLine, StepResult

if TYPE_CHECKING:
    import fabric

# The file with one line ending with " $1" as "$2" (none when empty), in its place, every other
# line as it was.
_KEEP_LINE = r"""awk -v m="$m" -v l="$line" '{
  if (length($0) >= length(m) && substr($0, length($0) - length(m) + 1) == m) {
    if (!done && l != "") print l; done = 1
  } else print
} END { if (!done && l != "") print l }' """ + '"$f"'

# On a jump host (sfarm is not installed there): keep that line; print ok or changed.
JUMP_LINE_SCRIPT = r"""
f="$HOME/.ssh/authorized_keys"; m=" $1"; line="$2"
if [ ! -e "$f" ] && [ -z "$line" ]; then echo ok; exit 0; fi
umask 077; mkdir -p "$HOME/.ssh"; [ -e "$f" ] || : > "$f"
t=$(mktemp "$HOME/.ssh/.authorized_keys.XXXXXX") || exit 1
""" + _KEEP_LINE + r""" > "$t" || { rm -f "$t"; exit 1; }
if cmp -s "$f" "$t"; then rm -f "$t"; echo ok
else chmod 600 "$t" && mv -f "$t" "$f" && echo changed; fi
"""

# The same question in a dry run: would it change? Nothing is written, not even a temp file.
JUMP_LINE_CHECK = r"""
f="$HOME/.ssh/authorized_keys"; m=" $1"; line="$2"
if [ ! -e "$f" ]; then if [ -z "$line" ]; then echo ok; else echo changed; fi; exit 0; fi
new=$(""" + _KEEP_LINE + r"""; echo .) || exit 1
old=$(cat "$f"; echo .) || exit 1
if [ "$new" = "$old" ]; then echo ok; else echo changed; fi
"""


def jump_hosts(connection: Connection) -> tuple[tuple[Hop, ...], tuple[str, ...]]:
    """The jump hosts an SSH connection went through, the first one first, and the host key
    each one showed (checked strictly); none for this machine."""
    from sfarm.remote.ssh import SSHConnection, checked_key

    if not isinstance(connection, SSHConnection):
        return (), ()
    hops = connection.hops()
    return (tuple(Hop(host=hop.host, port=int(hop.port), user=hop.user) for hop in hops),
            tuple(checked_key(hop, f"jump host {hop.host}") for hop in hops))


def sync_jump_line(hop: fabric.Connection, marker: str, line: str | None, *,
                   check_only: bool = False) -> bool:
    """Make the authorized_keys of the connected jump host `hop` hold `line` as its one line
    ending with `marker` (none when None), every other line as it was; True when it changed.
    With `check_only`, whether it would change, touching nothing."""
    from paramiko import SSHException  # only for an SSH node: status stays free of it

    script = JUMP_LINE_CHECK if check_only else JUMP_LINE_SCRIPT
    command = shlex.join(["sh", "-c", script, "sfarm-jump", marker, line or ""])
    try:
        result = hop.run(command, hide=True, warn=True, in_stream=False)
    except (SSHException, OSError) as exc:
        raise TransportError(Failure.SSH, f"jump host {hop.host}: {exc}") from None
    if result.exited != 0 or result.stdout.strip() not in ("ok", "changed"):
        raise TransportError(Failure.COMMAND_FAILED,
                             f"jump host {hop.host}: could not update authorized_keys: "
                             f"{result.stderr.strip()[-300:] or result.exited}")
    return bool(result.stdout.strip() == "changed")


def outside_jump_lines(lines: dict[str, dict[Hop, AuthorizedKeyLine]],
                       surveys: dict[str, NodeSurvey]) -> dict[Hop, list[AuthorizedKeyLine]]:
    """The jump-host lines for hosts that are no node of the network (a node's own lines are
    in its deployment): every marker, the line or none."""
    nodes = {Hop(host=s.host, port=s.port, user=s.user) for s in surveys.values()}
    hops = {hop for survey in surveys.values() for hop in survey.jumps} - nodes
    return {hop: [by_hop.get(hop, AuthorizedKeyLine(mark, None))
                  for mark, by_hop in lines.items()] for hop in hops}


def sync_jump_hosts(connection: Connection, survey: NodeSurvey,
                    outside: dict[Hop, list[AuthorizedKeyLine]], *,
                    check_only: bool = False) -> list[StepResult]:
    """The lines of the jump hosts the controller reaches this node through (those that are no
    node of the network), written over that same connection; with `check_only`, whether each
    would change ("changed": would change), nothing written."""
    from sfarm.remote.ssh import SSHConnection

    if not isinstance(connection, SSHConnection):
        return []
    hops = connection.hops()
    steps = []
    for hop, through in zip(survey.jumps, hops, strict=True):
        for line in outside.get(hop, []):
            changed = sync_jump_line(through, line.marker, line.line, check_only=check_only)
            detail = line.marker + ("" if line.line else " (none)")
            steps.append(StepResult(f"jump host {hop.address}", "changed" if changed else "ok",
                                    f"would update: {detail}" if check_only and changed
                                    else detail))
    return steps
