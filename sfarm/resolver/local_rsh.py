"""`python -m sfarm.resolver.local_rsh --root ROOT HOST WORDS...`: the remote shell of a peer
on this machine (`host = "local"`).

rsync and the follower run `RSH HOST WORDS...` as they would run ssh. Here HOST is ignored and
the words go to the gate exactly as sshd would hand a forced command the client's request (the
words joined by spaces in SSH_ORIGINAL_COMMAND), so a local peer is read through the same gate,
snapshot and rrsync as a remote one.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    roots: list[str] = []
    while len(argv) >= 2 and argv[0] == "--root":
        roots.append(argv[1])
        argv = argv[2:]
    if not roots or not argv:
        sys.exit("usage: python -m sfarm.resolver.local_rsh --root ROOT HOST WORDS...")
    os.environ["SSH_ORIGINAL_COMMAND"] = " ".join(argv[1:])
    os.execv(sys.executable, [sys.executable, "-m", "sfarm.resolver.gate", *roots])


if __name__ == "__main__":
    main(sys.argv[1:])
