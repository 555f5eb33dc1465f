"""The two consoles of the command line and the JSON printer.

stdout carries results (a `--json` document and nothing else); stderr carries progress, warnings
and errors, so scripts can parse stdout while people still see what happens.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Piped output (less, a CI log) gets a wide fixed width instead of rich's 80 columns, so trees
# and tables are not cropped.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


_documents_printed = 0


def documents_printed() -> int:
    """How many JSON documents this process printed: an error after a command's own document
    adds none (one document on stdout, always)."""
    return _documents_printed


def print_json(document: Any) -> None:
    """Print one JSON document on stdout, plain (no colour, no wrapping)."""
    global _documents_printed
    _documents_printed += 1
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()
