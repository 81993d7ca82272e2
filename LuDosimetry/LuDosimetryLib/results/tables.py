"""Result tables for display: the columns the Slicer module copies into table nodes and plots.

Everything here is computed from a ``PipelineResult`` (or its summary) without Slicer: the
time-activity points and fitted curves per VOI and cycle, AD/AA per cycle, summary.json
flattened to (quantity, value) rows, and the contract-3 cohort record of the patient.
Columns are {name: list}, padded with NaN so that all have the same length.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

#: Columns of the cohort table (contract 3) taken from summary.json.
COHORT_NUMBERS = ("cumulative_tumor_dose_Gy", "delta_ad_per_aa_percent", "kidney_cumulative_dose_Gy", "kidney_bed_Gy")


#: Units of the contract-2 columns that have one.
COLUMN_UNITS = {"volume_ml": "mL", "administered_activity_MBq": "MBq", "absorbed_dose_Gy": "Gy",
                "ad_per_aa_Gy_per_GBq": "Gy/GBq", "effective_half_life_h": "h", "mass_g": "g",
                "time_integrated_activity_MBq_h": "MBq h", "absorbed_dose_uncertainty_Gy": "Gy",
                "voxel_mean_dose_Gy": "Gy", "D90_Gy": "Gy", "D50_Gy": "Gy", "D10_Gy": "Gy", "EUD_Gy": "Gy",
                "t_eff_h": "h", "t_eff_uncertainty_h": "h", "stp_t_eff_dose_uncertainty_Gy": "Gy",
                "voxel_mean_dose_uncorrected_Gy": "Gy"}


def column_units(columns) -> dict:
    """{column: unit} for the given columns that have a unit (COLUMN_UNITS)."""
    return {c: COLUMN_UNITS[c] for c in columns if c in COLUMN_UNITS}


def numeric_columns(rows: list[dict], columns) -> set:
    """Columns whose values are all real numbers (not bool) or None: plottable."""
    return {c for c in columns
            if all(r.get(c) is None or (isinstance(r.get(c), numbers.Real) and not isinstance(r.get(c), bool))
                   for r in rows)}


def time_activity_columns(result, n: int = 121) -> tuple[dict, dict, str]:
    """(measured, fitted, units) for every VOI and cycle of a PipelineResult.

    measured: "<voi> C<cycle> hours" and "<voi> C<cycle>" (values in ``units``, MBq or Gy/h),
    NaN-padded; fitted: "hours" (n points from 0 to 1.25 x the latest scan) and "<voi> C<cycle>"
    from ``TimeActivityFit.evaluate``.
    """
    vois = list(dict.fromkeys(r["voi"] for r in result.rows))
    cycles = [c.cycle for c in result.study.cycles]
    longest = max((len(h) for (h, _y, _u) in result.samples.values()), default=0)
    max_hours = max((max(h) for (h, _y, _u) in result.samples.values() if len(h)), default=72.0)
    grid = np.linspace(0.0, 1.25 * max_hours, n)
    measured, fitted, units = {}, {"hours": [float(x) for x in grid]}, "MBq"
    for voi in vois:
        for cycle in cycles:
            if (voi, cycle) not in result.samples:
                continue
            hours, values, units = result.samples[(voi, cycle)]
            pad = [math.nan] * (longest - len(hours))
            measured[f"{voi} C{cycle} hours"] = [float(h) for h in hours] + pad
            measured[f"{voi} C{cycle}"] = [float(v) for v in values] + pad
            fit = result.fits.get((voi, cycle))
            if fit is not None:
                fitted[f"{voi} C{cycle}"] = [float(v) for v in np.asarray(fit.evaluate(grid), dtype=float)]
    return measured, fitted, units


def ad_per_aa_columns(rows: list[dict]) -> dict:
    """{"cycle": [...], <voi>: AD/AA (Gy/GBq) per cycle (NaN where missing)} from contract-2 rows."""
    vois = list(dict.fromkeys(r["voi"] for r in rows))
    cycles = sorted({r["cycle"] for r in rows})
    value = {(r["voi"], r["cycle"]): r.get("ad_per_aa_Gy_per_GBq") for r in rows}
    columns = {"cycle": [float(c) for c in cycles]}
    for voi in vois:
        columns[voi] = [math.nan if value.get((voi, c)) is None else float(value[(voi, c)]) for c in cycles]
    return columns


def summary_rows(summary: dict) -> list[list]:
    """summary.json (contract 2) as [quantity, value] rows: nested dicts as "key.sub", lists one item
    per line, None as ""; ``per_voi`` is left out (it is the VOI table)."""
    rows = []
    for key, value in summary.items():
        if key == "per_voi":
            continue
        if isinstance(value, dict):
            rows.extend([f"{key}.{sub}", "" if v is None else v] for sub, v in value.items())
        elif isinstance(value, (list, tuple)):
            rows.append([key, "\n".join(str(v) for v in value)])
        else:
            rows.append([key, "" if value is None else value])
    return rows


def _number(text):
    try:
        x = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def cohort_record(summary: dict, response: str = "") -> dict:
    """Contract-3 cohort row of the patient from summary values (numbers or their text, as read back
    from a table); missing or non-finite numbers are None."""
    if not summary:
        raise ValueError("no dosimetry summary: run the dosimetry first")
    record = {"patient_id": str(summary.get("patient_id", ""))}
    record.update({key: _number(summary.get(key)) for key in COHORT_NUMBERS[:2]})
    record["response"] = response or ""
    record.update({key: _number(summary.get(key)) for key in COHORT_NUMBERS[2:]})
    return record


def summary_html(summary: dict, max_warnings: int = 8) -> str:
    """The key patient numbers as short HTML for a GUI: cAD, delta AD/AA, kidney dose and BED, the
    next-cycle activity of both rules, lesion heterogeneity, excluded tumours and the first
    ``max_warnings`` warnings. ``summary``: flattened summary values (see :func:`summary_rows`),
    numbers or their text; missing numbers are shown as "n/a"."""
    import html

    def number(key, fmt):
        value = _number(summary.get(key))
        return "n/a" if value is None else fmt.format(value)

    def text(key):
        return html.escape(str(summary.get(key) or ""))

    lines = [
        f"Cumulative tumour dose (cAD, mean over tumours): <b>{number('cumulative_tumor_dose_Gy', '{:.1f} Gy')}</b>",
        f"Change of tumour AD/AA, last vs first cycle: <b>{number('delta_ad_per_aa_percent', '{:+.1f} %')}</b>",
        f"Kidney cumulative dose (mean of the kidneys): <b>{number('kidney_cumulative_dose_Gy', '{:.2f} Gy')}</b>, "
        f"BED <b>{number('kidney_bed_Gy', '{:.2f} Gy')}</b>",
    ]
    if summary.get("planning.recommendation"):  # one planning statement (results.planning)
        lines += [f"Next cycle (planning aid, not a prescription): <b>{text('planning.recommendation')}</b>",
                  f"For comparison: {text('planning.comparison')}"]
    else:
        lines += [
            ("Suggested next-cycle activity (kidney 23 Gy rule, Macsuka et al., J Nucl Med 2026): "
             f"<b>{number('next_cycle_activity.activity_MBq', '{:.0f} MBq')}</b> "
             f"{text('next_cycle_activity.explanation')}"),
            ("Renal BED 27 ± 2 Gy rule (Sundlöv et al., Eur J Nucl Med Mol Imaging 2022): "
             f"<b>{number('next_cycle_activity_renal_bed.activity_MBq', '{:.0f} MBq')}</b> "
             f"{text('next_cycle_activity_renal_bed.explanation')}"),
        ]
    heterogeneous = str(summary.get("lesion_tracking.heterogeneous", ""))
    if heterogeneous != "":
        lines.append("Lesion response heterogeneity (lesion AD/AA first vs last cycle; Santoro-Fernandes et al., "
                     f"J Nucl Med 2025): <b>{'yes' if heterogeneous.lower() in ('true', '1') else 'no'}</b>")
    excluded = str(summary.get("tumors_excluded") or "")
    if excluded:
        lines.append("Excluded tumours (minimum volume): " + html.escape(", ".join(excluded.splitlines())))
    warnings = str(summary.get("warnings") or "").splitlines()
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings[:max_warnings])
        if len(warnings) > max_warnings:
            items += f"<li>... and {len(warnings) - max_warnings} more (see the summary table)</li>"
        lines.append(f'<span style="color:#b00020">Warnings:</span><ul>{items}</ul>')
    return "<br>".join(lines)


def map_images(maps: dict | None) -> list[tuple[str, str, object]]:
    """(where, map name, SimpleITK image) for every voxel map of a PipelineResult, in a stable order:
    ``where`` is "C<cycle>" for per-cycle maps and "C<cycle> tp<n>" for per-scan maps; entries that
    are not images (e.g. dose statistics) are left out."""
    out = []
    for name, per_key in (maps or {}).items():
        if not isinstance(per_key, dict):
            continue
        for key, image in sorted(per_key.items(), key=lambda item: str(item[0])):
            if hasattr(image, "GetSize"):
                out.append((f"C{key[0]} tp{key[1] + 1}" if isinstance(key, tuple) else f"C{key}", name, image))
    return out


def tac_series_columns(measured_columns, voi: str) -> list[str]:
    """Names of the measured columns of one VOI ("<voi> C<cycle>", one per cycle, in table order); each has
    its "<name> hours" column and, when a fit exists, a fitted column of the same name."""
    return [c for c in measured_columns if c.startswith(f"{voi} C") and not c.endswith(" hours")
            and c[len(voi) + 2:].isdigit()]
