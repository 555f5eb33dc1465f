"""The Connection contract: one set of tests run against LocalConnection and SSHConnection (real
sshd on 127.0.0.1), plus the pure helpers (argv quoting, rsync's itemized output)."""

from __future__ import annotations

import os
import secrets
import shlex
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfarm.errors import UsageError
from sfarm.remote.connection import (
    CommandResult,
    Connection,
    Failure,
    LocalConnection,
    TransportError,
    describe_command,
    expand_home,
    remote_command,
)
from sfarm.remote.ssh import SSHConnection
from sfarm.rsync import SyncChange, local_rsync_path, parse_itemized
from tests.fixtures.processes import alive
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for

LITERAL_WORDS = ["a b", "it's", '"quoted"', "$HOME", "${PATH}", "`id`", "$(id)", "*", "~",
                 "a;b", "x|y", "back\\slash", "new\nline", "", "üñí", "-n"]

# --- pure helpers ----------------------------------------------------------------------------


def test_remote_command_quotes_every_word() -> None:
    line = remote_command(["printf", "%s", *LITERAL_WORDS])
    assert shlex.split(line) == ["printf", "%s", *LITERAL_WORDS]


def test_remote_command_puts_env_first_and_checks_names() -> None:
    line = remote_command(["echo", "x"], {"A": "1 2", "B_2": "$x"})
    assert shlex.split(line) == ["env", "A=1 2", "B_2=$x", "echo", "x"]
    for bad in ("1A", "A-B", "A B", "", "A=B"):
        with pytest.raises(UsageError, match="environment variable name"):
            remote_command(["true"], {bad: "x"})
    with pytest.raises(UsageError):
        remote_command([])


def test_describe_command_is_cut() -> None:
    assert describe_command(["echo", "a b"]) == "echo 'a b'"
    assert len(describe_command(["x" * 500])) == 200


def test_stderr_tail_keeps_last_non_empty_lines() -> None:
    result = CommandResult(1, b"", b"\n".join(f"line {n}".encode() for n in range(10)) + b"\n\n")
    assert result.stderr_tail(3) == "line 7\nline 8\nline 9"
    assert not result.ok


def test_expand_home_and_local_rsync_paths() -> None:
    assert expand_home("~", "/home/u") == "/home/u"
    assert expand_home("~/a/b", "/home/u/") == "/home/u/a/b"
    assert expand_home("/abs/~x", "/home/u") == "/abs/~x"
    assert expand_home("~other/x", "/home/u") == "~other/x"
    assert local_rsync_path("host:dir/x") == "./host:dir/x"  # never taken for a remote spec
    assert local_rsync_path("/abs/host:x") == "/abs/host:x"
    assert local_rsync_path("dir/a:b") == "dir/a:b"


RECORDED_ITEMIZE = """\
created directory /tmp/dst
cd+++++++++ ./
>f+++++++++ a file.txt
cd+++++++++ sub/
<f.st...... sub/data.bin
.d..t...... sub/deeper/
cL+++++++++ link -> sub
hf+++++++++ hard => a file.txt
*deleting   old name.txt
.f...p..... mode-only

sent 1,234 bytes  received 56 bytes  2,580.00 bytes/sec
"""


def test_parse_itemized_recorded_output() -> None:
    result = parse_itemized(RECORDED_ITEMIZE)
    assert result.changed
    assert result.changes[1] == SyncChange("a file.txt", "transfer", ">f+++++++++")
    assert result.paths("transfer") == ["a file.txt", "sub/data.bin"]
    assert result.paths("create") == ["./", "sub/", "link"]
    assert result.paths("delete") == ["old name.txt"]
    assert result.paths("attributes") == ["sub/deeper/", "mode-only"]
    assert result.paths("link") == ["hard => a file.txt"]
    assert not parse_itemized("\nsent 10 bytes  received 20 bytes\n").changed


# --- one contract, two transports ------------------------------------------------------------


@pytest.fixture(params=["local", "ssh"])
def conn(request: pytest.FixtureRequest) -> Iterator[Connection]:
    if request.param == "local":
        connection: LocalConnection | SSHConnection = LocalConnection()
    else:
        server: SSHServer = request.getfixturevalue("sshd")
        connection = SSHConnection(server.node(), known_hosts=server.known_hosts)
    with connection:
        yield connection


