"""The two consoles of the command line and the JSON printer.

stdout carries results (a `--json` document and nothing else); stderr carries progress, warnings
and errors, so scripts can parse stdout while people still see what happens.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(document: Any) -> None:
    """Print one JSON document on stdout, plain (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
