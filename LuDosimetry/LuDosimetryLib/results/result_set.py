"""All-or-nothing, owned result sets in an output folder (``run --out``, ``cohort --out``).

A result set is written like this (:class:`ResultSetWriter`):

1. ``--out`` is checked *before any computation* (:func:`check_output_folder`): it must not be
   the study folder nor hold any input; a folder that already holds a result set is refused
   unless ``overwrite`` is given; a result name taken by a folder is refused.
2. A lock file ``OUT/.lu-results.lock`` (pid, host, start time) makes a second concurrent run
   into the same folder fail at once with a clear message. A lock left by a killed run (its pid no
   longer exists on this host) is taken over.
3. Every file is written into a fresh staging folder ``OUT/.lu-staging-XXXX/`` (same file
   system, so renames are atomic). Nothing in ``OUT`` is touched while results are computed.
4. The switch: a journal ``OUT/.lu-results.pending.json`` listing the new files (with SHA-256)
   and the previous set's files that the new one does not replace is written in one
   ``os.replace`` — the commit point. The staged files are then renamed into place, the
   previous set's leftovers removed, and the journal becomes the owned-files manifest
   ``OUT/.lu-results.json``. A run killed before the commit point leaves the previous set
   untouched; one killed after it is completed ("rolled forward") by the next writer or reader
   (:func:`settle_output_folder`), which yields the new set. Either way one complete set.
5. Only files recorded in a manifest written by this module are ever deleted — never by
   name pattern. Leftover staging folders (marked by an owner file inside) are cleaned by the
   next run; readers ignore every name starting with ``.`` (:func:`is_internal_path`).

Files are written by the callers; this module does not know what a result is.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import time
from pathlib import Path

from ..errors import LuDosimetryError

MANIFEST_NAME = ".lu-results.json"
PENDING_NAME = ".lu-results.pending.json"
LOCK_NAME = ".lu-results.lock"
STAGING_PREFIX = ".lu-staging-"
STAGING_OWNER = ".lu-staging-owner"
FORMAT = "lu-dosimetry result set"
FORMAT_VERSION = 1


class OutputFolderError(LuDosimetryError, ValueError):
    """The output folder cannot be used (holds inputs, holds results, locked, not a folder)."""


def is_internal_path(path: Path, root: Path) -> bool:
    """True when ``path`` (below ``root``) lies in, or is, a hidden (``.``-prefixed) entry:
    staging folders, journals, locks and other leftovers that readers must ignore."""
    try:
        rel = Path(path).relative_to(root)
    except ValueError:
        rel = Path(path)
    return any(part.startswith(".") for part in rel.parts)


def _resolve(p) -> Path:
    try:
        return Path(os.path.realpath(os.fspath(p)))  # symlinks followed: containment is of the real folders
    except (TypeError, ValueError) as exc:
        raise OutputFolderError(f"--out: not a usable path ({exc})") from None


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def read_manifest(out: Path) -> dict | None:
    """The owned-files manifest of ``out`` (None when there is none or it is unreadable)."""
    try:
        d = json.loads((Path(out) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("files"), dict):
        return None
    return d


def existing_result_files(out: Path, core_names=()) -> list[str]:
    """Names of the result set already in ``out``: the files of its manifest, or (results of an
    older version without manifest) those of ``core_names`` that exist."""
    out = Path(out)
    m = read_manifest(out)
    if m is not None:
        return sorted(m["files"])
    if (out / PENDING_NAME).exists():
        return [PENDING_NAME]
    return [n for n in core_names if (out / n).is_file()]


def check_output_folder(out, inputs=(), overwrite: bool = False, core_names=(), result_names=(),
                        inputs_may_be_inside=()) -> Path:
    """Refuse an unusable output folder before any computation; returns its absolute path.

    ``inputs``: every input file or folder (manifest, images, its study folder; tables, ...):
    ``out`` may not be one of them nor contain one (``study/results`` is fine, ``study`` is not).
    ``inputs_may_be_inside``: inputs the tool itself placed in ``out`` (the demo's patient).
    ``core_names``: files whose presence means "holds a result set" when there is no manifest.
    ``result_names``: names the set will write; one taken by a folder or special file is refused.
    Raises :class:`OutputFolderError`.
    """
    o = _resolve(out)
    if o == Path(o.anchor) or o == _resolve(Path.home()):
        raise OutputFolderError(f"--out {o}: refusing to write results into the root of a file system or the home "
                                "folder; give a dedicated folder (e.g. study/results)")
    if o.exists() and not o.is_dir():
        raise OutputFolderError(f"--out {o}: exists and is not a folder")
    allowed = [_resolve(p) for p in inputs_may_be_inside]
    for p in inputs:
        if p is None:
            continue
        q = _resolve(p)
        if any(_inside(q, a) for a in allowed):
            continue
        if _inside(q, o):
            what = "is the folder of the input" if q == o or q.parent == o else "holds the input"
            raise OutputFolderError(f"--out {o}: {what} {q}; results are never written among the inputs — "
                                    f"give a separate folder (e.g. {o / 'results'})")
    if o.is_dir():
        for name in result_names:
            t = o / name
            if (t.exists() or t.is_symlink()) and (t.is_symlink() or not t.is_file()):
                raise OutputFolderError(f"--out {o}: {name} exists and is not a regular file (a folder, link or "
                                        "device); move it away or choose another --out")
        found = existing_result_files(o, core_names)
        if found and not overwrite:
            raise OutputFolderError(f"--out {o}: already holds a result set ({', '.join(found[:4])}"
                                    f"{', ...' if len(found) > 4 else ''}); give --overwrite to replace it "
                                    "(atomically) or choose another --out")
    return o


# --------------------------------------------------------------------------------------------
# lock
# --------------------------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _lock_holder(lock: Path) -> dict | None:
    try:
        d = json.loads(lock.read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _lock_is_stale(holder: dict | None) -> bool:
    if not holder or holder.get("host") != socket.gethostname():
        return not holder  # unreadable/empty lock: a writer killed while writing it
    pid = holder.get("pid")
    return isinstance(pid, int) and not _pid_alive(pid)


def acquire_lock(out: Path) -> Path:
    """Create ``out/.lu-results.lock``; a live holder -> :class:`OutputFolderError` at once."""
    lock = Path(out) / LOCK_NAME
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(lock)
            if _lock_is_stale(holder):
                try:
                    lock.unlink()
                except FileNotFoundError:
                    pass
                continue
            raise OutputFolderError(
                f"--out {out}: another lu-dosimetry run (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"started {holder.get('started_utc', '?')}) is writing into this folder; wait for it to finish or "
                f"choose another --out (if no such run exists, delete {lock})") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return lock
    raise OutputFolderError(f"--out {out}: cannot take the lock {lock}")


def lock_held_by_live_process(out: Path) -> bool:
    lock = Path(out) / LOCK_NAME
    return lock.exists() and not _lock_is_stale(_lock_holder(lock))


# --------------------------------------------------------------------------------------------
# journal, switch and recovery
# --------------------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + f".tmp-{secrets.token_hex(4)}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _safe_rel(rel: str) -> bool:
    p = Path(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and not any(x.startswith(".lu-") for x in p.parts)


def _apply(out: Path, journal: dict) -> None:
    """Move the staged files of a committed journal into place (idempotent) and finish."""
    staging = out / journal.get("staging", "")
    files = journal.get("files", {})
    for rel, meta in files.items():
        if not _safe_rel(rel):
            continue
        src, dst = staging / rel, out / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        elif not (dst.is_file() and file_sha256(dst) == meta.get("sha256")):
            raise OutputFolderError(f"{out}: the interrupted switch of results cannot be completed: {rel} is neither "
                                    "staged nor in place")
    for rel in journal.get("remove", []):
        if _safe_rel(rel) and rel not in files:
            dst = out / rel
            if dst.is_file() and not dst.is_symlink():
                dst.unlink()
    manifest = {k: v for k, v in journal.items() if k not in ("staging", "remove")}
    _write_json_atomic(out / MANIFEST_NAME, manifest)
    (out / PENDING_NAME).unlink(missing_ok=True)
    if staging != out and staging.name.startswith(STAGING_PREFIX):
        shutil.rmtree(staging, ignore_errors=True)


def settle_output_folder(out, clean: bool = True, own_lock: bool = False) -> str:
    """Complete a switch interrupted after its commit point and (``clean``) remove leftovers of
    killed runs (staging folders carrying this module's owner file, journal temp files).

    Returns ``"none"`` (nothing pending), ``"completed"`` or ``"busy"`` (a live run holds the lock
    and is switching its set in; nothing touched). Used by every writer before it starts
    (``own_lock``: the caller holds the lock) and by readers of result folders."""
    out = Path(out)
    if not out.is_dir():
        return "none"
    pending = out / PENDING_NAME
    if not own_lock and lock_held_by_live_process(out):
        return "busy" if pending.is_file() else "none"  # without a journal the previous set is intact
    state = "none"
    if pending.is_file():
        try:
            journal = json.loads(pending.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OutputFolderError(f"{pending}: unreadable journal of an interrupted switch ({exc})") from None
        _apply(out, journal)
        state = "completed"
    if clean:
        for entry in out.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir() and (entry / STAGING_OWNER).is_file():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith((MANIFEST_NAME + ".tmp-", PENDING_NAME + ".tmp-")) and entry.is_file():
                entry.unlink(missing_ok=True)
    return state


class ResultSetWriter:
    """Context manager: lock ``out``, stage files in :attr:`staging`, :meth:`commit` switches.

    ``with ResultSetWriter(out, overwrite=False, core_names=(...)) as rs:`` — write files below
    ``rs.staging``, then ``rs.commit()``; returns the final paths. On any exception (including
    Ctrl-C) the staging folder is removed and ``out`` is left as it was.
    """

    def __init__(self, out, overwrite: bool = True, core_names=(), tool: str = "lu-dosimetry", inputs=None):
        self.out = _resolve(out)
        self.inputs = inputs  # {path: {"sha256", "bytes"}} of the inputs (input_digests), stored in the manifest
        self.overwrite = overwrite
        self.core_names = tuple(core_names)
        self.tool = tool
        self.staging: Path | None = None
        self._lock: Path | None = None
        self._created_out = False
        self.files: list[Path] = []

    def __enter__(self) -> "ResultSetWriter":
        if self.out.exists() and not self.out.is_dir():
            raise OutputFolderError(f"--out {self.out}: exists and is not a folder")
        if not self.out.exists():
            self.out.mkdir(parents=True)
            self._created_out = True
        self._lock = acquire_lock(self.out)
        try:
            settle_output_folder(self.out, clean=False, own_lock=True)
            self._clean_leftovers()
            found = existing_result_files(self.out, self.core_names)
            if found and not self.overwrite:
                raise OutputFolderError(f"--out {self.out}: already holds a result set ({', '.join(found[:4])}); give "
                                        "--overwrite to replace it or choose another --out")
            self.staging = self.out / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
            os.mkdir(self.staging)  # permissions from the process umask, which is never changed
            (self.staging / STAGING_OWNER).write_text(f"pid {os.getpid()}\n", encoding="utf-8")
        except BaseException:
            self._release()
            raise
        return self

    def _clean_leftovers(self) -> None:
        for entry in self.out.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and entry.is_dir() and (entry / STAGING_OWNER).is_file():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith((MANIFEST_NAME + ".tmp-", PENDING_NAME + ".tmp-")) and entry.is_file():
                entry.unlink(missing_ok=True)

    def commit(self) -> list[Path]:
        """Switch the staged set in (see module doc); returns the final file paths."""
        staged = sorted(p for p in self.staging.rglob("*") if p.name != STAGING_OWNER and not p.is_dir())
        files: dict[str, dict] = {}
        for p in staged:
            rel = p.relative_to(self.staging).as_posix()
            if p.is_symlink() or not p.is_file():
                raise OutputFolderError(f"{rel}: a result must be a regular file")
            t = self.out / rel
            if (t.exists() or t.is_symlink()) and (t.is_symlink() or not t.is_file()):
                raise OutputFolderError(f"--out {self.out}: {rel} exists and is not a regular file (a folder, link or "
                                        "device); nothing was written — move it away or choose another --out")
            with open(p, "rb+") as fh:
                os.fsync(fh.fileno())
            files[rel] = {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        old = read_manifest(self.out)
        remove = sorted(set(old["files"]) - set(files)) if old else []
        journal = {"format": FORMAT, "format_version": FORMAT_VERSION, "tool": self.tool,
                   "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "files": files, "staging": self.staging.name, "remove": remove}
        if self.inputs is not None:
            journal["inputs"] = self.inputs  # optional field (readers of format_version 1 ignore it)
        _write_json_atomic(self.out / PENDING_NAME, journal)  # commit point
        _apply(self.out, journal)
        self.files = [self.out / rel for rel in files]
        return self.files

    def _release(self) -> None:
        if self.staging is not None and self.staging.exists() and not (self.out / PENDING_NAME).exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        if self._lock is not None:
            self._lock.unlink(missing_ok=True)
            self._lock = None
        if self._created_out:
            try:
                self.out.rmdir()  # only when still empty: nothing was written
            except OSError:
                pass

    def __exit__(self, exc_type, exc, tb) -> None:
        self._release()


def input_digests(paths) -> dict[str, dict]:
    """``{real path: {"sha256", "bytes"}}`` of every input file: SHA-256 of the full contents of
    each file given and of every file below each folder given (a DICOM series). Recorded in the
    result-set manifest (``inputs``) so a reader can tell whether the inputs changed since."""
    found: dict[str, dict] = {}
    for p in paths:
        if p is None:
            continue
        q = _resolve(p)
        files = [q] if q.is_file() else sorted(f for f in q.rglob("*") if f.is_file()) if q.is_dir() else []
        for f in files:
            found[str(f)] = {"sha256": file_sha256(f), "bytes": f.stat().st_size}
    return found


def changed_inputs(out) -> list[str] | None:
    """Inputs recorded in the manifest of ``out`` that are missing or differ now (SHA-256 of the
    contents); None when the manifest records no inputs (written before they were recorded)."""
    m = read_manifest(out)
    recorded = m.get("inputs") if m is not None else None
    if not isinstance(recorded, dict):
        return None
    changed = []
    for path, meta in recorded.items():
        p = Path(path)
        try:
            same = p.is_file() and isinstance(meta, dict) and p.stat().st_size == meta.get("bytes") \
                and file_sha256(p) == meta.get("sha256")
        except OSError:
            same = False
        if not same:
            changed.append(path)
    return changed


def verify_result_set(out) -> list[str]:
    """Problems of the result set in ``out`` (empty = complete): every file of the manifest
    present with its recorded SHA-256. Used by tests and by readers that want to be sure."""
    out = Path(out)
    m = read_manifest(out)
    if m is None:
        return [f"{out}: no result-set manifest {MANIFEST_NAME}"]
    problems = []
    for rel, meta in m["files"].items():
        p = out / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif file_sha256(p) != meta.get("sha256"):
            problems.append(f"{rel}: content differs from the manifest")
    return problems


# --------------------------------------------------------------------------------------------
# cells safe to open in a spreadsheet
# --------------------------------------------------------------------------------------------

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe_text(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula (OWASP "CSV injection"): text starting
    with ``= + - @``, tab or carriage return gets a leading single quote. Numbers are written by
    the callers as numbers and never pass through here; readers strip that quote again
    (:func:`csv_unquote_text`)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) else value


def csv_unquote_text(value: str) -> str:
    """Inverse of :func:`csv_safe_text` for cells read back."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1:].startswith(FORMULA_TRIGGERS):
        return value[1:]
    return value
