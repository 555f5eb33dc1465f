"""SSHFS transport: a consumer reads a producer's datasets through a read-only mount of the
producer's `<root>/data` at the consumer's `mirror/<producer>/`, instead of copying them.

The mount uses a separate key whose authorized line on the producer forces `sftp-server -R`
(read-only, `sftp_authorized_line`). That is all an authorized_keys line can do for sftp: the
key reads whatever the producer's unix user can read, not only `data/`. This module probes FUSE
and mounts and unmounts; the pure parts (the line, the command, mountinfo) are in
`sfarm.resolver.sshfs_command` and re-exported here.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from sfarm.errors import RunError
from sfarm.resolver.sshfs_command import (
    CACHE_OPTIONS,
    KEEPALIVE_OPTIONS,
    SFTP_SERVER_CANDIDATES,
    SSHFS_FS_TYPE,
    MountEntry,
    SSHFSTarget,
    describe_sshfs_failure,
    mirror_mountpoint,
    parse_mountinfo,
    sftp_authorized_line,
    ssh_probe_argv,
    sshfs_argv,
)

__all__ = [
    "CACHE_OPTIONS", "KEEPALIVE_OPTIONS", "SFTP_SERVER_CANDIDATES", "SSHFS_FS_TYPE",
    "MountEntry", "SSHFSTarget", "describe_sshfs_failure", "fuse_problem", "is_mounted",
    "mirror_mountpoint", "mount", "mount_entry", "parse_mountinfo", "sftp_authorized_line",
    "ssh_probe_argv", "sshfs_argv", "unmount",
]

FUSE_DEVICE = Path("/dev/fuse")
MOUNT_TIMEOUT = 30.0  # seconds for sshfs to connect and mount (it daemonizes once mounted)


# ---- I/O: probing FUSE, mounting, unmounting --------------------------------------------------

def _fusermount() -> str | None:
    return shutil.which("fusermount3") or shutil.which("fusermount")


def fuse_problem() -> str | None:
    """Why this process's user cannot make sshfs mounts here, or None when it can.

    In order: sshfs and fusermount3 installed, /dev/fuse present and open to this user, then a
    trial mount of an empty FUSE file system on a temporary directory (unmounted at once),
    which is what finds a container or a policy that forbids mounting.
    """
    if shutil.which("sshfs") is None:
        return "sshfs is not installed (apt-get install sshfs)"
    fusermount = _fusermount()
    if fusermount is None:
        return "fusermount3 is not installed (apt-get install fuse3)"
    if not FUSE_DEVICE.exists():
        return f"{FUSE_DEVICE} does not exist (no FUSE in this kernel, or a container without it)"
    if not os.access(FUSE_DEVICE, os.R_OK | os.W_OK):
        return _device_denied(FUSE_DEVICE)
    return _trial_mount(fusermount)


def _device_denied(device: Path) -> str:
    import grp
    import pwd
    import stat

    info = device.stat()
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(info.st_gid).gr_name
    owner = pwd.getpwuid(info.st_uid).pw_name
    return (f"user {user} may not open {device} ({stat.filemode(info.st_mode)} {owner}:{group}): "
            f"give it a group the user is in (`chgrp fuse {device}; chmod 660 {device}; "
            f"adduser {user} fuse`) or make it 0666")


def _trial_mount(fusermount: str) -> str | None:
    """Mount as libfuse does for a user (fusermount3 hands the /dev/fuse descriptor back over
    the socket named by _FUSE_COMMFD), then unmount; None when it worked."""
    directory = tempfile.mkdtemp(prefix="sfarm-fuse-probe-")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with ours, theirs:
            done = subprocess.run(
                [fusermount, "-o", "ro,nosuid,nodev,noexec,fsname=sfarm-probe", "--", directory],
                env={**os.environ, "_FUSE_COMMFD": str(theirs.fileno())},
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, capture_output=True,
                text=True, timeout=10)
            if done.returncode != 0:
                detail = done.stderr.strip() or f"{fusermount} exited with {done.returncode}"
                return f"FUSE mounts are not allowed here: {detail}"
            theirs.close()
            _, fds, _, _ = socket.recv_fds(ours, 1, 1)
            for fd in fds:  # closing the device aborts the empty file system
                os.close(fd)
            subprocess.run([fusermount, "-u", "-z", directory], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as error:
        return f"a trial FUSE mount failed: {error}"
    finally:
        if not is_mounted(directory):
            os.rmdir(directory)
    return None


def _canonical(mountpoint: Path | str) -> str:
    """The mount point as mountinfo spells it. The mount itself is not resolved: on a dead
    mount any look at it fails with ENOTCONN."""
    path = Path(os.path.abspath(mountpoint))
    return str(Path(os.path.realpath(path.parent)) / path.name)


def mount_entry(mountpoint: Path | str) -> MountEntry | None:
    """The topmost mount at `mountpoint` in this process's mount namespace, or None."""
    wanted = _canonical(mountpoint)
    entries = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    return next((e for e in reversed(entries) if e.mount_point == wanted), None)


