"""TA-Lib, imported without pandas.

On import, talib (its package and its compiled module) imports pandas when it can, to accept
pandas Series; sfarm hands it numpy arrays only, and pandas takes longer to import than TA-Lib
and numpy together: most of a short `sfarm backtest`. Importing talib through this module makes
pandas look absent for that moment (a None entry in sys.modules is how Python says so), as if it
were not installed; when pandas is already imported, talib is imported as it is.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def _import_talib() -> ModuleType:
    if "talib" in sys.modules or "pandas" in sys.modules:
        return importlib.import_module("talib")
    sys.modules["pandas"] = None  # type: ignore[assignment]  # `import pandas` -> not found
    try:
        return importlib.import_module("talib")
    finally:
        del sys.modules["pandas"]  # a later `import pandas` imports it


talib = _import_talib()
