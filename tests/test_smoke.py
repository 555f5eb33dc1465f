"""The command line starts and explains itself."""

import subprocess
import sys


def test_python_m_sfarm_prints_help() -> None:
    result = subprocess.run([sys.executable, "-m", "sfarm", "--help"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0
    assert "trading farm" in result.stdout


def test_command_lists_give_each_summary_without_source_line_breaks() -> None:
    """Docstrings wrap at 100 columns; the command list must not break lines where they do."""
    import os

    env = {**os.environ, "COLUMNS": "250"}
    for group in ([], ["data"]):
        result = subprocess.run([sys.executable, "-m", "sfarm", *group, "--help"],
                                capture_output=True, text=True, check=False, env=env)
        assert result.returncode == 0
        rows = [line.strip("│ ").strip() for line in result.stdout.splitlines()
                if line.startswith("│ ") and "--" not in line]
        assert rows
        # At 250 columns every summary fits on its row: none continues on the next one.
        assert all(row.split()[0].islower() for row in rows if row), rows
