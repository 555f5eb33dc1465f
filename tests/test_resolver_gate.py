"""The farm key's gate (sfarm.resolver.gate) without sshd: which requests it serves (checked on
what rsync's client really sends), the change stream, refusals, leftover snapshots, start-up.
Over real sshd: tests/test_resolver_farm_key.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sfarm import data
from sfarm.resolver import gate
from sfarm.resolver.gate_request import (
    PullRequest,
    Refused,
    WatchRequest,
    normalised_roots,
    parse_request,
)
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.farm_key import Lines, farm_pull_options

CANDLES = "candles/sim/BTC-USDT/1m"
MINUTE = 60_000
GATE = [sys.executable, "-I", "-m", "sfarm.resolver.gate"]


# -- which requests are served ----------------------------------------------------------------

ROOTS = normalised_roots(["/srv/a", "/srv/b/"])


def client_command(tmp_path: Path, *rsync_arguments: str) -> str:
    """What rsync's client asks the remote side to run (SSH_ORIGINAL_COMMAND) for these
    arguments, recorded by a remote shell that runs nothing."""
    record = tmp_path / "sent"
    shell = tmp_path / "record.sh"
    shell.write_text('#!/bin/sh\nwhile [ "$1" = -l ]; do shift 2; done\nshift\n'
                     f'echo "$*" > {record}\nexit 1\n')
    shell.chmod(0o755)
    subprocess.run(["rsync", *rsync_arguments, "-e", str(shell)], capture_output=True,
                   check=False, cwd=tmp_path)
    return record.read_text().rstrip("\n")


def test_the_pull_rsync_sends_for_sfarm_options_is_served(tmp_path: Path) -> None:
    sent = client_command(tmp_path, *farm_pull_options(tmp_path / "mirror"),
                          f"u@h:/srv/b/data/{CANDLES}/", str(tmp_path / "staging") + "/")
    request = parse_request(sent, ROOTS)
    assert isinstance(request, PullRequest)
    assert (request.root, request.dataset_id) == ("/srv/b", CANDLES)
    assert sent.startswith("rsync --server --sender ")
    assert sent.endswith(f" . /srv/b/data/{CANDLES}/")
    assert gate.rrsync_command(request.options) == \
        sent.replace(f" . /srv/b/data/{CANDLES}/", " . ./")

    with_itemize = client_command(tmp_path, "-a", "--itemize-changes", "--bwlimit=300",
                                  f"u@h:/srv/a//data/./{CANDLES}/", "dest/")
    assert parse_request(with_itemize, ROOTS) == PullRequest(
        "/srv/a", CANDLES, tuple(with_itemize.split()[3:-2]))


def test_secluded_args_are_refused(tmp_path: Path) -> None:
    sent = client_command(tmp_path, "-a", "-s", f"u@h:/srv/a/data/{CANDLES}/", "dest/")
    assert sent.split()[:3] == ["rsync", "--server", "--sender"] and " . " not in sent
    with pytest.raises(Refused, match="secluded"):
        parse_request(sent, ROOTS)


def test_the_watch_request() -> None:
    assert parse_request(f"sfarm-watch /srv/a/ {CANDLES} sessions/paper/equity", ROOTS) == \
        WatchRequest("/srv/a", (CANDLES, "sessions/paper/equity"))


@pytest.mark.parametrize("command", [
    None, "", "   ", "id", "sh -c id", "cat /srv/a/secrets/api.key", "bash", "scp -f /srv/a",
    "internal-sftp", "sfarm-watch", f"sfarm-watch /srv/c {CANDLES}", "sfarm-watch /srv/a",
    f"sfarm-watch /srv/a/../a {CANDLES}", "sfarm-watch /srv/a sessions/../..",
    f"sfarm-watch /srv/a {CANDLES}; id", f"sfarm-watch $(id) {CANDLES}", "sfarm-watch 'x",
    "rsync --server -logDtpre.iLsfxCIvu . /srv/a/data/candles/sim/BTC-USDT/1m/",
    "rsync --server --sender -e.LsfxCIvu . /srv/a/secrets/",
    "rsync --server --sender -e.LsfxCIvu . /srv/a/data/../secrets/",
    "rsync --server --sender -e.LsfxCIvu . /srv/a/data/sessions/../../secrets/",
    "rsync --server --sender -e.LsfxCIvu . /etc/",
    "rsync --server --sender -e.LsfxCIvu . /srv/c/data/candles/sim/BTC-USDT/1m/",
    "rsync --server --sender -e.LsfxCIvu . /srv/a/data/",
    "rsync --server --sender -e.LsfxCIvu . /srv/a/data/candles/sim/BTC-USDT/1m",
    "rsync --server --sender -e.LsfxCIvu . /srv/a/data/candles/sim/BTC-USDT/nope/",
    "rsync --server --sender -e.LsfxCIvu . /srv/a/data/sessions/.x/y/",
    "rsync --server --sender -e.LsfxCIvu . /srv/a/data/candles/sim/BTC-USDT/1m/ /etc/",
    "rsync --server --sender -e.LsfxCIvu /srv/a/data/candles/sim/BTC-USDT/1m/",
    "rsync --server --sender '-e.Ls x' . /srv/a/data/candles/sim/BTC-USDT/1m/",
    "rsync --server --sender --rsh=sh . /srv/a/data/candles/sim/BTC-USDT/1m/ x",
    "/usr/bin/rsync --server --sender -e.Ls . /srv/a/data/candles/sim/BTC-USDT/1m/",
    "flock --shared /srv/a/data/candles/sim/BTC-USDT/1m/.lock rsync --server --sender -e.Ls . "
    "/srv/a/data/candles/sim/BTC-USDT/1m/",
])
def test_everything_else_is_refused(command: str | None) -> None:
    with pytest.raises(Refused):
        parse_request(command, ROOTS)


def test_a_wrong_authorized_line_serves_nothing() -> None:
    for roots in ([], ["relative"], ["/srv/../etc"]):
        with pytest.raises(ValueError):
            normalised_roots(roots)


# -- the gate as sshd runs it, without sshd ---------------------------------------------------

def run_gate(roots: list[str], command: str | None) -> subprocess.Popen[bytes]:
    """The gate as sshd starts it for the farm key, with `command` as SSH_ORIGINAL_COMMAND."""
    environment = {key: value for key, value in os.environ.items()
                   if key != "SSH_ORIGINAL_COMMAND"}
    if command is not None:
        environment["SSH_ORIGINAL_COMMAND"] = command
    return subprocess.Popen([*GATE, *roots], env=environment, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("command", [None, "id", "rsync --server -e.Ls . /srv/a/data/x/"])
def test_a_refusal_is_one_line_saying_what_the_key_may_do(command: str | None) -> None:
    process = run_gate(["/srv/a", "/srv/b"], command)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 1 and stdout == b""
    lines = stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sfarm farm key: refused")
    assert "sfarm-watch ROOT ID" in lines[0] and "/srv/a, /srv/b" in lines[0]


def test_no_rrsync_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    data.append(root, CANDLES, make_candles(T0, 10))
    monkeypatch.setattr(gate, "RRSYNC_PLACES", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND",
                       f"rsync --server --sender -e.Ls . {root}/data/{CANDLES}/")
    assert gate.main([str(root)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "rrsync is not installed" in lines[0]
    assert not (root / gate.SNAPSHOTS_DIR).exists()


def test_the_watch_reports_changes_and_stays_alive(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data.append(root, CANDLES, make_candles(T0, 10))
    later = "candles/sim/ETH-USDT/1m"
    process = run_gate([str(root)], f"sfarm-watch {root} {CANDLES} {later}")
    assert process.stdout is not None
    lines = Lines(process.stdout)
    try:
        assert lines.next(10)[1] == f"changed {CANDLES}"
        for dataset_id, start in ((CANDLES, 10), (later, 0), (CANDLES, 20)):
            time.sleep(0.2)
            data.append(root, dataset_id, make_candles(T0 + start * MINUTE, 10))
            committed = time.monotonic()
            arrived, line = lines.next_except_alive(5)
            assert line == f"changed {dataset_id}" and arrived - committed < 0.5
        quiet_from = time.monotonic()
        arrived, line = lines.next(3)
        assert line == "alive" and 0.8 < arrived - quiet_from < 1.6
        assert lines.next(3)[1] == "alive"
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("how", ["SIGHUP", "SIGTERM", "reader gone"])
def test_the_watch_ends_quietly(tmp_path: Path, how: str) -> None:
    root = tmp_path / "root"
    data.append(root, CANDLES, make_candles(T0, 10))
    process = run_gate([str(root)], f"sfarm-watch {root} {CANDLES}")
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == f"changed {CANDLES}\n".encode()
    if how == "reader gone":
        process.stdout.close()  # the next line (`alive`, within a second) finds no reader
    else:
        process.send_signal(getattr(signal, how))
    assert process.wait(10) == 0
    assert process.stderr.read() == b""  # no traceback


def test_stale_snapshots_go_unless_a_gate_serves_them(tmp_path: Path) -> None:
    import fcntl

    snapshots = tmp_path / gate.SNAPSHOTS_DIR
    snapshots.mkdir()
    for name in ("killed", "served", "young"):
        (snapshots / name).mkdir()
        (snapshots / name / "_manifest.json").write_text("{}")
    old = time.time() - gate.STALE_SNAPSHOT_S - 60
    for name in ("killed", "served"):
        os.utime(snapshots / name, (old, old))
    served = os.open(snapshots / "served", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(served, fcntl.LOCK_EX)
        gate.remove_stale_snapshots(snapshots, time.time())
    finally:
        os.close(served)
    assert sorted(os.listdir(snapshots)) == ["served", "young"]


def test_the_gate_starts_without_the_heavy_libraries(tmp_path: Path) -> None:
    probe = ("import sys, sfarm.resolver.gate; "
             "print(' '.join(sorted(m for m in ('pydantic', 'polars', 'typer', 'numpy', "
             "'rich', 'fabric', 'paramiko') if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True,
                            check=True, timeout=60)
    assert result.stdout.decode().strip() == ""

