"""`sfarm data`: list, show, verify and import the datasets of a node root."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

# The store (polars, pyarrow) loads when a command runs, not when `sfarm` starts: every
# command, and every `sfarm node ...` run on a node over SSH, imports this module.
from sfarm import data as store
from sfarm.cli.aligned import Column, print_table
from sfarm.cli.completion import complete_datasets, complete_nodes
from sfarm.cli.console import err, out, print_json
from sfarm.cli.node_root import DataRootOption, NodeRootOption, node_root
from sfarm.cli.options import InventoryOption, JsonOption, NetworkOption, RootOption
from sfarm.cli.readable import extra_summary, format_column, format_times
from sfarm.cli.verify_render import (
    AFTER_REPAIR_HINT,
    REPAIR_HINT,
    mirror_hint,
    render_repairs,
    render_reports,
)
from sfarm.data.layout import DatasetNotFound, format_ts
from sfarm.errors import UsageError

if TYPE_CHECKING:
    import polars as pl

data_app = typer.Typer(
    name="data",
    help="Inspect the datasets of a node root: list, show, verify, pull from a node, import "
         "CSV candles.\n\n"
         "Example: sfarm data ls --node lab -i inventory/local.toml (or --root DIR)",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

MirrorOption = Annotated[
    str | None,
    typer.Option("--mirror", metavar="NODE",
                 help="Read the mirror of this producer node (mirror/<node>/<id>)."),
]


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@data_app.command("ls")
def ls(root: DataRootOption = None, node: NodeRootOption = None,
       inventory: InventoryOption = None, network: NetworkOption = None,
       json: JsonOption = False) -> None:
    """List the datasets of a root (own and mirrored) with their size and time span.

    Reads ROOT/data/ and ROOT/mirror/<node>/ (datasets pulled from their producer node).

    Example: [bold]sfarm data ls --node lab -i inventory/local.toml[/]
    """
    root = node_root(root, node, inventory, network)
    _check_root(root)
    infos = store.list_datasets(root)
    if json:
        print_json({"root": str(root), "datasets": [_info_json(i) for i in infos]})
        return
    if not infos:
        err.print(f"no datasets under {root}/data or {root}/mirror")
        return
    mirrors = any(info.node for info in infos)
    table = Table(title=f"datasets under {root} (times UTC)", title_justify="left")
    # The id matters most: keep it whole, and let the times wrap between date and hour.
    table.add_column("id", no_wrap=True, min_width=min(max(len(i.id) for i in infos), 48))
    if mirrors:
        table.add_column("node", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("first", min_width=10)
    table.add_column("last", min_width=10)
    table.add_column("parts", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    for info in infos:
        producer = [f"[magenta]{info.node}[/]" if info.node else "[dim]local[/]"] if mirrors \
            else []
        if info.error:
            table.add_row(info.id, *producer, "[red]unreadable manifest[/]", "", "", "", "")
            continue
        table.add_row(info.id, *producer, f"{info.rows:,}", format_ts(info.first_ts),
                      format_ts(info.last_ts), str(info.partitions), human_bytes(info.bytes))
    out.print(table)


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise UsageError(f"--root {root}: no such directory",
                         hint="a node root holds data/ and mirror/: `sfarm up` (or `sfarm "
                              "deploy`) makes a node's, `sfarm mine --root DIR` one of your own")


def _info_json(info: store.DatasetInfo) -> dict[str, Any]:
    document = info.to_dict()
    document["first"] = _iso(info.first_ts)
    document["last"] = _iso(info.last_ts)
    return document


def _iso(ts: int | None) -> str | None:
    return None if ts is None else format_ts(ts)


@data_app.command("show")
def show(
    dataset_id: Annotated[str, typer.Argument(metavar="ID", help="Dataset id.",
                                                autocompletion=complete_datasets)],
    root: DataRootOption = None,
    node: NodeRootOption = None,
    inventory: InventoryOption = None, network: NetworkOption = None,
    mirror: MirrorOption = None,
    tail: Annotated[int, typer.Option("--tail", min=0, help="Rows to print from the end.")] = 10,
    json: JsonOption = False,
) -> None:
    """Show a dataset: its manifest (span, rows, partitions, columns, what produced it) and
    its last rows. --json adds everything the manifest holds, the engines' state included.

    Example: [bold]sfarm data show candles/sim/BTC-USDT/1h --node lab -i inventory/local.toml[/]
    """
    root = node_root(root, node, inventory, network)
    _check_root(root)
    location = _location(root, dataset_id, mirror)
    mirror = None if location is None else location.node
    manifest = None if location is None else store.load_manifest(root, dataset_id,
                                                                 mirror_of=mirror)
    if manifest is None:
        raise DatasetNotFound(f"no dataset {dataset_id} under {root}",
                              hint="`sfarm data ls --root DIR` lists the datasets of a root")
    rows = store.read_tail(root, dataset_id, tail, mirror_of=mirror)
    if json:
        print_json({
            "id": dataset_id, "node": mirror, "rows": manifest.rows,
            "first_ts": manifest.first_ts, "last_ts": manifest.last_ts,
            "first": _iso(manifest.first_ts), "last": _iso(manifest.last_ts),
            "partitions": len(manifest.partitions), "bytes": manifest.bytes,
            "partitioning": manifest.partitioning, "schema_version": manifest.schema_version,
            "generation": manifest.generation, "updated_at": manifest.updated_at,
            "columns": manifest.columns, "extra": manifest.extra, "tail": rows.to_dicts(),
        })
        return
    where = f" [magenta](mirror of {mirror})[/]" if mirror else ""
    out.print(f"[bold]{dataset_id}[/]{where}")
    out.print(f"  {manifest.rows:,} rows from {format_ts(manifest.first_ts)} to "
              f"{format_ts(manifest.last_ts)} UTC, {len(manifest.partitions)} partitions by "
              f"{manifest.partitioning}, {human_bytes(manifest.bytes)}, updated "
              f"{manifest.updated_at or '-'}")
    out.print(f"  columns: {', '.join(f'{n} {t}' for n, t in manifest.columns.items())}")
    for line in extra_summary(manifest.extra):  # the engines' state is in --json
        out.print(f"  {escape(line)}")
    if rows.height:
        print_table(out, f"last {rows.height} rows", _columns(rows))


def _columns(rows: pl.DataFrame) -> list[Column]:
    """The rows as `show` prints them: the time in UTC, numbers to their column's decimals."""
    return [Column("time (UTC)", format_times(rows[name]), left=True) if name == "ts"
            else Column(name, format_column(rows[name].to_list())) for name in rows.columns]


