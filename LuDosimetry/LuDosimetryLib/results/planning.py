"""One planning statement for the next cycle: the chosen rule recommends, the other is shown for comparison.

Two published rules are computed in :mod:`.summary`:

* ``kidney_23Gy`` — cumulative kidney absorbed dose 23 Gy spread over the remaining planned cycles
  (Macsuka et al., J Nucl Med 2026);
* ``renal_BED_27Gy`` — fixed 7.4 GBq cycles until the renal BED reaches 27 ± 2 Gy (Sundlöv et al.,
  Eur J Nucl Med Mol Imaging 2022).

:func:`planning_statement` words both neutrally ("a 5th cycle of 7.4 GBq would bring the renal BED
to 23.2 Gy (limit 27 ± 2 Gy)") and marks the result as a planning aid, not a prescription.
Doses in Gy, activities in MBq/GBq; kidney values are the means over the kidney VOIs.
"""

from __future__ import annotations

from ..references import cite

PLANNING_RULES = ("kidney_23Gy", "renal_BED_27Gy")
RULE_SUMMARY_KEYS = {"kidney_23Gy": "next_cycle_activity", "renal_BED_27Gy": "next_cycle_activity_renal_bed"}
RULE_NAMES = {"kidney_23Gy": "23 Gy cumulative kidney-dose rule", "renal_BED_27Gy": "renal BED rule (27 ± 2 Gy)"}
RULE_REFERENCES = {"kidney_23Gy": "macsuka2026", "renal_BED_27Gy": "sundlov2022"}
DISCLAIMER = ("Planning aid, not a prescription: the activity of a further cycle is a clinical decision that "
              "also weighs renal function, blood counts and response.")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def rule_sentence(rule: str, plan: dict | None) -> str:
    """Neutral sentence for one rule's plan (a dict of summary.json), with its reference."""
    ref = cite(RULE_REFERENCES[rule])
    if plan is None:
        return f"{RULE_NAMES[rule]}: not applicable (no kidney VOI) ({ref})."
    nums = plan.get("numbers") or {}
    n = plan.get("next_cycle")
    act = plan.get("activity_MBq") or None  # 0 MBq: no further cycle
    cyc = f"a {_ordinal(n)} cycle" if isinstance(n, int) else "a further cycle"
    if rule == "kidney_23Gy":
        limit = nums.get("limit_Gy")
        delivered = nums.get("delivered_Gy")
        if act is None:
            text = (f"no further cycle within the planned course; cumulative kidney dose (mean of the kidneys) "
                    f"{delivered:.1f} Gy (limit {limit:g} Gy)"
                    if delivered is not None else plan.get("explanation", ""))
        else:
            adaa = nums.get("kidney_ad_per_aa_Gy_per_GBq")
            after = delivered + act / 1000.0 * adaa if adaa is not None and delivered is not None else None
            text = (f"{cyc} of {act / 1000.0:.2f} GBq would bring the cumulative kidney dose (mean of the kidneys) to "
                    f"{after:.1f} Gy (limit {limit:g} Gy over the remaining {nums.get('cycles_remaining')} cycle(s))"
                    if after is not None else plan.get("explanation", ""))
    else:
        target, tol = nums.get("target_bed_Gy"), nums.get("tolerance_Gy")
        projected = nums.get("projected_bed_Gy")
        delivered = nums.get("delivered_bed_Gy")
        if act is not None and projected is not None:
            text = (f"{cyc} of {act / 1000.0:.1f} GBq would bring the renal BED to {projected:.1f} Gy "
                    f"(limit {target:g} ± {tol:g} Gy)")
        elif projected is not None and delivered is not None:
            text = (f"renal BED {delivered:.1f} Gy; {cyc} of the fixed activity would bring it to {projected:.1f} Gy, "
                    f"above the limit {target:g} ± {tol:g} Gy" if projected > target + tol else
                    f"renal BED {delivered:.1f} Gy is within the limit window {target:g} ± {tol:g} Gy")
        else:
            text = plan.get("explanation", "")
    return f"{RULE_NAMES[rule]}: {text} ({ref})."


def planning_statement(summary: dict, planning_rule: str = "kidney_23Gy") -> dict:
    """``{"rule", "recommendation", "comparison", "disclaimer"}``: the sentence of the chosen rule
    (``planning_rule``, one of :data:`PLANNING_RULES`) and of the other one, shown for comparison."""
    if planning_rule not in PLANNING_RULES:
        raise ValueError(f"planning_rule must be one of {PLANNING_RULES}, got {planning_rule!r}")
    other = next(r for r in PLANNING_RULES if r != planning_rule)
    return {"rule": planning_rule,
            "recommendation": rule_sentence(planning_rule, summary.get(RULE_SUMMARY_KEYS[planning_rule])),
            "comparison_rule": other,
            "comparison": rule_sentence(other, summary.get(RULE_SUMMARY_KEYS[other])),
            "disclaimer": DISCLAIMER}
