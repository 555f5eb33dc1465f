"""Commands that read an inventory: validate, plan, init."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app (filled in as the inventory lands)."""
