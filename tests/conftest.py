"""Shared pytest set-up. Fixtures that start real things (emulator, sshd, supervisord) live in
tests/fixtures/ and are listed here once."""

from __future__ import annotations

pytest_plugins: list[str] = [
    "tests.fixtures.emulator",
    "tests.fixtures.mount_namespace",
    "tests.fixtures.schedule",
    "tests.fixtures.sshd",
    "tests.fixtures.user_hosts",
    "tests.fixtures.venvs",
    "tests.fixtures.wheelhouse",
]
