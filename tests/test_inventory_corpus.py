"""Every broken inventory of tests/inventories/broken/ is refused with a message to act on.

The expectations live in tests/inventories/expected.toml; the line of each problem is marked in
the broken file itself with `# <-- error`. Each file is checked three ways: through
`load_inventory` (the problems one by one: count, key path, line, file), through the command
line in-process (`sfarm validate -i FILE`: exit status 2, nothing on stdout, the same facts on
stderr), and, for the first file of each family, in a real `sfarm` process (no traceback).
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from sfarm.errors import UsageError
from sfarm.inventory import InventoryError, load_inventory
from sfarm.inventory.source import format_key_path
from tests.fixtures.cli import Run, run_here, sfarm_process
from tests.fixtures.processes import PROJECT

INVENTORIES = Path(__file__).parent / "inventories"
BROKEN = INVENTORIES / "broken"
MARK = "# <-- error"


@dataclass(frozen=True)
class Case:
    """One broken inventory and what its error message must contain."""

    path: Path
    lines: tuple[int, ...]
    paths: tuple[str, ...] = ()
    says: tuple[str, ...] = ()
    count: int = 1
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem


def _marked_lines(path: Path) -> tuple[int, ...]:
    text = path.read_text(encoding="utf-8")
    return tuple(number for number, line in enumerate(text.splitlines(), start=1) if MARK in line)


@cache
def load_cases() -> tuple[Case, ...]:
    expected = tomllib.loads((INVENTORIES / "expected.toml").read_text(encoding="utf-8"))
    cases = []
    for name, entry in expected.items():
        entry = dict(entry)
        path = BROKEN / f"{name}.toml"
        cases.append(Case(
            path=path, lines=_marked_lines(path) if path.exists() else (),
            paths=tuple(entry.pop("paths", ())), says=tuple(entry.pop("says", ())),
            count=int(entry.pop("count", 1)), extra=entry,
        ))
    return tuple(cases)


def _param(case: Case) -> object:
    return pytest.param(case, id=case.name)


CASES = [_param(case) for case in load_cases()]


# --- the corpus itself ----------------------------------------------------------------------------


def test_corpus_and_expectations_match() -> None:
    on_disk = {path.stem for path in BROKEN.glob("*.toml")}
    expected = {case.name for case in load_cases()}
    assert on_disk - expected == set(), "broken files without an entry in expected.toml"
    assert expected - on_disk == set(), "expected.toml entries without a broken file"
    assert len(on_disk) >= 35
    for case in load_cases():
        assert not case.extra, f"{case.name}: unknown keys in expected.toml: {case.extra}"
        assert case.says or case.paths, f"{case.name}: expects nothing"


def test_every_problem_kind_of_the_issue_is_covered() -> None:
    """The kinds issue 3 names, each by at least one file of the corpus."""
    names = {case.name for case in load_cases()}
    for prefix in ("syntax-", "type-", "unknown-key-", "unknown-task-on-node", "unknown-exchange",
                   "unknown-ccxt", "bad-market", "bad-timeframe", "bad-date", "bad-indicator",
                   "duplicate-producer", "missing-producer", "cycle", "empty-network",
                   "no-networks", "version-", "local-", "live-", "credentials-", "strategy-",
                   "task-listed-twice", "bad-node-name"):
        assert any(name.startswith(prefix) for name in names), prefix


# --- in-process: the problems one by one ----------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_load_inventory_refuses(case: Case) -> None:
    with pytest.raises(UsageError) as raised:
        load_inventory(case.path)
    error = raised.value
    full = error.message + (f" ({error.hint})" if error.hint else "")
    for part in case.says:
        assert part in full, f"{part!r} not in {full!r}"

    if not isinstance(error, InventoryError):  # a TOML syntax error: tomllib stops at the first
        assert case.name.startswith("syntax-")
        assert len(case.lines) == 1
        assert error.message.startswith(f"{case.path}:{case.lines[0]}: ")
        return

    problems = error.problems
    assert len(problems) == case.count, [problem.render() for problem in problems]
    assert {problem.file for problem in problems} == {case.path}
    reported_paths = {format_key_path(problem.path) for problem in problems}
    assert set(case.paths) <= reported_paths
    reported_lines = {problem.line for problem in problems}
    if case.lines:
        assert reported_lines == set(case.lines)
    else:  # the key is not in the file at all (a missing key): no line to name, no wrong one
        assert reported_lines == {None}
    assert f"{len(problems)} problem" in error.message


# --- as a person sees it: `sfarm validate -i FILE` ------------------------------------------------


def family(case: Case) -> str:
    return case.name.split("-")[0]


# Every file goes through the CLI in-process; the first file of each family (syntax, type,
# unknown, bad, ...) also through a real `sfarm` process. A process costs ~2 s of imports
# (pandas, polars, talib, ccxt), so all 55 would take a minute; SFARM_TEST_ALL_PROCESSES=1
# runs every file in a process.
_families: dict[str, Case] = {}
for _case in load_cases():
    _families.setdefault(family(_case), _case)
PROCESS_CASES = [_param(case) for case in load_cases()
                 if os.environ.get("SFARM_TEST_ALL_PROCESSES") == "1"
                 or _families[family(case)] is case]


@cache
def validate_in_processes() -> dict[str, Run]:
    """`sfarm validate` on the PROCESS_CASES files, as many processes at a time as cores."""
    cases = [param.values[0] for param in PROCESS_CASES]  # type: ignore[attr-defined]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        runs = pool.map(lambda case: sfarm_process("validate", "-i", str(case.path)), cases)
        return {case.name: run for case, run in zip(cases, runs, strict=True)}


def check_refusal(case: Case, run: Run) -> None:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    assert str(case.path) in run.stderr
    for line in case.lines:
        assert f"{case.path}:{line}:" in run.stderr
    if not case.lines:
        assert not re.search(re.escape(str(case.path)) + r":\d+:", run.stderr)
    for key_path in case.paths:
        assert key_path in run.stderr
    for part in case.says:
        assert part in run.stderr, f"{part!r} not in stderr:\n{run.stderr}"


@pytest.mark.parametrize("case", CASES)
def test_sfarm_validate_refuses(case: Case) -> None:
    check_refusal(case, run_here("validate", "-i", str(case.path)))


@pytest.mark.parametrize("case", PROCESS_CASES)
def test_sfarm_validate_refuses_in_a_process(case: Case) -> None:
    check_refusal(case, validate_in_processes()[case.name])


def test_every_family_runs_in_a_process() -> None:
    assert len(PROCESS_CASES) >= len({family(case) for case in load_cases()}) >= 15


# --- secrets.toml beside the inventory ------------------------------------------------------------


@pytest.fixture
def farm_dir(tmp_path: Path) -> Path:
    """A copy of the embedded local farm, with its strategies, in a directory of its own."""
    shutil.copy(PROJECT / "inventory" / "local.toml", tmp_path / "sfarm.toml")
    shutil.copytree(PROJECT / "inventory" / "strategies", tmp_path / "strategies")
    return tmp_path



@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_secrets_readable_by_others_is_refused(farm_dir: Path, mode: int) -> None:
    secrets = farm_dir / "secrets.toml"
    secrets.write_text('[BINANCE]\napi_key = "k"\nsecret = "s"\n', encoding="utf-8")
    secrets.chmod(mode)
    with pytest.raises(InventoryError) as raised:
        load_inventory(farm_dir / "sfarm.toml")
    (problem,) = raised.value.problems
    assert problem.file == secrets
    assert f"mode {mode:04o}" in problem.message
    assert problem.hint == f"run: chmod 600 {secrets}"


def test_secrets_0600_is_accepted(farm_dir: Path) -> None:
    secrets = farm_dir / "secrets.toml"
    secrets.write_text('[BINANCE]\napi_key = "k"\nsecret = "s"\n', encoding="utf-8")
    secrets.chmod(0o600)
    loaded = load_inventory(farm_dir / "sfarm.toml")
    assert loaded.networks == ["local"]


def test_sfarm_validate_refuses_secrets_0644(farm_dir: Path) -> None:
    secrets = farm_dir / "secrets.toml"
    secrets.write_text('[BINANCE]\napi_key = "k"\nsecret = "s"\n', encoding="utf-8")
    secrets.chmod(0o644)
    run = sfarm_process("validate", "-i", str(farm_dir / "sfarm.toml"))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert f"{secrets}: " in run.stderr
    assert "mode 0644" in run.stderr
    assert f"chmod 600 {secrets}" in run.stderr
    secrets.chmod(0o600)
    assert sfarm_process("validate", "-i", str(farm_dir / "sfarm.toml")).returncode == 0


# --- rendering ------------------------------------------------------------------------------------


def test_messages_keep_square_brackets() -> None:
    """Messages quote TOML tables; rich must not take them for markup."""
    run = run_here("validate", "-i", str(BROKEN / "live-without-credentials.toml"))
    assert "[exchanges.binance]" in run.stderr
    run = run_here("validate", "-i", str(BROKEN / "empty-network.toml"))
    assert "[networks.NAME.nodes.NODE]" in run.stderr
