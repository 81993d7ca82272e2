"""``lu-dosimetry batch``: the per-patient run over many studies, side by side, resumable.

:func:`run_batch` takes study manifests and/or folders (a study folder, as ``run DIR`` takes it, or a
folder of study folders, see :func:`find_studies`) and writes one result folder per patient
below ``out`` (named after the study folder or manifest, de-duplicated), each through the
all-or-nothing result sets of :mod:`.results.result_set`, with :func:`.pipeline.run_manifest`
exactly as ``lu-dosimetry run`` does.

- Resume: a patient folder holding a complete result set (:func:`result_set_state`: the owned-files
  manifest with every file present and unchanged, made with the same options from inputs whose
  SHA-256 digests, recorded in that manifest, still match) is skipped; an incomplete one (a run
  killed while writing, a file deleted, an input edited) is computed again; one made with
  other options, or result files without a result-set manifest (not written by run/batch), are
  refused (recorded as failed) unless ``overwrite``.
- A patient that fails is recorded with its error (``batch_status.json``, ``batch_failures.csv``)
  and the others go on.
- Executors: a local pool of processes (``workers`` processes, each limited to
  ``threads_per_worker`` threads) or, with ``scheduler``, an existing Dask distributed cluster
  (``dask.distributed.Client(scheduler)``, imported only then) running the same task function
  :func:`run_patient`. Workers read the images from the paths the manifests give (a shared file
  system on a cluster) and write into ``out`` themselves.
- After all patients, ``cohort_table.csv`` assembled from the result folders by the caller's
  ``cohort`` function (the CLI passes LuResponse's ``assemble_cohort_table``: the two Libs meet only
  in the CLI). ``batch_status.json``, ``batch_failures.csv`` and ``cohort_table.csv`` are one result
  set of ``out`` itself, written atomically; its lock keeps a second batch out of ``out``.

Pure: no Slicer; numpy/SimpleITK are imported by the workers only.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LuDosimetryError, error_message
from .progress import ProgressCallback, report_progress

BATCH_TOOL = "lu-dosimetry batch"
STATUS_NAME = "batch_status.json"
FAILURES_NAME = "batch_failures.csv"
COHORT_NAME = "cohort_table.csv"
BATCH_FILES = (STATUS_NAME, FAILURES_NAME, COHORT_NAME)
# PipelineOptions that do not change the results (a set made with or without them is complete)
RESULT_NEUTRAL_OPTIONS = ("use_cache",)
DASK_HINT = 'pip install "lu-dosimetry[dask]"'
# thread-count variables: of the numerical libraries (read when first imported) and of the
# pipeline's own thread pool of registrations (LU_DOSIMETRY_THREADS, read at each use)
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "LU_DOSIMETRY_THREADS")


class BatchError(LuDosimetryError, ValueError):
    """The batch as a whole cannot run (no study found, unusable ``--out``, no Dask, no scheduler)."""


@dataclass
class BatchStudy:
    """One patient of the batch: its result-folder ``name`` below ``out`` and its manifest
    (None when the input could not be used; ``problem`` says why)."""

    name: str
    source: str
    manifest: Path | None
    problem: str | None = None


@dataclass
class PatientOutcome:
    """What happened to one patient: ``status`` is "done", "skipped" or "failed"; ``seconds`` the
    wall time of its run (s, 0 when not run); ``message`` the error or why it was skipped."""

    name: str
    manifest: str
    result_dir: str
    status: str
    seconds: float = 0.0
    message: str = ""
    host: str = ""
    traceback: str = ""

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v != "" or k in ("message",)}


@dataclass
class BatchResult:
    """Result of :func:`run_batch`: one outcome per patient (input order), the files written in
    ``out`` and, when the cohort table could not be assembled, why."""

    out_dir: Path
    outcomes: list[PatientOutcome]
    files: list[Path] = field(default_factory=list)
    cohort_error: str | None = None
    cohort_notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def n_failed(self) -> int:
        return self.count("failed")

    def problems_text(self) -> str:
        """Failed patients, warnings and a cohort table that could not be written (for stderr)."""
        lines = [f"  FAILED {o.name} ({o.manifest}): {_one_line(o.message, 600)}"
                 for o in self.outcomes if o.status == "failed"]
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.cohort_error:
            lines.append(f"  cohort_table.csv not written: {self.cohort_error}")
        return "\n".join(lines)

    def to_text(self, problems: bool = True) -> str:
        lines = [(f"Batch of {len(self.outcomes)} patient(s) in {self.wall_time_s:.1f} s: {self.count('done')} done, "
                  f"{self.count('skipped')} skipped (complete results), {self.n_failed} failed")]
        if problems and self.problems_text():
            lines.append(self.problems_text())
        folders = sum((Path(o.result_dir) / "summary.json").is_file() for o in self.outcomes)
        lines.append(f"Results in {self.out_dir}: {folders} patient result folder(s), "
                     + ", ".join(sorted(p.name for p in self.files)))
        return "\n".join(lines)


def _one_line(text: str, limit: int) -> str:
    text = " ".join(x.strip() for x in str(text).splitlines() if x.strip())
    return text if len(text) <= limit else text[: limit - 5] + " ..."


# --------------------------------------------------------------------------------------------
# finding the studies
# --------------------------------------------------------------------------------------------

ManifestResolver = Callable[[Path], Path]


def _resolved(source: Path, resolve_manifest: ManifestResolver) -> tuple[str, Path | None, str | None] | None:
    """``(source, manifest, None)``, ``(source, None, problem)`` or None (no manifest: not a study folder)."""
    try:
        return str(source), Path(resolve_manifest(source)), None
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return str(source), None, error_text(exc)


def find_studies(inputs, resolve_manifest: ManifestResolver) -> list[tuple[str, Path | None, str | None]]:
    """``(source, manifest or None, problem)`` for every study the ``inputs`` name, in order.

    An input is a manifest file, a study folder or a folder of study folders (every sub-folder,
    sorted by name, that is a study folder; the others are passed over). ``resolve_manifest(path)``
    is ``run``'s rule for a study folder (the CLI's :func:`~LuDosimetryLib.cli.resolve_manifest`):
    it returns the manifest, raises FileNotFoundError when the folder holds none (then the folder is
    taken as a folder of study folders) and ValueError when it holds several (recorded as the
    problem of that study). Raises :class:`BatchError` when no input is given."""
    found: list[tuple[str, Path | None, str | None]] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_file():
            found.append((str(raw), p, None))
        elif not p.is_dir():
            found.append((str(raw), None, f"{raw}: no such study manifest or folder"))
        else:
            here = _resolved(p, resolve_manifest)
            if here is not None:
                found.append(here)
                continue
            subs = [_resolved(d, resolve_manifest) for d in sorted(p.iterdir())
                    if d.is_dir() and not d.name.startswith(".")]
            why = f"{raw}: neither a study folder (study*.json) nor a folder of study folders"
            found += [x for x in subs if x is not None] or [(str(raw), None, why)]
    if not found:
        raise BatchError("batch: no study manifest or folder given")
    return found


def _patient_name(source: str, manifest: Path | None) -> str:
    """Result-folder name: the manifest's stem, or its folder's name for the generic study*.json."""
    if manifest is None:
        base = Path(source).name
    elif re.fullmatch(r"study[_-]?(dicom)?\.json", manifest.name, re.IGNORECASE):
        base = manifest.resolve().parent.name
    else:
        base = manifest.stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".-_")[:100]
    return name or "patient"


def plan_studies(inputs, resolve_manifest: ManifestResolver) -> list[BatchStudy]:
    """:func:`find_studies` with a unique result-folder name per patient (``name``, ``name_2``, ...,
    compared without case; the batch's own file names are never used). A manifest named twice is
    run once."""
    taken = {n.lower() for n in BATCH_FILES}
    seen: set[Path] = set()
    plan = []
    for source, manifest, problem in find_studies(inputs, resolve_manifest):
        if manifest is not None:
            key = manifest.resolve()
            if key in seen:
                continue
            seen.add(key)
        base = _patient_name(source, manifest)
        name, k = base, 1
        while name.lower() in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name.lower())
        plan.append(BatchStudy(name, source, manifest.resolve() if manifest is not None else None, problem))
    return plan


# --------------------------------------------------------------------------------------------
# resume: is a patient's result set complete?
# --------------------------------------------------------------------------------------------

def result_set_state(folder: Path, options=None, study_manifest: Path | None = None) -> tuple[str, str]:
    """``(state, detail)`` of a patient's result folder: "absent" (no result set), "complete"
    (:func:`.results.result_set.verify_result_set` finds nothing missing or changed, the
    summary's options agree with ``options`` and every input recorded in the result-set manifest
    -- the study manifest ``study_manifest`` among them -- has the SHA-256 of its contents recorded
    when the set was written), "incomplete" (also: inputs changed or not recorded), "other_options",
    "foreign" (result files without a result-set manifest: not written by run/batch, replaced only
    with --overwrite) or "busy" (a live run holds its lock). A switch interrupted after its commit
    point is completed first."""
    from .results.outputs import CORE_RESULT_NAMES
    from .results.result_set import (
        OutputFolderError,
        changed_inputs,
        existing_result_files,
        lock_held_by_live_process,
        read_manifest,
        settle_output_folder,
        verify_result_set,
    )

    folder = Path(folder)
    if not folder.is_dir():
        return "absent", ""
    try:
        if lock_held_by_live_process(folder) or settle_output_folder(folder, clean=False) == "busy":
            return "busy", f"{folder}: another run is writing into this folder (lock file present)"
    except (OutputFolderError, OSError) as exc:
        return "incomplete", str(exc)
    manifest = read_manifest(folder)
    if manifest is None:
        old = existing_result_files(folder, CORE_RESULT_NAMES)
        if not old:
            return "absent", ""
        return "foreign", (f"{folder} holds files without a result-set manifest ({', '.join(old)}), not written "
                           "by lu-dosimetry run or batch; give --overwrite to replace them or choose another --out")
    problems = verify_result_set(folder)
    if not problems and "summary.json" not in manifest["files"]:
        problems = ["summary.json: not part of the result set"]
    if problems:
        return "incomplete", "; ".join(problems[:3])
    if options is not None:
        try:
            recorded = json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("options", {})
        except (OSError, ValueError, AttributeError):
            return "incomplete", "summary.json: unreadable"
        wanted = json.loads(json.dumps(options.as_dict()))
        differ = [f"{k}: {recorded[k]!r} (wanted {wanted[k]!r})" for k in sorted(wanted)
                  if isinstance(recorded, dict) and k in recorded and k not in RESULT_NEUTRAL_OPTIONS
                  and recorded[k] != wanted[k]]
        if differ:
            return "other_options", "made with other options: " + ", ".join(differ[:4])
    changed = changed_inputs(folder)
    if changed is None:
        return "incomplete", "no input digests recorded with the result set (written by an older version)"
    if study_manifest is not None and os.path.realpath(study_manifest) not in manifest["inputs"]:
        changed = [str(study_manifest), *changed]  # made from another study manifest
    if changed:
        return "incomplete", ("inputs changed since the result set was written: "
                              + ", ".join(Path(p).name for p in changed[:6]) + (" ..." if len(changed) > 6 else ""))
    return "complete", f"complete result set written {manifest.get('written_utc', '?')}"


# --------------------------------------------------------------------------------------------
# the task (runs in a worker process: local pool or Dask worker)
# --------------------------------------------------------------------------------------------

def limit_threads(threads: int) -> None:
    """Limit this process to ``threads`` threads: the environment of the numerical libraries (for
    those not imported yet), SimpleITK's global default and, when installed, threadpoolctl."""
    n = str(max(1, int(threads)))
    for var in THREAD_ENV:
        os.environ[var] = n
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(n))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(int(n))


