"""What a command loads before its first result (issue 18, item 1): `sfarm --help` and every
command's help load no data, model or exchange library, and parsing an indicator spec (what
every inventory load does) loads no numpy. Each check runs in a fresh interpreter, so nothing
another test imported hides a regression; they check what is imported, not how long it takes
(tests/benchmarks/test_startup.py times it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures.cli import sfarm_env
from tests.fixtures.processes import PROJECT

# Each costs from a tenth of a second (pydantic) to over a second (numba, pandas) to import.
HEAVY = ("numpy", "polars", "pandas", "pyarrow", "numba", "talib", "ccxt", "pydantic",
         "textual", "paramiko", "fabric", "aiohttp", "supervisor")


def _loaded_after(code: str) -> list[str]:
    """The HEAVY top-level packages in sys.modules after running `code` in a new interpreter."""
    probe = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        heavy = {HEAVY!r}
        print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set(heavy))))
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=PROJECT, env=sfarm_env(), timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _help_of(argv: list[str]) -> str:
    return f"""
        import contextlib, io
        from sfarm.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()) as shown:
            try:
                main({argv!r})
            except SystemExit as exit_:
                assert exit_.code in (0, 2, None), exit_.code  # no arguments: help, status 2
        assert "Usage" in shown.getvalue(), shown.getvalue()
        import sys  # typer's renderer, without the markdown it never uses (sfarm.cli.help_render)
        assert "typer.rich_utils" in sys.modules and "rich.markdown" not in sys.modules
    """


@pytest.mark.parametrize("argv", [
    ["--help"],
    [],  # no arguments: the help
    ["status", "--help"],
    ["validate", "--help"],
    ["backtest", "--help"],
    ["data", "show", "--help"],
    ["sim", "serve", "--help"],
    ["worker", "run", "--help"],
    ["mine", "--help"],
])
def test_help_loads_no_heavy_library(argv: list[str]) -> None:
    loaded = _loaded_after(_help_of(argv))
    if argv[1:]:
        # typer itself loads pydantic (typer._adapters) to coerce the values of a command it
        # parses: a subcommand's help pays that, `sfarm --help` does not.
        loaded = [name for name in loaded if name != "pydantic"]
    assert loaded == []


def test_the_command_line_module_loads_no_heavy_library() -> None:
    # What every command pays before typer parses its arguments.
    assert _loaded_after("import sfarm.cli.main") == []


def test_parsing_indicator_specs_loads_no_numpy() -> None:
    # Every inventory load parses the indicators tasks' specs; numpy is for computing them.
    loaded = _loaded_after("""
        from sfarm.indicators import describe, parse_spec
        assert parse_spec("bbands(20, 2.5)").key == "bbands_20_2p5"
        assert parse_spec("sar").key == "sar_0p02_0p2"
        describe()
    """)
    assert "numpy" not in loaded


def test_inventory_package_and_emulator_package_load_lazily() -> None:
    # Importing a light module of these packages runs their __init__: it must stay light.
    assert _loaded_after("""
        import sfarm.inventory.problems, sfarm.inventory.locate, sfarm.sim.defaults
        import sfarm.inventory, sfarm.sim
        assert callable(sfarm.inventory.find_inventory)
    """) == []


def test_status_loads_neither_polars_nor_numpy(tmp_path: Path) -> None:
    # status reads the strategy files for their indicators only (checking them is validate's
    # and deploy's), and the pull machinery (the store, polars) is not the status's.
    shutil.copytree(PROJECT / "inventory" / "strategies", tmp_path / "strategies")
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text((PROJECT / "inventory" / "local.toml").read_text())
    loaded = _loaded_after(f"""
        import contextlib, io
        from sfarm.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()) as shown:
            try:
                main(["status", "-i", {str(inventory)!r}])
            except SystemExit:
                pass  # an undeployed node: not running, exit 1
        assert "lab" in shown.getvalue(), shown.getvalue()
    """)
    assert not {"polars", "numpy", "pandas", "numba"} & set(loaded), loaded


def test_validate_checks_the_strategies_without_polars() -> None:
    # The condition language types every value itself (sfarm.trading.condition_grammar): a
    # strategy is read and checked, and compiled into polars only by what runs it.
    inventory = PROJECT / "inventory" / "local.toml"
    loaded = _loaded_after(f"""
        import contextlib, io
        from sfarm.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()) as shown:
            try:
                main(["validate", "-i", {str(inventory)!r}])
            except SystemExit as exit_:
                assert exit_.code in (0, None), exit_.code
        assert "valid" in shown.getvalue().lower(), shown.getvalue()
    """)
    assert not {"polars", "numpy", "pandas", "numba"} & set(loaded), loaded


def test_help_renderer_stand_ins_give_the_real_classes() -> None:
    # typer.rich_utils is imported without rich.markdown and rich.traceback; were typer to use
    # them (markdown mode, pretty exceptions), it gets the real thing, and so does anyone who
    # imports those modules afterwards.
    assert _loaded_after("""
        import sys
        from sfarm.cli.help_render import load_rich_utils
        rich_utils = load_rich_utils()
        assert "rich.markdown" not in sys.modules and "rich.traceback" not in sys.modules
        import rich.markdown, rich.traceback
        assert type(rich_utils.Markdown("# title")) is rich.markdown.Markdown
        try:
            1 / 0
        except ZeroDivisionError as error:
            made = rich_utils.Traceback.from_exception(type(error), error, error.__traceback__)
        assert type(made) is rich.traceback.Traceback
        assert rich.markdown.Markdown.__module__ == "rich.markdown"
    """) == []


def test_a_usage_error_renders_without_rich_markdown() -> None:
    loaded = _loaded_after("""
        import contextlib, io, sys
        from sfarm.cli.main import main
        with contextlib.redirect_stderr(io.StringIO()) as shown:
            try:
                main(["backtest", "--bogus"])
            except SystemExit as exit_:
                assert exit_.code == 2, exit_.code
        assert "No such option: --bogus" in shown.getvalue(), shown.getvalue()
        assert "typer.rich_utils" in sys.modules and "rich.markdown" not in sys.modules
    """)
    assert set(loaded) <= {"pydantic"}  # typer's coercion of the command's values (above)


def test_each_command_module_registers_the_commands_the_map_names() -> None:
    # `sfarm CMD` builds the app of CMD's module alone (sfarm.cli.main.COMMAND_MODULES): a
    # command missing from the map would still run (the whole app), one mapped to the wrong
    # module would not.
    import typer

    from sfarm.cli.main import COMMAND_MODULES, build_app

    for module, commands in COMMAND_MODULES.items():
        group = typer.main.get_command(build_app((module,)))
        assert isinstance(group, typer.core.TyperGroup)
        assert tuple(group.commands) == commands, module
    every = typer.main.get_command(build_app())
    assert isinstance(every, typer.core.TyperGroup)
    assert sorted(every.commands) == sorted(name for names in COMMAND_MODULES.values()
                                            for name in names)


def test_a_command_loads_no_other_command_module() -> None:
    # `sfarm status` builds the app of sfarm.cli.farm only: not backtest's, data's or sim's.
    loaded = _loaded_after("""
        import contextlib, io, sys
        from sfarm.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(["status", "--help"])
            except SystemExit:
                pass
        others = {"sfarm.cli.backtest", "sfarm.cli.data", "sfarm.cli.sim", "sfarm.cli.mine",
                  "sfarm.cli.web", "sfarm.cli.worker", "sfarm.cli.inventory_cmds"}
        assert not others & set(sys.modules), sorted(others & set(sys.modules))
    """)
    assert "numpy" not in loaded


def test_status_loads_none_of_deploys_machinery(tmp_path: Path) -> None:
    # status asks each node for its tasks: deploy's modules (the wiring, the deployment, the
    # dry run, jump hosts), the data flow, live arming and the log tail load with their own
    # commands; of the node protocol's models, only those a status sends and reads are built.
    shutil.copytree(PROJECT / "inventory" / "strategies", tmp_path / "strategies")
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text((PROJECT / "inventory" / "local.toml").read_text())
    _loaded_after(f"""
        import contextlib, io, sys
        from sfarm.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(["status", "-i", {str(inventory)!r}])
            except SystemExit:
                pass
        unwanted = {{"sfarm.remote.wiring", "sfarm.remote.deploy", "sfarm.remote.dry_run",
                    "sfarm.remote.jump_hosts", "sfarm.farm.flow", "sfarm.farm.live",
                    "sfarm.farm.logs", "sfarm.farm.former"}}
        assert not unwanted & set(sys.modules), sorted(unwanted & set(sys.modules))
        from sfarm.runtime.protocol import ApplyRequest, StatusRequest
        assert not ApplyRequest.__pydantic_complete__
    """)


def test_inventory_checks_load_no_status_model() -> None:
    # The inventory's checks read the service names of sfarm.status.services: validate loads
    # none of the status models (pydantic classes built at import).
    assert _loaded_after("""
        import sys
        import sfarm.inventory.checks
        assert "sfarm.status.model" not in sys.modules
        from sfarm.status import TaskStatus  # the lazy export gives the model
        assert TaskStatus.__module__ == "sfarm.status.model"
    """) == ["pydantic"]


def test_a_small_backtest_loads_neither_pandas_nor_pyarrow(tmp_path: Path) -> None:
    # Both cost a `sfarm backtest` more than they save it (~80 ms for pyarrow's import):
    # talib's pandas wrappers and the engine's bitmap path stay unloaded; so does
    # talib.abstract (the look-back of a run from the first candle is not needed).
    from sfarm.data import append
    from tests.fixtures.data_helpers import T0, make_candles

    append(tmp_path, "candles/sim/BTC-USDT/1h", make_candles(T0, 1_000, "1h"))
    strategy = PROJECT / "inventory" / "strategies" / "rsi_revert.toml"
    loaded = _loaded_after(f"""
        import contextlib, io
        from sfarm.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()) as shown:
            try:
                main(["backtest", {str(strategy)!r}, "--root", {str(tmp_path)!r},
                      "--exchange", "sim", "--market", "BTC/USDT", "--timeframe", "1h"])
            except SystemExit as exit_:
                assert exit_.code in (0, None), exit_.code
        assert "final equity" in shown.getvalue().lower(), shown.getvalue()
        import sys
        assert "talib.abstract" not in sys.modules
        assert "typer.rich_utils" not in sys.modules  # help and errors only
    """)
    assert {"numpy", "polars", "talib"} <= set(loaded)
    assert not {"pandas", "pyarrow"} & set(loaded), loaded
