"""``lu-dosimetry batch`` (issue 17 items 3-4): many studies side by side, resumable.

Four tiny motion-free studies (the ``coarse_patient`` grid of conftest: 64 x 64 x 48 voxels of
9.6 mm, 2 cycles; different seeds and patient ids) run with ``--registration none``:

- ``--workers 2`` gives per-patient CSVs byte-identical to ``lu-dosimetry run`` on each study, and a
  cohort_table.csv equal to LuResponse's ``assemble_cohort_table`` of the result folders;
- a Dask ``LocalCluster`` of 2 worker processes started here gives byte-identical CSVs to the local pool;
- a batch killed (SIGKILL of its process group) after its first patient resumes to completion,
  skipping the complete ones; an incomplete result set (a file deleted) is computed again;
- a broken study is recorded as failed (file and message) while the others complete;
- ``--out`` never writes into or deletes from the inputs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import COARSE

ROOT = Path(__file__).resolve().parents[1]
N_STUDIES = 4
CSV_NAMES = ("voi_cycle_doses.csv", "voi_time_activity.csv")
FAST = ["--registration", "none"]


def _tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Folder of 4 study folders p1..p4 (each with study.json) and the digest of every input file."""
    from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

    root = tmp_path_factory.mktemp("batch_studies") / "studies"
    for i in range(1, N_STUDIES + 1):
        write_phantom_study(root / f"p{i}", PhantomConfig(**COARSE, seed=10 + i, patient_id=f"BATCH{i:02d}"))
    return root, _tree_digest(root)


@pytest.fixture(scope="module")
def single_runs(studies, tmp_path_factory):
    """``lu-dosimetry run`` of every study: {patient folder name: result folder}."""
    from LuDosimetryLib.cli import main

    root, _ = studies
    base = tmp_path_factory.mktemp("batch_single_runs")
    outs = {}
    for i in range(1, N_STUDIES + 1):
        outs[f"p{i}"] = base / f"p{i}"
        assert main(["run", str(root / f"p{i}" / "study.json"), "--out", str(outs[f"p{i}"]), *FAST]) == 0
    return outs


@pytest.fixture(scope="module")
def local_batch(studies, tmp_path_factory):
    """``batch STUDIES --out DIR --workers 2`` (the whole folder of study folders)."""
    from LuDosimetryLib.cli import main

    root, _ = studies
    out = tmp_path_factory.mktemp("batch_local") / "out"
    assert main(["batch", str(root), "--out", str(out), "--workers", "2", "--threads-per-worker", "1", *FAST]) == 0
    return out


def _status(out: Path) -> dict:
    return json.loads((out / "batch_status.json").read_text(encoding="utf-8"))


def _same_csvs(a: Path, b: Path) -> None:
    """Every CSV of result folder ``a`` (at least the two of contract 2) is byte-identical in ``b``."""
    names = sorted(p.name for p in a.glob("*.csv"))
    assert set(CSV_NAMES) <= set(names) and names == sorted(p.name for p in b.glob("*.csv"))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{a / name} differs from {b / name}"


# ------------------------------------------------------------------------------------------
# fast checks without a run
# ------------------------------------------------------------------------------------------

def test_names_from_folders_and_manifests_are_unique(tmp_path):
    from LuDosimetryLib.batch import plan_studies
    from LuDosimetryLib.cli import resolve_manifest

    for sub in ("a/patient", "b/patient", "c"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "study.json").write_text("{}", encoding="utf-8")
    (tmp_path / "c" / "trial-07 visit.json").write_text("{}", encoding="utf-8")
    (tmp_path / "twice").mkdir()
    for n in ("study_a.json", "study_b.json"):
        (tmp_path / "twice" / n).write_text("{}", encoding="utf-8")
    plan = plan_studies([tmp_path / "a", tmp_path / "b" / "patient" / "study.json", tmp_path / "c" / "trial-07 visit.json",
                         tmp_path / "a" / "patient", tmp_path / "twice", tmp_path / "missing"],
                        resolve_manifest)
    names = [s.name for s in plan]
    # a/ is a folder of study folders; a/patient named again is the same manifest and runs once
    assert names == ["patient", "patient_2", "trial-07_visit", "twice", "missing"]
    assert plan[3].manifest is None and "holds 2 study manifests" in plan[3].problem
    assert plan[4].manifest is None and "no such study manifest or folder" in plan[4].problem


