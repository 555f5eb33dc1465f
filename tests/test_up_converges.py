"""`sfarm up` converges after an inventory edit (issue 17, item 4), as `docker compose up`
does: it restarts exactly the workers whose task definition changed and says so, stops and
removes the workers of tasks no longer on their node, and names a node an earlier deploy knew
that the inventory no longer lists (`sfarm down --node` stops it, then it is forgotten). A
live worker left running keeps its arming; a restarted one comes up disarmed. `up --dry-run`
says which workers it would restart and remove. One real local farm of two nodes, driven by
real `sfarm` processes, edited step by step."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfarm.inventory import load_inventory
from sfarm.plan import plan_network
from sfarm.remote.deploy import DEFINITION_VARIABLE, node_address, programs_for
from sfarm.runtime.former import NETWORK_FILE, declared, read_record, record_network
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import NodeAddress
from sfarm.runtime.supervisor import Supervisor, program_changes, render_config
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import ALWAYS_IN, SIM_EXCHANGE, head, live_trade_task, mine_task
from tests.fixtures.processes import alive
from tests.fixtures.waiting import wait_for

TASKS = (SIM_EXCHANGE + mine_task("1h") + mine_task("1h", name="gone", market="SOL/USDT")
         + mine_task("1h", name="spare-miner", market="XRP/USDT"))
LAB = '\n[networks.{network}.nodes.lab]\nhost = "local"\ntasks = [{tasks}]\n'
SPARE = '\n[networks.{{network}}.nodes.spare]\nhost = "local"\ntasks = ["spare-miner"]\n'


def _inventory(*, other_since: str = "1h", cash: float = 500.0, lab_tasks: str,
               spare: bool) -> str:
    """The farm's inventory template; `other` mines ETH/USDT from `other_since` ago."""
    return (head("{network}") + TASKS
            + mine_task(other_since, name="other", market="ETH/USDT")
            + live_trade_task(cash=cash)
            + LAB.replace("{tasks}", lab_tasks) + (SPARE.format() if spare else ""))


FIRST = _inventory(lab_tasks='"mine", "other", "gone", "trader"', spare=True)
EDITED = _inventory(other_since="2h", lab_tasks='"mine", "other", "trader"', spare=False)
TRADER_EDITED = _inventory(other_since="2h", cash=400.0,
                           lab_tasks='"mine", "other", "trader"', spare=False)


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(FIRST, "conv", files={"always.toml": ALWAYS_IN}) as farm:
        try:
            yield farm
        finally:  # the dropped node, which the fixture's `down` no longer reaches
            if Supervisor(NodeRoot(farm.root.parent / "spare")).is_running():
                farm.sfarm("down", "--node", "spare", check=False)


def _edit(farm: Farm, template: str) -> None:
    farm.inventory.write_text(template.format(base=farm.inventory.parent / "nodes",
                                              port=farm.port, network=farm.network))


def _pids(root: Path) -> dict[str, int]:
    """The running programs of a node's supervisord, by name."""
    supervisor = Supervisor(NodeRoot(root))
    if not supervisor.is_running():
        return {}
    return {name: info["pid"] for name, info in supervisor.processes().items()
            if info["statename"] == "RUNNING"}


def _running(root: Path, names: set[str]) -> dict[str, int]:
    """Wait until every program of `names` runs; their pids."""
    wait_for(lambda: names <= _pids(root).keys(), what=f"{sorted(names)} running")
    return {name: pid for name, pid in _pids(root).items() if name in names}


def _said(output: str, verb: str) -> set[str]:
    """The programs a report's step lines say it did `verb` to ("changed restart NAME ...",
    "would change restart NAME ...")."""
    return set(re.findall(rf"^\s+(?:changed|would change)\s+{verb} (\S+)", output, re.M))


def _arm_pid(root: Path) -> int | None:
    try:
        pid: int = json.loads((root / "run" / "trader.live").read_text())["pid"]
    except FileNotFoundError:
        return None
    return pid


