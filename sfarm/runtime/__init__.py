"""The worker runtime: one process per task under supervisord, heartbeats in run/<task>.json,
backoff on errors, clean exit on SIGTERM. May import every engine package (mining, indicators,
trading), sfarm.status and sfarm.data."""
