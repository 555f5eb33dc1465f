"""How many nodes are worked on at once and how long a node has to connect: the defaults the
command line shows in --help, kept apart from the controller so that showing them loads no SSH
library."""

from __future__ import annotations

DEFAULT_FORKS = 10  # nodes changed at once, as Ansible's forks and pyinfra's --parallel
READ_PARALLEL = 32  # nodes read at once (status): a request each, no install
CONNECT_TIMEOUT_S = 5.0  # a node not connected by then is reported unreachable
