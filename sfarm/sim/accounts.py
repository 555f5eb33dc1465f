"""A deployed emulator's account: a random API key and secret kept in a 0600 file of the node.

Deploy makes one per emulator (sfarm.runtime.emulator_account, on the node that serves it), once,
and keeps it: a new secret would restart the emulator and lose its ledger. The emulator reads it
with `sfarm sim serve --account-file` (its command line names the file, never the secret) and the
node's live trade tasks on that exchange read the same file. The file is TOML:
`api_key = "..."` and `secret = "..."`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sfarm.errors import UsageError


@dataclass(frozen=True, repr=False)
class AccountKeys:
    """An emulated account's API key and secret; `repr` shows neither."""

    api_key: str
    secret: str

    def __repr__(self) -> str:
        return "AccountKeys(api_key='***', secret='***')"


def account_path(secrets_dir: Path, exchange: str) -> Path:
    """Where a node keeps the account of the emulator of `exchange` (an inventory name)."""
    return secrets_dir / f"emulator-{exchange}.toml"


def new_account() -> AccountKeys:
    """A random account: key and secret of 64 hex characters (256 bits each), like Binance's."""
    return AccountKeys(secrets.token_hex(32), secrets.token_hex(32))


def render_account(keys: AccountKeys) -> bytes:
    """The account file's text."""
    return f'api_key = "{keys.api_key}"\nsecret = "{keys.secret}"\n'.encode()


def read_account(path: Path) -> AccountKeys:
    """The account kept in `path`. UsageError when it is missing, readable by group or others,
    or not an account file."""
    try:
        with path.open("rb") as file:
            mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
            text = file.read()
    except OSError as error:
        raise UsageError(f"cannot read the emulator account {path}: "
                         f"{error.strerror or error}",
                         hint="`sfarm deploy` makes it on the node that serves the emulator") \
            from None
    if mode & 0o077:
        raise UsageError(f"{path}: emulator account file is mode {mode:04o}; it must be "
                         "readable by its owner only", hint=f"chmod 600 {path}")
    try:
        document = tomllib.loads(text.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: not valid TOML: {error}") from None
    api_key, secret = document.get("api_key"), document.get("secret")
    if not isinstance(api_key, str) or not isinstance(secret, str) or not api_key or not secret:
        raise UsageError(f"{path}: an emulator account needs api_key and secret")
    return AccountKeys(api_key, secret)


def keep_account(path: Path) -> bool:
    """Make the account file at `path` unless one is there (mode 0600 from its first byte);
    True when it was made. Two deploys at once keep the first one written."""
    if path.exists():
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(render_account(new_account()))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # never replaces: an account made meanwhile is kept
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return True
