"""``lu-dosimetry batch`` and ``run`` against their inputs (review of issue 17):

- a result set is "complete" (skipped) only when every input recorded with it (SHA-256 of the study
  manifest and of every image file, in ``.lu-results.json`` ``inputs``) is unchanged; an edited
  manifest or a replaced image is computed again, with the reason printed;
- result files that no run/batch wrote (no result-set manifest) are never replaced without --overwrite;
- ``--out`` may not be, nor hold, any input of any study (an image folder inside a study included);
- a symlinked ``--out`` is checked by where it points.

One tiny synthetic study (1 cycle, 32 x 24 x 20 voxels of 9.6 mm) run with ``--registration none``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from LuDosimetryLib.cli import main
from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

TINY = {"n_cycles": 1, "shape_xyz": (32, 24, 20), "spacing_mm": 9.6, "max_shift_mm": 0.0, "max_rotation_deg": 0.0}
FAST = ["--registration", "none"]


@pytest.fixture(scope="module")
def study_src(tmp_path_factory):
    return write_phantom_study(tmp_path_factory.mktemp("bi") / "pA", PhantomConfig(seed=7, **TINY)).parent


@pytest.fixture
def cohort(study_src, tmp_path):
    """A private folder of study folders holding one study ``pA``."""
    root = tmp_path / "cohort"
    shutil.copytree(study_src, root / "pA")
    return root


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _doses(folder: Path, column: str = "absorbed_dose_Gy") -> dict[str, float]:
    with open(folder / "voi_cycle_doses.csv", newline="", encoding="utf-8") as fh:
        return {r["voi"]: float(r[column]) for r in csv.DictReader(fh) if r[column]}


def _failures(out: Path) -> list[dict]:
    with open(out / "batch_failures.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_edited_manifest_or_replaced_image_is_computed_again(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(cohort), "--out", str(out), *FAST]) == 0
    recorded = json.loads((out / "pA" / ".lu-results.json").read_text(encoding="utf-8"))["inputs"]
    manifest = cohort / "pA" / "study.json"
    assert recorded[str(manifest.resolve())]["sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert any(k.endswith("spect_004h.nii.gz") for k in recorded)
    first = _doses(out / "pA")
    capsys.readouterr()
    assert main(["batch", str(cohort), "--out", str(out), *FAST]) == 0
    assert "pA skipped (complete result set" in capsys.readouterr().err

    # cycle-1 administered activity edited: the results carry the new activity (the doses come from
    # the quantitative images and stay; their ratio to the activity changes)
    m = json.loads(manifest.read_text(encoding="utf-8"))
    a0 = m["cycles"][0]["administered_activity_MBq"]
    m["cycles"][0]["administered_activity_MBq"] = a0 * 1.25
    manifest.write_text(json.dumps(m, indent=2), encoding="utf-8")
    assert main(["batch", str(cohort), "--out", str(out), *FAST]) == 0
    err = capsys.readouterr().err
    assert "pA done in" in err and "inputs changed since the result set was written: study.json" in err
    second = _doses(out / "pA")
    assert second == first
    activities = list(_doses(out / "pA", "administered_activity_MBq").values())
    assert activities and activities == pytest.approx([a0 * 1.25] * len(activities), rel=1e-5)

    # one image file replaced by another of the study (same size class, other contents)
    spect = cohort / "pA" / "cycle1" / "spect_004h.nii.gz"
    shutil.copyfile(cohort / "pA" / "cycle1" / "spect_024h.nii.gz", spect)
    assert main(["batch", str(cohort), "--out", str(out), *FAST]) == 0
    err = capsys.readouterr().err
    assert "inputs changed since the result set was written: spect_004h.nii.gz" in err
    assert _doses(out / "pA") != second


def test_user_files_without_result_set_manifest_are_not_replaced(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "pA").mkdir(parents=True)
    (out / "pA" / "summary.json").write_text('{"mine": true}', encoding="utf-8")
    (out / "pA" / "voi_cycle_doses.csv").write_text("my,own,table\n", encoding="utf-8")
    before = digest(out / "pA")
    capsys.readouterr()
    assert main(["batch", str(cohort), "--out", str(out), *FAST]) == 1
    assert "computed again" not in capsys.readouterr().err
    assert digest(out / "pA") == before
    (failure,) = _failures(out)
    assert failure["patient"] == "pA"
    assert "without a result-set manifest" in failure["error"] and "--overwrite" in failure["error"]


def test_out_in_an_image_folder_of_a_study_is_refused(cohort, capsys):
    before = digest(cohort)
    for bad in (cohort / "pA" / "cycle1", cohort / "pA"):
        assert main(["batch", str(cohort), "--out", str(bad), *FAST]) == 2
        assert "never written among the inputs" in capsys.readouterr().err
    assert digest(cohort) == before


@pytest.mark.parametrize("command", ["run", "batch"])
def test_symlinked_out_into_a_study_folder_is_refused(cohort, tmp_path, command, capsys):
    before = digest(cohort)
    for target in (cohort / "pA", cohort / "pA" / "cycle1", cohort):
        link = tmp_path / f"link_{target.name}"
        link.symlink_to(target, target_is_directory=True)
        study = cohort / "pA" / "study.json" if command == "run" else cohort
        assert main([command, str(study), "--out", str(link), *FAST]) == 2
        assert "never written among the inputs" in capsys.readouterr().err
        assert digest(cohort) == before