def _location(root: Path, dataset_id: str, node: str | None) -> store.DatasetLocation | None:
    """The store's `locate`, its ambiguity answered with this command's option."""
    try:
        return store.locate(root, dataset_id, mirror_of=node)
    except store.AmbiguousDataset as error:
        error.hint = "pick one with --mirror NODE"
        raise


@data_app.command("verify")
def verify_cmd(
    dataset_ids: Annotated[list[str] | None, typer.Argument(
        metavar="ID", help="Datasets to check; all of the root when none.",
        autocompletion=complete_datasets)] = None,
    root: DataRootOption = None,
    node: NodeRootOption = None,
    inventory: InventoryOption = None, network: NetworkOption = None,
    mirror: MirrorOption = None,
    repair: Annotated[bool, typer.Option(
        "--repair", help="Mend damaged datasets first: move damaged or unreadable files to "
                         "ROOT/quarantine/<id>/<time>/ (never deleted), rewrite the manifest "
                         "to what is left, and say what was lost. The next `sfarm mine` "
                         "fetches the holes again.")] = False,
    json: JsonOption = False,
) -> None:
    """Check datasets for integrity and continuity; exit 1 on any problem.

    Manifest against files (rows, sha256), ts strictly increasing on the timeframe grid, OHLC
    sanity, gaps not recorded as exchange-side. All datasets of the root when no ID is given.
    With --repair, damaged datasets are mended first (own datasets; a mirror is pulled again).

    Example: [bold]sfarm data verify candles/sim/BTC-USDT/1m --node lab -i inventory/local.toml[/]
    """
    root = node_root(root, node, inventory, network)
    _check_root(root)
    targets = ([(i.id, i.node) for i in store.list_datasets(root)
                if mirror is None or i.node == mirror] if not dataset_ids
               else [(d, _verified_node(root, d, mirror)) for d in dataset_ids])
    repairs = [store.repair(root, dataset_id) for dataset_id, node in targets
               if repair and node is None]
    mirrors = [(dataset_id, node) for dataset_id, node in targets if repair and node is not None]
    reports = [store.verify(root, dataset_id, mirror_of=node) for dataset_id, node in targets]
    ok = all(report.ok for report in reports)
    if json:
        document: dict[str, Any] = {"root": str(root), "ok": ok,
                                    "datasets": [r.to_dict() for r in reports]}
        if repair:
            document["repairs"] = [r.to_dict() for r in repairs]
            document["not_repaired"] = [{"id": dataset_id, "node": node,
                                         "hint": mirror_hint(dataset_id, node)}
                                        for dataset_id, node in mirrors]
        if not ok:
            document["hint"] = AFTER_REPAIR_HINT if repair else REPAIR_HINT
        print_json(document)
    else:
        render_repairs(repairs)
        for dataset_id, node in mirrors:
            out.print(f"[dim]not repaired[/] {dataset_id} (mirror of {node}): "
                      f"{mirror_hint(dataset_id, node)}")
        render_reports(root, reports)
        if not ok:
            err.print(f"[dim]hint:[/] {AFTER_REPAIR_HINT if repair else REPAIR_HINT}")
    if not ok:
        raise typer.Exit(1)


def _verified_node(root: Path, dataset_id: str, mirror: str | None) -> str | None:
    """The mirror to verify (`mirror` when given), None for own data: also when the root holds
    the dataset nowhere, where verify tells files of an unfinished first write from no dataset
    at all."""
    location = _location(root, dataset_id, mirror)
    return mirror if location is None else location.node