def _init_worker(threads: int) -> None:
    """Initializer of the local pool's worker processes (before numpy is imported there)."""
    for var in THREAD_ENV:
        os.environ[var] = str(max(1, int(threads)))


def error_text(exc: BaseException) -> str:
    """The message recorded for a failed patient (names the file and, for input errors, the field)."""
    if (isinstance(exc, OSError) and exc.strerror) or isinstance(exc, (LuDosimetryError, ValueError, csv.Error)):
        return error_message(exc)
    return f"unexpected error (a bug: please report it): {type(exc).__name__}: {exc}"


def run_patient(task: dict) -> dict:
    """One patient: :func:`.pipeline.run_manifest` of ``task["manifest"]`` into ``task["out"]``.

    ``task``: name, manifest, out (absolute paths as text), options (PipelineOptions), overwrite,
    threads. Returns the outcome as a dict (status "done" or "failed" with the error); an error of
    the patient is never raised, so the other patients go on. Used by both executors."""
    t0 = time.perf_counter()
    outcome = {"name": task["name"], "manifest": task["manifest"], "result_dir": task["out"],
               "host": socket.gethostname(), "message": task.get("note", "")}
    try:
        limit_threads(task.get("threads", 1))
        from .pipeline import run_manifest

        run_manifest(Path(task["manifest"]), Path(task["out"]), task["options"], overwrite=task["overwrite"])
        outcome["status"] = "done"
    except Exception as exc:  # noqa: BLE001 - recorded; the batch goes on
        outcome.update(status="failed", message=error_text(exc))
        if not isinstance(exc, (LuDosimetryError, OSError, ValueError, csv.Error)):
            outcome["traceback"] = traceback.format_exc(limit=12)
    outcome["seconds"] = time.perf_counter() - t0
    return outcome


