"""Planning: which stores a config writes (names, manifests, fingerprints) and which items each still needs.

A store is one feature kind of one dataset made one way. Its path is readable and carries the first 8 hex digits of
the manifest fingerprint, e.g. ``cache/deap/face-mtcnn-clip-vit-l14-5fps-1a2b3c4d.zarr``: changing anything that
changes the features (fps, detector, backbone, crop size, EEG window/step/bands/feature, dtype, input files) gives a
new name, so a new store, and the old one is never touched.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from extract.datasets.base import DatasetReader, Item
from pipelines.config import ConfigError
from pipelines.jobs.config import ExtractConfig
from store.schema import Manifest

STORE_SUFFIX = {"zarr": ".zarr", "hdf5": ".h5"}

# Item.sources keys that carry each kind's media. Files that are nobody's source (metadata CSVs, ratings) belong to
# every kind's input fingerprint; files that are another kind's source do not.
SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "face": ("face", "video", "frames", "images", "image", "pixels", "csv"),
    "eeg": ("eeg",),
    "audio": ("audio",),
    "peripheral": ("peripheral", "eeg"),  # DEAP: channels 33-40 of the same .dat file
}
SOURCE_KEYS["face_crops"] = SOURCE_KEYS["face"]  # the crop store reads the face media

# Modules whose import registers the project's datasets and extractors.
REGISTRY_MODULES = ("extract.datasets", "extract.face.extractor", "extract.face_crops", "extract.eeg", "extract.audio")

LIBRARIES = ("numpy", "scipy", "torch", "torchvision", "transformers", "av", "facenet-pytorch", "zarr", "h5py")


def import_plugins(modules: Iterable[str] = ()) -> None:
    """Import the project's registry modules and any extra ``modules`` (user plugins registering their own
    datasets or extractors). Missing optional project modules are skipped; a missing plugin is an error."""
    for name in REGISTRY_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"plugin module {name!r} not found ({exc}); is it on PYTHONPATH?") from exc


@dataclass(frozen=True)
class ExtractorRecipe:
    """How to build one extractor anywhere (driver, process, dask worker): registry name + JSON options."""

    name: str
    options_json: str = "{}"

    @classmethod
    def make(cls, name: str, **options: Any) -> ExtractorRecipe:
        return cls(name, json.dumps(options, sort_keys=True, default=str))

    def options(self) -> dict[str, Any]:
        return json.loads(self.options_json)

    def build(self, device: Any = None) -> Any:
        """The extractor; ``device`` (or a callable returning it, resolved only if needed) goes to factories
        that take a ``device`` argument."""
        from extract.base import EXTRACTORS

        factory = EXTRACTORS.get(self.name)
        kwargs = self.options()
        if device is not None and _accepts(factory, "device"):
            kwargs["device"] = device() if callable(device) else device
        return factory(**kwargs)


def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params  # explicitly: a **kwargs factory (a registry lambda) may forward it to a config


def extractor_recipe(kind: str, cfg: ExtractConfig) -> ExtractorRecipe:
    """The extractor that makes ``kind`` stores under ``cfg``."""
    from extract.base import EXTRACTORS

    if kind == "face":
        return ExtractorRecipe.make(
            "face",
            detector=cfg.detector,
            backbone=cfg.backbone,
            fps=cfg.fps,
            crop_size=cfg.crop_size,
            dtype=cfg.dtype,
            detect_batch=cfg.detect_batch,
            embed_batch=cfg.embed_batch,
            on_corrupt=cfg.on_corrupt,
            **cfg.face_options.given(),
        )
    if kind == "face_crops":  # the aligned crops themselves (for `pipeline finetune`)
        return ExtractorRecipe.make("face_crops", detector=cfg.detector, fps=cfg.fps, crop_size=cfg.crop_size,
                                    detect_batch=cfg.detect_batch, embed_batch=cfg.embed_batch,
                                    on_corrupt=cfg.on_corrupt, **cfg.face_options.given())
    if kind == "eeg":
        options: dict[str, Any] = {
            "window_s": cfg.eeg_window_s,
            "step_s": cfg.step_s,
            "feature": cfg.eeg_feature,
            **cfg.eeg_options.given(),
        }
        if cfg.bands:
            options["bands"] = list(cfg.bands)
        return ExtractorRecipe.make("eeg", **options)
    if kind == "audio":
        return ExtractorRecipe.make("audio", **cfg.audio_options.given())
    # Other kinds (SEED-V eeg_de / eye, DEAP peripheral, ...): "<dataset>-<kind>", "<kind>" or "eeg-<kind>".
    dashed = kind.replace("_", "-")
    for name in (f"{cfg.dataset}-{kind}", f"{cfg.dataset}-{dashed}", kind, dashed, f"eeg-{dashed}"):
        if name in EXTRACTORS:
            return ExtractorRecipe.make(name)
    raise ConfigError(
        f"no extractor for {cfg.dataset} {kind!r}: expected one registered as {cfg.dataset}-{kind} or {kind}; "
        f"known: {', '.join(EXTRACTORS.names())}"
    )


def _slug(text: str) -> str:
    text = text.replace("hf:", "hf-").replace("local:", "local-").replace("finetuned:", "finetuned-")
    for prefix in ("local-", "finetuned-"):
        if text.startswith(prefix):
            text = prefix + Path(text[len(prefix) :]).name
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def store_label(kind: str, cfg: ExtractConfig, videos: bool = True) -> str:
    """The readable part of a store name: ``face-mtcnn-clip-vit-l14-5fps``, ``eeg-de-1s``, ``eeg-de-2s-step0.5s``
    (no fps for a dataset of still frames: DFEW frames, FER2013, image folders)."""
    if kind == "face":
        label = f"face-{_slug(cfg.detector)}-{_slug(cfg.backbone)}"
        rate = f"{cfg.fps:g}fps" if cfg.fps > 0 else "allframes"
        return f"{label}-{rate}" if videos else label
    if kind == "face_crops":
        label = f"face-crops-{_slug(cfg.detector)}-{cfg.crop_size}px"
        rate = f"{cfg.fps:g}fps" if cfg.fps > 0 else "allframes"
        return f"{label}-{rate}" if videos else label
    if kind == "eeg":
        label = f"eeg-{_slug(cfg.eeg_feature)}-{cfg.eeg_window_s:g}s"
        return label if cfg.step_s == cfg.eeg_window_s else f"{label}-step{cfg.step_s:g}s"
    if kind == "audio":
        return f"audio-{_slug(str(cfg.audio_options.given().get('features', 'logmel')))}"
    return _slug(kind)


def store_path(out_dir: Path, dataset: str, label: str, fingerprint: str, store_format: str) -> Path:
    return Path(out_dir) / dataset / f"{label}-{fingerprint[:8]}{STORE_SUFFIX[store_format]}"


def has_modality(item: Item, kind: str) -> bool:
    """Whether ``item`` has media for ``kind`` (DEAP s23+ and some s03/s05/s11/s14 trials have no video)."""
    return any(item.has(key) for key in (kind, *SOURCE_KEYS.get(kind, ())))


def input_fingerprint(reader: DatasetReader, items: Sequence[Item], kind: str) -> str:
    """sha256 (16 hex) of the sorted (relative name, size) of the dataset's input files that ``kind`` reads.

    Over the whole dataset, not the selected items: ``--limit`` and ``--subjects`` continue the same store. Files
    that are sources of another kind only (DEAP videos for the EEG store) are left out, so fixing a video never
    renames the EEG store. Modification times are left out on purpose: copying a dataset (rsync without -t, a new
    disk) does not change its features.
    """
    own: set[Path] = set()
    other: set[Path] = set()
    keys = (kind, *SOURCE_KEYS.get(kind, ()))
    for item in items:
        for key, src in item.sources.items():
            (own if key in keys else other).add(Path(src).resolve())
    root = reader.root.resolve()
    digest = hashlib.sha256()
    for path in sorted(reader.input_files()):
        resolved = Path(path).resolve()
        if _under(resolved, other) and not _under(resolved, own):
            continue
        try:
            rel = resolved.relative_to(root).as_posix()
        except ValueError:
            rel = resolved.as_posix()
        digest.update(f"{rel}\0{resolved.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def _under(path: Path, roots: set[Path]) -> bool:
    return path in roots or any(parent in roots for parent in path.parents)


def library_versions() -> dict[str, str]:
    out = {}
    for dist in LIBRARIES:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def build_manifest(kind: str, cfg: ExtractConfig, parts: dict[str, Any], input_fp: str, root: Path,
                   label_names: dict[str, list[str]] | None = None) -> Manifest:
    parts = dict(parts)
    parts.setdefault("label_names", dict(label_names or {}))
    config = dict(parts.pop("config", {}) or {})
    if cfg.reader_options:
        config["reader"] = dict(cfg.reader_options)
    return Manifest(
        kind=kind,
        dataset=cfg.dataset,
        config=config,
        input_fingerprint=input_fp,
        dataset_root=str(Path(root).resolve()),
        library_versions=library_versions(),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **{k: v for k, v in parts.items() if k in Manifest.__dataclass_fields__},
    )


@dataclass
class StorePlan:
    """One store of the job and the items it still needs."""

    kind: str
    label: str
    path: Path
    manifest: Manifest | None  # None only in a dry run that found no existing store (weights not loaded)
    recipe: ExtractorRecipe
    exists: bool
    todo: list[Item] = field(default_factory=list)  # absent items, plus failed ones under --retry-failed
    done: list[str] = field(default_factory=list)  # committed already: skipped
    failed: dict[str, str] = field(default_factory=dict)  # recorded failed (key -> error); skipped unless retried
    retry: list[str] = field(default_factory=list)  # failed keys that are in ``todo`` again (--retry-failed)
    missing: list[str] = field(default_factory=list)  # selected items without media for this kind (EEG-only ...)
    items_per_call: int = 1  # items handed to the extractor together (``FeatureExtractor.items_per_call``)

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint() if self.manifest is not None else ""

    def counts(self) -> dict[str, int]:
        return {
            "todo": len(self.todo),
            "done": len(self.done),
            "failed_skipped": len(self.failed) - len(self.retry),
            "retry": len(self.retry),
            "no_media": len(self.missing),
        }


def matching_stores(cfg: ExtractConfig, label: str, input_fp: str, recipe: ExtractorRecipe) -> list[Path]:
    """Existing stores a run of ``cfg`` would continue, found without building the extractor (no weights): same
    readable name, same input files, and a manifest config that agrees with every option the recipe sets."""
    from store import StoreError, open_store

    folder = Path(cfg.out_dir) / cfg.dataset
    pattern = re.compile(re.escape(label) + r"-[0-9a-f]{8}" + re.escape(STORE_SUFFIX[cfg.store_format]) + "$")
    options = json.loads(json.dumps(recipe.options(), default=str))
    found = []
    for path in sorted(folder.glob(f"{label}-*{STORE_SUFFIX[cfg.store_format]}")) if folder.is_dir() else []:
        if not pattern.match(path.name):
            continue
        try:
            manifest = open_store(path).manifest
        except StoreError:
            continue
        config = json.loads(json.dumps(dict(manifest.config), default=str))
        if manifest.input_fingerprint != input_fp or dict(config.get("reader") or {}) != json.loads(
                json.dumps(dict(cfg.reader_options), default=str)):
            continue
        if all(config[k] == v for k, v in options.items() if k in config):
            found.append(path)
    return found


def select_items(items: Sequence[Item], subjects: Sequence[str], limit: int | None) -> list[Item]:
    """``--subjects`` (``s01`` also matches ``1``/``01``) then ``--limit`` (the first N), in the reader's order."""
    selected = list(items)
    if subjects:
        known = sorted({it.subject for it in items})
        wanted = {s.strip() for s in subjects if s.strip()}
        unknown = [w for w in wanted if not any(_same_subject(w, k) for k in known)]
        if unknown:
            raise ConfigError(f"unknown subject(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}")
        selected = [it for it in selected if any(_same_subject(w, it.subject) for w in wanted)]
    if limit is not None:
        selected = selected[:limit]
    return selected


