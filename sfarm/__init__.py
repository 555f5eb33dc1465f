"""sfarm: run a crypto-trading farm on one machine or many.

One TOML inventory declares networks of nodes and the tasks they run (mine, indicators, trade);
sfarm plans where every dataset is produced and consumed, runs the workers and shows the farm.
"""

__version__ = "0.1.0"

# Starting equity when none is given: the `cash` default of trade tasks (sfarm.tasks) and of
# `sfarm backtest`. Here, not in the task models, so that the command line shows it in its help
# without loading pydantic.
DEFAULT_CASH = 10_000.0
