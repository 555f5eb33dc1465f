"""`python -m sfarm` runs the command line (sfarm.cli.entry: shell completion answers there
without loading the typer app)."""

from sfarm.cli.entry import main

main()
