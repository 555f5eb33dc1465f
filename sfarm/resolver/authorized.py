"""The farm key's line in a producer's `authorized_keys`: how it reads, and keeping it the one.

A network's farm key is authorized on each producer with one line, marked by its last word
(`marker(farm, network)`), whose forced command is the gate (`sfarm.resolver.gate`): sshd runs
the gate whatever the key's holder asks, and `restrict` turns off forwarding of ports, agent
and X11, pty allocation and `~/.ssh/rc`. `sync_authorized_keys` makes a file hold exactly that
line (or none), leaving every other line as it was.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from sfarm.data.fsio import write_atomic
from sfarm.errors import UsageError

GATE_MODULE = "sfarm.resolver.gate"

# Characters that would end or escape the double-quoted command="..." option, or split a word.
_UNQUOTABLE = re.compile(r'["\\\s\x00-\x1f\x7f]')
_KEY_TYPE = re.compile(r"(ssh|ecdsa|sk)-[A-Za-z0-9@.-]+", re.ASCII)
_KEY_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,3}", re.ASCII)
_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")


def marker(farm: str, network: str, kind: str = "farm") -> str:
    """`sfarm-farm-key:<farm>/<network>` (`sfarm-sshfs-key:...` for the SSHFS key): the last
    word of the network's authorized line for that key."""
    for name, value in (("farm", farm), ("network", network)):
        if not value or _UNQUOTABLE.search(value):
            raise UsageError(f"{name} name {value!r} cannot mark an authorized_keys line "
                             "(empty, or with whitespace, quotes or control characters)")
    return f"sfarm-{kind}-key:{farm}/{network}"


def authorized_line(public_key: str, python: str, roots: Sequence[str], marker: str) -> str:
    """`restrict,command="<python> -I -m sfarm.resolver.gate <root>..." <type> <base64> <marker>`.

    `public_key` is an OpenSSH public key line (`ssh-ed25519 AAAA... comment`; its comment is
    dropped). `-I` (isolated mode) keeps the gate's imports to its own installation: sshd starts
    it in the user's home, which `-m` would otherwise put first on the module path. UsageError
    when the key is not a public key line, or when `python` or a root is empty or holds what
    would break the quoting (`"`, `\\`, `'`, whitespace, control characters), or a root is not
    absolute. Words with shell characters are single-quoted: sshd hands the command to the
    user's shell.
    """
    words = _key_words(public_key)
    if not roots:
        raise UsageError("the farm key's authorized line needs at least one node root")
    _check_word("python", python)
    for root in roots:
        _check_word("node root", root)
        if not root.startswith("/"):
            raise UsageError(f"node root {root!r} is not an absolute path")
    if not marker or _UNQUOTABLE.search(marker):
        raise UsageError(f"{marker!r} cannot be the last word of an authorized_keys line")
    command = " ".join(shlex.quote(word) for word in (python, "-I", "-m", GATE_MODULE, *roots))
    return f'restrict,command="{command}" {words[0]} {words[1]} {marker}'


def _key_words(public_key: str) -> list[str]:
    """The type and base64 of an OpenSSH public key line (its comment dropped)."""
    words = public_key.split()
    if (len(words) < 2 or not _KEY_TYPE.fullmatch(words[0])
            or not _KEY_BASE64.fullmatch(words[1])):
        raise UsageError(f"not an OpenSSH public key line: {public_key[:60]!r}")
    return words[:2]


def _check_word(what: str, word: str) -> None:
    if not word or _UNQUOTABLE.search(word) or "'" in word:
        raise UsageError(f"{what} {word!r} cannot go in an authorized_keys forced command "
                         "(empty, or with quotes, backslashes, whitespace or control characters)")


def sync_authorized_keys(path: Path, marker: str, line: str | None, *,
                         check_only: bool = False) -> bool:
    """Make `path` hold exactly one line whose last word is `marker`, `line` (in the place of
    the first such line, else at the end), or none when `line` is None; return whether the
    file changed (its content or its mode; the mode is set only on a file that holds or held
    the line). With `check_only`, return whether it would change and touch nothing (no file,
    directory or mode: a dry run).

    Every other line stays byte for byte (a last line without a newline gets one when a line
    is added after it). The parent directory is created 0700 when missing; the file is written
    atomically (a symlink is followed: the file it names is written) and left mode 0600.
    """
    wanted = marker.encode()
    if line is not None and (_last_word(line.encode()) != wanted or "\n" in line):
        raise ValueError(f"the line to keep must be one line ending with {marker!r}")
    target = Path(os.path.realpath(path))
    try:
        old = target.read_bytes()
    except FileNotFoundError:
        if line is None:
            return False
        old = None
    new = _with_line(old or b"", wanted, None if line is None else line.encode() + b"\n")
    if new == old:
        if line is None:  # no line of ours in it: not our file to change, not even its mode
            return False
        if (os.stat(target).st_mode & 0o777) == 0o600:
            return False
        if not check_only:
            os.chmod(target, 0o600)
        return True
    if check_only:
        return True
    if not target.parent.exists():
        target.parent.mkdir(mode=0o700, parents=True)
    write_atomic(target.parent, target.name, new)
    os.chmod(target, 0o600)
    return True


def _with_line(raw: bytes, wanted: bytes, line: bytes | None) -> bytes:
    """`raw` without its lines ending with `wanted`, and with `line` where the first was."""
    kept: list[bytes] = []
    place: int | None = None
    for existing in _LINE.findall(raw):
        if _last_word(existing) == wanted:
            place = len(kept) if place is None else place
        else:
            kept.append(existing)
    if line is not None:
        if place is None:
            if kept and not kept[-1].endswith(b"\n"):
                kept[-1] += b"\n"
            place = len(kept)
        kept.insert(place, line)
    return b"".join(kept)


def _last_word(line: bytes) -> bytes | None:
    words = line.split()
    return words[-1] if words else None


_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}")


def jump_line(public_key: str, targets: Sequence[str], marker: str) -> str:
    """`restrict,port-forwarding,permitopen="host:port",...,command="/bin/false" <key> <marker>`:
    a jump host's line for a network key. It opens no shell and runs nothing; it forwards a
    connection only to the `targets` (the next hop, or the producer)."""
    words = _key_words(public_key)
    if not targets:
        raise UsageError("a jump host's line needs at least one host:port to forward to")
    for target in targets:
        if not _ADDRESS.fullmatch(target):
            raise UsageError(f"{target!r} is not a host:port a jump line can permit")
    if not marker or _UNQUOTABLE.search(marker):
        raise UsageError(f"{marker!r} cannot be the last word of an authorized_keys line")
    opens = ",".join(f'permitopen="{target}"' for target in sorted(set(targets)))
    return f'restrict,port-forwarding,{opens},command="/bin/false" {words[0]} {words[1]} {marker}'
