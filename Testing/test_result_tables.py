"""Result tables for display (LuDosimetryLib.results.tables) and the cohort record."""

import math

import numpy as np
import pytest

from LuDosimetryLib.results.tables import (
    ad_per_aa_columns,
    cohort_record,
    numeric_columns,
    summary_rows,
    time_activity_columns,
)


class _Fit:
    def __init__(self, a, lam):
        self.a, self.lam = a, lam

    def evaluate(self, t):
        return self.a * np.exp(-self.lam * np.asarray(t))


class _Cycle:
    def __init__(self, cycle):
        self.cycle = cycle


class _Study:
    cycles = [_Cycle(1), _Cycle(2)]


class _Result:
    study = _Study()
    rows = [{"voi": "t1", "cycle": 1, "ad_per_aa_Gy_per_GBq": 4.0}, {"voi": "t1", "cycle": 2, "ad_per_aa_Gy_per_GBq": 3.0},
            {"voi": "kidney", "cycle": 1, "ad_per_aa_Gy_per_GBq": 0.6}]
    samples = {("t1", 1): (np.array([4.0, 24.0, 72.0]), np.array([10.0, 8.0, 5.0]), "MBq"),
               ("t1", 2): (np.array([24.0]), np.array([7.0]), "MBq"),
               ("kidney", 1): (np.array([4.0, 24.0]), np.array([30.0, 20.0]), "MBq")}
    fits = {("t1", 1): _Fit(11.0, 0.01)}


def test_time_activity_columns():
    measured, fitted, units = time_activity_columns(_Result(), n=5)
    assert units == "MBq"
    assert list(measured) == ["t1 C1 hours", "t1 C1", "t1 C2 hours", "t1 C2", "kidney C1 hours", "kidney C1"]
    assert measured["t1 C2"][0] == 7.0 and all(math.isnan(v) for v in measured["t1 C2"][1:])
    assert fitted["hours"] == pytest.approx([0.0, 22.5, 45.0, 67.5, 90.0])   # 1.25 x 72 h
    assert fitted["t1 C1"] == pytest.approx([11.0 * math.exp(-0.01 * h) for h in fitted["hours"]])
    assert set(fitted) == {"hours", "t1 C1"}


def test_ad_per_aa_and_summary_rows_and_record():
    columns = ad_per_aa_columns(_Result.rows)
    assert columns["cycle"] == [1.0, 2.0] and columns["t1"] == [4.0, 3.0]
    assert columns["kidney"][0] == 0.6 and math.isnan(columns["kidney"][1])
    rows = summary_rows({"patient_id": "P", "per_voi": [1], "next": {"activity_MBq": 7400.0, "why": None},
                         "warnings": ["a", "b"], "kidney_bed_Gy": None})
    assert rows == [["patient_id", "P"], ["next.activity_MBq", 7400.0], ["next.why", ""], ["warnings", "a\nb"],
                    ["kidney_bed_Gy", ""]]
    record = cohort_record({"patient_id": "P", "cumulative_tumor_dose_Gy": "120.5", "delta_ad_per_aa_percent": "nan",
                            "kidney_bed_Gy": 20.0}, "PR")
    assert record == {"patient_id": "P", "cumulative_tumor_dose_Gy": 120.5, "delta_ad_per_aa_percent": None,
                      "response": "PR", "kidney_cumulative_dose_Gy": None, "kidney_bed_Gy": 20.0}
    with pytest.raises(ValueError, match="run the dosimetry"):
        cohort_record({})
    assert numeric_columns([{"a": 1, "b": "x", "c": True}, {"a": None, "b": 2.0, "c": 1}], "abc") == {"a"}


def test_summary_html():
    from LuDosimetryLib.results.tables import summary_html

    text = summary_html({"cumulative_tumor_dose_Gy": "123.45", "delta_ad_per_aa_percent": -40.0,
                         "kidney_bed_Gy": "", "warnings": "\n".join(f"w{i} <x>" for i in range(10)),
                         "lesion_tracking.heterogeneous": "True", "tumors_excluded": "t3\nt4"})
    assert "<b>123.5 Gy</b>" in text and "<b>-40.0 %</b>" in text and "BED <b>n/a</b>" in text
    assert "w7 &lt;x&gt;" in text and "w8" not in text and "and 2 more" in text
    assert "heterogeneity" in text and "<b>yes</b>" in text and "t3, t4" in text
    assert "seed" not in text


def test_map_images_and_tac_series_columns():
    import SimpleITK as sitk

    from LuDosimetryLib.results.tables import map_images, tac_series_columns

    img = sitk.Image(2, 2, 2, sitk.sitkFloat32)
    maps = {"dose_Gy": {2: img, 1: img}, "dose_rate_Gy_per_h": {(1, 0): img}, "dose_statistics": {1: {"D90": 3}},
            "warnings": ["x"]}
    assert [(w, n) for w, n, _i in map_images(maps)] == [("C1", "dose_Gy"), ("C2", "dose_Gy"),
                                                         ("C1 tp1", "dose_rate_Gy_per_h")]
    columns = ["t1 C1 hours", "t1 C1", "t1 C2 hours", "t1 C2", "t10 C1 hours", "t10 C1", "t1 C1x"]
    assert tac_series_columns(columns, "t1") == ["t1 C1", "t1 C2"]
