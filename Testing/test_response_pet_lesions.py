"""Lesion response on PET (Santoro-Fernandes et al., J Nucl Med 2025): categories at every follow-up
against baseline with lesion IDs across time, new lesions, heterogeneity, transitions, relation to
dose; a non-PET uptake is labelled a dosimetry analogue."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from LuResponseLib.analysis import CohortAnalysisOptions, run_cohort_analysis
from LuResponseLib.cohort import cohort_table_from_rows, lesion_table_from_rows
from LuResponseLib.errors import CohortTableError
from LuResponseLib.lesions import category_dose_relation, heterogeneity_dose_relation
from LuResponseLib.pet_lesions import (categorize_pet_lesions, load_pet_lesion_table, pet_lesion_csv_text,
                                       pet_lesion_table_from_rows)


def _rows(spec, unit="SUVtotal", modality=None):
    out = []
    for p, lesion, values in spec:
        for day, v in zip((-10, 120, 300), values):
            if v is None:
                continue  # no row: not seen at that scan
            r = {"patient_id": p, "lesion_id": lesion, "days_from_start": day, "total_uptake": v, "uptake_unit": unit}
            if modality:
                r["modality"] = modality
            out.append(r)
    return out


SPEC = [
    ("A", "L1", (100.0, 70.0, 50.0)),     # exactly -30 %: stable; then -50 %: decreasing
    ("A", "L2", (100.0, 130.0, 131.0)),   # exactly +30 %: stable; then +31 %: increasing
    ("A", "L3", (100.0, 69.0, 0.0)),      # decreasing; then disappearing
    ("A", "N1", (0.0, 20.0, 0.0)),        # new at the first follow-up, resolved by the last
    ("B", "L1", (50.0, 0.0, 40.0)),       # disappearing, then returns (stable vs baseline: -20 %)
    ("B", "L2", (50.0, 80.0, 90.0)),      # increasing
    ("B", "X", (0.0, 0.0, 0.0)),          # never seen: noted, not categorised
    ("C", "L1", (10.0, 9.0, None)),       # stable; no row at 300 d = not seen -> disappearing
    ("C", "L2", (10.0, 10.0, 10.0)),
]


def test_categories_over_time_heterogeneity_and_transitions():
    t = pet_lesion_table_from_rows(_rows(SPEC))
    assert t.modality == "PET" and t.label.startswith("PET lesion response categories (Santoro-Fernandes")
    r = categorize_pet_lesions(t)
    cat = {(x["patient_id"], x["lesion_id"], x["followup_index"]): x["category"] for x in r.lesion_rows}
    assert cat == {("A", "L1", 1): "stable", ("A", "L1", 2): "decreasing", ("A", "L2", 1): "stable",
                   ("A", "L2", 2): "increasing", ("A", "L3", 1): "decreasing", ("A", "L3", 2): "disappearing",
                   ("A", "N1", 1): "new", ("B", "L1", 1): "disappearing", ("B", "L1", 2): "stable",
                   ("B", "L2", 1): "increasing", ("B", "L2", 2): "increasing", ("C", "L1", 1): "stable",
                   ("C", "L1", 2): "disappearing", ("C", "L2", 1): "stable", ("C", "L2", 2): "stable"}
    ch = {(x["patient_id"], x["lesion_id"], x["followup_index"]): x["change_percent"] for x in r.lesion_rows}
    assert ch[("A", "L3", 1)] == pytest.approx(-31.0) and ch[("A", "N1", 1)] is None
    het = {p: [f["heterogeneous"] for f in v["followups"]] for p, v in r.patients.items()}
    assert het == {"A": [True, True], "B": [True, False], "C": [False, False]}
    assert r.patients["A"]["new_at_first_resolved_at_last"] == (1, 1)
    assert r.patients["B"]["disappearing_at_first_returned_at_last"] == (1, 1)
    d = r.to_dict()
    assert d["first_followup_lesion_counts"] == {"disappearing": 1, "decreasing": 1, "stable": 4, "increasing": 1,
                                                 "new": 1}
    assert d["n_heterogeneous_first_followup"] == 2 and d["n_patients_with_followup"] == 3
    assert d["new_at_first_followup_resolved_at_last"] == [1, 1]
    assert any("never seen" in n and "X" in n for n in r.notes)
    # the CSV written back reads to the same categories
    again = categorize_pet_lesions(pet_lesion_table_from_rows(
        [dict(zip(["patient_id", "lesion_id", "days_from_start", "total_uptake", "uptake_unit", "modality"], ln.split(",")))
         for ln in pet_lesion_csv_text(t).splitlines()[1:]]))
    assert [x["category"] for x in again.lesion_rows] == [x["category"] for x in r.lesion_rows]


def test_spect_uptake_is_labelled_dosimetry_analogue():
    t = pet_lesion_table_from_rows(_rows(SPEC[:4], unit="MBq", modality="SPECT"))
    assert t.label.startswith("dosimetry analogue") and "not the paper's baseline vs follow-up PET" in t.label


def test_pet_table_validation(tmp_path):
    p = tmp_path / "pet.csv"
    p.write_text("patient_id,lesion_id,days_from_start,total_uptake,uptake_unit\n"
                 "A,L1,0,10,SUVtotal\nA,L1,0,11,SUVtotal\nA,L2,100,5,MBq\nB,L1,0,-1,SUVtotal\nB,L1,50,3,SUV\n")
    with pytest.raises(CohortTableError) as e:
        load_pet_lesion_table(p)
    m = str(e.value)
    assert "line 3" in m and "twice on day 0" in m
    assert "mixed units MBq, SUVtotal in one patient" in m
    assert "line 5" in m and "below the minimum" in m
    assert "line 6" in m and "unknown unit 'SUV'" in m


def test_dose_relation_against_independent_computations():
    rng = np.random.default_rng(0)
    cats = np.array(["decreasing"] * 12 + ["disappearing"] * 5 + ["stable"] * 10 + ["increasing"] * 6 + ["new"] * 4,
                    dtype=object)
    ad = np.r_[rng.normal(150, 30, 17), rng.normal(100, 30, 16), np.full(4, np.nan)]
    ch = np.r_[rng.uniform(-90, -31, 12), np.full(5, np.nan), rng.uniform(-29, 29, 10), rng.uniform(31, 90, 6),
               np.full(4, np.nan)]
    r = category_dose_relation(cats, ad, ch)
    resp = np.isin(cats, ["decreasing", "disappearing"])[:33]
    # AUC: sklearn; U-based p: two-sided normal approximation without ties (closed form) within 2 %
    assert r["auc_responding"] == pytest.approx(roc_auc_score(resp, ad[:33]), abs=1e-14)
    n1, n0 = 17, 16
    u = r["auc_responding"] * n1 * n0
    z = (abs(u - n1 * n0 / 2) - 0.5) / np.sqrt(n1 * n0 * (n1 + n0 + 1) / 12)
    assert r["mann_whitney_p"] == pytest.approx(2 * stats.norm.sf(z), rel=0.02)
    # Kruskal-Wallis H from its closed form (no ties) and the chi-square tail
    groups = [ad[:33][cats[:33] == c] for c in ("disappearing", "decreasing", "stable", "increasing")]
    ranks = stats.rankdata(np.concatenate(groups))
    n = ranks.size
    sizes = np.cumsum([0] + [g.size for g in groups])
    h = 12 / (n * (n + 1)) * sum(ranks[a:b].sum() ** 2 / (b - a) for a, b in zip(sizes[:-1], sizes[1:])) - 3 * (n + 1)
    assert r["kruskal_wallis_p"] == pytest.approx(stats.chi2.sf(h, 3), rel=1e-9)
    # Spearman = Pearson of the ranks
    ok = ~np.isnan(ad) & ~np.isnan(ch)
    rho = np.corrcoef(stats.rankdata(ad[ok]), stats.rankdata(ch[ok]))[0, 1]
    assert r["spearman_rho_change"] == pytest.approx(rho, abs=1e-12) and r["n_spearman"] == 28
    assert r["n_lesions_without_dose"] == 4 and r["by_category"]["decreasing"]["n"] == 12
    h = heterogeneity_dose_relation({"A": True, "B": False, "C": False, "D": True}, {"A": 50, "B": 120, "C": 90,
                                                                                     "D": 60}, "cAD")
    assert h["median_heterogeneous"] == 55 and h["auc_not_heterogeneous"] == 1.0


def test_analysis_labels_and_joins_dose():
    cohort = cohort_table_from_rows([{"patient_id": p, "cumulative_tumor_dose_Gy": d, "delta_ad_per_aa_percent": -20,
                                      "response": r} for p, d, r in (("A", 80, "SD"), ("B", 60, "PD"),
                                                                     ("C", 150, "PR"))])
    les = lesion_table_from_rows([{"patient_id": p, "lesion_id": lid, "lesion_ad_Gy": d}
                                  for p, lid, d in (("A", "L1", 90), ("A", "L2", 40), ("A", "L3", 120),
                                                    ("B", "L1", 30), ("B", "L2", 20), ("C", "L1", 200),
                                                    ("C", "L2", 150))])
    res = run_cohort_analysis(cohort, CohortAnalysisOptions(n_bootstrap=10, n_cv_repeats=0), lesions=les,
                              pet_lesions=pet_lesion_table_from_rows(_rows(SPEC)))
    pet = res.to_dict()["lesions"]["pet_response"]
    dr = pet["dose_relation_first_followup"]
    assert dr["n_lesions_with_dose"] == 7 and dr["n_lesions_without_dose"] == 1   # N1 (new) has no dose
    assert dr["by_category"]["decreasing"] == {"n": 1, "median_Gy": 120.0, "q1_Gy": 120.0, "q3_Gy": 120.0}
    assert pet["heterogeneity_first_followup_by_response"] == {"SD": {"n": 1, "n_heterogeneous": 1},
                                                               "PD": {"n": 1, "n_heterogeneous": 1},
                                                               "PR": {"n": 1, "n_heterogeneous": 0}}
    # wide uptake columns from therapy SPECT: the dosimetry analogue, so named
    wide = lesion_table_from_rows([{"patient_id": "A", "lesion_id": "L1", "total_uptake_baseline": 10,
                                    "total_uptake_followup": 5, "uptake_unit": "MBq", "uptake_modality": "SPECT"}])
    res2 = run_cohort_analysis(cohort, CohortAnalysisOptions(n_bootstrap=10, n_cv_repeats=0), lesions=wide)
    assert res2.lesions["categories"]["label"].startswith("dosimetry analogue")
    wide3 = lesion_table_from_rows([{"patient_id": "A", "lesion_id": "L1", "total_uptake_baseline": 10,
                                     "total_uptake_followup": 5}])
    res3 = run_cohort_analysis(cohort, CohortAnalysisOptions(n_bootstrap=10, n_cv_repeats=0), lesions=wide3)
    assert any("uptake_modality not given" in w for w in res3.warnings)
