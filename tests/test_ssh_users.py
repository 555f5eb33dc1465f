"""User hosts (tests/fixtures/user_hosts.py): sshd servers on loopback that are separate unix
users, as separate machines would be. Each logs in as its own user, with its own home and
authorized_keys; no host reads another's files; the shared python has this sfarm; sfarm's numba
kernels compile and cache as that user; and a farm deploys to such a host and runs there."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pwd
from collections.abc import Callable
from pathlib import Path

import pytest

import sfarm
from tests.fixtures.processes import processes_under
from tests.fixtures.ssh_farm import ssh_farm
from tests.fixtures.sshd import SSHServer, generate_key
from tests.fixtures.user_hosts import ssh
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

# A tiny backtest through sfarm's Python API: indicators, then the compiled engine kernel and
# the metrics kernel (both numba, cache=True). Prints the result as JSON.
BACKTEST = """
import json
import numpy as np
import polars as pl
from sfarm.indicators import compute
from sfarm.trading.backtest import run_backtest
from sfarm.trading.jit import INTERPRETED_BELOW
from sfarm.trading.strategy import parse_strategy

DAY = 86_400_000
N = INTERPRETED_BELOW  # numba compiles the kernels from this many candles on
rng = np.random.default_rng(7)
close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03 / 8, N)))
open_ = np.r_[100.0, close[:-1]]
candles = pl.DataFrame({"ts": 1_600_000_000_000 // DAY * DAY + np.arange(N) * DAY // 24,
                        "open": open_, "high": np.maximum(open_, close) * 1.01,
                        "low": np.minimum(open_, close) * 0.99, "close": close,
                        "volume": rng.uniform(1, 10, N)})
strategy = parse_strategy('''[strategy]
name = "rsi"
indicators = ["rsi(14)"]
entry_long = "rsi_14 < 35"
exit_long = "rsi_14 > 60"
fee = 0.001
''')
result = run_backtest(compute(candles, ["rsi(14)"]), strategy, timeframe="1h", cash=1000.0)
print(json.dumps({"trades": result.run.trades.height,
                  "final_equity": result.metrics.final_equity,
                  "max_drawdown": result.metrics.max_drawdown}))
"""


@pytest.fixture
def hosts(user_hosts: Callable[[int], list[SSHServer]]) -> list[SSHServer]:
    return user_hosts(3)


def lines(server: SSHServer, command: str) -> list[str]:
    result = ssh(server, command)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_each_host_logs_in_as_its_own_user_in_its_own_home(hosts: list[SSHServer]) -> None:
    for server in hosts:
        assert server.home is not None
        user, home, cache, mode = lines(
            server, 'id -un; printf "%s\\n" "$HOME" "$NUMBA_CACHE_DIR"; stat -c %a "$HOME"')
        assert (user, home, mode) == (server.user, str(server.home), "700")
        assert cache == str(server.home / ".cache" / "numba")
        assert server.node_root.is_relative_to(server.home)
        assert server.node_root.stat().st_uid == pwd.getpwnam(server.user).pw_uid
    assert len({server.user for server in hosts}) == 3
    assert len({pwd.getpwnam(server.user).pw_uid for server in hosts}) == 3


def test_a_host_cannot_read_or_write_another_hosts_files(hosts: list[SSHServer]) -> None:
    a, b = hosts[:2]
    assert b.home is not None
    secret = b.home / "secret.txt"
    secret.write_text("b only\n")
    os.chown(secret, pwd.getpwnam(b.user).pw_uid, pwd.getpwnam(b.user).pw_gid)
    secret.chmod(0o644)  # even a world-readable file: B's home itself is closed
    assert lines(b, f"cat {secret}") == ["b only"]
    for attempt in (f"cat {secret}", f"ls {b.home}", f"cat {b.home}/.ssh/authorized_keys",
                    f"touch {b.node_root}/intruder", f"ls {b.node_root}"):
        result = ssh(a, attempt)
        assert result.returncode != 0 and "Permission denied" in result.stderr, attempt
    assert not (b.node_root / "intruder").exists()


def test_authorized_keys_are_separate(hosts: list[SSHServer], tmp_path: Path) -> None:
    """A key added to A's authorized_keys logs in to A only; A's sshd admits A's user only."""
    a, b = hosts[:2]
    other = tmp_path / "other_ed25519"
    public = generate_key(other, "only-for-a")
    added = ssh(a, "cat >> ~/.ssh/authorized_keys", input_text=public + "\n")
    assert added.returncode == 0, added.stderr
    assert lines(a, "id -un") == [a.user]
    with_other = ssh(a, "id -un", identity=other)
    assert with_other.returncode == 0 and with_other.stdout.split() == [a.user]
    refused = ssh(b, "id -un", identity=other)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    wrong_user = ssh(a, "id -un", user=b.user)  # the session key is in B's file, not A's sshd's
    assert wrong_user.returncode == 255 and "Permission denied" in wrong_user.stderr
    assert f"User {b.user} from 127.0.0.1 not allowed" in a.log.read_text()

    assert b.home is not None  # StrictModes: a file others may write is not trusted
    assert b.authorized_keys == b.home / ".ssh" / "authorized_keys"
    b.authorized_keys.chmod(0o622)
    loose = ssh(b, "id -un")
    assert loose.returncode == 255 and "bad ownership or modes" in b.log.read_text()


