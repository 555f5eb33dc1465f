"""Planner properties over random inventories (hypothesis).

Random tasks of every kind over a small pool of exchanges, markets, timeframes and indicators,
random `inputs` (which make cycles and repeated needs), 1-3 networks of 1-4 nodes with random
placements (which make duplicate and missing producers). The expectations come from an oracle
written here from SPEC section 4, not from sfarm.plan's own helpers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sfarm.data.ids import SESSION_PARTS, candles_id, indicator_id, session_id
from sfarm.indicators import parse_spec
from sfarm.inventory import Inventory, LoadedInventory
from sfarm.plan import Plan, plan_network

EXCHANGES = ("ex-a", "ex-b")
MARKETS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
TIMEFRAMES = ("1m", "1h", "1d")
INDICATORS = ("rsi(14)", "sma(20)", "ema(50)")
KINDS = ("mine", "indicators", "trade")

Doc = dict[str, Any]
Placement = tuple[str, str]  # (node, task)

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


# --- the oracle -----------------------------------------------------------------------------------


def key(spec: str) -> str:
    return parse_spec(spec).key


def outputs(name: str, task: Doc) -> list[str]:
    if task["kind"] == "mine":
        return [candles_id(task["exchange"], m, tf)
                for m in task["markets"] for tf in task["timeframes"]]
    if task["kind"] == "indicators":
        return [indicator_id(task["exchange"], m, tf, key(spec)) for m in task["markets"]
                for tf in task["timeframes"] for spec in task["indicators"]]
    return [session_id(name, part) for part in SESSION_PARTS]


def needs(task: Doc, strategy: tuple[str, ...]) -> dict[str, bool]:
    """dataset -> optional: a trade task can compute its strategy's indicators itself."""
    found: dict[str, bool] = {}
    if task["kind"] == "indicators":
        found |= {candles_id(task["exchange"], m, tf): False
                  for m in task["markets"] for tf in task["timeframes"]}
    if task["kind"] == "trade":
        found[candles_id(task["exchange"], task["market"], task["timeframe"])] = False
        for spec in strategy:
            found.setdefault(indicator_id(task["exchange"], task["market"], task["timeframe"],
                                          key(spec)), True)
    for dataset in task.get("inputs", []):
        found[dataset] = False  # named explicitly: required
    return found


def has_cycle(graph: dict[Placement, set[Placement]]) -> bool:
    state: dict[Placement, int] = {}  # 1 on the stack, 2 done

    def visit(node: Placement) -> bool:
        state[node] = 1
        for succ in graph.get(node, ()):
            if state.get(succ) == 1 or (succ not in state and visit(succ)):
                return True
        state[node] = 2
        return False

    return any(node not in state and visit(node) for node in graph)


# --- random inventories ---------------------------------------------------------------------------


def some(pool: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(pool), min_size=1, max_size=len(pool), unique=True)


@st.composite
def task_docs(draw: st.DrawFn, index: int) -> tuple[str, Doc, tuple[str, ...]]:
    kind = draw(st.sampled_from(KINDS))
    name = f"{kind}-{index}"
    exchange = draw(st.sampled_from(EXCHANGES))
    strategy: tuple[str, ...] = ()
    if kind == "mine":
        task = {"kind": kind, "exchange": exchange, "markets": draw(some(MARKETS)),
                "timeframes": draw(some(TIMEFRAMES)), "since": "2024-01-01"}
    elif kind == "indicators":
        task = {"kind": kind, "exchange": exchange, "markets": draw(some(MARKETS)),
                "timeframes": draw(some(TIMEFRAMES)), "indicators": draw(some(INDICATORS))}
    else:
        task = {"kind": kind, "mode": draw(st.sampled_from(("backtest", "paper"))),
                "exchange": exchange, "market": draw(st.sampled_from(MARKETS)),
                "timeframe": draw(st.sampled_from(TIMEFRAMES)), "strategy": f"{name}.toml"}
        strategy = tuple(draw(st.lists(st.sampled_from(INDICATORS), max_size=3, unique=True)))
    return name, task, strategy


