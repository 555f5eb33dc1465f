"""What deploy ships to a node's venv: pinned dependencies and a digest of the source."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

from sfarm.remote.provision import SOURCE_PARTS, pinned_requirements, source_digest
from sfarm.resources import PROJECT_DIR


def test_dependencies_are_pinned_to_the_controllers_versions() -> None:
    pins = dict(pin.split("==") for pin in pinned_requirements())
    assert {"polars", "numpy", "ta-lib", "ccxt", "supervisor"} <= set(pins)
    assert all(version == importlib.metadata.version(name) for name, version in pins.items())
    assert "pytest" not in pins and "vectorbt" not in pins  # extras stay on the controller


def test_source_digest_changes_with_the_code_and_ignores_caches(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    for part in SOURCE_PARTS:
        source = PROJECT_DIR / part
        if source.is_dir():
            shutil.copytree(source, copy / part,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
        else:
            copy.mkdir(exist_ok=True)
            shutil.copy2(source, copy / part)
    digest = source_digest(copy)
    assert digest == source_digest(PROJECT_DIR)  # caches in the real tree do not count
    cache = copy / "sfarm" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "x.cpython-311.pyc").write_bytes(b"compiled")
    assert source_digest(copy) == digest
    (copy / "sfarm" / "errors.py").write_text((copy / "sfarm" / "errors.py").read_text() + "\n")
    assert source_digest(copy) != digest
