"""`lu-dosimetry` command line: demo re-runs into the same folder, one-line errors, --fit-model choices."""

import logging
from types import SimpleNamespace

import pytest

from LuDosimetryLib import cli
from LuDosimetryLib.synthetic.phantom import PhantomConfig

TINY = dict(n_cycles=1, shape_xyz=(32, 24, 20), spacing_mm=9.6, max_shift_mm=0.0, max_rotation_deg=0.0)


def test_demo_patient_written_then_reused_same_seed(tmp_path):
    manifest, reused = cli.demo_patient(tmp_path, seed=3, config=PhantomConfig(seed=3, **TINY))
    assert not reused and manifest == tmp_path / "synthetic_patient" / "study.json" and manifest.is_file()
    stamp = manifest.stat().st_mtime_ns
    manifest2, reused = cli.demo_patient(tmp_path, seed=3)
    assert reused and manifest2 == manifest and manifest.stat().st_mtime_ns == stamp  # not rewritten


def test_demo_patient_other_seed_or_foreign_folder_refused(tmp_path):
    cli.demo_patient(tmp_path, seed=3, config=PhantomConfig(seed=3, **TINY))
    with pytest.raises(FileExistsError, match="seed 3, not seed 4"):
        cli.demo_patient(tmp_path, seed=4)
    other = tmp_path / "other"
    (other / "synthetic_patient").mkdir(parents=True)
    (other / "synthetic_patient" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a synthetic patient"):
        cli.demo_patient(other, seed=1)
    assert (other / "synthetic_patient" / "notes.txt").read_text() == "mine"  # untouched


def test_demo_rerun_reuses_patient_and_says_so(tmp_path, monkeypatch, caplog, capsys):
    from LuDosimetryLib import pipeline
    from LuDosimetryLib.results import truth as validation

    cli.demo_patient(tmp_path, seed=1, config=PhantomConfig(seed=1, **TINY))
    calls = []

    def fake_run(manifest, out, options, progress=None, **kw):
        calls.append((manifest, out, options.fit_model))
        return SimpleNamespace(summary={"patient_id": "SYNTH001", "cycles": [1], "warnings": []}, out_dir=out, files=[])

    monkeypatch.setattr(pipeline, "run_manifest", fake_run)
    monkeypatch.setattr(validation, "compare_with_ground_truth", lambda *a, **k: SimpleNamespace(to_text=lambda: "cmp"))
    with caplog.at_level(logging.INFO, logger="lu-dosimetry"):
        assert cli.main(["demo", "--out", str(tmp_path), "--fit-model", "mono_last2"]) == 0
    assert calls == [(tmp_path / "synthetic_patient" / "study.json", tmp_path, "mono_last2")]
    assert any("Reusing the synthetic patient (seed 1)" in r.getMessage() for r in caplog.records)
    assert "cmp" in capsys.readouterr().out


def test_demo_other_seed_one_line_error(tmp_path, capsys):
    cli.demo_patient(tmp_path, seed=1, config=PhantomConfig(seed=1, **TINY))
    assert cli.main(["demo", "--out", str(tmp_path), "--seed", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lu-dosimetry demo: error:") and "seed 1, not seed 2" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_phantom_into_non_empty_folder_one_line_error(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("x")
    assert cli.main(["phantom", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lu-dosimetry phantom: error:") and "not empty" in err and len(err.splitlines()) == 1


def test_os_errors_one_line(tmp_path, monkeypatch, capsys):
    from LuDosimetryLib.io import dicom

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(dicom, "inspect_directory", denied)
    assert cli.main(["inspect", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lu-dosimetry inspect: error:") and "Permission denied" in err
    assert len(err.splitlines()) == 1


def test_fit_model_choices(capsys):
    from LuDosimetryLib.physics.kinetics import MODELS

    assert set(cli.FIT_MODELS) == set(MODELS)
    for m in MODELS:
        assert cli.build_parser().parse_args(["run", "m.json", "--out", "o", "--fit-model", m]).fit_model == m
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(["run", "m.json", "--out", "o", "--fit-model", "biexponential"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
