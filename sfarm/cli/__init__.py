"""The `sfarm` command line: thin typer commands that parse options, call one core function
and render its result with rich (or as JSON). May import every other sfarm package."""
