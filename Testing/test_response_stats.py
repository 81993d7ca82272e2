"""Descriptive statistics (Table 2, rank tests, subgroups) and cut-off rules with exact CIs."""

import numpy as np
import pytest
from scipy import stats

from LuResponseLib.descriptive import (compare_responders, compare_subgroups, describe_cohort, median_se,
                                       per_cycle_summary, rank_sum, signed_rank, spearman)
from LuResponseLib.errors import AnalysisError
from LuResponseLib.rules import clopper_pearson, evaluate_cutoff_rule
from LuResponseLib.synthetic import make_demo_cohort
from LuResponseLib.table import cohort_table_from_rows, cycle_table_from_rows


@pytest.fixture(scope="module")
def demo():
    return make_demo_cohort(0)


def test_clopper_pearson_matches_scipy_exact_interval():
    for k, n in [(0, 8), (8, 8), (3, 10), (28, 73), (1, 1)]:
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        lo, hi = clopper_pearson(k, n)
        assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)
    # all 8 of 8 positives are responders (seed 000): PPV 1, exact lower bound 0.631
    assert clopper_pearson(8, 8)[0] == pytest.approx(0.025 ** (1 / 8), abs=1e-12)
    assert np.isnan(clopper_pearson(0, 0)[0])


def test_cutoff_rule_quadrants_and_metrics():
    cad = np.array([150, 120, 110, 105, 90, 50, 60, 200, 101, 30], float)
    d = np.array([-60, -55, -70, -10, -80, -5, -60, 0, -50, 10], float)
    y = np.array([1, 1, 0, 1, 0, 0, 1, 1, 1, 0], bool)
    r = evaluate_cutoff_rule(cad, d, y, 100, -50)
    # positives: cAD >= 100 and dAD/AA <= -50: indices 0,1,2,8 (-50 inclusive)
    assert (r.true_positive, r.false_positive, r.false_negative, r.true_negative) == (3, 1, 3, 3)
    assert r.quadrants == {"high_cAD_large_decrease": {"n": 4, "n_responders": 3},
                           "high_cAD_small_decrease": {"n": 2, "n_responders": 2},
                           "low_cAD_large_decrease": {"n": 2, "n_responders": 1},
                           "low_cAD_small_decrease": {"n": 2, "n_responders": 0}}
    assert r.ppv.estimate == pytest.approx(0.75) and r.npv.estimate == pytest.approx(0.5)
    assert r.sensitivity.estimate == pytest.approx(0.5) and r.specificity.estimate == pytest.approx(0.75)
    assert r.ppv.ci95 == clopper_pearson(3, 4)
    single = evaluate_cutoff_rule(cad, d, y, 100, None)
    assert single.true_positive + single.false_positive == 6 and single.quadrants == {}
    with pytest.raises(AnalysisError):
        evaluate_cutoff_rule(cad, d, y, None, None)


def test_tests_equal_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20), rng.normal(0.8, 1, 25)
    assert rank_sum(a, b).p_value == pytest.approx(stats.mannwhitneyu(a, b).pvalue)
    c = a + rng.normal(0.3, 1, 20)
    assert signed_rank(c, a).p_value == pytest.approx(stats.wilcoxon(c - a).pvalue)
    assert signed_rank(b).p_value == pytest.approx(stats.wilcoxon(b).pvalue)
    x, y = rng.normal(size=30), rng.normal(size=30)
    assert spearman(x, y).statistic == pytest.approx(stats.spearmanr(x, y).statistic)
    x[3] = np.nan
    assert spearman(x, y).n == 29


def test_median_se_is_bootstrap_sd_of_median():
    v = np.random.default_rng(3).lognormal(1, 0.4, 73)
    med, se = median_se(v, 2000, seed=1)
    assert med == pytest.approx(np.median(v))
    # for a log-normal sample the asymptotic SE of the median is ~ 1/(2 f(m) sqrt(n))
    m = np.exp(1)
    f = 1 / (m * 0.4 * np.sqrt(2 * np.pi))
    assert se == pytest.approx(1 / (2 * f * np.sqrt(73)), rel=0.35)


