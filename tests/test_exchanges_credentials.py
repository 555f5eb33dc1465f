"""load_credentials: environment first, then a 0600 secrets.toml; errors a person can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfarm.errors import UsageError
from sfarm.exchanges import Credentials, load_credentials


def write_secrets(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_environment_wins() -> None:
    env = {"BINANCE_API_KEY": "key-from-env", "BINANCE_SECRET": "secret-from-env"}
    expected = Credentials("key-from-env", "secret-from-env")
    assert load_credentials("BINANCE", environ=env) == expected
    env["BINANCE_PASSWORD"] = "pw"
    assert load_credentials("binance", environ=env).password == "pw"


def test_half_set_environment_is_an_error() -> None:
    with pytest.raises(UsageError, match="BINANCE_API_KEY is set but BINANCE_SECRET is not"):
        load_credentials("BINANCE", environ={"BINANCE_API_KEY": "k"})


def test_secrets_file_when_environment_is_silent(tmp_path: Path) -> None:
    path = write_secrets(tmp_path, '[BINANCE]\napi_key = "file-key"\nsecret = "file-secret"\n'
                                   '[okx]\napi_key = "o"\nsecret = "p"\npassword = "q"\n')
    assert load_credentials("BINANCE", path, environ={}) == Credentials("file-key", "file-secret")
    assert load_credentials("OKX", path, environ={}) == Credentials("o", "p", "q")


def test_secrets_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = write_secrets(tmp_path, '[BINANCE]\napi_key = "k"\nsecret = "s"\n', mode=0o644)
    with pytest.raises(UsageError, match="mode 0644") as caught:
        load_credentials("BINANCE", path, environ={})
    assert caught.value.hint == f"chmod 600 {path}"


def test_missing_everywhere_names_the_variables(tmp_path: Path) -> None:
    path = write_secrets(tmp_path, '[OTHER]\napi_key = "k"\nsecret = "s"\n')
    with pytest.raises(UsageError, match="BINANCE_API_KEY and BINANCE_SECRET are not set"):
        load_credentials("BINANCE", path, environ={})
    with pytest.raises(UsageError, match="no credentials"):
        load_credentials("BINANCE", tmp_path / "absent.toml", environ={})
    incomplete = write_secrets(tmp_path, '[BINANCE]\napi_key = "k"\n')
    with pytest.raises(UsageError, match="lacks secret"):
        load_credentials("BINANCE", incomplete, environ={})


def test_repr_never_shows_the_secret() -> None:
    credentials = Credentials("0123456789abcdefXYZ", "very-secret-value", "pw-value")
    assert "very-secret" not in repr(credentials) and "pw-value" not in repr(credentials)
    assert "0123456789abcdefXYZ" not in repr(credentials)
