"""The worker runtime and the node side of the farm: one process per task under supervisord,
heartbeats in run/<task>.json, backoff on errors, clean exit on SIGTERM.

May import the engine packages (mining, indicators, trading: their entry points and the live
guard), sfarm.context (the `TaskContext` it builds for them), sfarm.status, sfarm.data,
sfarm.inventory, sfarm.errors and sfarm.resources; never sfarm.remote or sfarm.cli.
"""
