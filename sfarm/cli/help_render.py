"""typer's help renderer without the two rich modules it imports and sfarm never uses.

`typer.rich_utils` renders every `--help` and usage error. It imports `rich.markdown` (for
rich_markup_mode="markdown"; sfarm's is "rich") and `rich.traceback` (for pretty exceptions,
which sfarm turns off: the edge in sfarm.cli.main writes a crash log instead); the two, with
markdown-it, pygments and attrs under them, take about as long to import as typer and
rich.console together. Once `install` has run, whoever imports typer.rich_utils first (typer,
for a help or an error; `load_rich_utils`) imports it with stand-ins for those two names, each
importing the real class the moment it is used, so nothing changes but the time. A command that
succeeds imports none of it (rich's table, columns and panel under it: ~25 ms).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

RICH_UTILS = "typer.rich_utils"


class _Markdown:
    """Stands for rich.markdown.Markdown: making one makes the real one."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module("rich.markdown").Markdown(*args, **kwargs)


class _Traceback:
    """Stands for rich.traceback.Traceback, of which typer calls `from_exception` only."""

    @classmethod
    def from_exception(cls, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module("rich.traceback").Traceback.from_exception(*args,
                                                                                   **kwargs)


@contextmanager
def _stand_ins() -> Iterator[None]:
    """rich.markdown and rich.traceback as the stand-ins above while the block imports, unless
    they are already imported for real (typer then gets the real ones)."""
    stand_ins = {"rich.markdown": ("Markdown", _Markdown),
                 "rich.traceback": ("Traceback", _Traceback)}
    placed = []
    for name, (attribute, stand_in) in stand_ins.items():
        if name not in sys.modules:
            module = ModuleType(name)
            setattr(module, attribute, stand_in)
            sys.modules[name] = module
            placed.append(name)
    try:
        yield
    finally:
        for name in placed:  # later imports of these modules load the real ones
            del sys.modules[name]


class _StandInsLoader(Loader):
    """Runs typer.rich_utils' own loader with the stand-ins in place."""

    def __init__(self, loader: Loader) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _stand_ins():
            self._loader.exec_module(module)


class _RichUtilsFinder(MetaPathFinder):
    """Finds typer.rich_utils as the other finders do, to be loaded by `_StandInsLoader`."""

    def find_spec(self, name: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name != RICH_UTILS:
            return None
        spec = PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _StandInsLoader(spec.loader)
        return spec


def install() -> None:
    """Have the first import of typer.rich_utils, whoever makes it, use the stand-ins."""
    if not any(isinstance(finder, _RichUtilsFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RichUtilsFinder())


def load_rich_utils() -> ModuleType:
    """typer.rich_utils, imported (once) with the stand-ins above."""
    install()
    return importlib.import_module(RICH_UTILS)
