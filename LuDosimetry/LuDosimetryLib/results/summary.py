"""summary.json (contract 2) of one patient: cross-cycle metrics and next-cycle activity plans."""

from __future__ import annotations

import inspect

import numpy as np

from ..physics import radiobiology
from ..io.study import Study
from . import cycle_metrics


def _summarise(study: Study, rows: list, warnings: list, n_planned_cycles: int,
               planning_rule: str = "kidney_23Gy") -> dict:
    """summary.json (contract 2): cross-cycle metrics (:func:`cycles.cross_cycle_metrics`),
    kidney BED from the per-row Lea-Catcheside factors, and the next-cycle activity by the
    23 Gy cumulative kidney-dose rule of Macsuka et al., J Nucl Med 2026
    (:func:`radiobiology.plan_next_activity_seed000`) and by the renal-BED rule of Sundlöv et al.,
    Eur J Nucl Med Mol Imaging 2022 (:func:`radiobiology.plan_seed002`); ``planning`` states which
    of the two ``planning_rule`` makes the recommendation (:func:`.planning.planning_statement`)."""
    metrics = cycle_metrics.cross_cycle_metrics(rows)
    patient = metrics.patients[study.patient_id]
    summary = patient.summary_fields()
    summary["warnings"] = list(dict.fromkeys(warnings + summary["warnings"]))
    summary.update({
        "radionuclide": study.radionuclide,
        "administered_activity_MBq": [c.administered_activity_MBq for c in study.cycles],
        "tumor_cumulative_dose_Gy": patient.tumor_cumulative_dose_Gy,
        "lesion_dose_Gy": {"min": patient.lesion_total_dose_min_Gy, "mean": patient.lesion_total_dose_mean_Gy,
                           "max": patient.lesion_total_dose_max_Gy},
        "tumor_mean_ad_per_aa_Gy_per_GBq_by_cycle": patient.tumor_mean_ad_per_aa_by_cycle,
        "tumors_included": list(patient.tumors),
        "tumors_excluded": list(patient.excluded_tumors),
        "next_cycle_activity": _next_cycle_plan(rows, n_planned_cycles),
        "next_cycle_activity_renal_bed": _next_cycle_plan_renal_bed(rows),
    })
    from .planning import planning_statement

    summary["planning"] = planning_statement(summary, planning_rule)
    return summary


def _kidney_rows_by_cycle(rows: list) -> dict:
    kidney = {}
    for r in rows:
        if r["kind"] == "kidney":
            kidney.setdefault(r["cycle"], []).append(r)
    return kidney


def _next_cycle_plan_renal_bed(rows: list) -> dict | None:
    """Renal-BED rule of Sundlöv et al. 2022 (:func:`radiobiology.plan_seed002`): 7.4 GBq cycles
    until the renal BED
    reaches 27 +/- 2 Gy; kidney dose, G and AD/AA per cycle are the means over the kidney VOIs."""
    kidney = _kidney_rows_by_cycle(rows)
    if not kidney:
        return None
    given = sorted(kidney)
    doses = [float(np.mean([r["absorbed_dose_Gy"] for r in kidney[c]])) for c in given]
    gs = [float(np.mean([np.nan if r["lea_catcheside_g"] is None else r["lea_catcheside_g"] for r in kidney[c]]))
          for c in given]
    if not np.all(np.isfinite(gs)):
        return {"rule": "renal_BED_27Gy", "activity_MBq": None, "continue_treatment": None,
                "explanation": "kidney Lea-Catcheside factor not defined for every cycle: renal BED unknown"}
    ad_per_aa = [float(np.mean([r["ad_per_aa_Gy_per_GBq"] for r in kidney[c]])) for c in given]
    plan = radiobiology.plan_seed002(doses, gs, ad_per_aa)
    return {"rule": plan.rule, "activity_MBq": plan.next_activity_GBq * 1000.0 if plan.continue_treatment else None,
            "continue_treatment": plan.continue_treatment, "explanation": plan.reasoning,
            "warnings": list(plan.warnings), "next_cycle": given[-1] + 1, "numbers": dict(plan.numbers)}


def _next_cycle_plan(rows: list, n_planned_cycles: int) -> dict | None:
    """23 Gy cumulative kidney-dose rule (Macsuka et al. 2026) for the cycle after the last one given
    (cycle numbers, not counts)."""
    kidney = _kidney_rows_by_cycle(rows)
    if not kidney:
        return None
    given = sorted(kidney)
    last = given[-1]
    note = []
    if given != list(range(1, last + 1)):
        missing = sorted(set(range(1, last + 1)) - set(given))
        note.append(f"cycle(s) {missing} have no kidney dose: the delivered kidney dose is underestimated")
    remaining = n_planned_cycles - last
    if remaining < 1:
        limit = inspect.signature(radiobiology.plan_next_activity_seed000).parameters["limit_Gy"].default
        delivered_Gy = float(sum(np.mean([r["absorbed_dose_Gy"] for r in kidney[c]]) for c in given))
        return {"rule": "kidney_23Gy", "activity_MBq": None, "warnings": note, "next_cycle": last + 1,
                "numbers": {"delivered_Gy": delivered_Gy, "limit_Gy": limit},
                "explanation": f"cycle {last} of {n_planned_cycles} planned given: no further cycle planned"}
    delivered = [float(np.mean([r["absorbed_dose_Gy"] for r in kidney[c]])) for c in given]
    ad_per_aa = [float(np.mean([r["ad_per_aa_Gy_per_GBq"] for r in kidney[c]])) for c in given]
    plan = radiobiology.plan_next_activity_seed000(delivered, ad_per_aa, cycles_remaining=remaining)
    return {"rule": plan.rule, "activity_MBq": plan.next_activity_GBq * 1000.0, "explanation": plan.reasoning,
            "warnings": note + list(plan.warnings), "next_cycle": last + 1, "numbers": dict(plan.numbers)}


def new_run_id() -> str:
    """A unique identifier of one run, shown in the report and stored as summary.json ``run_id``:
    UTC time of the run and 8 random hexadecimal digits, e.g. ``20261205T031500Z-1a2b3c4d``."""
    import datetime as _dt
    import uuid

    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
