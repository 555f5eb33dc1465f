"""Files that ship inside the package, read through importlib.resources: found wherever sfarm
is installed, a wheel (pip, pipx) or a checkout (`pip install -e .`).

The templates live in templates/ at the top of the repository; the build maps that directory to
the package `sfarm.templates` (setup.py). The example inventories of inventory/ are not read at
run time: `sfarm init` writes a new farm from templates/inventory.toml (sfarm.scaffold).
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

from sfarm.errors import RunError

TEMPLATES = "sfarm.templates"


def template(name: str) -> Traversable:
    """The template `name` (read it with `.read_text()`)."""
    resource = files(TEMPLATES).joinpath(name)
    if not resource.is_file():
        raise RunError(f"sfarm's template {name} is missing from {TEMPLATES}",
                       hint="this installation of sfarm is incomplete: reinstall it")
    return resource
