"""`SSHConnection`: the `Connection` contract over SSH, with Fabric/paramiko and the rsync binary.

Host keys are checked strictly: a key found in no known_hosts file, or one that differs from the
file, is refused and never written anywhere. Fabric supplies ~/.ssh/config (HostName, User, Port,
IdentityFile, ProxyJump) and jump-host gateways; commands run on raw paramiko channels
(sfarm.remote.ssh_channel), so stdout and stderr stay bytes and a timeout can end the remote
process. rsync runs the OpenSSH client with the same host keys, identity, port and jump hosts
(sfarm.remote.openssh). Failures
are mapped in sfarm.remote.ssh_errors. Commands are quoted for a POSIX login shell (sh, bash,
dash, zsh).
"""

from __future__ import annotations

import logging
import math
import os
import posixpath
import secrets
import shlex
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import fabric
from paramiko import MissingHostKeyPolicy, PKey, SSHClient
from paramiko.channel import Channel
from paramiko.ssh_exception import SSHException

from sfarm.errors import UsageError
from sfarm.inventory import NodeSpec
from sfarm.remote import ssh_errors
from sfarm.remote.connection import (
    CommandResult,
    Failure,
    TransportError,
    command_failed,
    describe_command,
    env_assignments,
    expand_home,
    require_local_rsync,
)
from sfarm.remote.openssh import OpenSSHSettings, rsync_shell, ssh_words
from sfarm.remote.ssh_channel import PID_LINE, execute, start, with_pid
from sfarm.remote.ssh_errors import SSHTarget, UnknownHostKey
from sfarm.rsync import SyncResult, local_rsync_path, parse_itemized, rsync_options

log = logging.getLogger(__name__)
# paramiko's transport thread logs a traceback for failures sfarm reports in one line; with no
# logging configured, Python would print them on stderr. A configured root handler still sees them.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

DEFAULT_PORT = 22
USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
SYSTEM_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
# Writes stdin to a 0600 temp file beside the target, sets the mode, renames over the target.
PUT_SCRIPT = ('umask 077; cat > "$1" && chmod "$2" "$1" && mv -f "$1" "$3" '
              '|| { status=$?; rm -f "$1"; exit $status; }')


class _RejectUnknownHostKey(MissingHostKeyPolicy):  # type: ignore[misc]
    """paramiko's RejectPolicy, raising a typed error that carries the offered key."""

    def missing_host_key(self, client: SSHClient, hostname: str, key: PKey) -> None:
        raise UnknownHostKey(hostname, key)


