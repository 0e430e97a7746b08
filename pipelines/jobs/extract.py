"""``run_extract``: dataset -> plan (stores, items to do / done / failed) -> runner -> stores + summaries.

Re-running the same command continues: committed items are skipped, items recorded as failed are skipped and
reported (``--retry-failed`` redoes exactly those), everything else is done. Each item is claimed by one worker and
committed whole; a failing item is recorded with its error and the run goes on (``--fail-fast`` stops submitting
at the first failure and exits 1).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from extract.datasets.base import DatasetReader, Item, create_dataset
from pipelines.config import ConfigError, to_dict
from pipelines.jobs.config import ExtractConfig
from pipelines.jobs.plan import (
    StorePlan,
    build_manifest,
    existing_status,
    extractor_recipe,
    import_plugins,
    input_fingerprint,
    matching_stores,
    plan_store,
    select_items,
    store_label,
    store_path,
)
from pipelines.jobs.progress import JobProgress, StoreStats, summary_path, write_summary
from pipelines.jobs.worker import ItemOutcome, StoreTask, WorkerContext

log = logging.getLogger(__name__)

KNOWN_KINDS_NOTE = ("face (video/frames), face_crops (the aligned crops, for finetune), eeg (raw EEG), audio (a video's audio track or a wav), peripheral (DEAP "
                    "channels 33-40), or a dataset's precomputed kinds (SEED-V: eeg_de, eye)")


@dataclass
class ExtractPlan:
    cfg: ExtractConfig
    reader: DatasetReader
    items: list[Item]  # all items of the dataset
    selected: list[Item]  # after --subjects / --limit
    stores: list[StorePlan]
    extractors: dict[str, Any] = field(default_factory=dict)  # kind -> extractor built for the manifest


@dataclass
class JobResult:
    plan: ExtractPlan
    summaries: list[dict[str, Any]]
    exit_code: int
    dry_run: bool = False

    def store(self, kind: str) -> StorePlan:
        return next(p for p in self.plan.stores if p.kind == kind)


def resolve_kinds(cfg: ExtractConfig, reader: DatasetReader) -> list[str]:
    """``all`` -> every modality the reader offers; explicit names must be offered by the reader."""
    offered = list(reader.modalities)
    if "face" in offered:
        offered.append("face_crops")  # the aligned crops of the face path, a store for `pipeline finetune`
    kinds: list[str] = []
    for name in cfg.modalities():
        names = [k for k in offered if k != "face_crops"] if name == "all" else [name]
        for kind in names:
            if kind not in offered:
                raise ConfigError(
                    f"{cfg.dataset} has no {kind!r} modality; it offers: {', '.join(offered) or 'none'} "
                    f"({KNOWN_KINDS_NOTE})"
                )
            if kind not in kinds:
                kinds.append(kind)
    return kinds


def _runner_name(cfg: ExtractConfig) -> str:
    if cfg.scheduler:
        return f"dask {cfg.scheduler}"
    return f"processes:{cfg.workers}" if cfg.workers > 1 else "serial"


def _parallel(cfg: ExtractConfig) -> bool:
    return bool(cfg.scheduler) or cfg.workers > 1


def _driver_device(cfg: ExtractConfig) -> Any:
    """Say once what ``--gpu`` resolves to; the device the driver's own (serial) worker uses."""
    from extract.devices import resolve_device

    devices = [resolve_device(g) for g in dict.fromkeys(cfg.gpu)]
    if len(cfg.gpu) > 1 and not _parallel(cfg):
        log.info("--gpu %s with one worker: using %s (use --workers or --scheduler for more)",
                 ",".join(map(str, cfg.gpu)), devices[0])
    return devices[0]


