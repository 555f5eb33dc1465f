"""`routes.json`: what deploy tells a node about where its tasks' inputs come from.

Written by `sfarm deploy` into every node root from the network's plan: for each task, its
inputs and the node producing each; for each other node that feeds this one (a peer), how to
reach it (address, port, user, node root) and which datasets to follow there. The node's
resolver and its status read it; nobody writes it by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from sfarm.errors import RunError

ROUTES_FILE = "routes.json"
KNOWN_HOSTS_FILE = "known_hosts"  # the peers' host keys, checked strictly
LOCAL_HOST = "local"

# The network's keys, one per way of reading a peer: the farm key (rsync through the gate) and
# the SSHFS key (a read-only sftp mount). Private half in secrets/<kind>_key on the consumers
# that read that way only, its public half and holders beside it (FarmKeyInfo).
KeyKind = Literal["farm", "sshfs"]
KEY_KINDS: tuple[KeyKind, ...] = ("farm", "sshfs")


def key_file(kind: KeyKind) -> str:
    return f"secrets/{kind}_key"


def key_info_file(kind: KeyKind) -> str:
    return f"secrets/{kind}_key.json"


FARM_KEY_FILE = key_file("farm")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Hop(_Model):
    """A jump host on the way to a peer (the inventory's `proxy_jump`, as the controller
    resolved it)."""

    host: str
    port: int = 22
    user: str | None = None

    @property
    def address(self) -> str:
        """`host:port` as permitopen and known_hosts name it (an IPv6 address in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def destination(self) -> str:
        """ssh's `ssh://[user@]host:port`."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{user}{host}:{self.port}"


class Peer(_Model):
    """A node this one reads datasets from."""

    node: str
    host: str  # LOCAL_HOST: a node root on this machine, read without SSH
    port: int = 22
    user: str | None = None
    root: str  # the peer's node root, as a path on its machine
    transport: Literal["rsync", "sshfs"] = "rsync"
    datasets: tuple[str, ...]
    jumps: tuple[Hop, ...] = ()  # jump hosts to go through, the first one first

    @property
    def local(self) -> bool:
        return self.host == LOCAL_HOST


class Input(_Model):
    id: str
    source_node: str  # this node itself for a dataset produced here


class Routes(_Model):
    network: str
    node: str
    peers: tuple[Peer, ...] = ()
    inputs: dict[str, tuple[Input, ...]] = {}  # task -> its inputs, in the task's order

    def source_of(self, dataset_id: str) -> str | None:
        """The producer node of an input of this node, None when no task here reads it."""
        for inputs in self.inputs.values():
            for entry in inputs:
                if entry.id == dataset_id:
                    return entry.source_node
        return None


class FarmKeyInfo(_Model):
    """The public facts of a network's farm key, kept beside its private half on consumers:
    deploy compares them with the plan to decide whether the key must rotate."""

    public_key: str  # "ssh-ed25519 AAAA..."
    holders: tuple[str, ...]  # the consumer nodes it was given to, sorted


def load_routes(root: Path) -> Routes | None:
    """The routes deploy wrote into the node root, None before the first deploy."""
    try:
        return Routes.model_validate_json((root / ROUTES_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError as error:
        raise RunError(f"{root / ROUTES_FILE} is damaged: {error.errors()[0]['msg']}",
                       hint="`sfarm deploy` writes it again") from None


def held_key(root: Path, kind: KeyKind) -> FarmKeyInfo | None:
    """The network's key of `kind` this node root holds (both halves present), or None."""
    if not (root / key_file(kind)).is_file():
        return None
    try:
        return FarmKeyInfo.model_validate_json((root / key_info_file(kind)).read_bytes())
    except (FileNotFoundError, ValueError):
        return None
