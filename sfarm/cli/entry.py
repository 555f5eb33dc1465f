"""The `sfarm` command's first function (console script and `python -m sfarm`): a shell
completion request is answered from the cached command tree without importing typer, rich or
pydantic (sfarm.cli.quick_complete: well under 0.3 s); everything else, and a completion
without a cached tree, goes to the typer app (sfarm.cli.main), which then caches the tree.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

COMPLETE_VARIABLE = "_SFARM_COMPLETE"  # typer's name for prog `sfarm`: _{PROG}_COMPLETE
# Setting completion up caches the tree too: the first Tab is then as quick as the next ones.
COMPLETION_SETUP = ("--install-completion", "--show-completion")


def main() -> None:
    instruction = os.environ.get(COMPLETE_VARIABLE)
    if instruction:
        _complete_quickly(instruction)
    from sfarm.cli import main as typer_main

    if instruction or any(arg.split("=")[0] in COMPLETION_SETUP for arg in sys.argv[1:]):
        _cache_tree(typer_main.app)
    typer_main.main()


def _complete_quickly(instruction: str) -> None:
    """Answer and exit when the cached tree can; return to let typer answer."""
    from sfarm.cli import quick_complete
    from sfarm.cli.completion_cache import load_tree

    if not quick_complete.understood(instruction):
        return
    tree = load_tree()
    if tree is None:
        return
    try:
        status = quick_complete.complete(tree, instruction)
    except Exception:  # whatever this path misses (a tree it cannot read), typer answers
        return
    sys.exit(status)


def _cache_tree(app: typer.Typer) -> None:
    from sfarm.cli.command_tree import describe_app
    from sfarm.cli.completion_cache import load_tree, save_tree

    if load_tree() is None:
        save_tree(describe_app(app))