def test_the_shared_python_has_this_sfarm_on_every_host(hosts: list[SSHServer]) -> None:
    source = Path(sfarm.__file__).resolve()
    for server in hosts:
        assert server.python is not None
        assert lines(server, f"{server.python} -m sfarm --version") == \
            [f"sfarm {sfarm.__version__}"]
        imported = lines(server, f"{server.python} -c 'import sfarm; print(sfarm.__file__)'")
        assert imported == [str(source)]  # this checkout's source, not a copy


def test_numba_kernels_compile_and_cache_as_the_user(hosts: list[SSHServer]) -> None:
    server = hosts[0]
    assert server.home is not None and server.python is not None
    remote = ssh(server, f"nice {server.python} -", input_text=BACKTEST, timeout=180)
    assert remote.returncode == 0, remote.stderr
    local = io.StringIO()
    with contextlib.redirect_stdout(local):  # here: this process has compiled the kernels
        exec(BACKTEST, {})
    assert json.loads(remote.stdout) == json.loads(local.getvalue())
    assert json.loads(remote.stdout)["trades"] > 0
    cached = list((server.home / ".cache" / "numba").rglob("*.nbi"))
    assert {path.name.split("-")[0] for path in cached} >= {"kernel.simulate",
                                                             "metrics.equity_stats"}
    uid = pwd.getpwnam(server.user).pw_uid
    assert all(path.stat().st_uid == uid for path in cached)


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in raw if b"=" in entry)


def _pids_under(path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(path) in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_farm_deploys_and_runs_on_a_user_host(hosts: list[SSHServer]) -> None:
    server = hosts[0]
    assert server.home is not None
    with ssh_farm([server]) as farm:
        deploy = json.loads(farm.sfarm("deploy", "--json").stdout)["nodes"][0]
        assert deploy["ok"], deploy
        first = deploy["steps"][0]
        assert (first["step"], first["status"]) == ("sfarm", "ok"), first  # no venv made
        root = farm.root("node-a")
        assert root.is_relative_to(server.home)
        uid = pwd.getpwnam(server.user).pw_uid
        assert all(path.stat().st_uid == uid for path in [root, *root.rglob("*")])

        status = farm.status()["nodes"][0]
        assert status["reachable"] and status["error"] is None, status

        farm.sfarm("up")
        wait_for(farm.running_with_rows, what="mine-a and studies-a running on the user host")
        pids = _pids_under(root)
        assert pids, processes_under(root)
        for pid in pids:  # supervisord and its workers: the user's, with its cache and HOME
            assert Path(f"/proc/{pid}").stat().st_uid == uid
            environment = _environment(pid)
            assert environment["HOME"] == str(server.home)
            assert environment["NUMBA_CACHE_DIR"] == str(server.home / ".cache" / "numba")
        farm.sfarm("down")
        wait_for(lambda: not processes_under(root), what="no process left on the user host")