@st.composite
def inventories(draw: st.DrawFn) -> tuple[Doc, dict[str, tuple[str, ...]]]:
    """An inventory document (before validation) and each trade task's strategy indicators."""
    drawn = [draw(task_docs(i)) for i in range(draw(st.integers(1, 7)))]
    tasks = {name: task for name, task, _ in drawn}
    strategies = {name: strategy for name, task, strategy in drawn if task["kind"] == "trade"}
    # `inputs` from what the tasks produce (cycles, repeated needs) and from nothing at all
    pool = sorted({d for name, task in tasks.items() for d in outputs(name, task)}
                  | {"sessions/ghost/equity", "candles/ex-a/XRP-USDT/1h"})
    for task in tasks.values():
        if draw(st.integers(0, 3)) == 0:
            task["inputs"] = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3,
                                           unique=True))
    networks = {}
    for n in range(draw(st.integers(1, 3))):
        nodes = {}
        for k in range(draw(st.integers(1, 4))):
            placed = draw(st.lists(st.sampled_from(sorted(tasks)), max_size=4, unique=True))
            nodes[f"node-{n}-{k}"] = {"host": draw(st.sampled_from(("local", f"10.0.{n}.{k}"))),
                                      "tasks": placed}
        networks[f"net-{n}"] = {"nodes": nodes}
    document = {"version": 1,
                "exchanges": {name: {"ccxt": "binance"} for name in EXCHANGES},
                "tasks": tasks, "networks": networks}
    return document, strategies


def loaded(document: Doc, strategies: dict[str, tuple[str, ...]]) -> LoadedInventory:
    # The fake strategy reader of load_inventory, already applied: a dict of declared indicators.
    return LoadedInventory(Path("random.toml"), Inventory.model_validate(document), strategies)


# --- properties -----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(inventories())
def test_plan_matches_the_oracle(drawn: tuple[Doc, dict[str, tuple[str, ...]]]) -> None:
    document, strategies = drawn
    inventory = loaded(document, strategies)
    for network, spec in document["networks"].items():
        check_plan(plan_network(inventory, network), network, spec["nodes"], document["tasks"],
                   strategies)


