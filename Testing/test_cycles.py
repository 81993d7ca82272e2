"""Tests of LuDosimetryLib.results.cycle_metrics (cross-cycle metrics) on hand-computable rows."""

import pytest

from LuDosimetryLib.results import cycle_metrics as C
from LuDosimetryLib.physics import radiobiology as R
from LuDosimetryLib.errors import InputDataError

AA = [7400.0, 7400.0, 9000.0, 11100.0]  # MBq per cycle


def make_rows(pid="P001", skip=(), extra=None):
    """Two tumours, two kidneys, one organ, 4 cycles; AD = AD/AA × AA/1000."""
    adaa = {
        "tumor_liver_1": [3.2, 3.0, 2.4, 1.6],
        "tumor_node_2": [2.0, 2.0, 1.8, 1.5],
        "kidney_left": [0.43, 0.42, 0.42, 0.42],
        "kidney_right": [0.41, 0.42, 0.40, 0.40],
        "spleen": [0.9, 0.9, 0.9, 0.9],
    }
    kinds = {"tumor_liver_1": "tumor", "tumor_node_2": "tumor", "kidney_left": "kidney",
             "kidney_right": "kidney", "spleen": "organ"}
    rows = []
    for voi, vals in adaa.items():
        for c, (x, aa) in enumerate(zip(vals, AA), start=1):
            if (voi, c) in skip:
                continue
            rows.append({
                "patient_id": pid, "cycle": c, "voi": voi, "kind": kinds[voi], "volume_ml": 50.0,
                "administered_activity_MBq": aa, "absorbed_dose_Gy": x * aa / 1000.0,
                "ad_per_aa_Gy_per_GBq": x, "fit_model": "biexp",
                "effective_half_life_h": 80.0 if kinds[voi] == "tumor" else 47.0,
                "recovery_coefficient": 0.8, "flags": "",
            })
    return rows + (extra or [])


def test_patient_metrics_hand_computed():
    res = C.cross_cycle_metrics(make_rows())
    p = res.patients["P001"]
    cum1 = sum(x * a / 1000 for x, a in zip([3.2, 3.0, 2.4, 1.6], AA))
    cum2 = sum(x * a / 1000 for x, a in zip([2.0, 2.0, 1.8, 1.5], AA))
    assert p.cycles == (1, 2, 3, 4)
    assert p.tumors == ("tumor_liver_1", "tumor_node_2")
    assert p.tumor_cumulative_dose_Gy["tumor_liver_1"] == pytest.approx(cum1)
    assert p.cumulative_tumor_dose_Gy == pytest.approx((cum1 + cum2) / 2)
    assert p.lesion_total_dose_min_Gy == pytest.approx(cum2)
    assert p.lesion_total_dose_max_Gy == pytest.approx(cum1)
    assert p.lesion_total_dose_mean_Gy == pytest.approx((cum1 + cum2) / 2)
    assert p.delta_ad_per_aa_percent == pytest.approx(100 * ((1.6 + 1.5) / (3.2 + 2.0) - 1))
    assert p.tumor_mean_ad_per_aa_by_cycle[3] == pytest.approx(2.1)
    kl = sum(x * a / 1000 for x, a in zip([0.43, 0.42, 0.42, 0.42], AA))
    kr = sum(x * a / 1000 for x, a in zip([0.41, 0.42, 0.40, 0.40], AA))
    assert p.kidney_cumulative_dose_Gy == pytest.approx((kl + kr) / 2)
    assert p.kidney_bed_Gy is None  # no G given
    assert p.tumor_mean_effective_half_life_h_by_cycle[2] == pytest.approx(80.0)
    s = p.summary_fields()
    assert set(s) >= {"patient_id", "cycles", "cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent",
                      "kidney_cumulative_dose_Gy", "kidney_bed_Gy", "warnings"}
    # per-VOI % changes
    t1 = {m.cycle: m for m in res.voi_cycles if m.voi == "tumor_liver_1"}
    assert t1[1].ad_per_aa_change_vs_cycle1_percent == 0.0
    assert t1[4].ad_per_aa_change_vs_cycle1_percent == pytest.approx(-50.0)
    assert t1[3].ad_per_aa_change_vs_previous_percent == pytest.approx(100 * (2.4 / 3.0 - 1))
    assert t1[1].ad_per_aa_change_vs_previous_percent is None
    assert len(res.voi_rows()) == 5 * 4


def test_kidney_bed_when_g_given():
    rows = make_rows()
    for r in rows:
        if r["kind"] == "kidney":
            r["lea_catcheside_g"] = 0.05
    p = C.cross_cycle_metrics(rows).patients["P001"]
    kl = [x * a / 1000 for x, a in zip([0.43, 0.42, 0.42, 0.42], AA)]
    kr = [x * a / 1000 for x, a in zip([0.41, 0.42, 0.40, 0.40], AA)]
    assert p.kidney_bed_Gy == pytest.approx((R.bed_Gy(kl, 0.05) + R.bed_Gy(kr, 0.05)) / 2)


