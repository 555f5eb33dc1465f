"""The exchange ids ccxt knows, without importing ccxt.

`import ccxt` loads every exchange class (about a second); validating an inventory only needs
the ids, and ccxt ships exactly one module per exchange id beside its `__init__`.
"""

from __future__ import annotations

import difflib
import importlib.util
from functools import cache
from pathlib import Path


@cache
def exchange_ids() -> list[str]:
    """Every exchange id this ccxt knows (the same list as `ccxt.exchanges`)."""
    spec = importlib.util.find_spec("ccxt")
    if spec is None or spec.origin is None:
        return []
    return sorted(path.stem for path in Path(spec.origin).parent.glob("*.py")
                  if not path.stem.startswith("_"))


def known_exchange(ccxt_id: str) -> bool:
    return ccxt_id in exchange_ids()


def suggest_exchange(ccxt_id: str, limit: int = 3) -> list[str]:
    """Near-miss ids for a "did you mean" hint."""
    return difflib.get_close_matches(ccxt_id.lower(), exchange_ids(), n=limit, cutoff=0.6)
