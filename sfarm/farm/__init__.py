"""The farm service: the commands an operator means (deploy, up, start/stop/restart, down, live
arming, status with lag, logs, pulls) over the nodes of one network, as results the command
line and the dashboard render. May import sfarm.inventory, sfarm.remote, sfarm.runtime.protocol,
sfarm.status, sfarm.data.ids, sfarm.timeframes and sfarm.trading.live_guard."""

from sfarm.farm.logs import LogLines, LogTail
from sfarm.farm.results import FarmReport, Note
from sfarm.farm.service import Farm
from sfarm.farm.status import behind_live_edge_s, fill_lags, running_with_data

__all__ = ["Farm", "FarmReport", "LogLines", "LogTail", "Note", "behind_live_edge_s",
           "fill_lags", "running_with_data"]
