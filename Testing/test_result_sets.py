"""Issue 13: result sets are all-or-nothing and owned; inputs are never touched; clean endings.

Each test states the defect class it guards (QA probe of issue 13) and asserts the exit code,
the message words, that input files are byte-identical and that the previous result set is
intact (or fully replaced)."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from LuDosimetryLib import cli
from LuDosimetryLib.results import result_set as rs
from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_cycles=1, shape_xyz=(32, 24, 20), spacing_mm=9.6, max_shift_mm=0.0, max_rotation_deg=0.0)
FAST = ["--registration", "none"]


@pytest.fixture(scope="module")
def patient_src(tmp_path_factory):
    return write_phantom_study(tmp_path_factory.mktemp("rs") / "patient", PhantomConfig(seed=5, **TINY))


@pytest.fixture
def patient(patient_src, tmp_path):
    """A private copy of the small synthetic patient: (manifest, study folder)."""
    dst = tmp_path / "study"
    shutil.copytree(patient_src.parent, dst)
    return dst / "study.json", dst


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def results_of(out: Path) -> dict[str, str]:
    return {k: v for k, v in digest(out).items() if not k.startswith(".")}


def test_out_equal_to_study_folder_refused_and_inputs_untouched(patient, capsys):
    manifest, study = patient
    # SPECT inputs named like result maps (natural for Monte-Carlo dose-rate maps)
    m = json.loads(manifest.read_text())
    first = m["cycles"][0]["timepoints"][0]
    import SimpleITK as sitk

    sitk.WriteImage(sitk.ReadImage(str(study / first["spect"])), str(study / "dose_Gy_cycle1_tp0.nrrd"), True)
    first["spect"] = "dose_Gy_cycle1_tp0.nrrd"
    manifest.write_text(json.dumps(m))
    before = digest(study)
    assert cli.main(["run", str(manifest), "--out", str(study), *FAST]) == 2
    err = capsys.readouterr().err
    assert "is the folder of the input" in err and "results are never written among the inputs" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert digest(study) == before
    # the parent of the study folder holds inputs too; study/results is fine
    assert cli.main(["run", str(manifest), "--out", str(study.parent), *FAST]) == 2
    assert "holds the input" in capsys.readouterr().err
    assert cli.main(["run", str(manifest), "--out", "/", *FAST]) == 2
    assert "root of a file system" in capsys.readouterr().err
    assert cli.main(["run", str(manifest), "--out", str(study / "results"), *FAST]) == 0
    assert {k: v for k, v in digest(study).items() if not k.startswith("results/")} == before


def test_existing_set_refused_before_computing_then_replaced_atomically(patient, capsys, monkeypatch):
    manifest, study = patient
    out = study / "results"
    assert cli.main(["run", str(manifest), "--out", str(out), "--save-maps", *FAST]) == 0
    (out / "my_notes.txt").write_text("mine", encoding="utf-8")
    first = results_of(out)
    assert {"summary.json", "voi_cycle_doses.csv", "dose_Gy_cycle1.nrrd", "my_notes.txt"} <= set(first)

    from LuDosimetryLib import pipeline

    def must_not_run(*a, **k):
        raise AssertionError("computation started although --out was to be refused")

    monkeypatch.setattr(pipeline, "load_study_images", must_not_run)
    assert cli.main(["run", str(manifest), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert "already holds a result set" in err and "--overwrite" in err
    assert results_of(out) == first
    monkeypatch.undo()
    # --overwrite without --save-maps: the new set replaces the old one; the old maps (owned) go,
    # the user's file stays
    assert cli.main(["run", str(manifest), "--out", str(out), "--overwrite", *FAST]) == 0
    now = results_of(out)
    assert "dose_Gy_cycle1.nrrd" not in now and "tia_MBq_h_cycle1.nrrd" not in now
    assert now["my_notes.txt"] == first["my_notes.txt"]
    assert rs.verify_result_set(out) == []
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".lu-results.json"]


def test_result_name_taken_by_a_folder_refused_before_computing(patient, capsys):
    manifest, study = patient
    out = study / "results"
    assert cli.main(["run", str(manifest), "--out", str(out), *FAST]) == 0
    old = results_of(out)
    (out / "voi_time_activity.csv").unlink()
    (out / "voi_time_activity.csv").mkdir()
    old.pop("voi_time_activity.csv")
    assert cli.main(["run", str(manifest), "--out", str(out), "--overwrite", *FAST]) == 2
    err = capsys.readouterr().err
    assert "voi_time_activity.csv exists and is not a regular file" in err
    assert results_of(out) == old


def test_files_of_the_user_matching_result_patterns_never_deleted(patient):
    manifest, study = patient
    out = study / "results"
    out.mkdir()
    (out / "dose_Gy_cycle7.nrrd").write_bytes(b"user's own map")
    (out / "tia_MBq_h_cycle9.nrrd").write_bytes(b"user's own TIA")
    assert cli.main(["run", str(manifest), "--out", str(out), *FAST]) == 0
    assert cli.main(["run", str(manifest), "--out", str(out), "--overwrite", *FAST]) == 0
    assert (out / "dose_Gy_cycle7.nrrd").read_bytes() == b"user's own map"
    assert (out / "tia_MBq_h_cycle9.nrrd").read_bytes() == b"user's own TIA"


def test_lock_makes_a_concurrent_run_fail_fast_and_a_stale_lock_is_taken_over(patient, capsys):
    manifest, study = patient
    out = study / "results"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / rs.LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": __import__("socket").gethostname(),
                                                    "started_utc": "now"}))
        assert cli.main(["run", str(manifest), "--out", str(out), *FAST]) == 2
        err = capsys.readouterr().err
        assert f"another lu-dosimetry run (pid {sleeper.pid}" in err and "is writing into this folder" in err
        assert not (out / "summary.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone (killed): its lock is stale and taken over
    assert cli.main(["run", str(manifest), "--out", str(out), *FAST]) == 0
    assert not (out / rs.LOCK_NAME).exists() and rs.verify_result_set(out) == []


def test_interrupted_switch_is_rolled_forward_and_leftovers_cleaned(tmp_path):
    out = tmp_path / "out"
    with rs.ResultSetWriter(out, core_names=("a.txt",)) as w:
        (w.staging / "a.txt").write_text("old A", encoding="utf-8")
        (w.staging / "old_only.txt").write_text("old", encoding="utf-8")
        w.commit()
    # a run killed right after its commit point: journal written, one file moved, one still staged
    with rs.ResultSetWriter(out, overwrite=True, core_names=("a.txt",)) as w:
        (w.staging / "a.txt").write_text("new A", encoding="utf-8")
        (w.staging / "b.txt").write_text("new B", encoding="utf-8")
        real_apply = rs._apply

        def killed(o, journal):
            os.replace(w.staging / "a.txt", o / "a.txt")
            raise KeyboardInterrupt

        rs._apply = killed
        try:
            with pytest.raises(KeyboardInterrupt):
                w.commit()
        finally:
            rs._apply = real_apply
    assert (out / rs.PENDING_NAME).is_file() and (out / "old_only.txt").exists()
    (out / ".lu-staging-deadbeef").mkdir()
    (out / ".lu-staging-deadbeef" / rs.STAGING_OWNER).write_text("pid 1")
    (out / ".lu-staging-deadbeef" / "summary.json").write_text("{}")
    assert rs.settle_output_folder(out) == "completed"
    assert (out / "a.txt").read_text() == "new A" and (out / "b.txt").read_text() == "new B"
    assert not (out / "old_only.txt").exists()  # owned by the old set, not part of the new one
    assert rs.verify_result_set(out) == []
    assert sorted(p.name for p in out.iterdir()) == [".lu-results.json", "a.txt", "b.txt"]


def test_killed_run_leftovers_ignored_by_results_dir_reader(patient, tmp_path):
    from LuResponseLib.assemble import assemble_cohort_table

    manifest, study = patient
    root = tmp_path / "all"
    out = root / "P1"
    assert cli.main(["run", str(manifest), "--out", str(out), *FAST]) == 0
    for leftover in (out / ".lu-staging-0123", out / ".results-abc"):
        leftover.mkdir()
        shutil.copy(out / "summary.json", leftover / "summary.json")
    (out / "nested" / "broken").mkdir(parents=True)
    (out / "nested" / "broken" / "summary.json").write_text('{"patient_id": ["x"]}', encoding="utf-8")
    with pytest.raises(ValueError) as e:
        assemble_cohort_table(root)
    assert "patient_id must be text" in str(e.value) and "duplicate" not in str(e.value)
    shutil.rmtree(out / "nested")
    table = assemble_cohort_table(root).table
    assert table.n_patients == 1


def test_ctrl_c_one_line_exit_130_nothing_written(patient, capsys, monkeypatch):
    from LuDosimetryLib import pipeline

    manifest, study = patient
    out = study / "results"
    assert cli.main(["run", str(manifest), "--out", str(out), *FAST]) == 0
    old = digest(out)
    capsys.readouterr()  # the first run's warnings (stderr) are not part of the failing run's message

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_study", interrupted)
    assert cli.main(["run", str(manifest), "--out", str(out), "--overwrite", *FAST]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "lu-dosimetry run: interrupted; nothing written"
    assert digest(out) == old  # no staging folder, no lock left, old set intact


def test_csv_cells_quoted_against_formula_injection(patient):
    manifest, study = patient
    m = json.loads(manifest.read_text())
    m["patient_id"] = "=HYPERLINK(\"http://x\",\"y\")"
    label = next(iter(m["segmentation"]["labels"]))
    m["segmentation"]["labels"][label]["name"] = "+cmd|' /C calc'!A0"
    manifest.write_text(json.dumps(m))
    out = study / "results"
    assert cli.main(["run", str(manifest), "--out", str(out), *FAST]) == 0
    import csv

    with open(out / "voi_cycle_doses.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert all(r["patient_id"] == "'=HYPERLINK(\"http://x\",\"y\")" for r in rows)
    assert any(r["voi"] == "'+cmd|' /C calc'!A0" for r in rows)
    assert all(not r[k].startswith(("=", "+", "@")) for r in rows for k in r)
    assert any(r["ad_per_aa_Gy_per_GBq"] and float(r["ad_per_aa_Gy_per_GBq"]) > 0 for r in rows)  # numbers stay numbers
    from LuDosimetryLib.results.result_set import csv_safe_text, csv_unquote_text

    for text in ("=1+1", "-2", "@SUM(A1)", "\tx", "plain", "-"):
        assert csv_unquote_text(csv_safe_text(text)) == text


def _lib_files():
    for lib in ("LuDosimetry/LuDosimetryLib", "LuResponse/LuResponseLib"):
        yield from sorted((ROOT / lib).rglob("*.py"))


def test_every_text_file_written_or_read_with_an_explicit_encoding_and_no_umask():
    """open()/read_text()/write_text() in text mode without encoding= would use the locale's
    encoding (cp1252 on Windows) that the project's UTF-8 readers then reject."""
    offenders = []
    for f in _lib_files():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            kw = {k.arg for k in node.keywords}
            if name == "umask":
                offenders.append(f"{f.name}:{node.lineno} os.umask")
            if name in ("read_text", "write_text") and "encoding" not in kw:
                offenders.append(f"{f.name}:{node.lineno} {name} without encoding")
            if name == "open" and isinstance(fn, ast.Name) and "encoding" not in kw:
                mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"),
                                                                       None)
                text_mode = not (isinstance(mode, ast.Constant) and "b" in str(mode.value))
                if text_mode:
                    offenders.append(f"{f.name}:{node.lineno} open() in text mode without encoding")
    assert offenders == []


