"""Every SSH failure becomes one clear message per cause, in this one place.

Two sources feed it: exceptions from paramiko/sockets (SSHConnection's own session) and the
stderr of the OpenSSH client (the `ssh` that rsync runs). Both end in the same `TransportError`
messages, so an operator reads the same words whichever side failed. Pure: no I/O here.
"""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass, replace

from paramiko import PKey
from paramiko.ssh_exception import (
    AuthenticationException,
    BadHostKeyException,
    ChannelException,
    NoValidConnectionsError,
    PasswordRequiredException,
    SSHException,
)

from sfarm.remote.connection import Failure, TransportError


class UnknownHostKey(SSHException):  # type: ignore[misc]
    """Raised by sfarm's host key policy: the server's key is in no known_hosts file we load."""

    def __init__(self, key_name: str, key: PKey) -> None:
        super().__init__(f"no known host key for {key_name}")
        self.key_name = key_name
        self.key = key


@dataclass(frozen=True)
class SSHTarget:
    """The SSH server a message is about: a node, or one of its jump hosts."""

    label: str  # "node lab" or "jump host bastion of node lab"
    host: str
    port: int
    user: str | None
    identity_file: str | None
    known_hosts: str | None  # the only file checked when sfarm was given one
    connect_timeout: float
    managed_from: str | None = None  # the node whose root the command runs in, if any

    @property
    def where(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{self.label} ({user}{self.host}:{self.port})"

    @property
    def key_name(self) -> str:
        """How known_hosts names this server (OpenSSH's `[host]:port` off port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def known_hosts_file(self) -> str:
        return self.known_hosts or "~/.ssh/known_hosts"

    @property
    def keyscan(self) -> str:
        port = "" if self.port == 22 else f"-p {self.port} "
        return f"ssh-keyscan {port}{self.host} >> {self.known_hosts_file}"


def key_type(key: PKey) -> str:
    """OpenSSH's spelling of a key's type in its messages: ED25519, RSA, ECDSA."""
    name = key.get_name().removeprefix("ssh-")
    return "ECDSA" if name.startswith("ecdsa") else name.upper()


# One message per cause. Each takes the target and what is known about the failure.

def refused(target: SSHTarget, detail: str = "") -> TransportError:
    return TransportError(
        Failure.REFUSED,
        f"{target.where}: connection refused{detail}",
        hint=f"is sshd running there and listening on port {target.port}? Check `port` in the "
             "inventory (or Port in ~/.ssh/config) and the host's firewall")


def unresolved(target: SSHTarget) -> TransportError:
    return TransportError(
        Failure.UNRESOLVED,
        f"{target.where}: the host name {target.host!r} could not be resolved",
        hint="check `host` in the inventory (or HostName in ~/.ssh/config) and DNS")


def timed_out(target: SSHTarget, detail: str = "") -> TransportError:
    return TransportError(
        Failure.TIMEOUT,
        f"{target.where}: timed out after {target.connect_timeout:g} s{detail}",
        hint="is the host up, the port right and open in the firewall? A slow link may need "
             "a longer connect timeout")


def auth_failed(target: SSHTarget, tried: str) -> TransportError:
    key = target.identity_file or "~/.ssh/id_ed25519"
    message = (f"{target.where}: authentication failed for user "
               f"{target.user or '(default)'!r}; tried {tried}")
    if target.managed_from is not None:
        return TransportError(
            Failure.AUTH, message,
            hint=f"this command runs on node {target.managed_from} and reaches the others with "
                 "your own SSH credentials, never with the farm key (it only reads data): log "
                 "in with your agent forwarded (ssh -A) or put your key on this node")
    return TransportError(
        Failure.AUTH, message,
        hint=f"authorize the public key for that user on the host (ssh-copy-id -i {key}.pub "
             f"-p {target.port} {target.user or 'USER'}@{target.host}), or set `user` / "
             "`identity_file` in the inventory")


def host_key_unknown(target: SSHTarget, kind: str = "", fingerprint: str = "") -> TransportError:
    offered = f" (it offered {kind} key {fingerprint})" if fingerprint else ""
    checked = target.known_hosts or "the system and user known_hosts files"
    return TransportError(
        Failure.HOST_KEY_UNKNOWN,
        f"{target.where}: unknown host key for {target.key_name}{offered}; sfarm never accepts "
        f"a host key it does not know (checked: {checked})",
        hint=_shipped_hint(target) or (
            f"verify the fingerprint on the host itself (ssh-keygen -lf "
            f"/etc/ssh/ssh_host_ed25519_key.pub), then add the key: {target.keyscan}"))


def _shipped_hint(target: SSHTarget) -> str | None:
    """From a node root, host keys are the ones deploy shipped: they are changed by a deploy
    from the machine that checked them, never by hand on the node."""
    if target.managed_from is None:
        return None
    return (f"this node ({target.managed_from}) checks the others against the host keys deploy "
            f"shipped to {target.known_hosts}: if the host was really re-installed, fix the key "
            "where you deploy from and run `sfarm deploy` there")


def host_key_changed(target: SSHTarget, kind: str = "", offered: str = "",
                     expected: str = "", known_in: str = "") -> TransportError:
    keys = ""
    if offered:
        keys = f": it offered {kind} key {offered}" + (f", known_hosts has {expected}"
                                                        if expected else "")
    where = known_in or target.known_hosts_file
    return TransportError(
        Failure.HOST_KEY_CHANGED,
        f"{target.where}: HOST KEY CHANGED for {target.key_name}{keys}. This may be a "
        "man-in-the-middle attack; refusing to connect",
        hint=_shipped_hint(target) or (
            f"only if the host was really re-installed and you verified the new fingerprint on "
            f"it: ssh-keygen -R '{target.key_name}' -f {where}, then {target.keyscan}"))


def rsync_missing(target: SSHTarget) -> TransportError:
    return TransportError(
        Failure.RSYNC_MISSING,
        f"{target.where}: rsync is not installed on the host (sfarm copies files with it)",
        hint="install it there, for example: sudo apt-get install rsync")


def protocol_error(target: SSHTarget, detail: str) -> TransportError:
    return TransportError(Failure.SSH, f"{target.where}: SSH failed: {detail}")


def from_exception(target: SSHTarget, exc: BaseException, tried: str = "") -> TransportError:
    """Map what paramiko or the socket raised while connecting to `target`."""
    if isinstance(exc, UnknownHostKey):
        return host_key_unknown(target, key_type(exc.key), exc.key.fingerprint)
    if isinstance(exc, BadHostKeyException):
        return host_key_changed(target, key_type(exc.key), exc.key.fingerprint,
                                exc.expected_key.fingerprint)
    if isinstance(exc, PasswordRequiredException):
        return auth_failed(target, f"{tried}; a key file is encrypted and sfarm has no "
                                   "passphrase (load it in ssh-agent)")
    if isinstance(exc, AuthenticationException):
        return auth_failed(target, tried)
    if isinstance(exc, NoValidConnectionsError):
        codes = {getattr(error, "errno", None) for error in exc.errors.values()}
        if errno.ECONNREFUSED in codes:
            return refused(target)
        return timed_out(target, ": the host is unreachable (no route)")
    if isinstance(exc, socket.gaierror):
        return unresolved(target)
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return timed_out(target)
    if isinstance(exc, ChannelException):
        # The jump host could not open a TCP connection to the next hop.
        return refused(target, f" (the jump host could not connect: {exc.text})")
    if isinstance(exc, SSHException):
        text = str(exc)
        if "No authentication methods available" in text:  # not one key to offer
            return auth_failed(target, "no key: no identity_file, IdentityFile, ssh-agent key "
                                       "or ~/.ssh/id_* was found")
        if "protocol banner" in text:
            return timed_out(target, ": connected, but no SSH greeting came (is it sshd?)")
        if "No existing session" in text:  # paramiko gave up waiting for the handshake
            return timed_out(target, ": connected, but the SSH handshake did not finish")
        return protocol_error(target, text or type(exc).__name__)
    if isinstance(exc, EOFError):
        return protocol_error(target, "the server closed the connection during the handshake")
    if isinstance(exc, OSError):
        if exc.errno == errno.ECONNREFUSED:
            return refused(target)
        return protocol_error(target, exc.strerror or str(exc))
    return protocol_error(target, f"{type(exc).__name__}: {exc}")


_OFFERED = re.compile(r"The fingerprint for the (\S+) key sent by the remote host is\s*"
                      r"(SHA256:[A-Za-z0-9+/=]+?)\.?\s*$", re.MULTILINE)
_OFFENDING = re.compile(r"^Offending \S+ key in (.+?):\d+\s*$", re.MULTILINE)
_NAMED_HOST = (  # how the OpenSSH client names the server it failed on (a jump host perhaps)
    re.compile(r"No \S+ host key is known for (?P<name>\S+) and"),
    re.compile(r"Host key for (?P<name>\S+) has changed"),
    re.compile(r"connect to host (?P<host>\S+) port (?P<port>\d+):"),
    re.compile(r"(?P<user>[^\s@]+)@(?P<host>\S+): Permission denied"),
    re.compile(r"Could not resolve hostname (?P<host>[^\s:]+):"),
)


def _named_target(target: SSHTarget, stderr: str) -> SSHTarget:
    """`target`, with host/port/user replaced by the ones ssh named (a jump host may fail)."""
    for pattern in _NAMED_HOST:
        found = pattern.search(stderr)
        if found is None:
            continue
        fields = found.groupdict()
        host, port = fields.get("host"), fields.get("port")
        if fields.get("name"):
            bracketed = re.fullmatch(r"\[(.+)\]:(\d+)", fields["name"])
            host, port = bracketed.groups() if bracketed else (fields["name"], "22")
        if host == target.host and port in (None, str(target.port)):
            return target
        return replace(target, host=host or target.host,
                       port=int(port) if port else target.port,
                       user=fields.get("user") or target.user)
    return target


def from_ssh_stderr(target: SSHTarget, stderr: str, tried: str = "") -> TransportError | None:
    """Map the OpenSSH client's complaint (ssh run by rsync); None if it is not an SSH failure."""
    stderr = stderr.replace("\r\n", "\n")
    target = _named_target(target, stderr)
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "has changed and you have" in stderr:
        offered = _OFFERED.search(stderr)
        offending = _OFFENDING.search(stderr)
        kind, fingerprint = offered.groups() if offered else ("", "")
        return host_key_changed(target, kind, fingerprint,
                                known_in=offending.group(1) if offending else "")
    if "host key is known for" in stderr or "Host key verification failed" in stderr:
        return host_key_unknown(target)
    if "Permission denied (" in stderr:
        return auth_failed(target, tried)
    if "Connection refused" in stderr:
        return refused(target)
    if "Could not resolve hostname" in stderr:
        return unresolved(target)
    if "timed out" in stderr or "No route to host" in stderr:
        return timed_out(target)
    return None
