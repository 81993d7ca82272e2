"""Issue 13: strict readers that say where — manifest schema, image headers, cohort CSV, model files.

Each test is a defect class of the issue-13 QA probe: it asserts the error type and message words
(file and field), and that nothing else (no TypeError/OverflowError/RecursionError/EOFError) escapes."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.errors import InputDataError, ManifestError
from LuDosimetryLib.io.images import read_image
from LuDosimetryLib.io.manifest_schema import MANIFEST_FIELDS, check_manifest_structure
from LuDosimetryLib.io.study import load_study, study_from_dict


def _manifest(tmp_path, **over):
    for name in ("s4.nii.gz", "s24.nii.gz", "seg.nii.gz"):
        (tmp_path / name).write_bytes(b"x")
    d = {"patient_id": "P001", "radionuclide": "Lu-177",
         "cycles": [{"cycle": 1, "administered_activity_MBq": 7400.0, "injection_time": "2025-01-06T09:00:00+00:00",
                     "timepoints": [{"hours_post_injection": 4.0, "spect": "s4.nii.gz"},
                                    {"hours_post_injection": 24.0, "spect": "s24.nii.gz"}]}],
         "segmentation": {"file": "seg.nii.gz", "labels": {"1": {"name": "kidney_left", "kind": "kidney"},
                                                           "3": {"name": "t1", "kind": "tumor"}}},
         "recovery_coefficients": {"volume_ml": [1, 10, 100], "rc": [0.2, 0.5, 0.8]}}
    d.update(over)
    return d


def _problems(tmp_path, d):
    with pytest.raises(ManifestError) as e:
        study_from_dict(d, tmp_path)
    return dict(e.value.problems), str(e.value)


# ---------------------------------------------------------------------------------------------
# manifest
# ---------------------------------------------------------------------------------------------

def test_misspelt_key_is_an_error_with_did_you_mean(tmp_path):
    d = _manifest(tmp_path)
    d["recovery_coeficients"] = d.pop("recovery_coefficients")  # PVC would silently be off
    d["cycles"][0]["timepoints"][0]["spect_unit"] = "Bq/mL"
    probs, text = _problems(tmp_path, d)
    assert "did you mean 'recovery_coefficients'" in probs["recovery_coeficients"]
    assert "did you mean 'spect_units'" in probs["cycles[0].timepoints[0].spect_unit"]
    d = _manifest(tmp_path, _comment="keys starting with _ are comments")
    assert study_from_dict(d, tmp_path).patient_id == "P001"


def test_duplicate_json_key_and_label_aliases_are_errors(tmp_path):
    d = _manifest(tmp_path)
    p = tmp_path / "study.json"
    text = json.dumps(d).replace('"patient_id": "P001"', '"patient_id": "P001", "patient_id": "P002"')
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError, match="duplicate key 'patient_id'"):
        load_study(p)
    d["segmentation"]["labels"]["01"] = {"name": "t2", "kind": "tumor"}  # int("01") == 1: a second VOI on label 1
    d["segmentation"]["labels"][" 3"] = {"name": "t3", "kind": "tumor"}
    probs, _ = _problems(tmp_path, d)
    assert "names label 1 again (also '1')" in probs["segmentation.labels[01]"]
    assert "names label 3 again" in probs["segmentation.labels[ 3]"]
    d = _manifest(tmp_path)
    d["segmentation"]["labels"] = {"1_0": {"name": "a", "kind": "tumor"}}
    probs, _ = _problems(tmp_path, d)
    assert "write it as '10'" in probs["segmentation.labels[1_0]"]


@pytest.mark.parametrize("where,value,words", [
    ("patient_id", {"a": 1}, "must be a string, got an object"),
    ("cycles", "c1", "must be a list, got a string"),
    ("cycles[0].cycle", 1.5, "must be an integer"),
    ("cycles[0].cycle", True, "must be an integer"),
    ("cycles[0].administered_activity_MBq", "lots", "must be a number"),
    ("cycles[0].administered_activity_MBq", 10 ** 400, "beyond the floating-point range"),
    ("cycles[0].timepoints[0].hours_post_injection", 1e300, "outside the plausible range"),
    ("cycles[0].timepoints[0].spect", ["a"], "must be a string"),
    ("segmentation.labels", [1, 2], "must be an object"),
    ("recovery_coefficients.rc", [0.2, "x", 0.8], None),
])
def test_wrong_json_types_are_listed_never_raised(tmp_path, where, value, words):
    d = _manifest(tmp_path)
    target, key = d, where
    parts = where.replace("]", "").replace("[", ".").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    target[parts[-1]] = value
    probs, _ = _problems(tmp_path, d)
    if words is None:
        assert "recovery_coefficients.rc[1]" in probs
    else:
        assert words in probs[key], probs


def test_unreadable_json_files_give_manifest_errors(tmp_path):
    p = tmp_path / "study.json"
    for text, words in [("[" * 100000 + "]" * 100000, "nested"), ('{"a": NaN}', "NaN is not a JSON number"),
                        ('{"a": ' + "9" * 5000 + "}", "not valid JSON"), ('{"a": 1', "not valid JSON"),
                        ("[" * 40 + "]" * 40, "nested deeper than 32")]:
        p.write_text(text, encoding="utf-8")
        with pytest.raises(ManifestError, match=words):
            load_study(p)
    p.write_bytes(b'{"patient_id": "M\xfcller"}')
    with pytest.raises(ManifestError, match="not UTF-8 text .byte 0xfc on line 1"):
        load_study(p)


def test_paths_must_be_regular_files_or_folders(tmp_path):
    d = _manifest(tmp_path)
    os.mkfifo(tmp_path / "pipe.nii.gz")
    d["cycles"][0]["timepoints"][0]["spect"] = "pipe.nii.gz"  # used to hang the reader
    d["cycles"][0]["timepoints"][1]["spect"] = "x" * 4000 + ".nii.gz"  # "File name too long"
    d["segmentation"]["file"] = "seg\x00.nii.gz"
    probs, text = _problems(tmp_path, d)
    assert "not a regular file or folder (a FIFO" in probs["cycles[0].timepoints[0].spect"]
    assert "unusable path" in probs["cycles[0].timepoints[1].spect"] and len(text) < 2000
    assert "NUL character" in probs["segmentation.file"]
    d = _manifest(tmp_path)
    (tmp_path.parent / "outside.nii.gz").write_bytes(b"x")
    d["cycles"][0]["timepoints"][0]["spect"] = "../outside.nii.gz"
    s = study_from_dict(d, tmp_path)
    assert any("outside the study folder" in w and "cycles[0].timepoints[0].spect" in w for w in s.warnings)


def test_schema_table_covers_every_key_the_reader_uses():
    """The schema is the one definition: every key study.py reads with .get("...") is in it."""
    import re
    from pathlib import Path

    import LuDosimetryLib.io.study as study_mod

    src = Path(study_mod.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r'\.get\("([a-z_A-Z]+)"', src)) | set(re.findall(r'\["([a-z_A-Z]+)"\]', src))
    known = {k for level in MANIFEST_FIELDS.values() for k in level}
    assert used - known == set()
    assert check_manifest_structure({"patient_id": "x", "cycles": []}) == []


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------

def _nifti(path, arr):
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    return path


def test_truncated_gzip_and_size_limit_and_nan(tmp_path, monkeypatch):
    arr = np.random.default_rng(0).random((12, 14, 16)).astype(np.float32)
    good = _nifti(tmp_path / "a.nii.gz", arr)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(good)), arr)
    raw = good.read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(InputDataError, match="cut.nii.gz: .*truncated"):
        read_image(tmp_path / "cut.nii.gz")
    (tmp_path / "two.nii.gz").write_bytes(gzip.compress(gzip.decompress(raw)[:500]) + gzip.compress(
        gzip.decompress(raw)[500:]))  # two gzip members: valid, read to the end
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(tmp_path / "two.nii.gz")), arr)
    with pytest.raises(InputDataError, match="above the limit of 1000 bytes"):
        read_image(good, max_bytes=1000)
    monkeypatch.setenv("LU_DOSIMETRY_MAX_IMAGE_BYTES", "2000")
    with pytest.raises(InputDataError, match="LU_DOSIMETRY_MAX_IMAGE_BYTES"):
        read_image(good)
    monkeypatch.delenv("LU_DOSIMETRY_MAX_IMAGE_BYTES")
    arr[1, 2, 3] = np.nan
    with pytest.raises(InputDataError, match="1 of 2688 voxels are NaN"):
        read_image(_nifti(tmp_path / "nan.nii.gz", arr))
    # a gzip bomb: a small file whose header claims a small image but whose stream is huge
    bomb = gzip.compress(gzip.decompress(raw) + b"\0" * 50_000_000)
    (tmp_path / "bomb.nii.gz").write_bytes(bomb)
    with pytest.raises(InputDataError, match="decompresses to more than"):
        read_image(tmp_path / "bomb.nii.gz", max_bytes=10_000_000)


def _nm_dicom(path, frames=4, rows=8, cols=8, slope="2.0", stated_frames=None, bits=16):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = stated_frames or frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelSpacing = [2.0, 2.0]
    ds.SliceThickness = 2.0
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = "0"
    ds.PixelData = (np.arange(frames * rows * cols, dtype=np.uint16) % 100 + 1).tobytes()
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
    return path


@pytest.mark.parametrize("slope", ["0", "NaN"])
def test_dicom_rescale_slope_zero_or_nan_refused(tmp_path, slope):
    ok = read_image(_nm_dicom(tmp_path / "ok.dcm"), apply_dicom_scaling=False)
    assert float(sitk.GetArrayFromImage(ok).max()) == 200.0  # slope 2 applied: the reader works on this file
    with pytest.raises(InputDataError, match=r"bad.dcm: RescaleSlope \(0028,1053\) = .* must be a finite number other"):
        read_image(_nm_dicom(tmp_path / "bad.dcm", slope=slope), apply_dicom_scaling=False)


def test_dicom_frames_or_bits_inconsistent_with_pixel_data_refused(tmp_path):
    with pytest.raises(InputDataError, match=r"f.dcm: PixelData .* NumberOfFrames 6 .*read as zeros"):
        read_image(_nm_dicom(tmp_path / "f.dcm", frames=4, stated_frames=6), apply_dicom_scaling=False)
    with pytest.raises(InputDataError, match=r"b.dcm: BitsAllocated \(0028,0100\) = 12"):
        read_image(_nm_dicom(tmp_path / "b.dcm", bits=12), apply_dicom_scaling=False)


def test_labels_in_image_not_in_manifest_warned_and_float_labels_refused():
    from types import SimpleNamespace

    from LuDosimetryLib.imaging.voi_masks import check_label_values

    vois = [SimpleNamespace(label=1)]
    lab = np.zeros((4, 4, 4), np.uint8)
    lab[0, 0, :2], lab[1, 1, :3], lab[2, 2, 0] = 1, 7, 9
    warnings = []
    check_label_values(lab, vois, "seg.nii.gz", warnings)
    assert warnings == ["segmentation seg.nii.gz: label(s) 7 (3 voxels), 9 (1 voxels) present in the image but not "
                        "defined in the manifest's segmentation.labels: ignored"]
    flab = lab.astype(np.float32)
    flab[3, 3, 3] = 10.4
    with pytest.raises(InputDataError, match="label values must be whole numbers; found 10.4"):
        check_label_values(flab, vois, "seg.nii.gz", [])


# ---------------------------------------------------------------------------------------------
# cohort CSV
# ---------------------------------------------------------------------------------------------

H = "patient_id,cumulative_tumor_dose_Gy,delta_ad_per_aa_percent,response\n"
ROWS = "".join(f"P{i},{100 + i}.5,-{i}.25,{['partial response', 'Stable disease', 'PD', 'pr'][i % 4]}\n"
               for i in range(40))


def _load(tmp_path, name, data):
    from LuResponseLib.cohort import load_cohort_table

    p = tmp_path / name
    p.write_bytes(data)
    return load_cohort_table(p)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp1252"])
def test_cohort_csv_encodings_read(tmp_path, encoding):
    t = _load(tmp_path, "c.csv", (H + ROWS.replace("P1,", "Pé1,")).encode(encoding))
    assert t.n_patients == 40 and "Pé1" in list(t.columns["patient_id"])
    assert t.response_counts()["PR"] == 20 and t.response_counts()["SD"] == 10
    assert t.columns["cumulative_tumor_dose_Gy"][3] == 103.5
    if encoding == "cp1252":
        assert any("read as Windows-1252" in n and "line 3" in n for n in t.notes)


def test_cohort_csv_undecodable_refused_with_file_and_line(tmp_path):
    from LuResponseLib.errors import CohortTableError

    with pytest.raises(CohortTableError, match=r"bad.csv:\n  - line 3: neither UTF-8 nor Windows-1252"):
        _load(tmp_path, "bad.csv", (H + "P1,1,1,PR\n").encode() + b"P2,\x81\x8d,1,PR\n")


def test_european_excel_export_and_decimal_comma_hint(tmp_path):
    from LuResponseLib.errors import CohortTableError

    semi = (H + ROWS).replace(",", ";").replace(".", ",")
    t = _load(tmp_path, "eu.csv", semi.encode("cp1252"))
    assert t.columns["cumulative_tumor_dose_Gy"][3] == 103.5 and t.columns["delta_ad_per_aa_percent"][3] == -3.25
    assert any("decimal comma" in n for n in t.notes)
    with pytest.raises(CohortTableError) as e:
        _load(tmp_path, "mixed.csv", (H + ROWS).replace(".", ",").encode())
    text = str(e.value)
    assert len(text.splitlines()) == 2  # one summary line, not 40
    assert "40 rows like: 6 cells but the header has 4 columns" in text and "decimal comma" in text


def test_one_summary_line_per_kind_of_problem(tmp_path):
    from LuResponseLib.errors import CohortTableError

    rows = "".join(f"P{i},x{i},-10,PR\n" for i in range(722))
    with pytest.raises(CohortTableError) as e:
        _load(tmp_path, "many.csv", (H + rows + "PX,1,1,maybe\n").encode())
    lines = str(e.value).splitlines()
    assert lines[0].startswith("723 problem(s) in cohort table")
    assert len(lines) == 3
    assert "column 'cumulative_tumor_dose_Gy': 722 rows like: 'x0' is not a number (first: line 2, line 3, line 4)" \
        in lines[1]
    assert "line 724 (patient PX), column 'response': unknown response code 'maybe'" in lines[2]


def test_unterminated_quote_and_long_cell_refused(tmp_path):
    from LuResponseLib.errors import CohortTableError

    with pytest.raises(CohortTableError, match=r"line 4: a quote .* row starting on line 3 is never closed"):
        _load(tmp_path, "q.csv", (H + 'P1,100,-20,PR\n"P2,50,-10,SD\nP3,50,-10,SD\n').encode())
    with pytest.raises(CohortTableError, match="a cell longer than 100000 characters"):
        _load(tmp_path, "long.csv", (H + "P1,100,-20," + "x" * 200_000 + "\n").encode())


def test_response_words_mapped():
    from LuResponseLib.readers import response_code

    for text, code in [("partial response", "PR"), ("Partial Response", "PR"), ("PR (partial response)", "PR"),
                       ("complete_response", "CR"), ("Stable disease", "SD"), ("progressive-disease", "PD"),
                       ("iCPD", "PD"), ("sd", "SD")]:
        assert response_code(text) == code, text
    assert response_code("iUPD") == "IUPD"  # unconfirmed progression is not mapped: refused as unknown


# ---------------------------------------------------------------------------------------------
# model files
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dict():
    from LuResponseLib.models import fit_response_model

    rng = np.random.default_rng(0)
    X = rng.normal(100, 30, (40, 2))
    return fit_response_model(X, (X[:, 0] > 100).astype(int), "svm").to_dict()


@pytest.mark.parametrize("edit,field,words", [
    (lambda d: d["params"].__setitem__("gamma", -1), "params.gamma", "finite positive"),
    (lambda d: d["params"]["dual_coef"].pop(), "params.dual_coef", "must hold"),
    (lambda d: d["scaler"].__setitem__("scale", [1.0, 0.0]), "scaler.scale[1]", "finite positive"),
    (lambda d: d["training"].__setitem__("n", "40"), "training.n", "whole number"),
    (lambda d: d.__setitem__("featurs", d.pop("features")), "featurs", "did you mean 'features'"),
    (lambda d: d["params"]["support_vectors"][0].__setitem__(0, 10 ** 400), "params.support_vectors[0][0]", "finite"),
    (lambda d: d.__setitem__("params", []), "params", "must be a object"),
])
def test_model_file_schema(tmp_path, model_dict, edit, field, words):
    import copy

    from LuResponseLib.model_schema import ModelFileError
    from LuResponseLib.models import ResponseModel

    d = copy.deepcopy(model_dict)
    edit(d)
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(ModelFileError) as e:
        ResponseModel.load_json(p)
    assert str(p) in str(e.value)
    assert any(f == field and words in m for f, m in e.value.problems), e.value.problems


def test_model_file_nan_and_duplicate_keys(tmp_path, model_dict):
    from LuResponseLib.model_schema import ModelFileError
    from LuResponseLib.models import ResponseModel

    p = tmp_path / "m.json"
    p.write_text(json.dumps(model_dict).replace('"gamma": ', '"gamma": NaN, "x": '), encoding="utf-8")
    with pytest.raises(ModelFileError, match="NaN is not a finite JSON number"):
        ResponseModel.load_json(p)
    p.write_text(json.dumps(model_dict).replace('"kind": "svm"', '"kind": "svm", "kind": "logistic"'),
                 encoding="utf-8")
    with pytest.raises(ModelFileError, match="duplicate key 'kind'"):
        ResponseModel.load_json(p)
    p.write_text(json.dumps(model_dict), encoding="utf-8")
    m = ResponseModel.load_json(p)
    assert 0 <= float(m.predict_probability([[100.0, -30.0]], warn=False)[0]) <= 1


def test_labelmap_outside_the_reference_says_geometry(tmp_path):
    from types import SimpleNamespace

    from LuDosimetryLib.imaging.vois import define_vois
    from LuDosimetryLib.io.study import VoiDefinition
    from LuDosimetryLib.pipeline import PipelineOptions

    ref = sitk.Image([10, 10, 10], sitk.sitkFloat32) + 1.0
    lab = sitk.Image([10, 10, 10], sitk.sitkUInt8)
    lab[5, 5, 5] = 3
    lab.SetOrigin((500.0, 0.0, 0.0))  # e.g. a wrong ImagePositionPatient
    study = SimpleNamespace(segmentation_file="seg.nii.gz", vois=[VoiDefinition(3, "t1", "tumor")])
    images = SimpleNamespace(labelmap=lab, masks=None)
    with pytest.raises(InputDataError, match=r"label 3 .t1. lost all its voxels .* hardly overlap in patient space"):
        define_vois(study, images, ref, None, PipelineOptions())


def test_absurd_times_are_problems_not_crashes(tmp_path):
    d = _manifest(tmp_path)
    d["cycles"][0]["injection_time"] = "0001-01-01T00:00:00+00:00"
    d["cycles"][0]["timepoints"][0] = {"acquisition_time": "9999-12-31T23:59:59+00:00", "spect": "s4.nii.gz"}
    probs, _ = _problems(tmp_path, d)
    assert "implausible" in probs["cycles[0].timepoints[0].acquisition_time"]