def test_cohort_out_refused_when_it_holds_the_table_and_user_files_kept(tmp_path, capsys):
    from LuResponseLib.synthetic import make_demo_cohort

    table = tmp_path / "cohort.csv"
    table.write_text(make_demo_cohort(0).table.to_csv_text(), encoding="utf-8")
    before = table.read_bytes()
    assert cli.main(["cohort", str(table), "--out", str(tmp_path)]) == 2
    assert "is the folder of the input" in capsys.readouterr().err
    assert table.read_bytes() == before
    out = tmp_path / "res"
    args = ["cohort", str(table), "--out", str(out), "--no-plots", "--bootstrap", "10", "--cv-repeats", "0"]
    assert cli.main(args) == 0
    (out / "models" / "my_model.json").write_text("{}", encoding="utf-8")
    assert cli.main(args) == 2
    assert "already holds a result set" in capsys.readouterr().err
    assert cli.main(args + ["--overwrite"]) == 0
    assert (out / "models" / "my_model.json").read_text(encoding="utf-8") == "{}"
    assert rs.verify_result_set(out) == []


def test_out_an_existing_file_refused_before_computing(patient, capsys, monkeypatch):
    from LuDosimetryLib import pipeline

    manifest, study = patient
    target = study.parent / "results.txt"
    target.write_text("not a folder", encoding="utf-8")
    monkeypatch.setattr(pipeline, "load_study_images", lambda *a, **k: pytest.fail("computation started"))
    assert cli.main(["run", str(manifest), "--out", str(target), *FAST]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "not a folder"


def test_failed_map_write_one_message_and_previous_set_intact(patient, capsys, monkeypatch):
    from LuDosimetryLib.results import outputs

    manifest, study = patient
    out = study / "results"
    assert cli.main(["run", str(manifest), "--out", str(out), *FAST]) == 0
    old = digest(out)
    capsys.readouterr()  # the first run's warnings (stderr) are not part of the failing run's message

    def failing_write(img, path, *a):
        raise RuntimeError("sitk::ERROR: No space left on device")

    monkeypatch.setattr(outputs.sitk, "WriteImage", failing_write)
    assert cli.main(["run", str(manifest), "--out", str(out), "--overwrite", "--save-maps", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "tia_MBq_h_cycle1.nrrd: the map cannot be written (sitk::ERROR: No space left on device); nothing was " \
           "written" in err and len(err.splitlines()) == 1
    assert digest(out) == old


def test_inspect_does_not_hang_on_a_fifo(tmp_path, capsys):
    (tmp_path / "series").mkdir()
    os.mkfifo(tmp_path / "series" / "pipe")
    os.mkfifo(tmp_path / "series" / "pipe.nii.gz")
    assert cli.main(["inspect", str(tmp_path)]) == 0
    assert "Traceback" not in capsys.readouterr().err