def test_per_cycle_summary_known_truth():
    # 3 patients, 4 cycles, 2 tumours each; patient-mean AD/AA = base * ratio[c]
    rows = []
    ratios = [1.0, 0.9, 0.8, 0.7]
    bases = {"A": 3.0, "B": 2.0, "C": 4.0}
    for p, base in bases.items():
        for c, r in enumerate(ratios, 1):
            for t, fac in (("t1", 0.5), ("t2", 1.5)):
                rows.append({"patient_id": p, "cycle": c, "voi": t, "kind": "tumor", "absorbed_dose_Gy": 1.0,
                             "ad_per_aa_Gy_per_GBq": base * r * fac, "effective_half_life_h": 80.0})
            rows.append({"patient_id": p, "cycle": c, "voi": "kidney_left", "kind": "kidney",
                         "absorbed_dose_Gy": 1.0, "ad_per_aa_Gy_per_GBq": 0.4, "effective_half_life_h": 47.0})
    s = per_cycle_summary(cycle_table_from_rows(rows), n_bootstrap=50)
    med = [e["median"] for e in s["tumor"]["ad_per_aa_Gy_per_GBq"]]
    np.testing.assert_allclose(med, [3.0 * r for r in ratios])
    ch = [e["median"] for e in s["tumor"]["percent_change_vs_cycle1"]]
    np.testing.assert_allclose(ch, [-10, -20, -30], atol=1e-9)
    assert s["kidney"]["ad_per_aa_Gy_per_GBq"][0]["median"] == pytest.approx(0.4)
    assert s["tumor"]["washout_half_life_h"][2]["median"] == pytest.approx(80.0)
    steps = [e["median"] for e in s["tumor"]["successive_change_percent"]["steps"]]
    np.testing.assert_allclose(steps, [-10, 100 * (0.8 / 0.9 - 1), 100 * (0.7 / 0.8 - 1)])


def test_demo_table2_and_wilcoxon(demo):
    s = per_cycle_summary(demo.cycles, n_bootstrap=100)
    t = s["tumor"]
    assert t["n_patients"] == 73 and t["cycles"] == [1, 2, 3, 4]
    m = np.array(t["patient_matrix"]["ad_per_aa_Gy_per_GBq"], float)
    assert t["percent_change_vs_cycle1"][2]["wilcoxon_p"] == pytest.approx(stats.wilcoxon(m[:, 3] - m[:, 0]).pvalue)
    # dAD/AA of the cohort table is the patient-mean AD/AA change cycle 4 vs 1
    ids = list(demo.table.patient_ids)
    for i, p in enumerate(t["patient_matrix"]["patient_ids"]):
        j = ids.index(p)
        assert 100 * (m[i, 3] / m[i, 0] - 1) == pytest.approx(demo.table.delta_ad_per_aa_percent[j], abs=2e-3)
    assert t["percent_change_vs_cycle1"][2]["median"] < 0 and t["percent_change_vs_cycle1"][2]["wilcoxon_p"] < 1e-6


def test_responders_and_subgroups(demo):
    t = demo.table
    r = compare_responders(t)
    cad = t.cumulative_tumor_dose_Gy
    y = t.responder
    assert r["cumulative_tumor_dose_Gy"]["rank_sum"]["p_value"] == pytest.approx(
        stats.mannwhitneyu(cad[y], cad[~y]).pvalue)
    assert set(r["cumulative_tumor_dose_Gy"]["pairwise"]) == {"PR vs SD", "PR vs PD", "SD vs PD"}
    sg = compare_subgroups(t)
    assert sg["sex"]["levels"] == {"F": {"n": 24}, "M": {"n": 49}}
    assert sg["grade"]["n_unknown"] == 3 and sg["grade"]["tested_levels"] == ["1", "2", "3"]
    assert sg["grade"]["cumulative_tumor_dose_Gy"]["test"]["method"] == "Kruskal-Wallis"
    dz = sg["sex"]["delta_ad_per_aa_percent"]["differs_from_zero"]["F"]
    f = np.array([s == "F" for s in t.column("sex")])
    assert dz["p_value"] == pytest.approx(stats.wilcoxon(t.delta_ad_per_aa_percent[f]).pvalue)
    d = describe_cohort(t)
    assert d["response_counts"]["PR"] == 28 and d["n_responders"] == 28
    assert d["spearman_cAD_vs_delta"]["p_value"] == pytest.approx(
        stats.spearmanr(cad, t.delta_ad_per_aa_percent).pvalue)


def test_missing_values_excluded_from_tests_and_listed():
    rows = [{"patient_id": f"P{i}", "cumulative_tumor_dose_Gy": "" if i == 0 else 50 + 10 * i,
             "delta_ad_per_aa_percent": -i, "response": "PR" if i % 2 else "SD"} for i in range(10)]
    t = cohort_table_from_rows(rows)
    r = compare_responders(t)
    assert r["cumulative_tumor_dose_Gy"]["excluded_patient_ids"] == ["P0"]
    assert r["cumulative_tumor_dose_Gy"]["non_responders"]["n"] == 4