def test_run_returns_exit_code_stdout_and_stderr(conn: Connection) -> None:
    result = conn.run(["sh", "-c", "printf out; printf err >&2; exit 3"], check=False)
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out", b"err")
    assert result.argv == ("sh", "-c", "printf out; printf err >&2; exit 3")
    assert conn.run(["true"]).ok


def test_run_passes_argv_literally(conn: Connection) -> None:
    result = conn.run(["printf", "[%s]", *LITERAL_WORDS])
    assert result.stdout_text == "".join(f"[{word}]" for word in LITERAL_WORDS)


def test_run_feeds_binary_input_without_deadlock(conn: Connection) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB both ways: stdin and stdout must flow together
    result = conn.run(["cat"], input=data)
    assert result.stdout == data
    assert conn.run(["cat"]).stdout == b""  # no input: end-of-file at once, never a hang


def test_run_adds_environment_variables(conn: Connection) -> None:
    result = conn.run(["sh", "-c", 'printf "%s|%s" "$SFARM_A" "$HOME"'],
                      env={"SFARM_A": "x y $z"})
    value, home = result.stdout_text.split("|")
    assert value == "x y $z"
    assert home  # the rest of the environment is still there
    with pytest.raises(UsageError):
        conn.run(["true"], env={"BAD NAME": "x"})


def test_failed_command_message_has_exit_code_and_stderr_but_no_secrets(
        conn: Connection, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    with pytest.raises(TransportError) as failure:
        conn.run(["sh", "-c", "echo first >&2; echo 'last words' >&2; exit 4"],
                 env={"API_SECRET": "s3cr3t-value"})
    error = failure.value
    assert error.cause is Failure.COMMAND_FAILED
    assert "exit code 4" in error.message and "last words" in error.message
    assert error.result is not None and error.result.exit_code == 4
    assert "s3cr3t-value" not in str(error) + (error.hint or "") + caplog.text


def test_missing_command_is_exit_127(conn: Connection) -> None:
    result = conn.run(["sfarm-no-such-command", "x"], check=False)
    assert result.exit_code == 127
    assert b"sfarm-no-such-command" in result.stderr


def test_output_is_untouched_when_a_timeout_is_set(conn: Connection) -> None:
    result = conn.run(["sh", "-c", "echo out; echo err >&2"], timeout=30)
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")


def test_timeout_terminates_the_command(conn: Connection, tmp_path: Path) -> None:
    """The command would sleep longer than the test may run (pytest's timeout): `run` can only
    return through its own timeout, and the command is gone afterwards."""
    pid_file = tmp_path / "pid"
    with pytest.raises(TransportError) as failure:
        conn.run(["sh", "-c", 'echo $$ > "$1"; exec sleep 3600', "sh", str(pid_file)],
                 timeout=1)
    assert failure.value.cause is Failure.TIMEOUT
    assert "timed out after 1 s" in failure.value.message
    pid = int(pid_file.read_text())
    wait_for(lambda: not alive(pid), what=f"the timed-out command (pid {pid}) to end")
    assert conn.run(["echo", "still usable"]).stdout == b"still usable\n"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_put_and_get_round_trip_with_modes(conn: Connection, tmp_path: Path) -> None:
    target = tmp_path / "secret.toml"
    target.write_bytes(b"old")
    target.chmod(0o644)
    data = b"key = 'v'\n\x00\xff" * 1000
    conn.put(data, str(target), mode=0o600)
    assert _mode(target) == 0o600
    assert conn.get(str(target)) == data
    conn.put(b"#!/bin/sh\necho hi\n", str(tmp_path / "tool"), mode=0o755)
    assert _mode(tmp_path / "tool") == 0o755
    assert conn.run([str(tmp_path / "tool")]).stdout == b"hi\n"
    conn.put(b"", str(target), mode=0o600)  # empty files too; still 0600
    assert conn.get(str(target)) == b"" and _mode(target) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["secret.toml", "tool"]


def test_get_missing_file_is_none_and_put_needs_the_directory(conn: Connection,
                                                              tmp_path: Path) -> None:
    assert conn.get(str(tmp_path / "absent")) is None
    with pytest.raises(TransportError) as failure:
        conn.put(b"x", str(tmp_path / "no-such-dir" / "file"))
    assert failure.value.cause is Failure.TRANSFER_FAILED
    assert "no-such-dir" in failure.value.message
    with pytest.raises(TransportError):
        conn.get(str(tmp_path))  # a directory is not a file


def test_home_is_what_tilde_means_on_the_node(conn: Connection) -> None:
    """Asked of the node, not of this process: the test's $HOME need not be the login user's
    home (sshd gives a login the passwd entry's home, whatever HOME the tests run with)."""
    assert conn.home() == conn.run(["sh", "-c", "printf %s ~"]).stdout_text
    if isinstance(conn, SSHConnection):
        user = conn.run(["id", "-un"]).stdout_text.strip()
        entry = conn.run(["getent", "passwd", user]).stdout_text.strip()
        assert conn.home() == entry.split(":")[5]


def test_tilde_paths_are_under_home(conn: Connection, tmp_path: Path) -> None:
    name = f".sfarm-test-{secrets.token_hex(4)}"
    in_home = Path(conn.home()) / name
    try:
        conn.run(["mkdir", str(in_home)])
        conn.put(b"tilde", f"~/{name}/file", mode=0o600)
        assert (in_home / "file").read_bytes() == b"tilde"
        assert conn.get(f"~/{name}/file") == b"tilde"
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "x").write_text("x")
        conn.rsync(f"{tmp_path / 'src'}/", f"~/{name}/tree", pull=False)
        conn.rsync(f"~/{name}/tree/", str(tmp_path / "back"), pull=True)
        assert (tmp_path / "back" / "x").read_text() == "x"
    finally:
        conn.run(["rm", "-rf", str(in_home)])


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every file's bytes and every symlink's target, relative to root."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = os.readlink(path)
        elif path.is_file():
            found[name] = path.read_bytes()
    return found


