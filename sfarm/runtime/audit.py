"""The node's audit log, `logs/audit.log`: who armed, disarmed or deployed what, and when, one
JSON object a line, appended (never rewritten), private to the node's user. `who` is the
operator as the controller names them (user@host of the machine the command ran on)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

AUDIT_LOG = "audit.log"


def record(logs: Path, who: str, what: str, detail: str = "", *,
           now: datetime | None = None) -> None:
    """Append one line to `logs`/audit.log (created 0600)."""
    moment = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    line = json.dumps({"at": moment, "who": who or "unknown", "what": what,
                       "detail": detail}) + "\n"
    logs.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(logs / AUDIT_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, line.encode())  # one write: lines from two commands never mix
    finally:
        os.close(descriptor)
