"""The farm key's authorized_keys line (sfarm.resolver.authorized): its shape, what it refuses
to write, and keeping it the one managed line of a file whose other lines stay as they were."""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfarm.errors import UsageError
from sfarm.resolver.authorized import authorized_line, jump_line, marker, sync_authorized_keys

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDlq5R1d2p3tQ0u2x7mJpJd1mYgq2n3w0k7y8m9x0a1b farm@x"
MARK = "sfarm-farm-key:farm/net"


def test_marker_names_the_farm_and_network() -> None:
    assert marker("farm", "net") == MARK
    for farm, network in (("", "net"), ("a b", "net"), ("farm", 'n"et'), ("farm", "n\tet")):
        with pytest.raises(UsageError):
            marker(farm, network)


def test_the_line_forces_the_gate_with_restrict_and_drops_the_key_comment() -> None:
    line = authorized_line(KEY, "/opt/sfarm/venv/bin/python", ["/srv/a", "/home/u/sfarm"], MARK)
    key_type, key_data = KEY.split()[:2]
    assert line == (f'restrict,command="/opt/sfarm/venv/bin/python -I -m sfarm.resolver.gate '
                    f'/srv/a /home/u/sfarm" {key_type} {key_data} {MARK}')
    assert "farm@x" not in line


def test_shell_characters_in_a_root_are_quoted_for_the_login_shell() -> None:
    line = authorized_line(KEY, "/usr/bin/python3", ["/srv/$HOME;x"], MARK)
    command = line.split('"')[1]
    assert shlex.split(command)[-1] == "/srv/$HOME;x"  # what the shell hands the gate


@pytest.mark.parametrize(("python", "roots"), [
    ('/usr/bin/py"thon', ["/srv/a"]),
    ("/usr/bin/python3", ['/srv/a"; id; "']),
    ("/usr/bin/python3", ["/srv/a\\b"]),
    ("/usr/bin/python3", ["/srv/a b"]),
    ("/usr/bin/python3", ["/srv/a\nb"]),
    ("/usr/bin/python3", ["/srv/a\x07"]),
    ("/usr/bin/python3", ["/srv/it's"]),
    ("/usr/bin/python3", ["relative/root"]),
    ("/usr/bin/python3", ["~/sfarm"]),
    ("/usr/bin/python3", []),
    ("", ["/srv/a"]),
    ("py thon", ["/srv/a"]),
])
def test_what_would_break_the_quoting_is_refused(python: str, roots: list[str]) -> None:
    with pytest.raises(UsageError):
        authorized_line(KEY, python, roots, MARK)


@pytest.mark.parametrize("key", ["", "ssh-ed25519", "AAAAC3Nza ssh-ed25519",
                                 'command="x" ssh-ed25519 AAAAC3Nza', "ssh-ed25519 AAA\"A"])
def test_what_is_not_a_public_key_line_is_refused(key: str) -> None:
    with pytest.raises(UsageError):
        authorized_line(key, "/usr/bin/python3", ["/srv/a"], MARK)


def test_sync_adds_replaces_and_removes_the_one_line(tmp_path: Path) -> None:
    path = tmp_path / "home" / ".ssh" / "authorized_keys"
    assert not sync_authorized_keys(path, MARK, None)  # nothing to remove: no file made
    assert not path.parent.exists()

    first = authorized_line(KEY, "/usr/bin/python3", ["/srv/a"], MARK)
    assert sync_authorized_keys(path, MARK, first)
    assert path.read_text() == first + "\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700

    path.write_bytes(b"ssh-rsa AAAA operator\n" + path.read_bytes() + b"# end, no newline")
    second = authorized_line(KEY, "/usr/bin/python3", ["/srv/a", "/srv/b"], MARK)
    assert sync_authorized_keys(path, MARK, second)
    assert path.read_bytes() == f"ssh-rsa AAAA operator\n{second}\n# end, no newline".encode()
    assert not sync_authorized_keys(path, MARK, second)

    assert sync_authorized_keys(path, MARK, None)
    assert path.read_bytes() == b"ssh-rsa AAAA operator\n# end, no newline"
    path.chmod(0o644)
    # A file without our line is not ours to change, not even its mode...
    assert not sync_authorized_keys(path, MARK, None)
    assert path.stat().st_mode & 0o777 == 0o644
    # ...and one that holds it is made 0600 (the mode counts as a change).
    assert sync_authorized_keys(path, MARK, second)
    path.chmod(0o644)
    assert sync_authorized_keys(path, MARK, second)
    assert path.stat().st_mode & 0o777 == 0o600


