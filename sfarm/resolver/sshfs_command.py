"""The pure parts of the SSHFS transport: the producer's authorized line for the SSHFS key, the
sshfs command of a mount, mountinfo parsing and sshfs's failures in words. No I/O here; the
mounting itself is `sfarm.resolver.sshfs`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from sfarm.data.layout import MIRROR_DIR
from sfarm.errors import UsageError

# Where OpenSSH's sftp server lives: Debian/Ubuntu, Fedora/RHEL, Arch/Alpine, the BSDs and macOS,
# Homebrew. Deploy probes them on the producer and authorizes the first that exists.
SFTP_SERVER_CANDIDATES: tuple[str, ...] = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/local/libexec/sftp-server",
    "/opt/homebrew/libexec/sftp-server",
)

SSHFS_FS_TYPE = "fuse.sshfs"

# Measured (report of issue 12): with the kernel's attribute cache (attr_timeout=1 s, the
# default) a reader opening the replaced `_manifest.json` within a second of a commit read it
# cut at the old size (10,453 reads of a cut manifest against 2,075 good ones) and missed 47 of
# 150 commits;
# with direct_io reads go to the server whatever size the kernel remembers (0 invalid in 3,419
# reads, a commit visible in 5 ms median, 43 ms at most). dir_cache=no: sshfs's own cache would
# hide a new dataset or partition name for up to 20 s. Price of direct_io: a shared mmap of a
# file on the mount fails (ENODEV); polars, pyarrow and duckdb read without one.
CACHE_OPTIONS: tuple[str, ...] = ("direct_io", "dir_cache=no")
# A dead producer is noticed after 3 unanswered keepalives 5 s apart; `reconnect` makes the
# next access after an outage reconnect by itself.
KEEPALIVE_OPTIONS: tuple[str, ...] = ("reconnect", "ServerAliveInterval=5", "ServerAliveCountMax=3")


@dataclass(frozen=True)
class SSHFSTarget:
    """A producer's `data/` as a consumer mounts it: who, where, and with what to trust."""

    host: str
    user: str
    node_root: str  # the producer's node root; the mount shows `<node_root>/data`
    identity_file: str  # the SSHFS key (not the farm key of rsync pulls)
    known_hosts: str  # the only host keys trusted (the producer's, and its jump host's)
    port: int = 22
    proxy_jump: str | None = None  # "[user@]host[:port]", comma-separated for several hops
    connect_timeout: int = 10

    @property
    def remote(self) -> str:
        """`user@host:<root>/data` as sshfs wants it (an IPv6 address in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.node_root.rstrip('/')}/data"


def mirror_mountpoint(consumer_root: Path | str, producer: str) -> Path:
    """Where a consumer mounts `producer`'s data: the mirror directory the store reads."""
    return Path(consumer_root) / MIRROR_DIR / producer


# ---- pure: the producer's authorized line, the sshfs command, mountinfo -------------------------

_KEY_TYPE = re.compile(r"(ssh|ecdsa|sk)-[a-z0-9@.-]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,3}")
# As for the farm key's line (sfarm.resolver.authorized): what would end a word or the quotes.
_UNQUOTABLE = re.compile(r'["\\\s\x00-\x1f\x7f]')
_SAFE_PATH = re.compile(r"/[A-Za-z0-9_./+-]*")


def sftp_authorized_line(public_key: str, sftp_server: str, marker: str) -> str:
    """The producer's authorized_keys line of the SSHFS key:
    `restrict,command="<sftp_server> -R" <type> <base64> <marker>`.

    Whatever the client asks (a shell, a command, the sftp subsystem), sshd runs the sftp server
    read-only (-R refuses every write request); `restrict` forbids forwarding, agent, X11 and a
    pty. It does NOT confine the key to `data/`: an authorized_keys line cannot chroot sftp, so
    the key reads every file the producer's unix user can read (secrets included). Use it only
    where that user's files may be read by the consumer. `marker` (the line's last word) lets
    deploy keep exactly one such line (`sfarm.resolver.authorized.sync_authorized_keys`).
    UsageError for a key, path or marker that would break the line's quoting or spill into
    other options.
    """
    words = public_key.split()
    if len(words) < 2 or not _KEY_TYPE.fullmatch(words[0]) or not _BASE64.fullmatch(words[1]):
        raise UsageError(f"not an OpenSSH public key: {public_key[:40]!r}",
                         hint="expected a line such as `ssh-ed25519 AAAA... comment`")
    if not _SAFE_PATH.fullmatch(sftp_server):
        raise UsageError(f"sftp server path {sftp_server!r} cannot go in a forced command",
                         hint="an absolute path of letters, digits and _./+- only")
    if not marker or _UNQUOTABLE.search(marker):
        raise UsageError(f"{marker!r} cannot be the last word of an authorized_keys line")
    return f'restrict,command="{sftp_server} -R" {words[0]} {words[1]} {marker}'