def check_plan(plan: Plan, network: str, nodes: dict[str, Doc], tasks: dict[str, Doc],
               strategies: dict[str, tuple[str, ...]]) -> None:
    placements = [(node, task) for node, spec in nodes.items() for task in spec["tasks"]]
    producers: dict[str, list[Placement]] = defaultdict(list)
    for node, task in placements:
        for dataset in outputs(task, tasks[task]):
            producers[dataset].append((node, task))
    consumers: dict[str, set[Placement]] = defaultdict(set)
    need_of: dict[tuple[Placement, str], bool] = {}
    for node, task in placements:
        for dataset, optional in needs(tasks[task], strategies.get(task, ())).items():
            consumers[dataset].add((node, task))
            need_of[((node, task), dataset)] = optional

    # nodes: as in the inventory
    assert plan.network == network
    assert [(n.name, n.host, list(n.tasks)) for n in plan.nodes] == \
        [(name, spec["host"], spec["tasks"]) for name, spec in nodes.items()]

    # datasets: every one produced or consumed, its first producer, all its consumers
    by_id = {d.id: d for d in plan.datasets}
    assert [d.id for d in plan.datasets] == sorted(set(producers) | set(consumers))
    for dataset, plan_entry in by_id.items():
        first = producers[dataset][0] if producers[dataset] else None
        producer = plan_entry.producer
        assert (None if producer is None else (producer.node, producer.task)) == first
        assert [(c.node, c.task) for c in plan_entry.consumers] == sorted(consumers[dataset])

    by_code: dict[str, list[Any]] = defaultdict(list)
    for problem in plan.problems:
        by_code[problem.code].append(problem)
    assert set(by_code) <= {"duplicate-producer", "missing-producer", "cycle", "computed-locally"}

    # a dataset produced twice: exactly one duplicate-producer problem names it
    duplicated = sorted(d for d, refs in producers.items() if len(refs) > 1)
    assert [p.dataset for p in by_code["duplicate-producer"]] == duplicated
    for _ in duplicated:
        event("duplicate producer")

    # a consumed dataset: exactly one producer, or a problem names it (each consumer's need)
    expected_missing = sorted((ref, d) for (ref, d), optional in need_of.items()
                              if not producers[d] and not optional)
    expected_local = sorted((ref, d) for (ref, d), optional in need_of.items()
                            if not producers[d] and optional)
    assert sorted((placement_of(p.path, nodes), p.dataset)
                  for p in by_code["missing-producer"]) == expected_missing
    assert sorted((placement_of(p.path, nodes), p.dataset)
                  for p in by_code["computed-locally"]) == expected_local
    for dataset in consumers:
        named = {p.dataset for p in plan.problems}
        assert len(producers[dataset]) == 1 or dataset in named
        if not producers[dataset]:
            event("missing producer or computed locally")
    for problem in by_code["missing-producer"] + by_code["computed-locally"]:
        node, task = placement_of(problem.path, nodes)
        assert f"task {task!r} on node {node!r}" in problem.message
    assert all(p.severity == "warning" for p in by_code["computed-locally"])

    # transfers: exactly (dataset, producer node, consumer node) for different nodes
    expected_transfers = {(d, producers[d][0][0], node) for d in consumers if producers[d]
                          for node, _ in consumers[d] if node != producers[d][0][0]}
    assert {(t.dataset, t.source, t.target) for t in plan.transfers} == expected_transfers
    assert list(plan.transfers) == sorted(set(plan.transfers))
    if plan.transfers:
        event("transfers")

    # cycles: reported exactly when the read-from graph has one
    graph = {ref: {producer for (consumer, d) in need_of if consumer == ref
                   for producer in producers[d]} for ref in placements}
    assert bool(by_code["cycle"]) == has_cycle(graph)
    if by_code["cycle"]:
        event("cycle")
        assert len(by_code["cycle"]) == 1
        placement_of(by_code["cycle"][0].path, nodes)

    assert plan.ok == (not any(p.severity == "error" for p in plan.problems))
    json.dumps(plan.to_json())


def placement_of(path: tuple[str | int, ...], nodes: dict[str, Doc]) -> Placement:
    """The (node, task) a problem's key path points at; the path must be a real placement."""
    assert path[:2] == ("networks", path[1]) and path[2] == "nodes" and path[4] == "tasks"
    node, index = str(path[3]), path[5]
    assert isinstance(index, int)
    return node, nodes[node]["tasks"][index]


@PROPERTY_SETTINGS
@given(inventories(), st.randoms(use_true_random=False))
def test_plan_is_deterministic(drawn: tuple[Doc, dict[str, tuple[str, ...]]],
                               random: Any) -> None:
    """Same inventory, same plan; and the order of [tasks.*], [exchanges.*], networks and the
    strategy lookup in the file does not matter (node order and each node's task list do: they
    are the plan's node order)."""
    document, strategies = drawn
    first = loaded(document, strategies)

    def shuffled(mapping: dict[str, Any]) -> dict[str, Any]:
        items = list(mapping.items())
        random.shuffle(items)
        return dict(items)

    reordered = dict(document)
    reordered["tasks"] = shuffled(document["tasks"])
    reordered["exchanges"] = shuffled(document["exchanges"])
    reordered["networks"] = shuffled(document["networks"])
    second = loaded(reordered, shuffled(strategies))
    for network in document["networks"]:
        plan = json.dumps(plan_network(first, network).to_json())
        assert json.dumps(plan_network(first, network).to_json()) == plan
        assert json.dumps(plan_network(second, network).to_json()) == plan