def plan_extract(cfg: ExtractConfig, device: Any = None, keep_extractors: bool = False) -> ExtractPlan:
    """Build the plan; extractors are built (on ``device``, CPU by default) to learn their manifest facts and
    are kept only when ``keep_extractors`` (the serial runner reuses them). A dry run builds none (no weights)."""
    import torch

    import_plugins(cfg.plugins)
    assert cfg.root is not None
    reader = create_dataset(cfg.dataset, cfg.root, **cfg.reader_options)
    items = reader.items()
    selected = select_items(items, cfg.subjects, cfg.limit)
    plan = ExtractPlan(cfg, reader, items, selected, [])
    for kind in resolve_kinds(cfg, reader):
        recipe = extractor_recipe(kind, cfg)
        if cfg.dry_run:  # plan without building extractors: no model weights loaded, works offline
            plan.stores.append(dry_store_plan(kind, cfg, plan, recipe))
            continue
        log.info("%s: building the %s extractor (%s)", cfg.dataset, kind, recipe.name)
        extractor = recipe.build(device if device is not None else torch.device("cpu"))
        try:
            parts = extractor.manifest_parts()
            per_call = max(1, int(extractor.items_per_call(reader, selected)))
        finally:
            if not keep_extractors:
                extractor.close()
        manifest = build_manifest(kind, cfg, parts, input_fingerprint(reader, items, kind), cfg.root,
                                  label_names=reader.label_names())
        videos = any(it.has("video") for it in items)
        store_plan = plan_store(kind, cfg, manifest, recipe, selected, videos)
        store_plan.items_per_call = per_call
        plan.stores.append(store_plan)
        if keep_extractors:
            plan.extractors[kind] = extractor
    return plan


def dry_store_plan(kind: str, cfg: ExtractConfig, plan: ExtractPlan, recipe: Any) -> StorePlan:
    """A dry run's plan of one store: the existing store it would continue when exactly one matches (its manifest,
    so its fingerprint), else a new store whose fingerprint is computed from the model weights when the run
    starts."""
    from store import open_store

    videos = any(it.has("video") for it in plan.items)
    label = store_label(kind, cfg, videos)
    found = matching_stores(cfg, label, input_fingerprint(plan.reader, plan.items, kind), recipe)
    if len(found) == 1:
        return plan_store(kind, cfg, open_store(found[0]).manifest, recipe, plan.selected, videos, path=found[0])
    if found:
        log.info("dry run: %d stores match %s (%s); the run picks one by fingerprint", len(found), label,
                 ", ".join(p.name for p in found))
    path = store_path(cfg.out_dir, cfg.dataset, label, "????????", cfg.store_format)
    return plan_store(kind, cfg, None, recipe, plan.selected, videos, path=path)


def print_plan(plan: ExtractPlan, out: Console, dry_run: bool) -> None:
    cfg = plan.cfg
    out.print(f"plan: {cfg.dataset} at {cfg.root}: {len(plan.selected)} of {len(plan.items)} items selected"
              + (f" (subjects {','.join(cfg.subjects)})" if cfg.subjects else "")
              + (f" (limit {cfg.limit})" if cfg.limit is not None else ""))
    for sp in plan.stores:
        c = sp.counts()
        state = "resume" if sp.exists else "new"
        fingerprint = sp.fingerprint or "computed from the model weights when the run starts"
        out.print(f"  {sp.kind}: {sp.path} ({state}, fingerprint {fingerprint})")
        out.print(f"    to do {c['todo']}, done {c['done']} (skipped), failed {len(sp.failed)} "
                  f"({c['retry']} to retry, {c['failed_skipped']} skipped), no {sp.kind} media {c['no_media']}")
        if sp.missing:
            out.print(f"    items without {sp.kind} media (not an error): {_some(sp.missing)}")
        if c["failed_skipped"]:
            out.print(f"    {c['failed_skipped']} failed item(s) skipped; add --retry-failed to redo them: "
                      f"{_some([k for k in sp.failed if k not in sp.retry])}")
        if dry_run and sp.todo:
            out.print(f"    would do: {_some([it.key for it in sp.todo], 20)}")


def _some(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" ... (+{len(keys) - n})" if len(keys) > n else "")


def _store_task(sp: StorePlan, cfg: ExtractConfig) -> StoreTask:
    assert cfg.root is not None
    return StoreTask(
        path=str(sp.path),
        backend=cfg.store_format,
        manifest=sp.manifest.to_dict(),
        recipe=sp.recipe,
        dataset=cfg.dataset,
        root=str(cfg.root),
        reader_options_json=json.dumps(cfg.reader_options, sort_keys=True, default=str),
        plugins=tuple(cfg.plugins),
        commit_interval_s=cfg.commit_interval_s,
        items_per_call=sp.items_per_call,
    )