def test_scheduler_without_dask_names_the_extra(monkeypatch, tmp_path):
    from LuDosimetryLib.batch import BatchError, run_dask

    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as when not installed
    with pytest.raises(BatchError, match=r'pip install "lu-dosimetry\[dask\]"'):
        list(run_dask([{"name": "p"}], "tcp://127.0.0.1:1"))


def test_dask_extra_is_declared_and_in_test_extra():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(r.replace(" ", "").startswith("dask[distributed]") for r in extras["dask"])
    assert any(r.replace(" ", "").startswith("dask[distributed]") for r in extras["test"])


def test_limit_threads_sets_simpleitk_default():
    import SimpleITK as sitk
    from LuDosimetryLib.batch import THREAD_ENV, limit_threads

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    env = {k: os.environ.get(k) for k in THREAD_ENV}
    try:
        limit_threads(1)
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
        assert all(os.environ[k] == "1" for k in THREAD_ENV)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ------------------------------------------------------------------------------------------
# end to end
# ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_workers_match_run_and_assemble_the_cohort(studies, single_runs, local_batch):
    from LuDosimetryLib.results.result_set import verify_result_set
    from LuResponseLib.assemble import assemble_cohort_table

    status = _status(local_batch)
    assert (status["n_done"], status["n_skipped"], status["n_failed"]) == (N_STUDIES, 0, 0)
    assert status["executor"].startswith("local processes: 2 worker(s) x 1 thread(s)")
    for name, single in single_runs.items():
        assert verify_result_set(local_batch / name) == []
        _same_csvs(single, local_batch / name)
    cohort = (local_batch / "cohort_table.csv").read_text(encoding="utf-8")
    assert cohort == assemble_cohort_table(local_batch).table.to_csv_text()
    with open(local_batch / "cohort_table.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["patient_id"] for r in rows) == [f"BATCH{i:02d}" for i in range(1, N_STUDIES + 1)]
    for r in rows:  # the cohort's doses are the patients' own summaries
        s = json.loads((single_runs[f"p{int(r['patient_id'][-2:])}"] / "summary.json").read_text(encoding="utf-8"))
        assert float(r["cumulative_tumor_dose_Gy"]) == pytest.approx(s["cumulative_tumor_dose_Gy"], rel=1e-8)
    assert verify_result_set(local_batch) == []  # the batch's own files are a result set too


@pytest.mark.slow
def test_dask_local_cluster_gives_byte_identical_csvs(studies, local_batch, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    from LuDosimetryLib.cli import main

    root, _ = studies
    out = tmp_path / "dask_out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        rc = main(["batch", str(root), "--out", str(out), "--scheduler", cluster.scheduler_address, *FAST])
    assert rc == 0
    status = _status(out)
    assert status["n_done"] == N_STUDIES and status["executor"].startswith("dask.distributed scheduler")
    for i in range(1, N_STUDIES + 1):
        _same_csvs(local_batch / f"p{i}", out / f"p{i}")
    assert (out / "cohort_table.csv").read_bytes() == (local_batch / "cohort_table.csv").read_bytes()


@pytest.mark.slow
def test_killed_batch_resumes_skipping_complete_patients(studies, single_runs, tmp_path, capsys):
    from LuDosimetryLib.cli import main
    from LuDosimetryLib.results.result_set import verify_result_set

    root, _ = studies
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "LuDosimetry"), str(ROOT / "LuResponse")]))
    proc = subprocess.Popen([sys.executable, "-m", "LuDosimetryLib.cli", "batch", str(root), "--out", str(out),
                             "--workers", "1", *FAST], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if any((out / f"p{i}" / ".lu-results.json").is_file() for i in range(1, N_STUDIES + 1)):
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the batch and its worker, mid-way through the next patient
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the killed worker is gone too (its lock is then stale)
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    complete = [f"p{i}" for i in range(1, N_STUDIES + 1) if (out / f"p{i}" / ".lu-results.json").is_file()]
    assert 1 <= len(complete) < N_STUDIES, "the batch was not stopped after its first patient"
    assert not (out / "batch_status.json").exists()

    capsys.readouterr()
    assert main(["batch", str(root), "--out", str(out), "--workers", "2", *FAST]) == 0
    err = capsys.readouterr().err
    for name in complete:
        assert f"{name} skipped (complete result set" in err
    status = _status(out)
    assert status["n_skipped"] == len(complete) and status["n_done"] == N_STUDIES - len(complete)
    for name, single in single_runs.items():
        assert verify_result_set(out / name) == []
        _same_csvs(single, out / name)
        assert not [p.name for p in (out / name).iterdir() if p.name.startswith(".lu-") and p.name != ".lu-results.json"]


@pytest.mark.slow
def test_incomplete_result_set_is_computed_again_and_other_options_refused(local_batch, studies, tmp_path, capsys):
    from LuDosimetryLib.cli import main

    root, _ = studies
    out = tmp_path / "out"
    shutil.copytree(local_batch, out)
    (out / "p2" / "summary.json").unlink()
    capsys.readouterr()
    assert main(["batch", str(root), "--out", str(out), *FAST]) == 0
    err = capsys.readouterr().err
    assert "p2 done in" in err and "computed again: summary.json: missing" in err and "p1 skipped" in err
    assert (out / "p2" / "summary.json").is_file()
    _same_csvs(local_batch / "p2", out / "p2")
    assert (out / "cohort_table.csv").read_bytes() == (local_batch / "cohort_table.csv").read_bytes()

    # results made with other options are not taken as complete; nothing is computed
    before = _tree_digest(out / "p1")
    assert main(["batch", str(root), "--out", str(out), "--dose-method", "voxel_s_value", *FAST]) == 1
    with open(out / "batch_failures.csv", newline="", encoding="utf-8") as fh:
        failures = list(csv.DictReader(fh))
    assert len(failures) == N_STUDIES and all("dose_method" in f["error"] and "--overwrite" in f["error"]
                                              for f in failures)
    assert _tree_digest(out / "p1") == before


@pytest.mark.slow
def test_broken_study_recorded_while_others_complete(studies, single_runs, tmp_path, capsys):
    from LuDosimetryLib.cli import main

    root, _ = studies
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "broken").mkdir()
    (inputs / "broken" / "study.json").write_text('{"patient_id": "X", "cycles": [', encoding="utf-8")
    out = tmp_path / "out"
    capsys.readouterr()
    rc = main(["batch", str(inputs / "broken"), str(root / "p3" / "study.json"), "--out", str(out), "--workers", "2",
               *FAST])
    assert rc == 1
    assert "broken FAILED" in capsys.readouterr().err
    with open(out / "batch_failures.csv", newline="", encoding="utf-8") as fh:
        failures = list(csv.DictReader(fh))
    assert [f["patient"] for f in failures] == ["broken"]
    assert failures[0]["manifest"] == str((inputs / "broken" / "study.json").resolve())
    assert "not valid JSON" in failures[0]["error"]
    _same_csvs(single_runs["p3"], out / "p3")
    assert not (out / "broken").exists()
    with open(out / "cohort_table.csv", newline="", encoding="utf-8") as fh:
        assert [r["patient_id"] for r in csv.DictReader(fh)] == ["BATCH03"]


@pytest.mark.slow
def test_out_never_touches_the_inputs(studies, local_batch, tmp_path, capsys):
    from LuDosimetryLib.cli import main

    root, digest = studies
    for bad_out in (root, root / "p1"):
        assert main(["batch", str(root), "--out", str(bad_out), *FAST]) == 2
        assert "never written among the inputs" in capsys.readouterr().err
    single = tmp_path / "single"
    assert main(["run", str(root / "p1" / "study.json"), "--out", str(single), *FAST]) == 0
    before = _tree_digest(single)
    assert main(["batch", str(root / "p1"), "--out", str(single), *FAST]) == 2  # a run's result set is not a batch
    assert "results of a single run" in capsys.readouterr().err
    assert _tree_digest(single) == before
    assert _tree_digest(root) == digest  # after every batch of this module that used these studies