def _fuse_option(value: str) -> str:
    """One `-o` value as libfuse splits it: commas separate options, backslash escapes."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def _check_ssh_words(target: SSHFSTarget) -> None:
    """ssh expands `%` in ProxyCommand and splits its -o values on blanks outside quotes."""
    for name in ("host", "user", "proxy_jump"):
        value = getattr(target, name) or ""
        if (not value and name != "proxy_jump") or re.search(r'[\s%"\\]', value):
            raise UsageError(f"sshfs {name} {value!r} is empty or has a character ssh misreads")
    for name in ("node_root", "identity_file", "known_hosts"):
        value = getattr(target, name)
        if not value or re.search(r'[\n%"]', value):
            raise UsageError(f"sshfs {name} {value!r} is empty or has a character ssh misreads")


def _strict_ssh_options(target: SSHFSTarget) -> list[str]:
    """The ssh options of every hop: this identity only, these host keys only, no prompt."""
    return [f'IdentityFile="{target.identity_file}"', "IdentitiesOnly=yes", "IdentityAgent=none",
            "BatchMode=yes", "PasswordAuthentication=no", "KbdInteractiveAuthentication=no",
            "StrictHostKeyChecking=yes", f'UserKnownHostsFile="{target.known_hosts}"',
            "GlobalKnownHostsFile=/dev/null", f"ConnectTimeout={target.connect_timeout}"]


def _ssh_options(target: SSHFSTarget) -> list[str]:
    """The options of sshfs's ssh: the strict ones, and the jump hosts' ProxyCommand if any."""
    options = _strict_ssh_options(target)
    hops = [hop.strip() for hop in (target.proxy_jump or "").split(",") if hop.strip()]
    if hops:
        options.append("ProxyCommand=" + _proxy_command(hops, target))
    return options


def _proxy_command(hops: list[str], target: SSHFSTarget) -> str:
    """A ProxyCommand reaching %h:%p through `hops` (last hop nearest the target), each hop
    with the strict options (-J would let the jump hosts use ~/.ssh/config and its keys)."""
    *before, last = hops
    words = ["ssh", "-F", "/dev/null"]
    for option in _strict_ssh_options(target):
        words += ["-o", option]
    if before:  # ssh expands %-tokens once per level: double them for the inner command
        words += ["-o", "ProxyCommand=" + _proxy_command(before, target).replace("%", "%%")]
    words += ["-W", "[%h]:%p", last if last.startswith("ssh://") else f"ssh://{last}"]
    return shlex.join(words)


def sshfs_argv(target: SSHFSTarget, mountpoint: Path | str) -> list[str]:
    """The sshfs command mounting `target`'s `<root>/data` read-only at `mountpoint`.

    Strict host keys from `known_hosts` only, the given identity only (no agent, no password,
    never a prompt), `-F /dev/null` so no ssh_config of the consumer's user changes any of it;
    jump hosts (if any) checked the same way; keepalives and reconnect; caching chosen so a
    reader sees a producer's commit within milliseconds (see CACHE_OPTIONS).
    """
    _check_ssh_words(target)
    # contain_symlinks (sshfs's default since 3.7.2, named so an older sshfs refuses to mount):
    # a producer's symlink that leaves the mount (absolute, or with ..) cannot be followed.
    options = ["ro", "noexec", "contain_symlinks", *CACHE_OPTIONS, *KEEPALIVE_OPTIONS,
               "ssh_command=ssh -F /dev/null", *_ssh_options(target)]
    argv = ["sshfs", target.remote, str(mountpoint), "-p", str(target.port)]
    for option in options:
        argv += ["-o", _fuse_option(option)]
    return argv


def ssh_probe_argv(target: SSHFSTarget) -> list[str]:
    """The ssh command sshfs runs, alone: sshfs (not in debug mode) hides what ssh printed, so
    after a failed mount this one says why (host key, key refused, nothing listening)."""
    _check_ssh_words(target)
    argv = ["ssh", "-F", "/dev/null", "-p", str(target.port)]
    for option in _ssh_options(target):
        argv += ["-o", option]
    return [*argv, "-s", f"{target.user}@{target.host}", "sftp"]


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/<pid>/mountinfo, the parts sfarm looks at."""

    mount_point: str
    fs_type: str
    source: str


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Entries of a mountinfo text (proc(5)): mount point is field 5, then optional fields up
    to `-`, file system type and source; spaces and the like come escaped as \\040."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        if len(fields) < dash + 3:
            continue
        entries.append(MountEntry(_unescape(fields[4]), fields[dash + 1],
                                  _unescape(fields[dash + 2])))
    return entries


def describe_sshfs_failure(stderr: str, target: SSHFSTarget) -> str:
    """One sentence for why sshfs could not mount, from what it and ssh printed (naming the
    jump host rather than the producer when ssh says the jump host failed)."""
    where = f"{target.user}@{target.host}:{target.port}"
    text = stderr.strip()
    host_key = re.search(r"(?:Host key for|host key is known for) (\S+)", text)
    refused = re.search(r"^(\S+): Permission denied", text, re.MULTILINE)
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION" in text:
        who = host_key.group(1) if host_key else where
        cause = f"the host key of {who} is not the one in {target.known_hosts}"
    elif "Permission denied" in text:
        who = refused.group(1) if refused else where
        cause = f"{who} refused the key {target.identity_file} (not authorized there?)"
    elif "Connection refused" in text:
        cause = f"nothing listens on {where} (sshd down?)"
    elif "timed out" in text.lower():
        cause = f"{where} did not answer within {target.connect_timeout} s"
    elif "No such file" in text or "does not exist" in text:
        cause = f"{target.node_root}/data does not exist on {where}"
    else:
        cause = text.splitlines()[-1] if text else "sshfs exited without a message"
    return f"sshfs could not mount {target.remote}: {cause}"