def _same_subject(wanted: str, subject: str) -> bool:
    if wanted.lower() == subject.lower():
        return True
    a, b = re.sub(r"\D", "", wanted), re.sub(r"\D", "", subject)
    return bool(a) and bool(b) and int(a) == int(b) and not re.sub(r"\d", "", wanted).strip("sS")


def existing_status(path: Path) -> tuple[set[str], dict[str, str]]:
    """Committed and failed items (key -> error) of the store at ``path``; empty when there is none."""
    if not Path(path).exists():
        return set(), {}
    from store import open_store

    store = open_store(path)
    try:
        done = set(store.items("done"))
        failed = _failures_dict(store.failures())
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()
    return done, failed


def _failures_dict(failures: Any) -> dict[str, str]:
    """``Store.failures()`` as key -> error text, whatever mapping/records shape it comes in."""
    if hasattr(failures, "to_dict") and hasattr(failures, "columns"):  # a DataFrame
        failures = failures.to_dict("records")
    if isinstance(failures, dict):
        return {str(k): _error_text(v) for k, v in failures.items()}
    out = {}
    for rec in failures or ():
        if isinstance(rec, dict):
            out[str(rec.get("key", rec.get("item")))] = _error_text(rec)
        elif isinstance(rec, (tuple, list)):
            out[str(rec[0])] = _error_text(rec[1] if len(rec) > 1 else "")
        else:
            out[str(getattr(rec, "key", getattr(rec, "item", rec)))] = _error_text(rec)
    return out


def _error_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("error", value.get("error_message", value)))
    return str(getattr(value, "error", value))


def plan_store(kind: str, cfg: ExtractConfig, manifest: Manifest | None, recipe: ExtractorRecipe,
               selected: Sequence[Item], videos: bool = True, path: Path | None = None) -> StorePlan:
    """The store ``manifest`` names (or ``path``, in a dry run) and what each selected item needs there."""
    label = store_label(kind, cfg, videos)
    if path is None:
        assert manifest is not None
        path = store_path(cfg.out_dir, cfg.dataset, label, manifest.fingerprint(), cfg.store_format)
    done, failed = existing_status(path)
    plan = StorePlan(kind, label, path, manifest, recipe, exists=path.exists())
    for item in selected:
        if not has_modality(item, kind):
            plan.missing.append(item.key)
        elif item.key in done:
            plan.done.append(item.key)
        elif item.key in failed:
            plan.failed[item.key] = failed[item.key]
            if cfg.retry_failed:
                plan.retry.append(item.key)
                plan.todo.append(item)
        else:
            plan.todo.append(item)
    return plan
