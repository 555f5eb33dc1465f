"""Datasets: the partitioned Parquet store every task reads and writes (SPEC section 4).

May import: polars, pydantic, sfarm.timeframes, sfarm.errors. Nothing here knows about nodes,
SSH or exchanges; the file format is described in `sfarm.data.layout`.
"""

from typing import TYPE_CHECKING

from sfarm.lazy import lazy_exports

_EXPORTS = {
    "DatasetInfo": "sfarm.data.catalog",
    "list_datasets": "sfarm.data.catalog",
    "ImportResult": "sfarm.data.csv_import",
    "import_csv": "sfarm.data.csv_import",
    "DatasetNotFound": "sfarm.data.layout",
    "dataset_dir": "sfarm.data.layout",
    "format_ts": "sfarm.data.layout",
    "Manifest": "sfarm.data.manifest",
    "PartitionEntry": "sfarm.data.manifest",
    "SegmentEntry": "sfarm.data.manifest",
    "AppendResult": "sfarm.data.store",
    "append": "sfarm.data.store",
    "load_manifest": "sfarm.data.store",
    "read": "sfarm.data.store",
    "read_tail": "sfarm.data.store",
    "relayout": "sfarm.data.store",
    "scan": "sfarm.data.store",
    "VerifyReport": "sfarm.data.verification",
    "verify": "sfarm.data.verification",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from sfarm.data.catalog import DatasetInfo, list_datasets  # noqa: F401
    from sfarm.data.csv_import import ImportResult, import_csv  # noqa: F401
    from sfarm.data.layout import DatasetNotFound, dataset_dir, format_ts  # noqa: F401
    from sfarm.data.manifest import Manifest, PartitionEntry, SegmentEntry  # noqa: F401
    from sfarm.data.store import (  # noqa: F401
        AppendResult,
        append,
        load_manifest,
        read,
        read_tail,
        relayout,
        scan,
    )
    from sfarm.data.verification import VerifyReport, verify  # noqa: F401
