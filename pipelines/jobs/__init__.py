"""Extraction jobs: plan the items of a dataset, run them serially, in local processes or on dask, report.

``run_extract(ExtractConfig(...))`` is the whole of ``pipeline extract``; the CLI only builds the config.
"""

from pipelines.jobs.config import ExtractConfig
from pipelines.jobs.extract import JobResult, plan_extract, run_extract

__all__ = ["ExtractConfig", "JobResult", "plan_extract", "run_extract"]