def _failure(task: dict, message: str) -> dict:
    return {"name": task["name"], "manifest": task["manifest"], "result_dir": task["out"], "status": "failed",
            "message": message, "seconds": 0.0}


# --------------------------------------------------------------------------------------------
# executors
# --------------------------------------------------------------------------------------------

def run_local(tasks: list[dict], workers: int, threads: int) -> Iterator[dict]:
    """Outcomes of ``tasks`` in order of completion, from a pool of ``workers`` fresh processes
    (spawned, so the thread limits hold before numpy/SimpleITK are imported)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if not tasks:
        return
    pool = ProcessPoolExecutor(max_workers=max(1, min(int(workers), len(tasks))),
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads,))
    try:
        futures = {pool.submit(run_patient, t): t for t in tasks}
        for f in as_completed(futures):
            try:
                yield f.result()
            except Exception as exc:  # noqa: BLE001 - the worker process died (killed, out of memory)
                yield _failure(futures[f], f"the worker process ended abnormally ({type(exc).__name__}: {exc})")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_dask(tasks: list[dict], address: str) -> Iterator[dict]:
    """Outcomes of ``tasks`` in order of completion, run by :func:`run_patient` on the Dask
    distributed cluster whose scheduler is at ``address``."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise BatchError(f"--scheduler needs Dask distributed, which is not installed: {DASK_HINT}") from None
    if not tasks:
        return
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise BatchError(f"--scheduler {address}: cannot connect to a Dask scheduler ({type(exc).__name__}: "
                         f"{exc})") from None
    token = secrets.token_hex(4)
    futures = []
    try:
        by_key = {}
        for t in tasks:
            fut = client.submit(run_patient, t, key=f"lu-dosimetry-batch-{t['name']}-{token}", pure=False)
            by_key[fut.key] = t
            futures.append(fut)
        for f in as_completed(futures):
            if f.status == "error":
                yield _failure(by_key[f.key], f"the Dask task failed ({type(f.exception()).__name__}: "
                                              f"{f.exception()})")
            elif f.status == "cancelled":
                yield _failure(by_key[f.key], "the Dask task was cancelled")
            else:
                yield f.result()
    finally:
        if futures:
            client.cancel(futures)
        client.close()


