"""The deploy step that keeps the account of each emulator a node serves (sfarm.sim.accounts):
made once, random, 0600 in the node's `secrets/`, then kept as it is by every later deploy."""

from __future__ import annotations

import stat

from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import StepResult
from sfarm.sim.accounts import account_path, keep_account


def keep_emulator_account(root: NodeRoot, exchange: str, dry_run: bool) -> StepResult:
    """The account of the emulator of `exchange` on this node: made when there is none, its
    mode set back to 0600 when it was loosened, else left alone (never rotated: a new secret
    would restart the emulator and lose its ledger)."""
    path = account_path(root.secrets, exchange)
    step = f"emulator account {exchange}"
    relative = path.relative_to(root.path)
    if not path.exists():
        if dry_run:
            return StepResult(step, "changed", f"would make {relative}")
        keep_account(path)
        return StepResult(step, "changed", f"made {relative}")
    if stat.S_IMODE(path.stat().st_mode) != 0o600:
        if dry_run:
            return StepResult(step, "changed", f"would set {relative} to mode 0600")
        path.chmod(0o600)
        return StepResult(step, "changed", f"set {relative} to mode 0600")
    return StepResult(step, "ok", str(relative))