def test_sync_writes_through_a_symlinked_file(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "authorized_keys"
    real.parent.mkdir()
    real.write_text("ssh-rsa AAAA operator\n")
    link = tmp_path / "authorized_keys"
    link.symlink_to(real)
    line = authorized_line(KEY, "/usr/bin/python3", ["/srv/a"], MARK)
    assert sync_authorized_keys(link, MARK, line)
    assert link.is_symlink()
    assert real.read_text() == f"ssh-rsa AAAA operator\n{line}\n"


def test_sync_refuses_a_line_without_the_marker(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ending with"):
        sync_authorized_keys(tmp_path / "authorized_keys", MARK, "ssh-ed25519 AAAA other")
    with pytest.raises(ValueError):
        sync_authorized_keys(tmp_path / "authorized_keys", MARK, f"a\nb {MARK}")


def file_lines(raw: bytes) -> list[bytes]:
    """The lines of an authorized_keys file as sshd reads it (split on newlines only)."""
    lines = raw.split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def is_managed(line: bytes) -> bool:
    words = line.split()  # sshd's whitespace: spaces and tabs (bytes.split: ASCII only)
    return bool(words) and words[-1] == MARK.encode()


# Lines an operator may have: anything but a newline (carriage returns, other whitespace,
# non-ASCII); and managed lines of this marker, stale ones included, that collapse into one.
_OTHER = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)),
                 max_size=40).filter(lambda text: not is_managed(text.encode()))
_STALE = st.sampled_from([f"ssh-ed25519 AAAAold {MARK}", f"restrict ssh-rsa B \t{MARK}  ",
                          f"{MARK}"])


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.one_of(_OTHER, _STALE), max_size=12), ends_with_newline=st.booleans(),
       remove=st.booleans())
def test_sync_keeps_every_other_line_and_is_idempotent(lines: list[str], ends_with_newline: bool,
                                                       remove: bool) -> None:
    raw = ("\n".join(lines) + ("\n" if ends_with_newline and lines else "")).encode()
    wanted = None if remove else authorized_line(KEY, "/usr/bin/python3", ["/srv/a"], MARK)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "authorized_keys"
        path.write_bytes(raw)
        path.chmod(0o600)
        changed = sync_authorized_keys(path, MARK, wanted)
        result = path.read_bytes()
        assert changed == (result != raw)
        again = sync_authorized_keys(path, MARK, wanted)
        assert not again and path.read_bytes() == result  # idempotent
        assert path.stat().st_mode & 0o777 == 0o600

    managed = [line for line in file_lines(result) if is_managed(line)]
    assert managed == ([] if wanted is None else [wanted.encode()])
    assert [line for line in file_lines(result) if not is_managed(line)] == \
        [line for line in file_lines(raw) if not is_managed(line)]
    if wanted is not None:  # its own line, however the file ended
        assert result.startswith(wanted.encode() + b"\n") or \
            b"\n" + wanted.encode() + b"\n" in result


def test_a_jump_line_forwards_to_its_targets_only_and_runs_nothing() -> None:
    line = jump_line(KEY, ["10.0.0.5:22", "[::1]:2222", "10.0.0.5:22"], "sfarm-farm-jump-key:a/b")
    assert line.startswith('restrict,port-forwarding,permitopen="10.0.0.5:22",'
                           'permitopen="[::1]:2222",command="/bin/false" ssh-ed25519 ')
    assert line.endswith(" sfarm-farm-jump-key:a/b")
    for bad in (["10.0.0.5"], ["host:22\" ,command=\"sh"], ["a b:22"], []):
        with pytest.raises(UsageError):
            jump_line(KEY, bad, "sfarm-farm-jump-key:a/b")
