"""File names, key escaping and the small filesystem primitives (atomic JSON, fsync, liveness) of a store.

On-disk layout of a store directory (see ``docs/stores.md`` for the full description)::

    store.json            format marker: {"format": "mmer-store", "format_version": 1, "backend": "zarr", ...}
    manifest.json         Manifest.to_dict() including "fingerprint"; written once
    segments/             immutable committed segments <writer_id>-<seq:06d>.zarr | .h5; ".tmp~*" = uncommitted
                          (a segment being written, or a dead writer's leftover: readers ignore it)
    status/failed/        <escaped key>.json failure records
    claims/               <escaped key>.claim work claims of live writers
    zarr.json, embeddings/, item/, ...   (zarr, after compaction) the compacted base: ONE standard Zarr v3 group
    store.h5              (hdf5, after compaction) the compacted base: ONE HDF5 file
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import re
import socket
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

STORE_FILE = "store.json"
MANIFEST_FILE = "manifest.json"
SEGMENTS_DIR = "segments"
FAILED_DIR = "status/failed"
CLAIMS_DIR = "claims"
STORE_FORMAT = "mmer-store"
STORE_FORMAT_VERSION = 1
SEGMENT_FORMAT = "mmer-segment"
SEGMENT_FORMAT_VERSION = 1
SEGMENT_ATTR = "mmer_segment"  # the group/file attribute holding the segment's JSON index
COMPACT_ATTR = "mmer_compacted"  # root attribute: the compacted base's index (a segment index + "compacted")
MANIFEST_ATTR = "mmer_manifest"  # root attribute: the store manifest
LAYOUT_ATTR = "mmer_layout"
COMPACT_LAYOUT = "mmer-compacted/1"  # the name of the compacted layout (docs/stores.md)
COMPACT_H5 = "store.h5"  # the compacted base file of an hdf5 store
BASE_NAME = "(compacted)"  # the base's name among a Store's segments; sorts before every segment name
COMPACTION_LOCK = "~compaction"  # claim key held while a store is compacted
TMP_PREFIX = ".tmp~"
STALE_PREFIX = ".stale~"

_POOL: ThreadPoolExecutor | None = None
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_MAX_ESCAPED = 180


def io_pool() -> ThreadPoolExecutor:
    """A shared thread pool for chunk I/O and checksums (file I/O and zlib release the GIL)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2)), thread_name_prefix="store-io")
    return _POOL


def crash_point(step: str) -> None:
    """Die here with SIGKILL when ``MMER_STORE_CRASH_AT`` names ``step`` (the crash tests kill every step)."""
    if os.environ.get("MMER_STORE_CRASH_AT") == step:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def hostname() -> str:
    return socket.gethostname() or "localhost"


def safe_name(name: str) -> bool:
    """True for names usable as one path component and array name: ``[A-Za-z0-9_][A-Za-z0-9_.-]*``."""
    return bool(_SAFE_NAME.match(name))


