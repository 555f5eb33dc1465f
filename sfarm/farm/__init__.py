"""The farm service: the commands an operator means (deploy, up, start/stop/restart, down, live
arming, status with lag, logs, pulls) over the nodes of one network, as results the command
line and the dashboard render. May import sfarm.remote, sfarm.inventory, sfarm.runtime (the node
protocol), sfarm.tasks, sfarm.status, sfarm.data (ids), sfarm.timeframes, sfarm.trading (the
live guard's hint) and sfarm.errors."""

from sfarm.farm.logs import LogLines, LogTail
from sfarm.farm.results import FarmReport, Note
from sfarm.farm.service import Farm
from sfarm.farm.status import behind_live_edge_s, fill_lags, running_with_data

__all__ = ["Farm", "FarmReport", "LogLines", "LogTail", "Note", "behind_live_edge_s",
           "fill_lags", "running_with_data"]
