"""Bounds of the node protocol's requests that the command line shows in --help, kept apart
from the protocol's models (sfarm.runtime.protocol) so that showing them loads no pydantic."""

from __future__ import annotations

from typing import Final

SESSION_TRADES_MAX: Final = 1000  # the last trades of a session one request may ask for