@data_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="CSV file of candles.")],
    dataset_id: Annotated[str, typer.Option("--id", help="Target candles dataset id.")],
    root: DataRootOption = None,
    node: NodeRootOption = None,
    inventory: InventoryOption = None, network: NetworkOption = None,
    allow_gaps: Annotated[bool, typer.Option(
        "--allow-gaps", help="Import a file with candles missing (they stay holes).")] = False,
    json: JsonOption = False,
) -> None:
    """Import candles from a CSV file, checked like mined data, then appended.

    Columns: ts (epoch s/ms/us) or date/datetime/timestamp (ISO 8601, UTC), open, high, low,
    close, volume; headers case-insensitive, other columns ignored. Headerless Binance kline
    dumps are read too. A bad row stops the import with its line number; so do candles spaced
    otherwise than the dataset's timeframe, and missing candles unless --allow-gaps.

    Example: [bold]sfarm data import BTCUSDT-1m-2024-01.csv --id candles/binance/BTC-USDT/1m
    --root .[/]
    """
    result = store.import_csv(file, node_root(root, node, inventory, network), dataset_id,
                              allow_gaps=allow_gaps)
    if json:
        print_json(result.to_dict())
        return
    out.print(f"[green]imported[/] {result.file} into {result.dataset_id}: "
              f"{result.rows_read:,} candles read ({format_ts(result.first_ts)} to "
              f"{format_ts(result.last_ts)}), {result.rows_added:,} added, "
              f"{result.rows_skipped:,} already stored")
    if result.gaps:
        err.print(f"[yellow]warning:[/] {result.gaps} gaps, {result.missing:,} candles missing "
                  "(--allow-gaps); sfarm data verify lists them")
    if result.conflicts:
        err.print(f"[yellow]warning:[/] {result.conflicts} candles differ from the stored ones; "
                  "the stored values were kept")


@data_app.command("relayout")
def relayout_cmd(
    dataset_ids: Annotated[list[str], typer.Argument(help="Dataset ids to rewrite.",
                                                     show_default=False,
                                                     autocompletion=complete_datasets)],
    root: DataRootOption = None,
    node: NodeRootOption = None,
    inventory: InventoryOption = None, network: NetworkOption = None,
    json: JsonOption = False,
) -> None:
    """Rewrite datasets under the current partitioning rule (1m candles written as one file a
    day by older versions become one file a month: full reads get ~10x faster).

    Atomic: readers see the old files or the new. The writer (a miner) waits meanwhile.

    Example: [bold]sfarm data relayout candles/binance/BTC-USDT/1m --root ~/sfarm/prod/miner-1[/]
    """
    root = node_root(root, node, inventory, network)
    _check_root(root)
    changed = {dataset_id: store.relayout(root, dataset_id) for dataset_id in dataset_ids}
    if json:
        print_json({"root": str(root), "datasets": [{"id": dataset_id, "changed": flag}
                                                    for dataset_id, flag in changed.items()]})
        return
    for dataset_id, flag in changed.items():
        out.print(f"{'[green]rewritten[/]' if flag else '[dim]already current[/]'} {dataset_id}")


@data_app.command("pull")
def pull_cmd(
    node: Annotated[str, typer.Argument(help="The producer node to pull from.",
                                               autocompletion=complete_nodes)],
    ids: Annotated[list[str] | None, typer.Argument(
        metavar="[ID]...", help="Dataset ids (default: every dataset the node holds).")] = None,
    root: RootOption = Path("."),
    inventory: InventoryOption = None,
    network: NetworkOption = None,
    json: JsonOption = False,
) -> None:
    """Pull datasets from a node of the farm into ROOT/mirror/<node>/<id>, incrementally.

    Over SSH with rsync for a remote node (strict host keys); only new partition files travel,
    and the mirror changes in one commit, so it always reads as a whole version of the dataset.
    Read the copy with `sfarm data show ID --root ROOT --node NODE` or `sfarm backtest`.

    Example: [bold]sfarm data pull miner-1 candles/binance/BTC-USDT/1h --root ./lab[/]
    """
    from rich.progress import Progress  # a pull's bar: not at every CLI start

    from sfarm.farm import Farm

    with Progress(transient=True, console=err, disable=json) as progress:
        bar = progress.add_task(f"pulling from {node}", total=None)

        def show(dataset_id: str, index: int, total: int) -> None:
            progress.update(bar, description=f"{node}: {dataset_id}", completed=index,
                            total=total)

        results = Farm.open(inventory, network, node).pull(node, ids or [], root, show)
    if json:
        print_json({"node": node, "root": str(root), "datasets": [r.to_json() for r in results]})
        return
    for result in results:
        what = (f"{result.files_transferred} files, {human_bytes(result.bytes_transferred)}"
                if result.changed else "up to date")
        out.print(f"{result.dataset_id}: {result.rows:,} rows to {format_ts(result.last_ts)}, "
                  f"{what}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
