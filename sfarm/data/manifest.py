"""The manifest: what a dataset holds, as models, their JSON form, and pure update rules.

`_manifest.json` is the entry point and the commit point of a dataset. It lists the index
segments (`_index.<segment>.g<N>.json`), each listing its partitions; an append rewrites only the
segments of the partitions it touched, so its cost does not grow with the history.
"""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from sfarm.data import memo
from sfarm.data.layout import (
    MANIFEST_NAME,
    Partitioning,
    check_partition_file_name,
    check_segment_file_name,
    tiers,
)
from sfarm.errors import RunError

SCHEMA_VERSION = 2  # the newest layout this code reads and writes (see sfarm.data.layout)

# File names a manifest gives are joined to the dataset's directory by every reader and by a
# mirror's install: only the store's own names parse, so no manifest (a hostile producer's
# included) can point outside that directory, at a hidden file or into a subdirectory.
PartitionFileName = Annotated[str, AfterValidator(check_partition_file_name)]
SegmentFileName = Annotated[str, AfterValidator(check_segment_file_name)]


class CorruptIndex(RunError):
    """A manifest or index segment file that does not parse: the dataset is damaged (see
    `sfarm.data.damage`), unlike a manifest of a newer layout (a plain RunError)."""


class PartitionEntry(BaseModel):
    """One Parquet file: the rows of one period (`key`), sorted by ts."""

    model_config = ConfigDict(frozen=True)

    key: str
    file: PartitionFileName
    rows: int
    first_ts: int
    last_ts: int
    bytes: int
    sha256: str


class SegmentEntry(BaseModel):
    """One index file listing the partitions of one year (or all, for yearly partitions)."""

    model_config = ConfigDict(frozen=True)

    name: str
    file: SegmentFileName
    partitions: int
    rows: int
    first_ts: int
    last_ts: int
    bytes: int  # total size of its partition files
    sha256: str  # of the index file itself


class Manifest(BaseModel):
    """A dataset's manifest. `partitions` is filled by `sfarm.data.load_manifest` (all of them);
    it is not part of `_manifest.json`, which names the index segments instead."""

    # NaN and infinities in "extra" written as `json` writes them (not as null)
    model_config = ConfigDict(ser_json_inf_nan="constants")

    schema_version: int = SCHEMA_VERSION
    dataset_id: str
    partitioning: Partitioning
    timeframe: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)  # name -> polars dtype, ts first
    rows: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    bytes: int = 0
    generation: int = 0
    updated_at: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    segments: list[SegmentEntry] = Field(default_factory=list)
    partitions: list[PartitionEntry] = Field(default_factory=list, exclude=True)

    @property
    def partition_count(self) -> int:
        return sum(segment.partitions for segment in self.segments)


class _SegmentDocument(BaseModel):
    """The JSON form of an index segment file."""

    schema_version: int = SCHEMA_VERSION
    segment: str
    partitions: list[PartitionEntry]


def check_partition_files(directory: Path, partitions: list[PartitionEntry]) -> None:
    """CorruptIndex unless every partition is a regular file (a missing one: FileNotFoundError).

    polars reads a directory in a partition's place as a dataset of the files inside, none
    when it is empty: the partition's rows would be gone from the read without a word."""
    for partition in partitions:
        mode = (directory / partition.file).stat().st_mode
        if not stat.S_ISREG(mode):
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise CorruptIndex(f"partition {partition.file} is {what}, not its Parquet file")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- JSON form ---------------------------------------------------------------------------------

def manifest_bytes(manifest: Manifest) -> bytes:
    """Indented JSON, encoded by pydantic's serializer: 10x faster than `json` with an indent
    (a pure-Python encoder), which a live append of a large indicator state felt."""
    return (manifest.model_dump_json(indent=2) + "\n").encode()


def segment_bytes(name: str, partitions: list[PartitionEntry],
                  version: int = SCHEMA_VERSION) -> bytes:
    """One partition per line: readable, and diffs of an append stay small."""
    lines = b",\n".join(b"    " + p.model_dump_json().encode() for p in partitions)
    head = json.dumps({"schema_version": version, "segment": name})[:-1].encode()
    return head + b', "partitions": [\n' + lines + b"\n]}\n"


def read_manifest_file(directory: Path) -> Manifest | None:
    """The manifest without its partitions, or None when the dataset has none yet (parsed once
    for the same bytes: `sfarm.data.memo`)."""
    path = directory / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:  # a directory in its place, no permission...
        raise RunError(f"{path}: cannot read the dataset manifest: {error.strerror}",
                       hint="check the path; `sfarm data verify` tells what else is wrong"
                       ) from None
    remembered = memo.manifest(directory, raw)
    if remembered is not None:
        return remembered
    manifest = parse_manifest(raw, path)
    memo.remember_manifest(directory, raw, manifest)
    return manifest


def parse_manifest(raw: bytes, path: Path) -> Manifest:
    """The manifest in `raw` (the content of `path`); RunError when it is not one, or when it
    is of a layout newer than this code reads."""
    try:
        manifest = Manifest.model_validate_json(raw)
    except ValidationError as error:
        _check_version(path, raw)  # a newer layout fails validation: say so instead
        raise CorruptIndex(f"{path}: not a valid dataset manifest: {_first_line(error)}") \
            from None
    _check_version(path, raw, manifest.schema_version)
    return manifest


