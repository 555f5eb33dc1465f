"""What `sfarm deploy --dry-run` does on the controller's side, apart from asking the nodes.

A dry run surveys and plans as a deploy does, then asks each node what its apply would change
(sfarm.runtime.apply, nothing changed there). Two things cannot go as in a deploy:

- a new network key is made in memory (its public half is part of the plan: the producers'
  authorized lines) but its private half is never sent: the consumers are asked to compare
  their key file with a stand-in, which always differs, as a new key would;
- a node that does not run this sfarm yet (a first deploy, an upgrade) cannot answer: its
  steps say what a deploy would do there, from the deployment built here, without asking.
"""

from __future__ import annotations

from dataclasses import replace

from sfarm import __version__
from sfarm.remote.wiring import FarmKey
from sfarm.resolver.routes import KeyKind
from sfarm.runtime.protocol import Deployment, StepResult

# What a consumer is asked to compare its private key file with: never a key.
WITHHELD_KEY = b"(the private half of a new network key: sent by a real deploy only)\n"


def withhold_new_keys(keys: dict[KeyKind, FarmKey | None]
                      ) -> tuple[dict[KeyKind, FarmKey | None], dict[str, list[StepResult]]]:
    """The keys with every new private half replaced by `WITHHELD_KEY`, and for each node
    that would receive a new key, a step that says so."""
    withheld: dict[KeyKind, FarmKey | None] = {}
    steps: dict[str, list[StepResult]] = {}
    for kind, key in keys.items():
        if key is None or key.private is None:
            withheld[kind] = key
            continue
        withheld[kind] = replace(key, private=WITHHELD_KEY)
        for holder in key.info.holders:
            steps.setdefault(holder, []).append(StepResult(
                f"{kind} key", "changed",
                f"a new {kind} key would be made for {', '.join(key.info.holders)} "
                "(dry run: made in memory to plan, never sent)"))
    return withheld, steps


def unasked_steps(deployment: Deployment, boot: bool,
                  after: list[StepResult]) -> list[StepResult]:
    """A node that cannot answer yet (no sfarm of this version to ask): what deploying it
    would do after the steps `after`, counted from `deployment`, with nothing compared; none
    when one of those would fail (the install: the deploy stops there)."""
    if any(step.status == "failed" for step in after):
        return []
    what = [f"write {len(deployment.files)} files ("
            + ", ".join(file.path for file in deployment.files) + ")"]
    if deployment.absent:
        what.append(f"remove {', '.join(deployment.absent)} if present")
    if deployment.authorized:
        what.append(f"set {len(deployment.authorized)} authorized_keys lines")
    what.append(f"write the supervisor config ({len(deployment.programs)} programs) and "
                "start supervisord")
    if boot:
        what.append("make supervisord start at boot")
    return [StepResult("node root", "changed",
                       f"not compared: the node has no sfarm {__version__} to ask until it is "
                       "installed; a deploy would then " + "; ".join(what))]
