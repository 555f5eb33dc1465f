"""The Textual dashboard (to come). May import the farm service (sfarm.farm), sfarm.status and
what they return; never sfarm.cli.
"""