# --------------------------------------------------------------------------------------------
# the batch
# --------------------------------------------------------------------------------------------

def _study_inputs(manifest: Path) -> list[Path]:
    """Every input of the study of ``manifest`` (:func:`.results.outputs.study_input_paths`: the
    manifest, its folder, image files/folders, labelmap); the manifest and its folder when it
    cannot be loaded (its patient fails later with the error)."""
    from .io.study import load_study
    from .results.outputs import study_input_paths

    try:
        return study_input_paths(load_study(manifest))
    except Exception:  # noqa: BLE001 - reported by the patient's own run
        return [manifest, manifest.parent]


def _check_out(out: Path, plan: list[BatchStudy], inputs, overwrite: bool) -> Path:
    from .results.outputs import CORE_RESULT_NAMES
    from .results.result_set import check_output_folder, read_manifest

    study_inputs = [p for s in plan if s.manifest is not None for p in _study_inputs(s.manifest)]
    o = check_output_folder(out, [*map(Path, inputs), *study_inputs], overwrite=True, result_names=BATCH_FILES)
    m = read_manifest(o) if o.is_dir() else None
    if o.is_dir() and not overwrite and ((m is not None and m.get("tool") != BATCH_TOOL)
                                         or (m is None and any((o / n).is_file() for n in CORE_RESULT_NAMES))):
        raise BatchError(f"--out {o}: holds the results of a single run, not of a batch; choose another --out "
                         "(or give --overwrite)")
    return o


