"""Files that ship beside the package: templates/ and inventory/ of the source tree."""

from __future__ import annotations

from pathlib import Path

from sfarm.errors import RunError

PROJECT_DIR = Path(__file__).resolve().parent.parent


def templates_dir() -> Path:
    path = PROJECT_DIR / "templates"
    if not path.is_dir():
        raise RunError(f"templates not found at {path}",
                       hint="sfarm runs from its source tree (pip install -e .)")
    return path


def template(name: str) -> Path:
    return templates_dir() / name
