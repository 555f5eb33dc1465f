"""Datasets: the partitioned Parquet store every task reads and writes (SPEC section 4).

May import: polars, pydantic, sfarm.timeframes, sfarm.errors. Nothing here knows about nodes,
SSH or exchanges; the file format is described in `sfarm.data.layout`.
"""

from sfarm.data.catalog import DatasetInfo, list_datasets
from sfarm.data.csv_import import ImportResult, import_csv
from sfarm.data.layout import DatasetNotFound, dataset_dir, format_ts
from sfarm.data.manifest import Manifest, PartitionEntry, SegmentEntry
from sfarm.data.store import AppendResult, append, load_manifest, read, read_tail, scan
from sfarm.data.verify import VerifyReport, verify

__all__ = [
    "AppendResult",
    "DatasetInfo",
    "DatasetNotFound",
    "ImportResult",
    "Manifest",
    "PartitionEntry",
    "SegmentEntry",
    "VerifyReport",
    "append",
    "dataset_dir",
    "format_ts",
    "import_csv",
    "list_datasets",
    "load_manifest",
    "read",
    "read_tail",
    "scan",
    "verify",
]
