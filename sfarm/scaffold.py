"""`sfarm init`: write a new farm's inventory, a strategy and a .gitignore from templates/.

The inventory is the template with the farm's own name (its directory's) and an emulator port
that no farm on this machine listens on, so a new farm comes up beside the demo's."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from string import Template

from sfarm.errors import UsageError
from sfarm.resources import template

# template name -> path inside the new farm directory
SCAFFOLD = {
    "inventory.toml": Path("sfarm.toml"),
    "strategy.toml": Path("strategies/rsi_revert.toml"),
    "gitignore": Path(".gitignore"),
}
# The demo farm (inventory/local.toml) serves its emulator on 8900: a new farm takes the first
# free port after it.
EMULATOR_PORTS = range(8901, 9000)


def scaffold_farm(directory: Path, *, force: bool = False) -> list[Path]:
    """Copy the scaffold into `directory`; refuse to overwrite unless `force`."""
    targets = {name: directory / relative for name, relative in SCAFFOLD.items()}
    existing = [path for path in targets.values() if path.exists()]
    if existing and not force:
        raise UsageError(f"{', '.join(map(str, existing))} already exist(s)",
                         hint="pass --force to overwrite, or choose another directory")
    values = {"farm": farm_name(directory), "port": str(free_port(EMULATOR_PORTS))}
    written = []
    for name, target in targets.items():
        text = template(name).read_text(encoding="utf-8")
        if name == "inventory.toml":
            text = Template(text).substitute(values)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def farm_name(directory: Path) -> str:
    """The directory's name as a farm name (letters, digits, '-', '_', '.'; at most 64)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.resolve().name).strip("-._")
    return name[:64] or "farm"


def free_port(candidates: range) -> int:
    """The first port of `candidates` nothing listens on at 127.0.0.1 now; the last one when
    all are taken (validate and up say so if it still is)."""
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return candidates[-1]