def compact_finished(path: Path) -> None:
    """Fold a finished job's segments into the store's compacted base (plain zarr/xarray/h5py open it); a
    failure is logged, never fatal: the segments keep serving and ``pipeline stores compact`` retries."""
    from store import StoreError, compact_store

    try:
        result = compact_store(path)  # a compressed store (the crop store) keeps its codec in the base
    except (StoreError, OSError) as exc:
        log.warning("compacting %s failed (the segments still serve; retry with `pipeline stores compact`): %s",
                    path, exc)
        return
    if result.compacted:
        log.info("compacted %s: %d rows, %.1f MiB/s", path, result.rows, result.mib_per_s)


def open_stores(plan: ExtractPlan, ctx: WorkerContext) -> dict[str, StoreTask]:
    """Create (or reopen) every store with items to do; the serial run's context adopts the planning extractors
    and the writers, parallel workers write their own segments. Returns store path -> task."""
    from store import create_store

    cfg = plan.cfg
    tasks: dict[str, StoreTask] = {}
    for sp in plan.stores:
        if sp.kind in plan.extractors:
            ctx.adopt_extractor(sp.recipe, plan.extractors[sp.kind])
    for sp in plan.stores:
        if not sp.todo:
            continue
        task = tasks[str(sp.path)] = _store_task(sp, cfg)
        writer = create_store(sp.path, sp.manifest, backend=cfg.store_format, writer_id=ctx.writer_id,
                              flush_interval_s=cfg.commit_interval_s)
        if _parallel(cfg):
            writer.close()  # the store exists (manifest checked once here); workers write their own segments
        else:
            ctx.adopt_writer(task.path, writer)
    return tasks


def _batches(active: list[StorePlan], tasks: dict[str, StoreTask], stats: dict[str, StoreStats],
             progress: JobProgress) -> Iterator[tuple[StoreTask, list[Item]]]:
    """The work, store by store, in calls of ``items_per_call`` items; a store's clock starts at its first call."""
    for sp in active:
        st = stats[str(sp.path)]
        st.started = time.perf_counter()
        progress.start(str(sp.path))
        task = tasks[str(sp.path)]
        for i in range(0, len(sp.todo), task.items_per_call):
            yield task, sp.todo[i: i + task.items_per_call]


def run_stores(plan: ExtractPlan, ctx: WorkerContext, tasks: dict[str, StoreTask],
               stats: dict[str, StoreStats]) -> bool:
    """Run every store's items to do on the configured runner, with progress; True when ``--fail-fast`` stopped."""
    from pipelines.logs import console as log_console

    cfg = plan.cfg
    active = [sp for sp in plan.stores if sp.todo]
    with JobProgress(log_console, enabled=cfg.progress, interval_s=cfg.progress_interval_s) as progress:
        for sp in active:
            progress.add_store(sp)

        def on_outcome(outcome: ItemOutcome) -> bool:
            st = stats[outcome.store]
            st.add(outcome)
            progress.update(outcome, st)
            if outcome.status == "failed":
                log.warning("%s failed: %s", outcome.key, outcome.error)
                if cfg.fail_fast:
                    log.error("--fail-fast: stopping after the first failed item (%s)", outcome.key)
                    return True
            elif outcome.status == "claimed":
                log.info("%s is claimed by another live writer; left to it", outcome.key)
            return False

        def on_commit(commit_s: dict[str, float]) -> None:
            for path, seconds in commit_s.items():
                st = stats[path]
                st.stages["write"] = st.stages.get("write", 0.0) + seconds

        on_rows = progress.rows if cfg.progress else None  # rows of running items: progress per frame
        work = _batches(active, tasks, stats, progress)
        return _dispatch(cfg, ctx, work, on_outcome, on_commit, tasks, on_rows)