def _make_tree(root: Path) -> None:
    (root / "sub dir" / "deeper").mkdir(parents=True)
    (root / "a file.txt").write_text("alpha")
    (root / "sub dir" / "deeper" / "data.bin").write_bytes(bytes(range(256)))
    (root / "colon:name").write_text("c")
    (root / "scratch.tmp").write_text("not copied")
    (root / "link").symlink_to("sub dir")
    (root / "private").write_text("p")
    (root / "private").chmod(0o600)


@pytest.mark.parametrize("pull", [False, True], ids=["push", "pull"])
def test_rsync_tree_incrementally(conn: Connection, tmp_path: Path, pull: bool) -> None:
    source, destination = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    _make_tree(source)
    first = conn.rsync(f"{source}/", str(destination), pull=pull, excludes=["*.tmp"])
    expected = _tree(source)
    del expected["scratch.tmp"]
    if pull:  # a node's files are untrusted: a pull copies no symlink
        del expected["link"]
    assert _tree(destination) == expected
    assert (destination / "link").is_symlink() != pull
    assert _mode(destination / "private") == 0o600
    assert "a file.txt" in first.paths("transfer")
    assert "scratch.tmp" not in first.paths()

    assert not conn.rsync(f"{source}/", str(destination), pull=pull, excludes=["*.tmp"]).changed

    (source / "a file.txt").write_text("alpha, longer now")
    (source / "sub dir" / "deeper" / "data.bin").unlink()
    kept = conn.rsync(f"{source}/", str(destination), pull=pull, excludes=["*.tmp"])
    assert kept.paths("transfer") == ["a file.txt"]
    assert (destination / "sub dir" / "deeper" / "data.bin").exists()  # no delete asked

    pruned = conn.rsync(f"{source}/", str(destination), pull=pull, delete=True,
                        excludes=["*.tmp"])
    assert pruned.paths("delete") == ["sub dir/deeper/data.bin"]
    assert (destination / "a file.txt").read_text() == "alpha, longer now"


def test_rsync_failure_is_reported(conn: Connection, tmp_path: Path) -> None:
    with pytest.raises(TransportError) as failure:
        conn.rsync(str(tmp_path / "absent") + "/", str(tmp_path / "dst"), pull=True)
    assert failure.value.cause is Failure.TRANSFER_FAILED
    assert "exit code 23" in failure.value.message and "absent" in failure.value.message