def _check_version(path: Path, raw: bytes, version: object = None) -> None:
    if version is None:
        try:
            version = json.loads(raw).get("schema_version")
        except (ValueError, AttributeError):
            return
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise RunError(f"{path}: schema version {version} is newer than this sfarm "
                       f"understands ({SCHEMA_VERSION})", hint="upgrade sfarm on this node")


def parse_segment(raw: bytes, path: Path) -> list[PartitionEntry]:
    try:
        return _SegmentDocument.model_validate_json(raw).partitions
    except ValidationError as error:
        raise CorruptIndex(f"{path}: not a valid index segment: {_first_line(error)}") \
            from None


def _first_line(error: ValidationError) -> str:
    """What pydantic found, on one line (without its listing and documentation links)."""
    problems = error.errors()
    if not problems:
        return str(error).splitlines()[0]
    where = ".".join(str(part) for part in problems[0]["loc"])
    found = f"{where}: {problems[0]['msg']}" if where else problems[0]["msg"]
    return found if len(problems) == 1 else f"{found} (and {len(problems) - 1} more)"


def read_segment_file(directory: Path, segment: SegmentEntry) -> list[PartitionEntry]:
    """The partitions the index segment `segment` lists (parsed once when this process wrote
    it: `sfarm.data.memo`)."""
    path = directory / segment.file
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise  # a mirror's reader reads again (sfarm.data.reader)
    except OSError as error:
        raise RunError(f"{path}: cannot read the index segment: {error.strerror}") from None
    remembered = memo.segment(directory, segment, raw)
    return remembered if remembered is not None else parse_segment(raw, path)


@dataclass(frozen=True)
class CheckedSegment:
    """An index segment read once and checked against its manifest entry: its partitions
    (None when the file is missing, unreadable or does not parse), and what is wrong with it,
    its sha256 first."""

    entries: list[PartitionEntry] | None
    problems: tuple[str, ...] = ()
    corrupt: bool = False  # the file is there, but not the manifest's bytes or not an index


def check_segment(directory: Path, segment: SegmentEntry) -> CheckedSegment:
    """`segment`'s file as verify and repair judge it: missing, unreadable, another sha256 than
    the manifest says, or not a valid index segment."""
    path = directory / segment.file
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return CheckedSegment(None, (f"index segment {segment.file} is missing",))
    except OSError as error:
        return CheckedSegment(None, (f"index segment {segment.file} cannot be read: "
                                     f"{error.strerror}",))
    problems = []
    if hashlib.sha256(raw).hexdigest() != segment.sha256:
        problems.append(f"index segment {segment.file}: sha256 does not match the manifest")
    try:
        entries: list[PartitionEntry] | None = parse_segment(raw, path)
    except CorruptIndex as error:
        entries = None
        problems.append(error.message)
    return CheckedSegment(entries, tuple(problems), corrupt=bool(problems))


# ---- pure update rules -------------------------------------------------------------------------

def layout_version(partitioning: Partitioning) -> int:
    """The schema version a dataset's manifest carries: the oldest layout that describes it, so
    that an older sfarm still reads every dataset it can (version 1 knows day, month and year
    partitions; version 2 adds `month+day`)."""
    return 2 if tiers(partitioning) else 1


def new_manifest(dataset_id: str, partitioning: Partitioning, timeframe: str | None,
                 columns: dict[str, str]) -> Manifest:
    return Manifest(schema_version=layout_version(partitioning), dataset_id=dataset_id,
                    partitioning=partitioning, timeframe=timeframe, columns=columns)


def merge_partitions(current: list[PartitionEntry], updates: list[PartitionEntry],
                     dropped: set[str] | frozenset[str] = frozenset()) -> list[PartitionEntry]:
    """The segment's partitions with `updates` replacing (same key) or added, and the `dropped`
    keys (merged into a longer period's partition) removed, sorted by key."""
    by_key = {entry.key: entry for entry in current if entry.key not in dropped}
    by_key.update({entry.key: entry for entry in updates})
    return [by_key[key] for key in sorted(by_key)]


def summarize_segment(name: str, file: str, partitions: list[PartitionEntry],
                      raw: bytes) -> SegmentEntry:
    return SegmentEntry(
        name=name, file=file, partitions=len(partitions),
        rows=sum(p.rows for p in partitions),
        first_ts=partitions[0].first_ts, last_ts=partitions[-1].last_ts,
        bytes=sum(p.bytes for p in partitions), sha256=sha256_hex(raw),
    )


def next_manifest(manifest: Manifest, changed: list[SegmentEntry], generation: int,
                  columns: dict[str, str], extra: dict[str, Any] | None) -> Manifest:
    """The manifest after an append: changed segments swapped in, totals recomputed from the
    segment list (O(years), not O(partitions)), `extra` merged key by key."""
    by_name = {segment.name: segment for segment in manifest.segments}
    by_name.update({segment.name: segment for segment in changed})
    segments = [by_name[name] for name in sorted(by_name)]
    merged_extra = dict(manifest.extra)
    if extra:
        merged_extra.update(extra)
    return manifest.model_copy(update={
        "schema_version": layout_version(manifest.partitioning),
        "columns": columns,
        "segments": segments,
        "rows": sum(s.rows for s in segments),
        "bytes": sum(s.bytes for s in segments),
        "first_ts": segments[0].first_ts if segments else None,
        "last_ts": segments[-1].last_ts if segments else None,
        "generation": generation,
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "extra": merged_extra,
        "partitions": [],
    })