def is_mounted(mountpoint: Path | str) -> bool:
    """True when something is mounted at `mountpoint` (a dead FUSE mount included)."""
    return mount_entry(mountpoint) is not None


def _dead(mountpoint: Path | str) -> bool:
    """The FUSE daemon behind the mount is gone (ENOTCONN). A producer that does not answer
    is not a dead mount: sshfs reconnects by itself."""
    try:
        os.stat(mountpoint)
    except OSError as error:
        return error.errno == errno.ENOTCONN
    return False


def mount(target: SSHFSTarget, mountpoint: Path | str) -> bool:
    """Mount `target`'s data read-only at `mountpoint` (created if missing); False when that
    mount is already there and alive. A dead mount, or another mount at that place, is
    unmounted first. RunError naming the cause (host key, key refused, sshd down, sshfs
    missing) when it cannot mount.
    """
    entry = mount_entry(mountpoint)
    if entry is not None:
        if (entry.fs_type == SSHFS_FS_TYPE and entry.source == target.remote
                and not _dead(mountpoint)):
            return False
        unmount(mountpoint)
    if shutil.which("sshfs") is None:
        raise RunError(f"cannot mount {target.remote}: sshfs is not installed",
                       hint="apt-get install sshfs")
    argv = sshfs_argv(target, mountpoint)
    Path(mountpoint).mkdir(parents=True, exist_ok=True)
    # stderr to a file, not a pipe: the ssh that sshfs starts keeps its stderr for the life of
    # the mount, so reading a pipe to its end would wait for the unmount.
    with tempfile.TemporaryFile("w+") as stderr:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=stderr, timeout=MOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            unmount(mountpoint)
            raise RunError(f"sshfs did not mount {target.remote} within "
                           f"{MOUNT_TIMEOUT:.0f} s") from None
        stderr.seek(0)
        message = stderr.read()
    if done.returncode != 0:
        raise RunError(describe_sshfs_failure(f"{_ssh_says(target)}\n{message}", target))
    if not is_mounted(mountpoint):
        raise RunError(f"sshfs exited cleanly but nothing is mounted at {mountpoint}: {message}")
    return True


def _ssh_says(target: SSHFSTarget) -> str:
    """What ssh prints when it connects as sshfs would (empty when it connects fine)."""
    try:
        done = subprocess.run(ssh_probe_argv(target), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=MOUNT_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"ssh timed out after {MOUNT_TIMEOUT:.0f} s"
    return done.stderr if done.returncode != 0 else ""


def unmount(mountpoint: Path | str) -> bool:
    """Unmount whatever is mounted at `mountpoint` (stacked mounts too); False when nothing
    was. A busy mount (a reader has a file open) is detached lazily: gone from the tree now,
    released when its last file closes. RunError when something stays mounted."""
    fusermount = _fusermount()
    unmounted = False
    for _ in range(3):
        if not is_mounted(mountpoint):
            return unmounted
        command = [fusermount, "-u"] if fusermount else ["umount"]
        done = subprocess.run([*command, str(mountpoint)], capture_output=True, text=True)
        if done.returncode != 0 and is_mounted(mountpoint):
            done = subprocess.run([*command, "-z" if fusermount else "-l", str(mountpoint)],
                                  capture_output=True, text=True)
        if done.returncode != 0 and is_mounted(mountpoint):
            raise RunError(f"could not unmount {mountpoint}: {done.stderr.strip()}")
        unmounted = True
    if is_mounted(mountpoint):
        raise RunError(f"{mountpoint} is still mounted after 3 unmounts")
    return unmounted
