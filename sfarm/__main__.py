"""`python -m sfarm` runs the command line."""

from sfarm.cli.main import main

main()
