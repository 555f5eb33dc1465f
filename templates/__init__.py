"""Files sfarm renders onto nodes and `sfarm init` copies: the package `sfarm.templates` once
built (see setup.py), read through sfarm.resources."""