@pytest.mark.slow
def test_up_restarts_only_what_changed_and_names_dropped_nodes(farm: Farm) -> None:
    spare_root = farm.root.parent / "spare"
    farm.sfarm("up", "--live")
    before = _running(farm.root, {"mine", "other", "gone", "trader", "sim-sim"})
    spare_before = _running(spare_root, {"spare-miner"})
    wait_for(lambda: _arm_pid(farm.root) == before["trader"], what="the trader armed")

    # One task's table edited, one task removed, one node dropped: first the dry run.
    _edit(farm, EDITED)
    dry = farm.sfarm("up", "--dry-run")
    assert _said(dry.stdout, "restart") == {"other"}
    assert _said(dry.stdout, "remove") == {"gone"}
    assert "would restart it: its definition changed" in dry.stdout
    assert "node spare was deployed by an earlier inventory" in dry.stderr
    assert _running(farm.root, set(before)) == before  # a dry run changes nothing

    up = farm.sfarm("up")
    assert _said(up.stdout, "restart") == {"other"}, up.stdout
    assert _said(up.stdout, "remove") == {"gone"}, up.stdout
    assert "restart other" in up.stdout and "its definition changed" in up.stdout
    assert "no longer on this node" in up.stdout
    after = _running(farm.root, {"mine", "other", "trader", "sim-sim"})
    assert after["other"] != before["other"]
    assert {name: after[name] for name in ("mine", "trader", "sim-sim")} == {
        name: before[name] for name in ("mine", "trader", "sim-sim")}
    wait_for(lambda: not alive(before["gone"]), what="the removed task's worker ending")
    assert "gone" not in Supervisor(NodeRoot(farm.root)).processes()
    # The live worker left running is still armed, and the operator is told so.
    assert _arm_pid(farm.root) == before["trader"]
    assert "live task trader on lab stays armed" in up.stderr
    # The dropped node: named, and its worker runs on (nothing stopped it).
    assert "node spare was deployed by an earlier inventory and is no longer listed" \
        in up.stderr and "sfarm down --node spare" in up.stderr
    assert _pids(spare_root) == spare_before

    # The trader's own table edited: its worker restarted, and disarmed (no --live).
    _edit(farm, TRADER_EDITED)
    edited = farm.sfarm("up")
    assert _said(edited.stdout, "restart") == {"trader"}, edited.stdout
    restarted = _running(farm.root, {"mine", "other", "trader"})
    assert restarted["trader"] != before["trader"] and restarted["mine"] == before["mine"]
    assert _arm_pid(farm.root) is None
    assert "live task trader on lab places no order" in edited.stderr

    # `down --node` reaches the dropped node, stops it, and the network forgets it.
    assert [node.name for node in read_record(NodeRoot(farm.root)).former] == ["spare"]
    down = farm.sfarm("down", "--node", "spare")
    assert "spare" in down.stdout
    wait_for(lambda: not any(alive(pid) for pid in spare_before.values()),
             what="the dropped node's worker ending")
    assert not Supervisor(NodeRoot(spare_root)).is_running()
    assert read_record(NodeRoot(farm.root)).former == []
    assert _running(farm.root, {"mine", "other", "trader"}) == restarted  # lab untouched
    unknown = farm.sfarm("down", "--node", "spare", check=False)
    assert unknown.returncode != 0 and "no node 'spare'" in unknown.stderr


# --- the pure parts: definitions, program sections, the network's record --------------------


def _definitions(tmp_path: Path, template: str, strategy: str = ALWAYS_IN) -> dict[str, str]:
    """Each program of node lab and its definition digest, for the inventory `template`."""
    (tmp_path / "always.toml").write_text(strategy)
    path = tmp_path / "sfarm.toml"
    path.write_text(template.format(base=tmp_path / "nodes", port=8999, network="conv"))
    inventory = load_inventory(path)
    (lab,) = [spec for spec in inventory.nodes("conv") if spec.name == "lab"]
    return {program.name: program.environment[DEFINITION_VARIABLE]
            for program in programs_for(inventory, lab, tmp_path / "root", "python")}


def test_a_definition_changes_with_what_its_worker_reads_and_nothing_else(
        tmp_path: Path) -> None:
    first = _definitions(tmp_path, FIRST)
    assert set(first) == {"sim-sim", "mine", "other", "gone", "trader"}
    assert _definitions(tmp_path, FIRST) == first  # the same inventory, the same digests
    # A table reformatted (same values) is the same task.
    assert _definitions(tmp_path, FIRST.replace('since = "1h"', "since   =   '1h'")) == first
    edited = _definitions(tmp_path, EDITED)
    assert {name for name in edited if edited[name] != first[name]} == {"other"}
    assert _definitions(tmp_path, TRADER_EDITED)["trader"] != edited["trader"]
    # The strategy file is part of the trade task's definition, not of the others'.
    strategy = _definitions(tmp_path, FIRST, ALWAYS_IN.replace("close > 0", "close > 1"))
    assert {name for name in strategy if strategy[name] != first[name]} == {"trader"}
    # The exchange's table is every task's of it, and its emulator's.
    exchange = _definitions(tmp_path, FIRST.replace('emulate = true',
                                                    'emulate = true\nemulate_bind = "127.0.0.1"'))
    assert all(exchange[name] != first[name] for name in first)


