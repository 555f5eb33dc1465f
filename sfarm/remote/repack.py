"""An installed distribution packed again as the wheel it was installed from (pure stdlib).

Neither pip nor pipx keeps the wheels it installs, but an installed distribution lists its files
in its .dist-info/RECORD, and its .dist-info/WHEEL names the tags of the wheel it came from. So
the wheel is made again from the files RECORD lists, by their names in the wheel:

- a file in site-packages keeps its path there (packages, modules, `*.libs/`, .pth files);
- a console or GUI script the installer generated from entry_points.txt is left out (the
  installer of the new wheel generates it again), as is everything the installer added to the
  .dist-info (RECORD, INSTALLER, REQUESTED, direct_url.json) and bytecode;
- any other file outside site-packages goes back under `<name>.data/`: a script under the
  interpreter's scripts directory to `scripts/` (its `#!` line, which the installer pointed at
  this interpreter, back to `#!python`), a file under the prefix to `data/`.

The wheel's file name carries the WHEEL file's `Tag:` lines (compressed as the wheel spec says:
`cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64`), so pip on another machine takes it
exactly where it would have taken the original. A file RECORD lists but that is gone, or a
distribution without RECORD or WHEEL (installed by other means than a wheel), is an error that
names the distribution.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import sysconfig
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sfarm.errors import RunError

# What an installer writes into .dist-info (PEP 376, 610, 627); the wheel's own RECORD is remade.
INSTALLER_FILES = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")
CACHE_PARTS = ("__pycache__",)
CACHE_SUFFIXES = (".pyc", ".nbi", ".nbc")  # bytecode and numba's compile cache
SCRIPT_PARENTS = ("bin", "Scripts")  # where installers put scripts (also under pip --target)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: the same files, the same zip


def is_cache(parts: tuple[str, ...]) -> bool:
    return any(part in CACHE_PARTS for part in parts) or parts[-1].endswith(CACHE_SUFFIXES)


@dataclass(frozen=True)
class InstalledWheel:
    """What the wheel of an installed distribution is made of."""

    name: str  # as the distribution's metadata spells it
    dist_info: str  # "numpy-2.4.6.dist-info"
    tags: tuple[str, ...]  # the WHEEL file's Tag lines, "cp311-cp311-manylinux_2_28_x86_64"
    files: dict[str, Path]  # name in the wheel -> the installed file

    @property
    def filename(self) -> str:
        return wheel_filename(self.dist_info.removesuffix(".dist-info"), self.tags)


def wheel_tags(wheel_file: str) -> tuple[str, ...]:
    """The `Tag:` lines of a .dist-info/WHEEL file, in order."""
    return tuple(line.split(":", 1)[1].strip() for line in wheel_file.splitlines()
                 if line.startswith("Tag:"))


def wheel_filename(stem: str, tags: Iterable[str]) -> str:
    """`<name>-<version>-<tags>.whl` for `stem` ("numpy-2.4.6"). Tags that form a full product
    of interpreters x ABIs x platforms are compressed with dots, as wheel builders write them;
    a set that does not is named by its first tag only (a wheel's name may claim less)."""
    listed = list(dict.fromkeys(tags))
    if not listed:
        raise ValueError(f"{stem}: a wheel needs at least one tag")
    parts = [tag.split("-") for tag in listed]
    if any(len(part) != 3 for part in parts):
        raise ValueError(f"{stem}: malformed tag in {listed}")
    axes = [list(dict.fromkeys(part[axis] for part in parts)) for axis in range(3)]
    product = {(a, b, c) for a in axes[0] for b in axes[1] for c in axes[2]}
    if product != {tuple(part) for part in parts}:
        axes = [[value] for value in parts[0]]
    return f"{stem}-{'-'.join('.'.join(axis) for axis in axes)}.whl"


def _script_names(distribution: importlib.metadata.Distribution) -> set[str]:
    names = set()
    for entry in distribution.entry_points:
        if entry.group in ("console_scripts", "gui_scripts"):
            names.update({entry.name, f"{entry.name}.exe", f"{entry.name}-script.py"})
    return names


def _within(path: str, directory: str) -> str | None:
    """`path` relative to `directory` (posix), or None when it lies outside."""
    relative = os.path.relpath(path, directory)
    return None if relative == ".." or relative.startswith("../") else relative


def _outside_name(data: str, path: str, schemes: dict[str, str]) -> str | None:
    """The name under `<data>/` of an installed file outside site-packages, or None."""
    for scheme in ("scripts", "purelib", "platlib", "include", "data"):
        relative = _within(path, schemes[scheme])
        if relative is not None:
            folder = "headers" if scheme == "include" else scheme
            return f"{data}/{folder}/{relative}"
    return None


def read_installed_wheel(distribution: importlib.metadata.Distribution,
                         scheme: Mapping[str, str] | None = None) -> InstalledWheel:
    """The files that make `distribution`'s wheel again, by their names in the wheel.
    `scheme`: the install scheme it lies in (sysconfig's paths; default: this environment's)."""
    name = distribution.metadata["Name"] or "?"
    listed = [PurePosixPath(str(entry)) for entry in distribution.files or []]
    metadata = [entry for entry in listed if entry.name == "METADATA"
                and entry.parent.name.endswith(".dist-info") and len(entry.parts) == 2]
    if len(metadata) != 1:
        raise RunError(f"the installed {name} lists no .dist-info/METADATA in a RECORD: it "
                       "cannot be packed again as a wheel",
                       hint=f"reinstall it from a wheel (pip install --force-reinstall {name})")
    dist_info = metadata[0].parent.name
    site = os.path.normpath(str(distribution.locate_file("")))
    tags = wheel_tags(distribution.read_text("WHEEL") or "")
    if not tags:
        raise RunError(f"the installed {name} has no .dist-info/WHEEL with tags: it was not "
                       "installed from a wheel",
                       hint=f"reinstall it with pip (pip install --force-reinstall {name})")
    data = dist_info.removesuffix(".dist-info") + ".data"
    schemes = {key: os.path.normpath(value)
               for key, value in (scheme or sysconfig.get_paths()).items()}
    scripts = _script_names(distribution)
    files: dict[str, Path] = {}
    for entry in listed:
        if is_cache(entry.parts) or (entry.parts[0] == dist_info
                                     and entry.name in INSTALLER_FILES):
            continue
        if entry.name in scripts and entry.parent.name in SCRIPT_PARENTS:
            continue  # generated from entry_points.txt: the new installer makes it again
        path = os.path.normpath(os.path.join(site, str(entry)))
        inside = _within(path, site)
        wheel_name = inside if inside is not None else _outside_name(data, path, schemes)
        if wheel_name is None:
            raise RunError(f"the installed {name} lists {entry} in its RECORD, outside any "
                           "directory of this environment: it cannot be packed again")
        files[wheel_name] = Path(path)
    return InstalledWheel(name, dist_info, tags, files)


def record_hash(content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def script_content(content: bytes) -> bytes:
    """A script as a wheel holds it: a `#!` line naming a python becomes `#!python` again."""
    first, newline, rest = content.partition(b"\n")
    if first.startswith(b"#!") and b"python" in first:
        return b"#!python" + newline + rest
    return content


def write_wheel(path: Path, dist_info: str, names: Iterable[str],
                read: Callable[[str], bytes], *, level: int = 6) -> Path:
    """Write the wheel `path` of the files `names` (their content from `read(name)`, one at a
    time), with a RECORD that vouches for each. The package first and .dist-info last, RECORD
    at the very end, as wheel builders write; the same files make the same bytes."""
    ordered = sorted(names, key=lambda name: (name.startswith(f"{dist_info}/"), name))
    record = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=level) as archive:
        for name in ordered:
            content = read(name)
            archive.writestr(_entry(name), content, compresslevel=level)
            record.append(f"{name},{record_hash(content)},{len(content)}")
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(_entry(f"{dist_info}/RECORD"), "\n".join(record) + "\n",
                         compresslevel=level)
    return path


def _entry(name: str) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    entry.external_attr = (0o755 if ".data/scripts/" in name else 0o644) << 16
    entry.compress_type = zipfile.ZIP_DEFLATED
    return entry


def pack_installed(installed: InstalledWheel, directory: Path, *, level: int = 6) -> Path:
    """Write the wheel of `installed` into `directory`, reading each file as it goes (a
    distribution of hundreds of MB never sits in memory); its path."""
    data_scripts = installed.dist_info.removesuffix(".dist-info") + ".data/scripts/"

    def read(name: str) -> bytes:
        try:
            content = installed.files[name].read_bytes()
        except OSError as exc:
            raise RunError(f"the installed {installed.name} is incomplete: cannot read "
                           f"{installed.files[name]}: {exc.strerror}",
                           hint=f"reinstall it (pip install --force-reinstall "
                                f"{installed.name})") from None
        return script_content(content) if name.startswith(data_scripts) else content

    return write_wheel(directory / installed.filename, installed.dist_info, installed.files,
                       read, level=level)
