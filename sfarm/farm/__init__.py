"""The farm service: the commands an operator means (deploy, up, start/stop/restart, down, live
arming, status with lag, logs, pulls) over the nodes of one network, as results the command
line and the dashboard render. May import sfarm.remote, sfarm.inventory, sfarm.runtime (the node
protocol), sfarm.tasks, sfarm.status, sfarm.data (ids), sfarm.timeframes, sfarm.trading (the
live guard's hint) and sfarm.errors.

Exports are lazy (sfarm.lazy): `sfarm.farm.status`, the words and colours every view shares,
loads without the service and its SSH libraries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfarm.lazy import lazy_exports

_EXPORTS = {
    "Farm": "sfarm.farm.service",
    "FarmReport": "sfarm.farm.results",
    "Note": "sfarm.farm.results",
    "LogLines": "sfarm.farm.logs",
    "LogTail": "sfarm.farm.logs",
    "behind_live_edge_s": "sfarm.farm.status",
    "fill_lags": "sfarm.farm.status",
    "running_with_data": "sfarm.farm.status",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from sfarm.farm.logs import LogLines, LogTail  # noqa: F401
    from sfarm.farm.results import FarmReport, Note  # noqa: F401
    from sfarm.farm.service import Farm  # noqa: F401
    from sfarm.farm.status import (  # noqa: F401
        behind_live_edge_s,
        fill_lags,
        running_with_data,
    )