def test_where_an_input_comes_from_is_part_of_a_definition(tmp_path: Path) -> None:
    """The trader reads candles that `mine` produces; produced by another task instead (the
    plan changes), the trader is another task; the miners' tables are what they were."""
    first = _definitions(tmp_path, FIRST)
    renamed = _definitions(tmp_path, FIRST.replace("[tasks.mine]", "[tasks.miner]").replace(
        '"mine", "other"', '"miner", "other"'))
    assert renamed["trader"] != first["trader"]
    assert renamed["other"] == first["other"]


def test_program_changes_compare_sections(tmp_path: Path) -> None:
    """What a dry run says loading a config would do: the program sections compared."""
    from sfarm.runtime.protocol import Program

    root = NodeRoot(tmp_path)

    def config(*programs: Program) -> str:
        return render_config(root, "conv", "lab", programs, build="b1")

    a, b = Program("a", ["run", "a"]), Program("b", ["run", "b"])
    old = config(a, b, Program("c", ["run", "c"]))
    new = config(a, Program("b", ["run", "b"], environment={DEFINITION_VARIABLE: "x"}),
                 Program("d", ["run", "d"]))
    changes = program_changes(old, new)
    assert (changes.added, changes.changed, changes.removed) == (("d",), ("b",), ("c",))
    assert program_changes(old, old) == program_changes(new, new)
    assert not program_changes(old, old).changed
    # Another sfarm build is another configuration of every program (supervisord restarts
    # them all, so the dry run says so).
    built = render_config(root, "conv", "lab", (a,), build="b2")
    assert program_changes(config(a), built).changed == ("a",)


def _address(name: str, host: str = "local") -> NodeAddress:
    return NodeAddress(name=name, host=host, port=22, base_dir="/srv", python="python3",
                       transport="rsync")


def test_the_network_record_remembers_dropped_nodes_until_declared_again(
        tmp_path: Path) -> None:
    root = NodeRoot(tmp_path)
    lab, spare, other = _address("lab"), _address("spare", "10.0.0.2"), _address("other")
    steps = record_network(root, (lab, spare), dry_run=False)
    assert [step.step for step in steps] == [f"file {NETWORK_FILE}"]
    assert oct((tmp_path / NETWORK_FILE).stat().st_mode & 0o777) == "0o600"
    assert record_network(root, (lab, spare), dry_run=False)[0].status == "ok"

    # spare dropped: a dry run names it and writes nothing; the deploy remembers it.
    written = (tmp_path / NETWORK_FILE).read_bytes()
    dry = record_network(root, (lab,), dry_run=True)
    assert [step.step for step in dry] == [f"file {NETWORK_FILE}", "former node spare"]
    assert (tmp_path / NETWORK_FILE).read_bytes() == written
    record_network(root, (lab,), dry_run=False)
    assert read_record(root).former == [spare]
    # Still former after the next deploys (until stopped), and as it was last declared.
    steps = record_network(root, (lab, other), dry_run=False)
    assert [step.step for step in steps][1:] == ["former node spare"]
    assert declared(read_record(root), (lab,)).former == [other, spare]
    # Declared again: no longer former.
    assert declared(read_record(root), (lab, spare, other)).former == []


def test_a_local_node_is_recorded_with_an_absolute_base_dir(tmp_path: Path) -> None:
    (tmp_path / "always.toml").write_text(ALWAYS_IN)
    path = tmp_path / "sfarm.toml"
    path.write_text(FIRST.replace('base_dir = "{base}"', 'base_dir = "nodes"').format(
        port=8999, network="conv"))
    inventory = load_inventory(path)
    spare = next(spec for spec in inventory.nodes("conv") if spec.name == "spare")
    address = node_address(inventory, spare)
    assert address.base_dir == str(tmp_path / "nodes") and address.host == "local"
    assert plan_network(inventory, "conv").problems == ()
