"""The worker runtime and the node side of the farm: one process per task under supervisord,
heartbeats in run/<task>.json, backoff on errors, clean exit on SIGTERM.

May import the engine packages (mining, indicators, trading: their entry points and the live
guard), sfarm.context (the `TaskContext` it builds for them), sfarm.tasks, sfarm.inventory,
sfarm.status, sfarm.data, sfarm.errors, sfarm.resources and supervisor; never sfarm.remote or
sfarm.cli.
"""
