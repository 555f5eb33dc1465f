"""The dashboard: `sfarm tui` (a Textual app over the farm service) and `sfarm web` (the same
app served to a browser by textual-serve). May import the farm service (sfarm.farm),
sfarm.status and what they return; never sfarm.cli.
"""