def run_batch(inputs, out, resolve_manifest: ManifestResolver, options=None, workers: int = 1,
              threads_per_worker: int = 1, scheduler: str | None = None, overwrite: bool = False,
              progress: ProgressCallback | None = None,
              cohort: Callable[[Path], tuple[str, list[str]]] | None = None) -> BatchResult:
    """Run every study of ``inputs`` (see :func:`find_studies`, with ``resolve_manifest``) into
    ``out/<patient>``; see the module doc.

    ``options``: the PipelineOptions of every run. ``workers`` processes of ``threads_per_worker``
    threads each, or the Dask cluster at ``scheduler``. ``overwrite``: compute patients with a
    complete result set again. ``progress(fraction, message)`` gets one line per patient.
    ``cohort(out) -> (csv text, notes)`` assembles the cohort table from the result folders.
    """
    from .pipeline import PipelineOptions
    from .results.result_set import ResultSetWriter

    t_start = time.perf_counter()
    options = options or PipelineOptions()
    if int(workers) < 1 or int(threads_per_worker) < 1:
        raise BatchError("--workers and --threads-per-worker must be at least 1")
    plan = plan_studies(inputs, resolve_manifest)
    out = _check_out(Path(out), plan, inputs, overwrite)
    n = len(plan)
    with ResultSetWriter(out, overwrite=True, tool=BATCH_TOOL) as rs:
        outcomes: dict[str, PatientOutcome] = {}
        tasks = []
        done_count = [0]

        def record(o: PatientOutcome) -> None:
            outcomes[o.name] = o
            done_count[0] += 1
            what = {"done": f"done in {o.seconds:.1f} s" + (f" ({o.message})" if o.message else ""), "skipped": f"skipped ({o.message})",
                    "failed": f"FAILED after {o.seconds:.1f} s: {_one_line(o.message, 400)}"}[o.status]
            report_progress(progress, done_count[0] / max(n, 1), f"[{done_count[0]}/{n}] {o.name} {what}")

        for s in plan:
            target = out / s.name
            if s.manifest is None:
                record(PatientOutcome(s.name, s.source, str(target), "failed", message=s.problem or "no manifest"))
                continue
            state, detail = result_set_state(target, options, s.manifest)
            again = overwrite or state == "incomplete"
            if state == "complete" and not overwrite:
                record(PatientOutcome(s.name, str(s.manifest), str(target), "skipped", message=detail))
            elif state == "busy" or (state in ("other_options", "foreign") and not overwrite):
                record(PatientOutcome(s.name, str(s.manifest), str(target), "failed",
                                      message=detail + ("; give --overwrite to compute it again"
                                                        if state == "other_options" else "")))
            else:
                tasks.append({"name": s.name, "manifest": str(s.manifest), "out": str(target), "options": options,
                              "overwrite": again, "threads": int(threads_per_worker),
                              "note": f"computed again: {detail}" if state == "incomplete" else ""})
        runner = run_dask(tasks, scheduler) if scheduler else run_local(tasks, workers, threads_per_worker)
        for r in runner:
            record(PatientOutcome(**r))
        result = BatchResult(out, [outcomes[s.name] for s in plan])
        _finish(result, rs, plan, cohort)
        result.wall_time_s = time.perf_counter() - t_start
        _write_status(result, rs, options, scheduler, workers, threads_per_worker)
        result.files = rs.commit()
    return result