def _dispatch(cfg: ExtractConfig, ctx: WorkerContext, work: Iterator[tuple[StoreTask, list[Item]]],
              on_outcome: Callable[[ItemOutcome], bool], on_commit: Callable[[dict[str, float]], None],
              tasks: dict[str, StoreTask], on_rows: Any) -> bool:
    """Hand the work to the runner ``cfg`` names: dask, worker processes or this process."""
    if cfg.scheduler:
        from pipelines.jobs.dask_runner import run_dask

        return run_dask(work, cfg.scheduler, cfg.gpu, cfg.plugins, on_outcome, on_commit,
                        list(tasks.values()), on_rows=on_rows)
    if cfg.workers > 1:
        from pipelines.jobs.runners import run_processes

        return run_processes(work, cfg.workers, cfg.gpu, cfg.plugins, on_outcome, on_commit,
                             list(tasks.values()), on_rows=on_rows)
    from pipelines.jobs.runners import run_serial

    return run_serial(work, ctx, on_outcome, on_commit, on_rows=on_rows)


def summarise_stores(plan: ExtractPlan, stats: dict[str, StoreStats], stopped: bool, device: Any,
                     t_job: float) -> list[dict[str, Any]]:
    """Compact each finished store, then write and return its summary (the whole job's wall time included)."""
    cfg = plan.cfg
    summaries = []
    config = to_dict(cfg)
    for sp in plan.stores:
        st = stats[str(sp.path)]
        totals = None
        if sp.path.exists() and not stopped:
            compact_finished(sp.path)
        if sp.path.exists():
            done, failed = existing_status(sp.path)
            totals = (len(done), len(failed))
        summary = st.summary(config=config, runner=_runner_name(cfg), device=str(device), stopped=stopped,
                             totals=totals)
        summary["job_wall_s"] = round(time.perf_counter() - t_job, 3)  # the whole command: planning, models, all
        if sp.path.exists():
            write_summary(summary)
        summaries.append(summary)
    return summaries


def run_extract(cfg: ExtractConfig, out: Console | None = None) -> JobResult:
    """Plan, (unless dry-run) run, summarise. Returns the plan, per-store summaries and the exit code."""
    out = out or Console(soft_wrap=True)
    t_job = time.perf_counter()
    device = _driver_device(cfg)
    serial_device = None if (_parallel(cfg) or cfg.dry_run) else device
    plan = plan_extract(cfg, device=serial_device, keep_extractors=serial_device is not None)
    print_plan(plan, out, cfg.dry_run)
    if cfg.dry_run:
        return JobResult(plan, [], 0, dry_run=True)

    ctx = WorkerContext(device=device, name="main")
    try:
        tasks = open_stores(plan, ctx)
        stats = {str(sp.path): StoreStats(sp) for sp in plan.stores}
        stopped = run_stores(plan, ctx, tasks, stats)
    finally:
        ctx.close()  # no-op after a clean run (the runner closed it); commits whole items after an interrupt
    summaries = summarise_stores(plan, stats, stopped, device, t_job)
    print_summary(summaries, out)
    return JobResult(plan, summaries, 1 if stopped else 0)


def print_summary(summaries: list[dict[str, Any]], out: Console) -> None:
    for s in summaries:
        i = s["items"]
        out.print(f"summary: {s['kind']} {s['store']}")
        out.print(f"  done {i['done']}, skipped {i['skipped_done']} (already done), failed {i['failed']}"
                  + (f", skipped {i['skipped_failed']} failed (--retry-failed redoes them)" if i["skipped_failed"]
                     else "")
                  + (f", retried {i['retried']} ({i['retried_ok']} ok)" if i["retried"] else "")
                  + (f", {i['claimed_elsewhere']} claimed by other writers" if i["claimed_elsewhere"] else "")
                  + (f", {i['not_run']} not run (stopped)" if i["not_run"] else "")
                  + (f", {i['no_media']} without {s['kind']} media" if i["no_media"] else ""))
        if s["rows"]:
            stages = ", ".join(f"{k} {v:.2f}s" for k, v in s["stage_s"].items())
            out.print(f"  {s['rows']} rows in {s['wall_s']:.2f} s = {s['rows_per_s']:.1f} rows/s"
                      + (f"; stage time (summed over workers): {stages}" if stages else ""))
        for key, error in list(s["failures"].items())[:10]:
            out.print(f"  failed {key}: {error}")
        if s["store_totals"] is not None:
            t = s["store_totals"]
            out.print(f"  store now holds {t['done']} done, {t['failed']} failed item(s); "
                      f"summary: {summary_path(s['store'])}")
