"""sfarm.remote.wiring: what deploy tells each node of the example farm's prod network about
its inputs' producers, the farm key and authorized_keys (pure: surveys are data here)."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from sfarm.errors import UsageError
from sfarm.inventory import LoadedInventory, NodeSpec, load_inventory
from sfarm.plan import Plan, plan_network
from sfarm.remote.wiring import (
    FarmKey,
    NodeKey,
    NodeSurvey,
    NodeWiring,
    consumers,
    jump_lines_of,
    key_to_keep,
    unsurveyed_producers,
    wire_network,
)
from sfarm.resolver.routes import FarmKeyInfo, Hop, KeyKind

PROJECT = Path(__file__).parent.parent
PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgl3BNlOoKnLq3fHDvPr0Q0D8yO5yWlPzv6Y2cJ9sQq"


def _indicators(path: Path) -> tuple[str, ...]:
    return tuple(tomllib.loads(path.read_text(encoding="utf-8"))["strategy"].get("indicators", ()))


@pytest.fixture(scope="module")
def farm() -> LoadedInventory:
    return load_inventory(PROJECT / "inventory" / "farm.toml", strategy_reader=_indicators)


@pytest.fixture(scope="module")
def plan(farm: LoadedInventory) -> Plan:
    return plan_network(farm, "prod")


@pytest.fixture(scope="module")
def specs(farm: LoadedInventory) -> dict[str, NodeSpec]:
    return {spec.name: spec for spec in farm.nodes("prod")}


def survey(spec: NodeSpec, **changes: object) -> NodeSurvey:
    base = NodeSurvey(node=spec.name, host=spec.host, port=22, user="sfarm",
                      root=f"/home/sfarm/sfarm/prod/{spec.name}",
                      python=f"/home/sfarm/sfarm/prod/{spec.name}/venv/bin/python",
                      host_key=f"ssh-ed25519 AAAAkey{spec.name.replace('-', '')}", farm_key=None)
    return replace(base, **changes)


def surveys_of(specs: dict[str, NodeSpec]) -> dict[str, NodeSurvey]:
    return {name: survey(spec) for name, spec in specs.items()}


def new_key(plan: Plan, specs: dict[str, NodeSpec]) -> dict[KeyKind, FarmKey | None]:
    holders = tuple(sorted(consumers(plan, specs)))
    return {"farm": FarmKey(FarmKeyInfo(public_key=PUBLIC, holders=holders), b"PRIVATE KEY\n"),
            "sshfs": None}


def farm_part(wired: NodeWiring) -> NodeKey:
    (key,) = [key for key in wired.keys if key.kind == "farm"]
    return key


def test_every_transfer_is_a_route_and_nothing_else(plan: Plan,
                                                    specs: dict[str, NodeSpec]) -> None:
    wiring = wire_network(plan, "alpha", specs, surveys_of(specs), new_key(plan, specs))
    routed = {(dataset, peer.node, node) for node, wired in wiring.items()
              for peer in wired.routes.peers for dataset in peer.datasets}
    assert routed == {(t.dataset, t.source, t.target) for t in plan.transfers}
    trader = wiring["trader-1"].routes
    binance = next(peer for peer in trader.peers if peer.node == "miner-binance")
    assert (binance.host, binance.port, binance.user, binance.root) == (
        "10.0.0.11", 22, "sfarm", "/home/sfarm/sfarm/prod/miner-binance")
    # Each task's inputs name their producer; the node's own datasets name the node itself.
    for task, inputs in trader.inputs.items():
        assert task in specs["trader-1"].tasks
        for entry in inputs:
            producer = next(d.producer for d in plan.datasets if d.id == entry.id)
            assert producer is not None and entry.source_node == producer.node


def test_known_hosts_hold_every_ssh_nodes_key(plan: Plan, specs: dict[str, NodeSpec]) -> None:
    """Every node gets the host keys of the whole network, itself included: its resolver checks
    its peers with them, and an operator managing the farm from it checks every node."""
    surveys = surveys_of(specs)
    wiring = wire_network(plan, "alpha", specs, surveys, new_key(plan, specs))
    expected = sorted(f"{survey.host} {survey.host_key}" for survey in surveys.values())
    for wired in wiring.values():
        assert sorted(wired.known_hosts.decode().splitlines()) == expected
        for peer in wired.routes.peers:
            assert f"{peer.host} {surveys[peer.node].host_key}" in expected


def test_a_node_reading_from_an_unsurveyed_node_gets_no_wiring(
        plan: Plan, specs: dict[str, NodeSpec]) -> None:
    """A producer unreachable during deploy leaves its consumers unwired (they are reported by
    the controller), never the whole network."""
    producer = next(t.source for t in plan.transfers)
    readers = {t.target for t in plan.transfers if t.source == producer}
    surveys = {name: s for name, s in surveys_of(specs).items() if name != producer}
    wiring = wire_network(plan, "alpha", specs, surveys, new_key(plan, specs))
    for name in readers:
        assert unsurveyed_producers(plan, surveys, name) == [producer]
    assert set(wiring) == {name for name in surveys if name not in readers}
    assert wiring and all(unsurveyed_producers(plan, surveys, name) == [] for name in wiring)


def test_farm_key_goes_to_consumers_and_is_authorized_on_producers(
        plan: Plan, specs: dict[str, NodeSpec]) -> None:
    wiring = wire_network(plan, "alpha", specs, surveys_of(specs), new_key(plan, specs))
    holders = consumers(plan, specs)
    producers = {t.source for t in plan.transfers}
    for name, wired in wiring.items():
        key = farm_part(wired)
        assert (key.private is not None) == (name in holders)
        assert (key.info is not None) == (name in holders)
        assert key.authorized is not None
        assert key.authorized.marker == "sfarm-farm-key:alpha/prod"
        if name in producers:
            line = key.authorized.line
            assert line is not None and line.startswith("restrict,command=")
            assert f"/home/sfarm/sfarm/prod/{name}" in line and PUBLIC in line
        else:
            assert key.authorized.line is None  # a stale line would be removed


def test_producers_sharing_a_unix_user_share_one_line(plan: Plan,
                                                      specs: dict[str, NodeSpec]) -> None:
    surveys = surveys_of(specs)
    for name in ("miner-binance", "miner-kraken"):
        surveys[name] = replace(surveys[name], host="10.0.0.10")
    wiring = wire_network(plan, "alpha", specs, surveys, new_key(plan, specs))
    first, second = (farm_part(wiring[name]).authorized
                     for name in ("miner-binance", "miner-kraken"))
    assert first == second and first is not None and first.line is not None
    assert "/prod/miner-binance" in first.line and "/prod/miner-kraken" in first.line


def test_the_key_is_kept_only_while_its_holders_are_the_consumers(
        plan: Plan, specs: dict[str, NodeSpec]) -> None:
    holders = consumers(plan, specs)
    info = FarmKeyInfo(public_key=PUBLIC, holders=tuple(sorted(holders)))
    surveys = {name: survey(spec, farm_key=info if name in holders else None)
               for name, spec in specs.items()}
    assert key_to_keep(holders, surveys, rotate=False) == info
    assert key_to_keep(holders, surveys, rotate=True) is None  # --rotate-farm-key
    assert key_to_keep(holders - {sorted(holders)[0]}, surveys, rotate=False) is None  # removed
    lost = dict(surveys, **{sorted(holders)[0]: survey(specs[sorted(holders)[0]])})
    assert key_to_keep(holders, lost, rotate=False) is None  # a consumer without it
    other = FarmKeyInfo(public_key=PUBLIC.replace("AAAAC3", "BBBBC3"), holders=info.holders)
    mixed = dict(surveys, **{sorted(holders)[0]: survey(specs[sorted(holders)[0]],
                                                         farm_key=other)})
    assert key_to_keep(holders, mixed, rotate=False) is None  # two keys in the network


def test_a_remote_node_cannot_read_a_local_one(plan: Plan, specs: dict[str, NodeSpec]) -> None:
    local = dict(specs, **{"miner-binance": replace(specs["miner-binance"], host="local")})
    with pytest.raises(UsageError, match="host = \"local\""):
        wire_network(plan, "alpha", local, surveys_of(specs), new_key(plan, specs))


def test_an_sshfs_consumer_gets_the_sshfs_key_and_its_producers_a_read_only_sftp_line(
        plan: Plan, specs: dict[str, NodeSpec]) -> None:
    sshfs = dict(specs, **{"trader-2": replace(specs["trader-2"], transport="sshfs")})
    surveys = {name: replace(s, sftp_server="/usr/lib/openssh/sftp-server")
               for name, s in surveys_of(specs).items()}
    keys: dict[KeyKind, FarmKey | None] = {
        "farm": FarmKey(FarmKeyInfo(public_key=PUBLIC, holders=tuple(sorted(
            consumers(plan, sshfs, "farm")))), b"FARM\n"),
        "sshfs": FarmKey(FarmKeyInfo(public_key=PUBLIC, holders=("trader-2",)), b"SSHFS\n")}
    assert consumers(plan, sshfs, "sshfs") == {"trader-2"}
    assert "trader-2" not in consumers(plan, sshfs, "farm")
    wiring = wire_network(plan, "alpha", sshfs, surveys, keys)
    trader = wiring["trader-2"]
    assert trader.mounts and {peer.transport for peer in trader.routes.peers} == {"sshfs"}
    held = {key.kind: key.private for key in trader.keys}
    assert held == {"farm": None, "sshfs": b"SSHFS\n"}  # only the key it reads with
    read_by_trader = {peer.node for peer in trader.routes.peers}
    for name in read_by_trader:
        (line,) = [key.authorized.line for key in wiring[name].keys
                   if key.kind == "sshfs" and key.authorized is not None]
        assert line is not None and 'command="/usr/lib/openssh/sftp-server -R"' in line
        assert line.endswith("sfarm-sshfs-key:alpha/prod")


def test_a_producer_behind_jump_hosts_is_read_through_them_and_they_forward_only_to_it(
        plan: Plan, specs: dict[str, NodeSpec]) -> None:
    bastion, inner = Hop(host="10.0.0.1", port=2222, user="ops"), Hop(host="10.1.0.1")
    surveys = surveys_of(specs)
    surveys["miner-binance"] = replace(surveys["miner-binance"], jumps=(bastion, inner),
                                       jump_keys=("ssh-ed25519 AAAAbastion",
                                                  "ssh-ed25519 AAAAinner"))
    keys = new_key(plan, specs)
    wiring = wire_network(plan, "alpha", specs, surveys, keys)
    quant = wiring["quant-1"]
    (peer,) = [peer for peer in quant.routes.peers if peer.node == "miner-binance"]
    assert peer.jumps == (bastion, inner)
    assert quant.known_hosts.decode().splitlines() >= [
        "10.0.0.11 ssh-ed25519 AAAAkeyminerbinance", "[10.0.0.1]:2222 ssh-ed25519 AAAAbastion",
        "10.1.0.1 ssh-ed25519 AAAAinner"]
    lines = jump_lines_of(plan, "alpha", specs, surveys, keys)["sfarm-farm-jump-key:alpha/prod"]
    assert set(lines) == {bastion, inner}  # neither is a node: the controller writes them
    assert 'permitopen="10.1.0.1:22",command="/bin/false"' in str(lines[bastion].line)
    assert 'permitopen="10.0.0.11:22",command="/bin/false"' in str(lines[inner].line)
    assert str(lines[bastion].line).startswith("restrict,port-forwarding,")
    # Nodes that are nobody's jump host hold no such line (a stale one would be removed).
    assert all(line.line is None for node in wiring.values() for line in node.jump_lines)
