"""The OpenSSH client command that rsync runs to reach a node (pure, apart from a temp config).

It must trust exactly what the paramiko side trusts: strict host keys from the same known_hosts
files, the same identity, port and jump hosts, and never a prompt (BatchMode).
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sfarm.errors import UsageError


@dataclass(frozen=True)
class OpenSSHSettings:
    connect_timeout: float
    known_hosts: Sequence[str]  # files, as the paramiko side reads them ($HOME expanded)
    port: int | None = None  # None: the default, or what ~/.ssh/config says
    identity_file: str | None = None
    proxy_jump: str | None = None  # from the inventory (-J); ~/.ssh/config's own applies too

    def known_hosts_option(self) -> str:
        return " ".join(f'"{name}"' for name in self.known_hosts or ["/dev/null"])


def ssh_words(settings: OpenSSHSettings, config_file: str | None = None) -> list[str]:
    """The ssh command: strict host keys, no prompts, the node's settings."""
    timeout = max(1, math.ceil(settings.connect_timeout))
    words = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
             "-o", f"ConnectTimeout={timeout}",
             "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"]
    # OpenSSH would read ~/.ssh from the passwd entry, not from $HOME: name the files.
    words += ["-o", f"UserKnownHostsFile={settings.known_hosts_option()}",
              "-o", "GlobalKnownHostsFile=/dev/null"]
    if settings.port is not None:
        words += ["-p", str(settings.port)]
    if settings.identity_file:
        words += ["-i", settings.identity_file]
    if config_file:
        words += ["-F", config_file]
    if settings.proxy_jump:
        words += ["-J", settings.proxy_jump]
    return words


def jump_config(settings: OpenSSHSettings) -> str:
    """A private ssh_config for every hop of a jump: options given with -o reach the last hop
    only, a config file (-F) is passed on to each."""
    lines = ["Host *", "  BatchMode yes", "  StrictHostKeyChecking yes",
             f"  ConnectTimeout {max(1, math.ceil(settings.connect_timeout))}",
             f"  UserKnownHostsFile {settings.known_hosts_option()}",
             "  GlobalKnownHostsFile /dev/null"]
    if settings.identity_file:
        lines.append(f'  IdentityFile "{settings.identity_file}"')
    # First value wins in ssh_config: the settings above, then the usual files.
    for included in (os.path.expanduser("~/.ssh/config"), "/etc/ssh/ssh_config"):
        if os.path.isfile(included):
            lines.append(f'  Include "{included}"')
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def rsync_shell(settings: OpenSSHSettings, jumps: bool) -> Iterator[str]:
    """The value of rsync's -e for these settings; with jump hosts (from the inventory or
    ~/.ssh/config) through a private config file that lives while the context does."""
    if not jumps:
        yield rsh_string(ssh_words(settings))
        return
    with tempfile.TemporaryDirectory(prefix="sfarm-ssh-") as directory:
        config = Path(directory) / "ssh_config"
        config.write_text(jump_config(settings))
        yield rsh_string(ssh_words(settings, str(config)))


def rsh_string(words: list[str]) -> str:
    """rsync splits -e itself: quotes work, backslashes do not, so refuse them."""
    if any("\\" in word for word in words):
        raise UsageError("paths for ssh (identity_file, known_hosts) must not contain '\\'")
    return shlex.join(words)
