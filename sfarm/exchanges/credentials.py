"""Exchange API credentials: where they come from and how they are shown (never the secret).

Secrets never live in the inventory. An exchange names an environment prefix: `BINANCE` means
`BINANCE_API_KEY`, `BINANCE_SECRET` and, for exchanges that need one, `BINANCE_PASSWORD`. When the
environment does not have them, a `secrets.toml` beside the inventory may, under `[BINANCE]`
(keys `api_key`, `secret`, `password`); that file must be readable by its owner only (mode 0600).
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sfarm.errors import UsageError


def _mask(value: str) -> str:
    # Enough of the key to tell two keys apart in a log, never enough to use it.
    return f"{value[:4]}…" if len(value) >= 16 else "***"


@dataclass(frozen=True, repr=False)
class Credentials:
    """An API key, its secret and an optional password (passphrase); `repr` hides them."""

    api_key: str
    secret: str
    password: str | None = None

    def __repr__(self) -> str:
        password = "None" if self.password is None else "'***'"
        return f"Credentials(api_key='{_mask(self.api_key)}', secret='***', password={password})"

    __str__ = __repr__

    def secrets(self) -> tuple[str, ...]:
        """The values that must never be printed (for log redaction)."""
        return tuple(v for v in (self.api_key, self.secret, self.password) if v)


def env_names(prefix: str) -> tuple[str, str, str]:
    """The environment variables read for `prefix`: API key, secret, password."""
    name = prefix.strip().rstrip("_").upper()
    return f"{name}_API_KEY", f"{name}_SECRET", f"{name}_PASSWORD"


def _from_file(prefix: str, path: Path) -> Credentials | None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise UsageError(
            f"{path}: secrets file is mode {mode:04o}; it must be readable by its owner only",
            hint=f"chmod 600 {path}",
        )
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: not valid TOML: {error}") from None
    table = document.get(prefix)
    if table is None:  # accept [binance] for prefix BINANCE and the other way round
        table = next((v for k, v in document.items() if k.lower() == prefix.lower()), None)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [{prefix}] must be a table with api_key and secret")
    missing = [key for key in ("api_key", "secret") if not table.get(key)]
    if missing:
        raise UsageError(f"{path}: [{prefix}] lacks {' and '.join(missing)}")
    password = table.get("password")
    return Credentials(str(table["api_key"]), str(table["secret"]),
                       str(password) if password else None)


def load_credentials(
    prefix: str, secrets_file: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Credentials for `prefix`: from the environment, else from `secrets_file`.

    Raises UsageError when neither has them, when only half of them is set, or when the secrets
    file is readable by group or others.

    Example:
        >>> load_credentials("SIM", environ={"SIM_API_KEY": "k", "SIM_SECRET": "s"})
        Credentials(api_key='***', secret='***', password=None)
    """
    env = os.environ if environ is None else environ
    key_var, secret_var, password_var = env_names(prefix)
    api_key, secret = env.get(key_var), env.get(secret_var)
    if api_key and secret:
        return Credentials(api_key, secret, env.get(password_var) or None)
    if api_key or secret:
        present, absent = (key_var, secret_var) if api_key else (secret_var, key_var)
        raise UsageError(f"{present} is set but {absent} is not",
                         hint=f"set both {key_var} and {secret_var}")
    if secrets_file is not None:
        found = _from_file(prefix, secrets_file)
        if found is not None:
            return found
    where = f" and no [{prefix}] table in {secrets_file}" if secrets_file else ""
    raise UsageError(
        f"no credentials for {prefix!r}: {key_var} and {secret_var} are not set{where}",
        hint=f"export {key_var}=... {secret_var}=..., or add [{prefix}] with api_key and secret "
             "to secrets.toml beside the inventory (chmod 600)",
    )