class SSHConnection:
    """A node's machine over SSH. Connects on first use; `close()` (or `with`) disconnects."""

    def __init__(self, node: NodeSpec, *, known_hosts: Path | None = None,
                 connect_timeout: float = 5, remote_rsync: str = "rsync",
                 managed_from: str | None = None) -> None:
        """`managed_from`: the node whose root this command runs in (sfarm.inventory.origin),
        if any: the inventory's identity_file is then a path on the machine that deployed, so
        a missing one is passed over for the operator's agent and default keys."""
        self.node = node
        self.known_hosts = known_hosts
        self.connect_timeout = connect_timeout
        self.remote_rsync = remote_rsync
        self.managed_from = managed_from
        self.identity_file = _identity_file(node, required=managed_from is None)
        self._lock = threading.RLock()
        self._home: str | None = None
        self._config = fabric.Config()  # reads ~/.ssh/config and /etc/ssh/ssh_config
        options: dict[str, Any] = {"host": node.host, "user": node.user, "gateway": False}
        if node.port != DEFAULT_PORT:  # 22 is the default: let ~/.ssh/config's Port apply
            options["port"] = node.port
        self._fabric = self._fabric_connection(**options)
        config_jump = self._fabric.ssh_config.get("proxyjump", "none")
        self.proxy_jump = node.proxy_jump or (None if config_jump == "none" else config_jump)
        self._hops: list[fabric.Connection] = []
        if self.proxy_jump:
            for hop in self.proxy_jump.split(","):  # ProxyJump order: first hop first
                self._hops.append(self._fabric_connection(
                    host=hop.strip(), gateway=self._hops[-1] if self._hops else False))
            self._fabric.gateway = self._hops[-1]
        elif "proxycommand" in self._fabric.ssh_config:
            self._fabric.gateway = self._fabric.ssh_config["proxycommand"]
        self.target = self._target(self._fabric, f"node {node.name}")

    # -- connecting ---------------------------------------------------------------------------

    def _fabric_connection(self, **options: Any) -> fabric.Connection:
        connect_kwargs: dict[str, Any] = {"banner_timeout": self.connect_timeout,
                                          "auth_timeout": self.connect_timeout,
                                          "channel_timeout": self.connect_timeout}
        if self.identity_file:
            connect_kwargs["key_filename"] = [self.identity_file]
        connection = fabric.Connection(config=self._config.clone(),
                                       connect_timeout=max(1, math.ceil(self.connect_timeout)),
                                       connect_kwargs=connect_kwargs, **options)
        # Fabric auto-adds unknown host keys; sfarm refuses them and reads, never writes, files.
        connection.client.set_missing_host_key_policy(_RejectUnknownHostKey())
        for path in self._known_hosts_files(connection.ssh_config):
            if os.path.isfile(path):
                connection.client.load_system_host_keys(path)
        return connection

    def _known_hosts_files(self, ssh_config: Mapping[str, Any]) -> list[str]:
        if self.known_hosts is not None:
            return [str(self.known_hosts)]
        files: list[str] = []
        for key, defaults in (("userknownhostsfile", USER_KNOWN_HOSTS),
                              ("globalknownhostsfile", SYSTEM_KNOWN_HOSTS)):
            configured = ssh_config.get(key)
            names = shlex.split(configured) if configured else list(defaults)
            files += [os.path.expanduser(name) for name in names if name != "none"]
        return files

    def _target(self, connection: fabric.Connection, label: str) -> SSHTarget:
        return SSHTarget(label=label, host=connection.host, port=int(connection.port),
                         user=connection.user, identity_file=self.identity_file,
                         known_hosts=str(self.known_hosts) if self.known_hosts else None,
                         connect_timeout=self.connect_timeout, managed_from=self.managed_from)

    @property
    def where(self) -> str:
        return self.target.where

    def _tried(self, connection: fabric.Connection) -> str:
        keys = connection.connect_kwargs.get("key_filename") or []
        agent = ["the ssh-agent's keys"] if os.environ.get("SSH_AUTH_SOCK") else []
        return ", ".join([f"key {', '.join(keys)}"] * bool(keys) + agent
                         + ["the default keys in ~/.ssh"])

    def open(self) -> None:
        """Connect now (each jump host in turn, then the node); raise TransportError if not."""
        self._session()

    def _session(self) -> fabric.Connection:
        with self._lock:
            if self._fabric.is_connected:
                return self._fabric
            chain = [(hop, self._target(hop, f"jump host {hop.host} of node {self.node.name}"))
                     for hop in self._hops] + [(self._fabric, self.target)]
            for connection, target in chain:
                try:
                    connection.open()
                except (SSHException, OSError, EOFError) as exc:
                    # The transport thread keeps the first cause (a banner timeout, say); the
                    # caller may only see a later, vaguer one ("No existing session").
                    transport = connection.client.get_transport()
                    first = transport.get_exception() if transport is not None else None
                    if type(exc) is SSHException and first is not None:
                        exc = first
                    self.close()
                    raise ssh_errors.from_exception(target, exc, self._tried(connection)) from None
            log.debug("connected to %s", self.where)
            return self._fabric

    def close(self) -> None:
        with self._lock:
            for connection in [self._fabric, *reversed(self._hops)]:
                connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # -- commands -----------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, input: bytes | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            check: bool = True) -> CommandResult:
        words = list(argv)
        if not words:
            raise UsageError("a command needs at least one word")
        log.debug("%s run: %s", self.where, describe_command(words))
        remote = ["env", *env_assignments(env), *words] if env else words
        if timeout is not None:
            remote = with_pid(remote)
        exit_code, stdout, stderr = execute(self._session().transport, self.target,
                                            shlex.join(remote), input, timeout, words,
                                            self.connect_timeout)
        if timeout is not None:
            stderr = PID_LINE.sub(b"", stderr, count=1)
        result = CommandResult(exit_code, stdout, stderr, tuple(words))
        if check and not result.ok:
            raise command_failed(self.where, result)
        return result

    def spawn(self, argv: Sequence[str]) -> Channel:
        """Start `argv` on a channel of its own and return at once: the channel carries the
        command's stdin, stdout and stderr, stderr's first line being `sfarm-pid:N` (N: the
        command's pid, to signal it). Closing the channel ends the command's stdin."""
        words = list(argv)
        if not words:
            raise UsageError("a command needs at least one word")
        log.debug("%s spawn: %s", self.where, describe_command(words))
        return start(self._session().transport, self.target, words, self.connect_timeout)

    def host_key(self) -> str:
        """The node's host key as this connection checked it (strictly): "ssh-ed25519 AAAA"."""
        return checked_key(self._session(), self.where)

    def hops(self) -> list[fabric.Connection]:
        """The jump hosts this connection goes through, connected, the first one first."""
        self._session()
        return list(self._hops)

    def home(self) -> str:
        with self._lock:
            if self._home is None:
                self._home = self.run(["sh", "-c", 'printf "%s" "$HOME"']).stdout_text
            return self._home

    # -- files --------------------------------------------------------------------------------

    def _path(self, path: str) -> str:
        return expand_home(path, self.home()) if path.startswith("~") else path

    def put(self, data: bytes, remote_path: str, *, mode: int = 0o644) -> None:
        path = self._path(remote_path)
        directory, name = posixpath.split(path)
        temporary = posixpath.join(directory, f".{name}.{secrets.token_hex(4)}.sfarm-tmp")
        result = self.run(["sh", "-c", PUT_SCRIPT, "sfarm-put", temporary, f"{mode:o}", path],
                          input=data, check=False)
        if not result.ok:
            raise TransportError(Failure.TRANSFER_FAILED,
                                 f"{self.where}: could not write {path}: "
                                 f"{result.stderr_tail(2) or f'exit code {result.exit_code}'}",
                                 result=result)

    def get(self, remote_path: str) -> bytes | None:
        path = self._path(remote_path)
        with self._lock:  # one SFTP session per connection, not thread-safe
            sftp = self._session().sftp()
            try:
                with sftp.open(path, "rb") as file:
                    file.prefetch()
                    return bytes(file.read())
            except FileNotFoundError:
                return None
            except (OSError, SSHException) as exc:
                raise TransportError(Failure.TRANSFER_FAILED,
                                     f"{self.where}: could not read {path}: "
                                     f"{getattr(exc, 'strerror', None) or exc}") from None

    # -- rsync --------------------------------------------------------------------------------

    def rsync(self, source: str, destination: str, *, pull: bool, delete: bool = False,
              excludes: Sequence[str] = (), link_dest: str | None = None) -> SyncResult:
        rsync = require_local_rsync()
        remote_rsync = [self.remote_rsync]
        if pull:
            source = self._remote_spec(self._path(source))
            destination = local_rsync_path(os.path.expanduser(destination))
        else:
            source = local_rsync_path(os.path.expanduser(source))
            destination = self._remote_spec(self._path(destination))
        with rsync_shell(self.openssh_settings(), bool(self.proxy_jump)) as ssh_command:
            argv = [rsync, *rsync_options(pull=pull, delete=delete, excludes=excludes,
                                          link_dest=link_dest),
                    "-e", ssh_command, f"--rsync-path={shlex.join(remote_rsync)}", "--", source,
                    destination]
            log.debug("%s rsync: %s", self.where, describe_command(argv, 500))
            process = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                     check=False)
        result = CommandResult(process.returncode, process.stdout, process.stderr, tuple(argv))
        if result.ok:
            return parse_itemized(result.stdout_text)
        raise self._rsync_error(result, f"rsync {source} -> {destination}")

    def _rsync_error(self, result: CommandResult, what: str) -> TransportError:
        if result.exit_code in (12, 255):  # the ssh client failed and said why on stderr
            mapped = ssh_errors.from_ssh_stderr(self._rsync_target(), result.stderr_text,
                                                self._tried(self._fabric))
            if mapped is not None:
                return mapped
        if result.exit_code in (12, 127) and not self._remote_has_rsync():
            return ssh_errors.rsync_missing(self.target)
        return TransportError(Failure.TRANSFER_FAILED,
                              f"{self.where}: {what} failed with exit code "
                              f"{result.exit_code}:\n{result.stderr_tail()}", result=result)

    def _remote_has_rsync(self) -> bool:
        """Ask the node's shell; any shell words "not found" differently. True if unsure."""
        try:
            return self.run(["sh", "-c", 'command -v "$1" >/dev/null', "sfarm-probe",
                             self.remote_rsync], check=False).ok
        except TransportError:
            return True

    def _rsync_target(self) -> SSHTarget:
        if not self.proxy_jump:
            return self.target
        return self._target(self._fabric, f"node {self.node.name} via {self.proxy_jump}")

    def _remote_spec(self, path: str) -> str:
        return f"{self.remote_host}:{path}"

    @property
    def remote_host(self) -> str:
        """`user@host` as rsync and ssh take it (an IPv6 address in brackets)."""
        host = f"[{self.node.host}]" if ":" in self.node.host else self.node.host
        user = f"{self.node.user}@" if self.node.user else ""
        return f"{user}{host}"

    def openssh_settings(self) -> OpenSSHSettings:
        return OpenSSHSettings(
            connect_timeout=self.connect_timeout,
            known_hosts=self._known_hosts_files(self._fabric.ssh_config),
            port=self.node.port if self.node.port != DEFAULT_PORT else None,
            identity_file=self.identity_file, proxy_jump=self.node.proxy_jump)

    def ssh_words(self, config_file: str | None = None) -> list[str]:
        """The OpenSSH client command rsync runs (sfarm.remote.openssh)."""
        return ssh_words(self.openssh_settings(), config_file)


def checked_key(connection: fabric.Connection, where: str) -> str:
    """The host key a connected (so strictly checked) connection's server showed."""
    transport = connection.client.get_transport()
    if transport is None:
        raise TransportError(Failure.SSH, f"{where}: not connected")
    key = transport.get_remote_server_key()
    return f"{key.get_name()} {key.get_base64()}"


def _identity_file(node: NodeSpec, *, required: bool = True) -> str | None:
    if not node.identity_file:
        return None
    path = os.path.expanduser(node.identity_file)
    if not os.path.isfile(path):
        if not required:
            return None
        raise UsageError(f"node {node.name}: identity_file {node.identity_file} does not exist",
                         hint="fix `identity_file` in the inventory, or remove it to use "
                              "~/.ssh/config, the ssh-agent and the default keys")
    return path
