"""Pulling datasets from a producer's node root into a mirror: incremental, consistent while the
producer writes, and over real SSH with rsync."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sfarm import data
from sfarm.remote.connection import LocalConnection
from sfarm.remote.pull import pull
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.node import dataset_summaries
from tests.fixtures.cli import run_sfarm, sfarm_process
from tests.fixtures.sshd import SSHServer

MINUTE = 60_000
T0 = 1_700_000_000_000 // 86_400_000 * 86_400_000
CANDLES = "candles/sim/BTC-USDT/1m"


def minutes(start: int, count: int) -> pl.DataFrame:
    rng = np.random.default_rng(start)
    close = 100 + rng.random(count)
    return pl.DataFrame({"ts": T0 + (start + np.arange(count, dtype=np.int64)) * MINUTE,
                         "open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": rng.random(count)})


def test_pull_copies_then_only_what_is_new(tmp_path: Path) -> None:
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, minutes(0, 3 * 1440))  # three days
    connection = LocalConnection()
    assert [summary.id for summary in dataset_summaries(NodeRoot(producer))] == [CANDLES]

    first = pull(connection, str(producer), "miner-1", CANDLES, consumer)
    assert first.changed and first.rows == 3 * 1440 and first.files_transferred >= 1
    mirrored = data.read(consumer, CANDLES, mirror_of="miner-1")
    assert mirrored.equals(data.read(producer, CANDLES))
    assert data.verify(consumer, CANDLES, mirror_of="miner-1").ok

    again = pull(connection, str(producer), "miner-1", CANDLES, consumer)
    assert not again.changed and again.files_transferred == 0

    data.append(producer, CANDLES, minutes(3 * 1440, 60))  # an hour more: one day file moves
    later = pull(connection, str(producer), "miner-1", CANDLES, consumer)
    assert later.changed and later.rows == 3 * 1440 + 60
    assert later.files_transferred <= 2  # the new day's file, not the history
    assert data.read(consumer, CANDLES, mirror_of="miner-1").equals(data.read(producer, CANDLES))
    # Files the producer retired are gone from the mirror too.
    names = {p.name for p in data.dataset_dir(consumer, CANDLES, mirror_of="miner-1").iterdir()}
    source = {p.name for p in data.dataset_dir(producer, CANDLES).iterdir()}
    assert names - {".lock", ".pull.lock"} == source - {".lock"}


def test_pulls_while_the_producer_writes_always_give_a_whole_version(tmp_path: Path) -> None:
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, minutes(0, 1440))
    stop = threading.Event()

    def write() -> None:
        start = 1440
        while not stop.is_set():
            data.append(producer, CANDLES, minutes(start, 7))
            start += 7

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(15):
            result = pull(LocalConnection(), str(producer), "miner-1", CANDLES, consumer)
            mirrored = data.read(consumer, CANDLES, mirror_of="miner-1")
            assert mirrored.height == result.rows
            assert data.verify(consumer, CANDLES, mirror_of="miner-1").ok
            # A prefix of what the producer holds: never a mix of two versions.
            assert mirrored.equals(data.read(producer, CANDLES).head(mirrored.height))
    finally:
        stop.set()
        writer.join()


def test_a_copy_that_does_not_match_its_manifest_is_refused(tmp_path: Path) -> None:
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, minutes(0, 1440))
    pull(LocalConnection(), str(producer), "miner-1", CANDLES, consumer)
    data.append(producer, CANDLES, minutes(1440, 60))
    manifest = data.load_manifest(producer, CANDLES)
    assert manifest is not None
    newest = data.dataset_dir(producer, CANDLES) / manifest.partitions[-1].file
    raw = bytearray(newest.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size: only its sha256 tells
    newest.write_bytes(bytes(raw))
    with pytest.raises(data.StagedCopyInvalid,
                       match=f"{newest.name} does not match its manifest; the mirror is unchanged"):
        pull(LocalConnection(), str(producer), "miner-1", CANDLES, consumer)
    assert data.read(consumer, CANDLES, mirror_of="miner-1").height == 1440
    assert data.verify(consumer, CANDLES, mirror_of="miner-1").ok
    assert not (data.dataset_dir(consumer, CANDLES, mirror_of="miner-1") / ".incoming").exists()


def test_unknown_dataset_is_named(tmp_path: Path) -> None:
    (tmp_path / "producer" / "data").mkdir(parents=True)
    with pytest.raises(data.DatasetNotFound, match="no dataset candles/sim/ETH-USDT/1m"):
        pull(LocalConnection(), str(tmp_path / "producer"), "miner-1", "candles/sim/ETH-USDT/1m",
             tmp_path / "consumer")


@pytest.mark.slow
def test_data_pull_over_ssh(sshd: SSHServer, tmp_path: Path) -> None:
    base = tmp_path / "nodes"
    node_root = base / "prod" / "miner-1"
    data.append(node_root, CANDLES, minutes(0, 2 * 1440))
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text(
        'version = 1\n[farm]\nname = "x"\n[exchanges.sim]\nccxt = "binance"\n'
        '[tasks.mine]\nkind = "mine"\nexchange = "sim"\nmarkets = ["BTC/USDT"]\n'
        'timeframes = ["1m"]\nsince = "1d"\n'
        f'[networks.prod.nodes.miner-1]\nhost = "127.0.0.1"\nport = {sshd.port}\n'
        f'user = "{sshd.user}"\nidentity_file = "{sshd.client_key.private}"\n'
        # A farm's producer runs sfarm (deploy put it there): it lists its datasets itself.
        f'base_dir = "{base}"\npython = "{sys.executable}"\ntasks = ["mine"]\n')
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line + "\n")
    lab = tmp_path / "lab"
    result = run_sfarm(inventory, "data", "pull", "miner-1", "--root", str(lab), "--json",
                       env={"HOME": str(home)})
    document = json.loads(result.stdout)
    assert [d["id"] for d in document["datasets"]] == [CANDLES]
    assert document["datasets"][0]["rows"] == 2 * 1440
    assert data.read(lab, CANDLES, mirror_of="miner-1").equals(data.read(node_root, CANDLES))
    shown = sfarm_process("data", "ls", "--root", str(lab))
    assert shown.returncode == 0 and "miner-1" in shown.stdout
