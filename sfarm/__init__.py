"""sfarm: run a crypto-trading farm on one machine or many.

One TOML inventory declares networks of nodes and the tasks they run (mine, indicators, trade);
sfarm plans where every dataset is produced and consumed, runs the workers and shows the farm.
"""

__version__ = "0.1.0"