def _finish(result: BatchResult, rs, plan, cohort) -> None:
    """Cohort table (staged in ``rs``) and warnings about what it includes."""
    out = result.out_dir
    names = {s.name for s in plan}
    extra = sorted(d.name for d in out.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in names
                   and (d / "summary.json").is_file())
    if extra:
        result.warnings.append(f"{COHORT_NAME} also includes result folders in {out} that are not part of this batch: "
                               + ", ".join(extra[:10]) + (" ..." if len(extra) > 10 else ""))
    stale = [o.name for o in result.outcomes if o.status == "failed" and (Path(o.result_dir) / "summary.json").is_file()]
    if stale:
        result.warnings.append(f"{COHORT_NAME} includes the earlier results of failed patient(s): {', '.join(stale)}")
    if cohort is None:
        return
    if not extra and not any((Path(o.result_dir) / "summary.json").is_file() for o in result.outcomes):
        result.cohort_error = "no patient has results"
        return
    try:
        text, notes = cohort(out)
    except (LuDosimetryError, OSError, ValueError) as exc:
        result.cohort_error = error_text(exc)
        return
    result.cohort_notes = list(notes)
    (rs.staging / COHORT_NAME).write_text(text, encoding="utf-8", newline="")


def _write_status(result: BatchResult, rs, options, scheduler, workers, threads) -> None:
    failed = [o for o in result.outcomes if o.status == "failed"]
    status = {
        "format": "lu-dosimetry batch status", "format_version": 1,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "executor": (f"dask.distributed scheduler {scheduler} ({threads} thread(s) per task)" if scheduler
                     else f"local processes: {workers} worker(s) x {threads} thread(s)"),
        "options": options.as_dict(), "wall_time_s": round(result.wall_time_s, 3),
        "n_patients": len(result.outcomes), "n_done": result.count("done"), "n_skipped": result.count("skipped"),
        "n_failed": len(failed), "cohort_table": None if result.cohort_error or not (rs.staging / COHORT_NAME).is_file()
        else COHORT_NAME, "cohort_error": result.cohort_error, "cohort_notes": result.cohort_notes,
        "warnings": result.warnings, "patients": [o.as_dict() for o in result.outcomes],
    }
    with open(rs.staging / STATUS_NAME, "w", encoding="utf-8") as fh:
        json.dump(status, fh, indent=1)
    if failed:
        from .results.result_set import csv_safe_text

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["patient", "manifest", "result_dir", "error"])
        for o in failed:
            w.writerow([csv_safe_text(o.name), csv_safe_text(o.manifest), csv_safe_text(o.result_dir),
                        csv_safe_text(o.message)])
        (rs.staging / FAILURES_NAME).write_text(buf.getvalue(), encoding="utf-8", newline="")


def stderr_progress(fraction: float, message: str) -> None:
    """Progress callback of the CLI: one line per patient on stderr."""
    print(message, file=sys.stderr, flush=True)
