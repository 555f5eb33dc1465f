"""Making a network's farm key: an ed25519 pair from ssh-keygen, held in memory only.

The controller never keeps it: the private half goes to the consumers (0600, in their
`secrets/`) and the public half into the producers' authorized_keys behind the gate. A deploy
that finds the consumers holding the same key keeps it; otherwise it makes a new one.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from sfarm.errors import RunError
from sfarm.remote.wiring import FarmKey
from sfarm.resolver.routes import FarmKeyInfo


def new_farm_key(farm: str, network: str, holders: set[str], kind: str = "farm") -> FarmKey:
    """A new key of `kind` (farm, sshfs) for the network, given to `holders`."""
    with tempfile.TemporaryDirectory(prefix="sfarm-key-") as directory:
        path = Path(directory) / "key"
        try:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                            "-C", f"sfarm {kind} key {farm}/{network}", "-f", str(path)],
                           check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as error:
            raise RunError(f"cannot make the {kind} key of network {network!r}: {error}",
                           hint="install the OpenSSH client (ssh-keygen)") from None
        private = path.read_bytes()
        public = " ".join(path.with_suffix(".pub").read_text().split()[:2])
    return FarmKey(FarmKeyInfo(public_key=public, holders=tuple(sorted(holders))), private)
