"""The command line starts and explains itself."""

import subprocess
import sys


def test_python_m_sfarm_prints_help() -> None:
    result = subprocess.run([sys.executable, "-m", "sfarm", "--help"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0
    assert "trading farm" in result.stdout
