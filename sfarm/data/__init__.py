"""Datasets: the partitioned Parquet store every task reads and writes (SPEC section 4).

What it offers, all on a node root (`data/<id>` its own datasets, `mirror/<node>/<id>` those
pulled from a producer node):

* `append` (rows and resume state in one atomic commit), `append_many` (several datasets, each
  its own commit, made durable together), `read`, `read_tail`, `scan`,
  `load_manifest`; `import_csv`; `relayout` (rewrite under the current partitioning rule).
* `locate`: where the root holds a dataset (own data first, else the one mirror that has it, or
  the named producer's), from `_manifest.json` alone: cheap enough for every poll.
* `list_datasets` (own and mirrored, from their manifests), `verify` (files against manifest,
  content sanity, gaps), `repair` (damaged files moved to the root's quarantine, the rest
  committed anew); `find_holes` (what a dataset lacks in a range, for the miner).
* `staging_dir` and `install_staged`: a pull copies a producer's dataset into the staging
  directory by any means; the store checks the copy and commits it as the mirror's new version.
  Its commit steps (writer lock, atomic writes, manifest last, sweep) are composed here only.

May import: polars, pydantic, sfarm.timeframes, sfarm.errors, sfarm.lazy. Nothing here knows
about SSH, rsync, processes or exchanges (an import-linter contract says so); the file format is
described in `sfarm.data.layout`.
"""

from typing import TYPE_CHECKING

from sfarm.lazy import lazy_exports

_EXPORTS = {
    "DatasetInfo": "sfarm.data.catalog",
    "list_datasets": "sfarm.data.catalog",
    "ImportResult": "sfarm.data.csv_import",
    "import_csv": "sfarm.data.csv_import",
    "AmbiguousDataset": "sfarm.data.locate",
    "DatasetLocation": "sfarm.data.locate",
    "locate": "sfarm.data.locate",
    "commit_marks": "sfarm.data.locate",
    "InstallResult": "sfarm.data.mirror",
    "StagedCopyInvalid": "sfarm.data.mirror",
    "install_staged": "sfarm.data.mirror",
    "staging_dir": "sfarm.data.mirror",
    "DatasetNotFound": "sfarm.data.layout",
    "dataset_dir": "sfarm.data.layout",
    "format_ts": "sfarm.data.layout",
    "Manifest": "sfarm.data.manifest",
    "PartitionEntry": "sfarm.data.manifest",
    "SegmentEntry": "sfarm.data.manifest",
    "Append": "sfarm.data.store",
    "AppendResult": "sfarm.data.store",
    "append": "sfarm.data.store",
    "append_many": "sfarm.data.store",
    "load_manifest": "sfarm.data.reader",
    "read": "sfarm.data.reader",
    "read_tail": "sfarm.data.reader",
    "relayout": "sfarm.data.store",
    "DamagedDataset": "sfarm.data.damage",
    "find_holes": "sfarm.data.coverage",
    "RepairReport": "sfarm.data.repair",
    "repair": "sfarm.data.repair",
    "scan": "sfarm.data.reader",
    "VerifyReport": "sfarm.data.verification",
    "verify": "sfarm.data.verification",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from sfarm.data.catalog import DatasetInfo, list_datasets  # noqa: F401
    from sfarm.data.coverage import find_holes  # noqa: F401
    from sfarm.data.csv_import import ImportResult, import_csv  # noqa: F401
    from sfarm.data.damage import DamagedDataset  # noqa: F401
    from sfarm.data.layout import DatasetNotFound, dataset_dir, format_ts  # noqa: F401
    from sfarm.data.locate import (  # noqa: F401
        AmbiguousDataset,
        DatasetLocation,
        commit_marks,
        locate,
    )
    from sfarm.data.manifest import Manifest, PartitionEntry, SegmentEntry  # noqa: F401
    from sfarm.data.mirror import (  # noqa: F401
        InstallResult,
        StagedCopyInvalid,
        install_staged,
        staging_dir,
    )
    from sfarm.data.reader import load_manifest, read, read_tail, scan  # noqa: F401
    from sfarm.data.repair import RepairReport, repair  # noqa: F401
    from sfarm.data.store import (  # noqa: F401
        Append,
        AppendResult,
        append,
        append_many,
        relayout,
    )
    from sfarm.data.verification import VerifyReport, verify  # noqa: F401
