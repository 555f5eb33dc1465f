"""`sfarm init`: write a new farm's inventory, a strategy and a .gitignore from templates/."""

from __future__ import annotations

from pathlib import Path

from sfarm.errors import UsageError
from sfarm.resources import template

# template name -> path inside the new farm directory
SCAFFOLD = {
    "inventory.toml": Path("sfarm.toml"),
    "strategy.toml": Path("strategies/rsi_revert.toml"),
    "gitignore": Path(".gitignore"),
}


def scaffold_farm(directory: Path, *, force: bool = False) -> list[Path]:
    """Copy the scaffold into `directory`; refuse to overwrite unless `force`."""
    targets = {name: directory / relative for name, relative in SCAFFOLD.items()}
    existing = [path for path in targets.values() if path.exists()]
    if existing and not force:
        raise UsageError(f"{', '.join(map(str, existing))} already exist(s)",
                         hint="pass --force to overwrite, or choose another directory")
    written = []
    for name, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template(name).read_text(encoding="utf-8"), encoding="utf-8")
        written.append(target)
    return written