def sanitize_name(name: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
    return out if safe_name(out) else "_" + out


def escape_key(key: str) -> str:
    """Item key -> one file-name component: keeps ``[A-Za-z0-9_-]``, percent-encodes every other UTF-8 byte.

    ``deap/s01/trial07`` -> ``deap%2Fs01%2Ftrial07``. Very long keys are cut and suffixed with a hash (the files
    that use these names also hold the key itself, so nothing relies on reversing the escape).
    """
    out = []
    for byte in key.encode("utf-8"):
        ch = chr(byte)
        out.append(ch if (ch.isascii() and (ch.isalnum() or ch in "_-")) else f"%{byte:02X}")
    name = "".join(out)
    if len(name) > _MAX_ESCAPED:
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
        name = f"{name[: _MAX_ESCAPED - 18]}~{digest}"
    return name


def tmp_name(suffix: str = "") -> str:
    """A unique uncommitted name ``.tmp~<host>~<pid>~<uuid>`` that says who made it (so gc can tell if it's dead)."""
    return f"{TMP_PREFIX}{sanitize_name(hostname())}~{os.getpid()}~{uuid.uuid4().hex[:12]}{suffix}"


def parse_tmp_name(name: str) -> tuple[str, int] | None:
    """(host, pid) of a name made by ``tmp_name`` (also when prefixed, e.g. ``.x.tmp~h~1~u``); None otherwise."""
    idx = name.find(TMP_PREFIX)
    if idx < 0:
        return None
    parts = name[idx + len(TMP_PREFIX) :].split("~")
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def write_json_atomic(path: Path, obj: Any, *, durable: bool = True) -> None:
    """Write JSON to a temporary sibling, fsync (if ``durable``), then ``os.replace``: readers see old or new."""
    path = Path(path)
    tmp = path.with_name(tmp_name(".json"))
    data = json.dumps(obj, indent=1, sort_keys=True, allow_nan=True).encode()
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def read_json(path: Path) -> Any:
    with open(path, "rb") as fh:
        return json.loads(fh.read())


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _fsync_one(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_files(paths: Iterable[str | Path], dirs: Iterable[str | Path] = ()) -> None:
    """fsync many files, then many directories, in parallel threads (the journal commits batch, so each round
    costs about one fsync); all are durable when this returns."""
    paths = [str(p) for p in paths]
    dir_list = [Path(d) for d in dirs]
    if len(paths) + len(dir_list) <= 2:
        for p in paths:
            _fsync_one(p)
        for d in dir_list:
            fsync_dir(d)
        return
    with ThreadPoolExecutor(max_workers=min(16, max(len(paths), len(dir_list)))) as pool:
        list(pool.map(_fsync_one, paths))
        list(pool.map(fsync_dir, dir_list))


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` (or ``root`` itself when it is a file), then the directories."""
    root = Path(root)
    if root.is_file():
        _fsync_one(str(root))
        return
    files, dirs = [], []
    for dirpath, _dirnames, filenames in os.walk(root):
        dirs.append(dirpath)
        files.extend(os.path.join(dirpath, f) for f in filenames)
    fsync_files(files, reversed(dirs))


def process_start_time(pid: int | None = None) -> float | None:
    try:
        import psutil

        return float(psutil.Process(os.getpid() if pid is None else pid).create_time())
    except Exception:  # liveness is best effort
        return None


def pid_alive(pid: int, start_time: float | None = None) -> bool:
    """Is process ``pid`` on this host alive (and, when ``start_time`` is given, the same process, not a reuse)?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start_time is None:
        return True
    actual = process_start_time(pid)
    if actual is None:
        return True
    try:
        import psutil

        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return False
    except Exception:
        pass
    return abs(actual - float(start_time)) < 1.0


def holder_alive(host: str, pid: int, start_time: float | None = None) -> bool | None:
    """True/False when the holder is on this host (we can check), None when it's on another host (unknown)."""
    if host != sanitize_name(hostname()) and host != hostname():
        return None
    return pid_alive(pid, start_time)


def leftover_is_dead(path: Path, min_age_s: float, now: float) -> bool:
    """A ``.tmp~host~pid~...`` leftover may go when its maker is dead on this host, or it is older than
    ``min_age_s`` and its maker is on another host (or unknown)."""
    parsed = parse_tmp_name(path.name)
    if parsed is not None:
        alive = holder_alive(parsed[0], parsed[1])
        if alive is not None:
            return not alive
    try:
        return now - os.lstat(path).st_mtime > min_age_s
    except FileNotFoundError:
        return False


def is_store(path: str | Path) -> bool:
    return (Path(path) / STORE_FILE).is_file()


def list_stores(directory: str | Path) -> list[Path]:
    """Stores at or under ``directory`` (not descending into stores or hidden directories), sorted."""
    root = Path(directory)
    if is_store(root):
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if STORE_FILE in filenames and Path(dirpath) != root:
            found.append(Path(dirpath))
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return sorted(found)


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree; missing is fine."""
    import shutil

    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        _unlink_quiet(path)


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