def test_missing_cycle_policies():
    rows = make_rows(skip={("tumor_node_2", 3)})
    warn = C.cross_cycle_metrics(rows)
    p = warn.patients["P001"]
    missing = [m for m in warn.voi_cycles if m.voi == "tumor_node_2" and m.cycle == 3][0]
    assert not missing.present and missing.absorbed_dose_Gy is None
    nxt = [m for m in warn.voi_cycles if m.voi == "tumor_node_2" and m.cycle == 4][0]
    assert nxt.ad_per_aa_change_vs_previous_percent is None  # previous cycle missing
    cum2 = sum(x * a / 1000 for x, a, c in zip([2.0, 2.0, 1.8, 1.5], AA, [1, 2, 3, 4]) if c != 3)
    assert p.tumor_cumulative_dose_Gy["tumor_node_2"] == pytest.approx(cum2)
    assert any("missing cycle(s) [3]" in w for w in p.warnings)
    excl = C.cross_cycle_metrics(rows, missing_cycles="exclude").patients["P001"]
    assert excl.tumors == ("tumor_liver_1",)
    assert excl.delta_ad_per_aa_percent == pytest.approx(-50.0)
    with pytest.raises(InputDataError, match="tumor_node_2.*cycle\\(s\\) \\[3\\]"):
        C.cross_cycle_metrics(rows, missing_cycles="raise")


def test_exclusion_flag_and_min_volume():
    rows = make_rows()
    for r in rows:
        if r["voi"] == "tumor_node_2":
            r["excluded"] = True
    p = C.cross_cycle_metrics(rows).patients["P001"]
    assert p.tumors == ("tumor_liver_1",) and p.excluded_tumors == ("tumor_node_2",)
    rows = make_rows()
    for r in rows:
        if r["voi"] == "tumor_liver_1" and r["cycle"] == 1:
            r["volume_ml"] = 4.0
    p = C.cross_cycle_metrics(rows, min_tumor_volume_ml=10.0).patients["P001"]
    assert p.tumors == ("tumor_node_2",)
    assert any("excluded (volume 4 mL" in w for w in p.warnings)


def test_csv_strings_multiple_patients_and_single_kidney():
    rows = [{k: (str(v) if not isinstance(v, str) else v) for k, v in r.items()} for r in make_rows("P002")]
    rows = [r for r in rows if r["voi"] != "kidney_right"]
    rows += make_rows("P001")
    res = C.cross_cycle_metrics(rows)
    assert set(res.patients) == {"P001", "P002"}
    p2 = res.patients["P002"]
    kl = sum(x * a / 1000 for x, a in zip([0.43, 0.42, 0.42, 0.42], AA))
    assert p2.kidney_cumulative_dose_Gy == pytest.approx(kl)
    assert any("one kidney VOI" in w for w in p2.warnings)
    assert res.patients["P001"].cumulative_tumor_dose_Gy == pytest.approx(p2.cumulative_tumor_dose_Gy)


def test_ad_per_aa_computed_when_absent_and_inconsistency_warned():
    rows = make_rows()
    for r in rows:
        r.pop("ad_per_aa_Gy_per_GBq")
    p = C.cross_cycle_metrics(rows).patients["P001"]
    assert p.delta_ad_per_aa_percent == pytest.approx(100 * ((1.6 + 1.5) / (3.2 + 2.0) - 1))
    rows = make_rows()
    rows[0]["ad_per_aa_Gy_per_GBq"] = 5.0
    res = C.cross_cycle_metrics(rows)
    assert any("differs from" in w for w in res.warnings)


def test_single_cycle_no_delta():
    rows = [r for r in make_rows() if r["cycle"] == 1]
    p = C.cross_cycle_metrics(rows).patients["P001"]
    assert p.delta_ad_per_aa_percent is None
    assert any("only cycle 1" in w for w in p.warnings)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda r: r.pop("absorbed_dose_Gy"), r"rows\[0\]: missing column 'absorbed_dose_Gy'"),
        (lambda r: r.update(kind="lesion"), r"rows\[0\]\['kind'\] must be one of"),
        (lambda r: r.update(cycle=1.5), r"rows\[0\]\['cycle'\] must be an integer"),
        (lambda r: r.update(absorbed_dose_Gy=-1.0), r"rows\[0\]\['absorbed_dose_Gy'\] must be >= 0"),
        (lambda r: r.update(administered_activity_MBq=0), r"rows\[0\]\['administered_activity_MBq'\] must be > 0"),
        (lambda r: r.update(absorbed_dose_Gy="abc"), r"rows\[0\]\['absorbed_dose_Gy'\] must be a number"),
        (lambda r: r.update(absorbed_dose_Gy=float("nan")), r"rows\[0\]\['absorbed_dose_Gy'\] must be finite"),
        (lambda r: r.update(excluded="maybe"), r"rows\[0\]\['excluded'\] must be a boolean"),
    ],
)
def test_row_validation_names_row_and_column(mutate, match):
    rows = make_rows()
    mutate(rows[0])
    with pytest.raises(InputDataError, match=match):
        C.cross_cycle_metrics(rows)


def test_other_validation():
    rows = make_rows()
    with pytest.raises(InputDataError, match="duplicate"):
        C.cross_cycle_metrics(rows + [dict(rows[0])])
    with pytest.raises(InputDataError, match="rows is empty"):
        C.cross_cycle_metrics([])
    with pytest.raises(InputDataError, match="rows must be a sequence"):
        C.cross_cycle_metrics("voi_cycle_doses.csv")
    with pytest.raises(InputDataError, match="missing_cycles"):
        C.cross_cycle_metrics(rows, missing_cycles="ignore")
    with pytest.raises(InputDataError, match="min_tumor_volume_ml"):
        C.cross_cycle_metrics(rows, min_tumor_volume_ml=-1)
    bad = make_rows()
    bad[1]["kind"] = "organ"  # same VOI, different kind in cycle 2
    with pytest.raises(InputDataError, match="has kind"):
        C.cross_cycle_metrics(bad)
