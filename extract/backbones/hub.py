"""Where a model's files are: the Hugging Face cache, a download (only when the hub answers), or a local folder.

Resolution never waits on the network for long: offline mode (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``) is
read from the environment at call time, and before any download the hub host is probed with a short TCP connect.
A model that is neither cached nor downloadable raises ``ModelUnavailableError`` with one line that says how to
get it. Weight checksums (sha256 of the weight files) are cached by (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Weight files in the order they are preferred; only the first kind present in a folder is used.
WEIGHT_PATTERNS = (
    ("model.safetensors.index.json", "model-*.safetensors"),
    ("model.safetensors", None),
    ("pytorch_model.bin.index.json", "pytorch_model-*.bin"),
    ("pytorch_model.bin", None),
)
_TRUE = {"1", "true", "yes", "on"}


class ModelUnavailableError(FileNotFoundError):
    """The model's files are not on this machine and cannot be fetched now; the message names the fix."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ResolvedModel:
    """A model folder on local disk, and where it came from."""

    path: Path
    model_id: str  # hub id ("openai/clip-vit-large-patch14") or "local:<folder name>"
    revision: str | None  # the hub commit hash of the cached snapshot; None for a local folder

    def weight_files(self) -> list[Path]:
        return weight_files(self.path)


def mmer_cache_dir() -> Path:
    """This project's own cache (tiny twins, checksums): ``$MMER_CACHE`` or ``~/.cache/mmer-pipeline``."""
    env = os.environ.get("MMER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmer-pipeline"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache as the environment says now (``HF_HUB_CACHE``, else ``HF_HOME``/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def offline_mode() -> str | None:
    """The env var that puts the hub offline (``HF_HUB_OFFLINE=1``), or None."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return var
    return None


def hub_unreachable_reason(timeout_s: float = 2.0) -> str | None:
    """None when the hub host accepts a TCP connection within ``timeout_s``; otherwise why not (a short phrase)."""
    var = offline_mode()
    if var:
        return f"the hub is offline ({var}=1)"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    port = 80 if endpoint.startswith("http://") else 443
    if ":" in host:
        host, port_s = host.rsplit(":", 1)
        port = int(port_s)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as err:
        return f"the hub is unreachable ({host}: {err.__class__.__name__})"


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a transformers checkpoint folder (one kind: sharded/single safetensors, else .bin)."""
    for main, shard_glob in WEIGHT_PATTERNS:
        if (folder / main).is_file():
            if shard_glob is None:
                return [folder / main]
            index = json.loads((folder / main).read_text())
            return [folder / name for name in sorted(set(index.get("weight_map", {}).values()))]
    return []


def _cached_snapshot(repo_id: str, revision: str | None, cache_dir: Path) -> Path | None:
    """The cached snapshot folder with config.json and complete weights, or None. Never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json", cache_dir=str(cache_dir), revision=revision)
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    files = weight_files(folder)
    if not files or not all(f.is_file() for f in files):
        return None
    return folder


def is_cached(repo_id: str, revision: str | None = None) -> bool:
    return _cached_snapshot(repo_id, revision, hf_hub_cache()) is not None


def resolve_hub(repo_id: str, revision: str | None = None) -> ResolvedModel:
    """Find ``repo_id`` in the HF cache, else download it if the hub answers, else raise ModelUnavailableError."""
    cache_dir = hf_hub_cache()
    folder = _cached_snapshot(repo_id, revision, cache_dir)
    if folder is None:
        reason = hub_unreachable_reason()
        if reason is not None:
            at = f"@{revision}" if revision else ""
            raise ModelUnavailableError(
                f"model {repo_id}{at} is not in the Hugging Face cache ({cache_dir}) and {reason}: run "
                f"`hf download {repo_id}` (`huggingface-cli download {repo_id}` with older huggingface_hub) on a "
                f"machine with internet and copy the cache, or pass local:/path/to/model-folder"
            )
        folder = _download(repo_id, revision, cache_dir)
    return ResolvedModel(path=folder, model_id=repo_id, revision=folder.name)


def _download(repo_id: str, revision: str | None, cache_dir: Path) -> Path:
    from huggingface_hub import snapshot_download

    log.info("downloading %s into %s", repo_id, cache_dir)
    patterns = [["*.json", "*.safetensors"], ["*.json", "pytorch_model*.bin"]]
    for allow in patterns:  # safetensors when the repo has them; .bin only as the fallback
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=str(cache_dir), allow_patterns=allow))
        if weight_files(folder):
            return folder
    raise ModelUnavailableError(f"model {repo_id} has no transformers weights (model.safetensors or pytorch_model.bin)")


def resolve_local(path: str | Path) -> ResolvedModel:
    folder = Path(path).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise ModelUnavailableError(
            f"local model folder {folder} has no config.json: pass a folder written by save_pretrained "
            f"(config.json, model.safetensors, preprocessor_config.json)"
        )
    if not weight_files(folder):
        raise ModelUnavailableError(f"local model folder {folder} has no model.safetensors or pytorch_model.bin")
    return ResolvedModel(path=folder, model_id=f"local:{folder.name}", revision=None)


# ---- weights checksum ------------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached in ``<mmer cache>/sha256.json`` by (real path, size, mtime_ns)."""
    real = Path(path).resolve()
    st = real.stat()
    key = str(real)
    stamp = [st.st_size, st.st_mtime_ns]
    cache_file = mmer_cache_dir() / "sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    hit = cache.get(key)
    if hit and hit.get("stamp") == stamp:
        return hit["sha256"]
    digest = hashlib.sha256()
    with open(real, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    value = digest.hexdigest()
    cache[key] = {"stamp": stamp, "sha256": value}
    try:  # atomic publish; a lost update between concurrent writers only costs a recomputation
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".sha256.", suffix=".partial")
        with os.fdopen(fd, "w") as fh:
            json.dump(cache, fh)
        os.replace(tmp, cache_file)
    except OSError as err:  # a read-only home must not stop extraction
        log.debug("could not write the checksum cache %s: %s", cache_file, err)
    return value


def weights_sha256(files: list[Path]) -> str:
    """One checksum for a checkpoint: the file's sha256, or for shards the sha256 of 'name sha256' lines."""
    if len(files) == 1:
        return file_sha256(files[0])
    lines = "".join(f"{f.name} {file_sha256(f)}\n" for f in sorted(files, key=lambda f: f.name))
    return hashlib.sha256(lines.encode()).hexdigest()
