"""A small on-disk cache for results that do not change between runs of the same data.

What is cached (each entry keyed by a SHA-256 of everything it depends on):

* registration transforms per scan pair, keyed by the content hashes of the images used and
  the registration options (:mod:`.imaging.registration_cache`);
* voxel S-value kernels per nuclide, voxel size and kernel options (:mod:`.physics.dose.kernels`).

Location (never the study folder, never the result folder):

1. ``$LU_DOSIMETRY_CACHE_DIR`` if set;
2. else ``platformdirs.user_cache_dir("lu-dosimetry")`` when ``platformdirs`` is installed;
3. else ``$XDG_CACHE_HOME/lu-dosimetry`` or ``~/.cache/lu-dosimetry``.

The cache is switched off per run with ``lu-dosimetry run --no-cache`` /
``PipelineOptions(use_cache=False)`` (:func:`disabled`), or for the process with
``LU_DOSIMETRY_CACHE_DIR=off``. Entries are written atomically (temporary file, then
``os.replace``), so concurrent runs never see half-written files; an unreadable entry is treated
as a miss and recomputed. Deleting the folder is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

ENV_VAR = "LU_DOSIMETRY_CACHE_DIR"
# bumped when the meaning of a cached entry changes (a new key space; old entries are ignored)
FORMAT_VERSION = 1

_state = threading.local()
_lock = threading.Lock()
stats = {"hits": 0, "misses": 0, "writes": 0}  # per process, per namespace below as "<ns>:hits" etc.


def cache_dir() -> Path | None:
    """The cache folder (see the module docstring), or None when caching is switched off."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return None if env.lower() in ("off", "0", "none", "false") else Path(env).expanduser()
    try:
        import platformdirs
    except ImportError:
        platformdirs = None
    if platformdirs is not None:
        return Path(platformdirs.user_cache_dir("lu-dosimetry", appauthor=False))
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "lu-dosimetry"


def enabled() -> bool:
    """Whether the cache is used in this thread (see :func:`disabled`) and a folder is configured."""
    return not getattr(_state, "off", False) and cache_dir() is not None


@contextlib.contextmanager
def disabled(off: bool = True):
    """Context in which the cache is neither read nor written (``--no-cache``), in this thread and
    in the worker threads that :func:`propagate` wraps."""
    before = getattr(_state, "off", False)
    _state.off = bool(off) or before
    try:
        yield
    finally:
        _state.off = before


def propagate(fn):
    """``fn`` wrapped so that it sees this thread's cache switch when run in a worker thread."""
    off = getattr(_state, "off", False)

    def run(*args, **kwargs):
        with disabled(off):
            return fn(*args, **kwargs)
    return run


def key_of(*parts) -> str:
    """SHA-256 (hex) of the JSON of ``parts`` (numbers, strings, lists, dicts) and the format version."""
    text = json.dumps([FORMAT_VERSION, *parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _count(namespace: str, what: str) -> None:
    with _lock:
        stats[what] += 1
        stats[f"{namespace}:{what}"] = stats.get(f"{namespace}:{what}", 0) + 1


def _path(namespace: str, key: str, suffix: str) -> Path | None:
    root = cache_dir()
    return None if root is None else root / namespace / key[:2] / f"{key}{suffix}"


def read_bytes(namespace: str, key: str, suffix: str = ".bin") -> bytes | None:
    """The stored bytes, or None (miss, cache off, unreadable entry)."""
    if not enabled():
        return None
    p = _path(namespace, key, suffix)
    try:
        data = p.read_bytes()
    except OSError:
        _count(namespace, "misses")
        return None
    _count(namespace, "hits")
    return data


def write_bytes(namespace: str, key: str, data: bytes, suffix: str = ".bin") -> None:
    """Store ``data`` atomically; failures (read-only home, full disk) are logged, never raised."""
    if not enabled():
        return
    p = _path(namespace, key, suffix)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-", suffix=suffix)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
        _count(namespace, "writes")
    except OSError as exc:
        log.warning("cache: could not write %s (%s); continuing without caching it", p, exc)


def read_json(namespace: str, key: str):
    data = read_bytes(namespace, key, ".json")
    if data is None:
        return None
    try:
        return json.loads(data.decode())
    except (ValueError, UnicodeDecodeError):
        return None


def write_json(namespace: str, key: str, obj) -> None:
    write_bytes(namespace, key, json.dumps(obj, sort_keys=True).encode(), ".json")
