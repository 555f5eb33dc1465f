"""Crash safety: a writer SIGKILLed at random moments of its appends leaves a dataset that
verifies, whose "extra" matches its rows, and the next run resumes without gaps or duplicates."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sfarm import data
from sfarm.data.layout import LOCK_NAME
from tests.fixtures.data_helpers import CRASH_DATASET, T0, make_candles

PROJECT = Path(__file__).resolve().parent.parent
ENDLESS = 10**8  # target of the killed runs: more than they can write, so each is cut short
KILLS = 30


def start_writer(root: Path, seed: int, total: int = ENDLESS) -> subprocess.Popen[str]:
    code = (f"from tests.fixtures.data_helpers import crash_writer; "
            f"crash_writer({str(root)!r}, {total}, {seed})")
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               text=True, cwd=PROJECT, env=env)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


def assert_consistent(root: Path) -> int:
    """The dataset verifies, holds candles 0..rows-1 exactly, and its cursor says rows."""
    manifest = data.load_manifest(root, CRASH_DATASET)
    try:
        report = data.verify(root, CRASH_DATASET)
    except data.DatasetNotFound:
        assert manifest is None  # killed before its first write reached the disk
        return 0
    assert report.ok, report.problems
    if manifest is None:  # killed during the first append: nothing committed
        assert data.list_datasets(root) == []
        return 0
    assert manifest.extra["cursor"] == manifest.rows  # rows and extra committed together
    assert data.read(root, CRASH_DATASET).equals(make_candles(T0, manifest.rows))
    return manifest.rows


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    rng = random.Random(20240101)
    lock = data.dataset_dir(tmp_path, CRASH_DATASET) / LOCK_NAME
    kills, inside_append, progress = 0, 0, []
    while kills < KILLS:
        writer = start_writer(tmp_path, seed=kills)
        time.sleep(rng.uniform(0.0, 0.12))
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
        kills += 1
        # The lock file keeps the marker of a writer killed between taking and leaving it.
        inside_append += lock.exists() and lock.stat().st_size > 0
        progress.append(assert_consistent(tmp_path))
    assert progress[-1] > 0
    assert inside_append >= KILLS // 2, inside_append  # most kills hit an append at work
    total = progress[-1] + 5_000
    final = start_writer(tmp_path, seed=kills, total=total)
    assert final.communicate(timeout=240)[0] == "done\n" and final.returncode == 0
    assert assert_consistent(tmp_path) == total
    directory = data.dataset_dir(tmp_path, CRASH_DATASET)
    manifest = data.load_manifest(tmp_path, CRASH_DATASET)
    assert manifest is not None
    named = {p.file for p in manifest.partitions} | {s.file for s in manifest.segments}
    left = {n for n in os.listdir(directory) if n not in named} - {"_manifest.json", LOCK_NAME}
    assert left == set()  # the first append after the kills swept every leftover
    assert (directory / LOCK_NAME).stat().st_size == 0
