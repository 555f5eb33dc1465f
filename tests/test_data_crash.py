"""Crash safety: a writer SIGKILLed at random moments of its appends leaves a dataset that
verifies, whose "extra" matches its rows, and the next run resumes without gaps or duplicates."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sfarm import data
from sfarm.data.layout import LOCK_NAME
from tests.fixtures.data_helpers import CRASH_DATASET, DAY_MS, T0, make_candles
from tests.fixtures.processes import start_python

ENDLESS = 10**8  # target of the killed runs: more than they can write, so each is cut short
KILLS = 30


def start_writer(root: Path, seed: int, total: int = ENDLESS) -> subprocess.Popen[str]:
    return start_python(f"from tests.fixtures.data_helpers import crash_writer; "
                        f"crash_writer({str(root)!r}, {total}, {seed})")


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
        if kills % 3 == 2:  # a third land past a first commit, however slow the machine is
            assert writer.stdout is not None and writer.stdout.readline() == "committed\n"
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
    assert final.communicate(timeout=240)[0] == "committed\ndone\n" and final.returncode == 0
    assert assert_consistent(tmp_path) == total
    directory = data.dataset_dir(tmp_path, CRASH_DATASET)
    manifest = data.load_manifest(tmp_path, CRASH_DATASET)
    assert manifest is not None
    named = {p.file for p in manifest.partitions} | {s.file for s in manifest.segments}
    left = {n for n in os.listdir(directory) if n not in named} - {"_manifest.json", LOCK_NAME}
    assert left == set()  # the first append after the kills swept every leftover
    assert (directory / LOCK_NAME).stat().st_size == 0


# Kill times as fractions of the merging append's duration: most inside it, some after it.
MERGE_KILL_AT = (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 1.2, 2.0)


@pytest.mark.slow
def test_sigkill_while_a_month_merges_into_one_file(tmp_path: Path) -> None:
    """The append that enters January rewrites December's 31 day files as one month file; killed
    anywhere in it, the dataset is December as it was or December merged plus the new candle."""
    december = make_candles(T0 - 31 * DAY_MS, 31 * 1440)
    template = tmp_path / "template"
    data.append(template, CRASH_DATASET, december)
    timing = tmp_path / "timing"
    shutil.copytree(template, timing)
    began = time.perf_counter()
    data.append(timing, CRASH_DATASET, make_candles(T0, 1))
    merge_seconds = time.perf_counter() - began
    hits, merged = 0, 0
    for kill, fraction in enumerate(MERGE_KILL_AT):
        root = tmp_path / f"kill{kill}"
        shutil.copytree(template, root)
        writer = start_january_writer(root)
        time.sleep(fraction * merge_seconds)
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) in (-signal.SIGKILL, 0)  # 0: it finished first
        hits += (data.dataset_dir(root, CRASH_DATASET) / LOCK_NAME).stat().st_size > 0
        manifest = data.load_manifest(root, CRASH_DATASET)
        assert manifest is not None and data.verify(root, CRASH_DATASET).ok
        keys = [p.key for p in manifest.partitions]
        if manifest.rows == december.height:
            assert keys == [f"2023-12-{day:02d}" for day in range(1, 32)]
        else:
            assert keys == ["2023-12", "2024-01-01"] and manifest.rows == december.height + 1
            merged += 1
        result = data.append(root, CRASH_DATASET, make_candles(T0, 1))  # sweeps, then merges
        assert result.rows_added + result.rows_skipped == 1
        assert data.read(root, CRASH_DATASET).equals(make_candles(T0 - 31 * DAY_MS, 31 * 1440 + 1))
        assert data.verify(root, CRASH_DATASET).ok
        directory = data.dataset_dir(root, CRASH_DATASET)
        assert sorted(n for n in os.listdir(directory) if n.endswith(".parquet")) == [
            "2023-12.g2.parquet", "2024-01-01.g2.parquet"]
    print(f"kills inside the merging append: {hits} of {len(MERGE_KILL_AT)}, {merged} after "
          "its commit")
    assert hits >= 2, hits  # some kills landed inside the merging append


def start_january_writer(root: Path) -> subprocess.Popen[str]:
    return start_python("from sfarm.data import store; from tests.fixtures.data_helpers import T0, "
                        "CRASH_DATASET, make_candles; print('ready', flush=True); "
                        f"store.append({str(root)!r}, CRASH_DATASET, make_candles(T0, 1))")
