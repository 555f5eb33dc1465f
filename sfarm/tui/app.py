"""`sfarm tui`: the farm's dashboard, a Textual app on the farm service (sfarm.farm.Farm).

Every figure comes from the same calls as the command line's (`Farm.status` with kept
connections, `Farm.logs`, `Farm.control`...), made in thread workers so that a slow or dead
node never freezes the screen: a node that has not answered within the refresh shows as such
while the rest keeps updating (sfarm.remote.refresh). `sfarm web` serves this same app to a
browser.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Tree

from sfarm.farm import Farm, FarmReport
from sfarm.farm.live import live_tasks
from sfarm.farm.status import STATE_COLOURS
from sfarm.status import NetworkStatus
from sfarm.tui.actions import VERBS, Plan, Selection, Verb, outcome, plan
from sfarm.tui.confirm import Confirm, TypeToConfirm
from sfarm.tui.detail_pane import DetailPane
from sfarm.tui.log_pane import LogPane
from sfarm.tui.rows import COLUMNS, UNREACHABLE, RowFilter, TaskRow, task_rows

DEFAULT_REFRESH_S = 2.0


class Dashboard(App[None]):
    """The dashboard of one network of `farm` (whose connections it keeps: the caller opens
    it with keep_connections=True and closes it after the app ends). Its status comes from
    `collect` (default: `farm.status`) as of `clock()` (default: this machine's clock): a
    recorded status and a fixed clock give the same screen every time (the snapshot tests)."""

    TITLE = "sfarm"
    CSS_PATH = "dashboard.tcss"
    BINDINGS = [
        Binding("s", "act('start')", "Start"),
        Binding("x", "act('stop')", "Stop"),
        Binding("r", "act('restart')", "Restart"),
        Binding("d", "act('deploy')", "Deploy"),
        Binding("a", "act('arm')", "Arm live"),
        Binding("z", "act('disarm')", "Disarm"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, farm: Farm, *, refresh_s: float = DEFAULT_REFRESH_S,
                 collect: Callable[[], NetworkStatus] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.farm = farm
        self.refresh_s = refresh_s
        self.collect = collect or farm.status
        self.clock = clock
        self.status: NetworkStatus | None = None
        self.status_at = 0.0  # when the status was collected (unix seconds)
        self.selection = Selection()
        self.row_filter = RowFilter()
        self.live = frozenset(live_tasks(farm.inventory, list(farm.inventory.model.tasks)))
        self._collecting = False

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="top"):
            yield Tree(self.farm.network, data=Selection(), id="farm-tree")
            with Vertical(id="table-pane"):
                yield Input(placeholder="filter: words, state:failed,stale  node:NAME  "
                                        "kind:mine  (Escape clears)", id="filter")
                yield DataTable(id="tasks", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="bottom"):
            yield DetailPane(self.farm, id="detail")
            yield LogPane(self.farm, id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"network {self.farm.network}"
        tree = self.query_one(Tree)
        tree.root.expand()
        for spec in self.farm.nodes:
            branch = tree.root.add(spec.name, data=Selection(spec.name), expand=True)
            for name in spec.tasks:
                branch.add_leaf(name, data=Selection(spec.name, name))
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.query_one("#filter").display = False
        self.collect_status()
        self.set_interval(self.refresh_s, self.collect_status)

    # -- status ------------------------------------------------------------------------------

    def collect_status(self) -> None:
        """Ask every node for its status, unless the last request is still under way."""
        if not self._collecting:
            self._collecting = True
            self._collect()

    @work(thread=True, group="status", exit_on_error=False)
    def _collect(self) -> None:
        try:
            status = self.collect()
        except Exception as error:  # never the nodes' (theirs are rows): the farm's own
            self.call_from_thread(self.notify, f"status: {error}", severity="error")
            status = None
        finally:
            self._collecting = False
        if status is not None:
            self.call_from_thread(self.show_status, status, self.clock())

    def show_status(self, status: NetworkStatus, collected_at: float) -> None:
        self.status, self.status_at = status, collected_at
        self._label_tree(status)
        self._fill_table()
        self.query_one(DetailPane).show(self.selection, status, collected_at)

    def _label_tree(self, status: NetworkStatus) -> None:
        nodes = {node.name: node for node in status.nodes}
        for branch in self.query_one(Tree).root.children:
            node = nodes.get(branch.data.node if branch.data else "")
            if node is None:
                continue
            branch.set_label(_dot(node.name, "running" if node.reachable else UNREACHABLE))
            tasks = {task.name: task for task in node.tasks}
            for leaf in branch.children:
                task = tasks.get(leaf.data.task if leaf.data else "")
                state = task.state if node.reachable and task else "unknown"
                leaf.set_label(_dot(str(leaf.data.task if leaf.data else ""), state))

    def _rows(self) -> list[TaskRow]:
        if self.status is None:
            return []
        return [row for row in task_rows(self.status, self.status_at)
                if self.row_filter.matches(row)]

    def _fill_table(self) -> None:
        """The rows of the last status (through the filter): cells updated in place when the
        rows are the same ones, else the table rebuilt with its cursor kept on its row. Never
        a change of selection: that is the operator's alone."""
        table = self.query_one(DataTable)
        rows = self._rows()
        cells = {row.key: _cells(row) for row in rows}
        if list(cells) == [key.value for key in table.rows]:
            for key, values in cells.items():
                for column, value in zip(COLUMNS, values, strict=True):
                    table.update_cell(key, column, value)
            return
        keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value \
            if table.row_count else None
        with self.prevent(DataTable.RowHighlighted):
            table.clear()
            for key, values in cells.items():
                table.add_row(*values, key=key)
            if keep is not None and keep in table.rows:
                table.move_cursor(row=table.get_row_index(keep), animate=False)

    # -- selection ---------------------------------------------------------------------------

    def select_row(self, key: str) -> None:
        """Put the table's cursor on the row `key` (`node/task`), which selects it."""
        table = self.query_one(DataTable)
        if key in table.rows:
            table.move_cursor(row=table.get_row_index(key), animate=False)
            self.select(_row_selection(key))

    @on(DataTable.RowHighlighted, "#tasks")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Only the operator's moves select: not the cursor a refresh puts back on its row.
        if event.row_key.value is None or not event.data_table.has_focus:
            return
        self.select(_row_selection(event.row_key.value))

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Moving to the table selects the row its cursor is on."""
        table = event.widget
        if isinstance(table, DataTable) and table.id == "tasks" and table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            if key is not None:
                self.select(_row_selection(key))

    @on(Tree.NodeHighlighted, "#farm-tree")
    def _tree_highlighted(self, event: Tree.NodeHighlighted[Selection]) -> None:
        if event.node.data is not None:
            self.select(event.node.data)

    def select(self, selection: Selection) -> None:
        if selection == self.selection:
            return
        self.selection = selection
        self.query_one(DetailPane).show(selection, self.status, self.status_at)
        self.query_one(LogPane).follow(selection)
        self.refresh_bindings()

    @property
    def detail_ready(self) -> bool:
        """Whether the detail pane shows all it will for the selection."""
        return self.query_one(DetailPane).ready

    # -- filter ------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.query_one(DataTable).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.row_filter = RowFilter.parse(event.value)
        self._fill_table()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one(DataTable).focus()

    def set_filter(self, text: str) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(text)
        box.value = text
        self.row_filter = RowFilter.parse(text)
        self._fill_table()

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act" and parameters:
            verb = str(parameters[0])
            applies = not isinstance(plan(verb, self.selection,  # type: ignore[arg-type]
                                          live_tasks=self.live, network=self.farm.network), str)
            return True if applies else None  # None: shown, greyed out
        return True

    def action_act(self, verb: Verb) -> None:
        self.ask(verb, self.selection)

    def ask(self, verb: Verb, target: Selection) -> None:
        """Confirm `verb` on `target` (twice for arming a live session), then run it."""
        decided = plan(verb, target, live_tasks=self.live, network=self.farm.network)
        if isinstance(decided, str):
            self.notify(decided, severity="warning")
            return

        def run_if(yes: bool | None) -> None:
            if yes:
                self._run(decided)

        def confirmed(yes: bool | None) -> None:
            if yes and decided.type_word is not None:
                self.push_screen(TypeToConfirm(decided.question, decided.type_word), run_if)
            else:
                run_if(yes)

        self.push_screen(Confirm(decided.question, danger=decided.danger), confirmed)

    @work(thread=True, group="actions", exit_on_error=False)
    def _run(self, decided: Plan) -> None:
        self.call_from_thread(self.notify, f"{decided.verb} {decided.target.label}…")
        try:
            report = self._perform(decided)
        except Exception as error:
            self.call_from_thread(self.notify, f"{decided.verb} {decided.target.label}: {error}",
                                  severity="error", timeout=10)
            return
        message, failed = outcome(decided, report)
        self.call_from_thread(self.notify, message, severity="error" if failed else "information",
                              timeout=10 if failed else 5)
        self.call_from_thread(self.collect_status)

    def _perform(self, decided: Plan) -> FarmReport:
        target = decided.target
        match decided.verb:
            case "start" | "stop" | "restart" as action:
                return self.farm.control(action, target.task, node=target.node)
            case "deploy":
                return self.farm.deploy(node=target.node)
            case "arm" | "disarm" as verb:
                return self.farm.set_live(verb == "arm", target.task, command="dashboard",
                                          node=target.node)
        raise AssertionError(decided.verb)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette: every action on the selection, on each node and each task, and the
        usual filters."""
        yield from super().get_system_commands(screen)
        targets = [self.selection, Selection()]
        for spec in self.farm.nodes:
            targets += [Selection(spec.name)] + [Selection(spec.name, task)
                                                 for task in spec.tasks]
        seen = set()
        for target in targets:
            for verb in VERBS:
                decided = plan(verb, target, live_tasks=self.live, network=self.farm.network)
                if isinstance(decided, str) or (verb, decided.target) in seen:
                    continue
                seen.add((verb, decided.target))
                yield SystemCommand(f"{verb.capitalize()} {decided.target.label}",
                                    decided.question.splitlines()[0],
                                    _bound(self.ask, verb, decided.target))
        for state in ("failed", "stale", "stopped", UNREACHABLE):
            yield SystemCommand(f"Filter: {state}", f"show only rows in state {state}",
                                _bound(self.set_filter, f"state:{state}"))
        for spec in self.farm.nodes:
            yield SystemCommand(f"Filter: node {spec.name}", f"show only node {spec.name}",
                                _bound(self.set_filter, f"node:{spec.name}"))
        yield SystemCommand("Filter: clear", "show every row", _bound(self.set_filter, ""))


def _row_selection(key: str) -> Selection:
    """The selection of a table row's key (`node/task`; `node/` for a node's row)."""
    node, _, task = key.partition("/")
    return Selection(node, task or None)


def _cells(row: TaskRow) -> list[str | Text]:
    cells: list[str | Text] = list(row.cells())
    cells[COLUMNS.index("state")] = Text(row.state, style=STATE_COLOURS.get(row.state, ""))
    return cells


def _dot(name: str, state: str) -> Text:
    return Text.assemble(("● ", STATE_COLOURS.get(state, "dim")), name)


def _bound(function: Callable[..., None], *args: object) -> Callable[[], None]:
    return lambda: function(*args)
