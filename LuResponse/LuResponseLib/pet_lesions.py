"""Lesion-level response on PET as in Santoro-Fernandes et al. (J Nucl Med 2025).

Input: a long table, one row per lesion and PET scan, with lesion IDs kept across time (the
paper's lesion-ROI *tracks*)::

    patient_id,lesion_id,days_from_start,total_uptake[,uptake_unit][,modality]

* ``days_from_start``: day of the scan; the patient's first scan is the **baseline**, each later
  scan a **follow-up**.  The scans of a patient are the distinct days in its rows.
* ``total_uptake``: total lesion uptake, SUVtotal (SUVmean × volume) or MBq; 0 or empty = the
  lesion is not seen at that scan.  A lesion without a row at a scan is not seen either (to
  record a scan where nothing is seen, give its lesions with 0).
* ``uptake_unit``: ``SUVtotal`` or ``MBq`` (one unit per patient); ``modality``: ``PET``
  (default).  Any other modality (e.g. ``SPECT`` of the therapy cycles) is analysed the same way
  but labelled a *dosimetry analogue*, not the paper's PET categories.

Each lesion at each follow-up, against baseline: *new* (not seen at baseline, seen now),
*disappearing* (seen at baseline, not now), *decreasing* (ΔSUVtotal < −30 %), *stable*
(−30 % ≤ Δ ≤ +30 %), *increasing* (Δ > +30 %).  A patient shows **response heterogeneity** at a
follow-up when new-or-increasing and decreasing-or-disappearing lesions are both present.
Also reported, as in the paper: of the lesions new at the first follow-up, how many resolved by
the last one; of those disappearing at the first follow-up, how many returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import CohortTableError, TableProblem
from .lesions import LESION_CATEGORIES, SEED003_THRESHOLD_PERCENT, lesion_category
from .readers import ColumnSpec, _sorted, group_rows_by_patient, read_csv_rows, validate_rows

PET_LESION_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("patient_id", "id", True, description="patient identifier (as in the cohort table)"),
    ColumnSpec("lesion_id", "id", True, description="lesion (track) identifier, the same at every scan"),
    ColumnSpec("days_from_start", "number", True, description="day of the scan; the first scan is the baseline"),
    ColumnSpec("total_uptake", "number", True, 0.0, None,
               "total lesion uptake (SUVtotal or MBq); 0 or empty = not seen at this scan"),
    ColumnSpec("uptake_unit", "category", description="SUVtotal or MBq"),
    ColumnSpec("modality", "category", description="PET (default); anything else = dosimetry analogue"),
)
KNOWN_UNITS = {"suvtotal": "SUVtotal", "mbq": "MBq", "kbq": "kBq", "bq": "Bq"}
PAPER = "Santoro-Fernandes et al., J Nucl Med 2025"


def pet_label(modality: str) -> str:
    if modality.upper() == "PET":
        return f"PET lesion response categories ({PAPER})"
    return (f"dosimetry analogue of the lesion response categories of {PAPER}, on {modality} uptake "
            "(not the paper's baseline vs follow-up PET)")


@dataclass
class PetLesionTable:
    """Validated long PET lesion table: per patient, the scan days and a (lesion × scan) uptake
    matrix (NaN = not seen)."""

    source: str
    scans: dict[str, np.ndarray]
    lesions: dict[str, list[str]]
    uptake: dict[str, np.ndarray]
    unit: dict[str, str]
    modality: str = "PET"
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return pet_label(self.modality)


def pet_lesion_table_from_rows(rows: Sequence[Mapping[str, object]], source: str = "<memory>",
                               header: Sequence[str] | None = None,
                               lines: Sequence[int | None] | None = None) -> PetLesionTable:
    """Validate PET lesion rows (one :class:`CohortTableError` listing every problem)."""
    if header is None:
        header = list(dict.fromkeys(k for r in rows for k in r)) or [s.name for s in PET_LESION_COLUMNS[:4]]
    lines = list(lines) if lines is not None else [i + 2 for i in range(len(rows))]
    problems: list[TableProblem] = []
    cols, _missing = validate_rows(header, rows, lines, PET_LESION_COLUMNS, source, "PET lesion table", "patient_id",
                                   unique_ids=False, collect=problems)
    if not rows:
        problems.append(TableProblem(None, None, "the table has no rows"))
    if any(q.line is None for q in problems):
        raise CohortTableError(source, _sorted(problems, header), "PET lesion table")
    n = len(rows)
    pid, lid, day, up = cols["patient_id"], cols["lesion_id"], cols["days_from_start"], cols["total_uptake"]
    units = cols.get("uptake_unit", np.array([None] * n, dtype=object))
    mods = {str(m).strip().upper() for m in cols.get("modality", np.array([None] * n, dtype=object)) if m}
    if len(mods) > 1:
        problems.append(TableProblem(None, "modality", f"one modality per table (found {', '.join(sorted(mods))})"))
    seen: dict[tuple, int | None] = {}
    for i in range(n):
        if units[i] is not None and str(units[i]).lower() not in KNOWN_UNITS:
            problems.append(TableProblem(lines[i], "uptake_unit", f"unknown unit '{units[i]}' (allowed: SUVtotal, "
                                                                 "MBq, kBq, Bq)", pid[i]))
        key = (pid[i], lid[i], day[i])
        if None in key or np.isnan(day[i]):
            continue
        if key in seen:
            problems.append(TableProblem(lines[i], "lesion_id", f"lesion '{lid[i]}' twice on day {day[i]:g} "
                                                               f"(also line {seen[key]})", pid[i]))
        seen[key] = lines[i]
    scans, lesions, uptake, unit, notes = {}, {}, {}, {}, []
    for p, sel in group_rows_by_patient(pid, day).items():
        u = {KNOWN_UNITS[str(units[i]).lower()] for i in sel if units[i] is not None
             and str(units[i]).lower() in KNOWN_UNITS}
        if len(u) > 1:
            problems.append(TableProblem(None, "uptake_unit", f"mixed units {', '.join(sorted(u))} in one patient", p))
        unit[p] = u.pop() if u else "not stated"
        days = np.unique(day[sel])
        ids = list(dict.fromkeys(lid[i] for i in sel))
        m = np.full((len(ids), days.size), np.nan)
        for i in sel:
            v = up[i]
            m[ids.index(lid[i]), np.searchsorted(days, day[i])] = v if v > 0 else np.nan
        if days.size < 2:
            notes.append(f"{p}: a single PET scan (day {days[0]:g}): no follow-up, no categories")
        never = [ids[k] for k in range(len(ids)) if np.all(np.isnan(m[k]))]
        if never:
            notes.append(f"{p}: lesion(s) never seen (uptake 0 or empty at every scan): {', '.join(never)}")
        scans[p], lesions[p], uptake[p] = days, ids, m
    if problems:
        raise CohortTableError(source, _sorted(problems, header), "PET lesion table")
    modality = mods.pop() if mods else "PET"
    return PetLesionTable(source, scans, lesions, uptake, unit, modality, notes)


def load_pet_lesion_table(path: str | Path) -> PetLesionTable:
    """Read and validate a PET lesion CSV (columns in :data:`PET_LESION_COLUMNS`)."""
    header, rows, lines = read_csv_rows(path)
    return pet_lesion_table_from_rows(rows, str(path), header, lines)


def _heterogeneous(counts: Mapping[str, int]) -> bool:
    return (counts["new"] + counts["increasing"] > 0) and (counts["decreasing"] + counts["disappearing"] > 0)


@dataclass
class PetResponse:
    """Categories per lesion and follow-up, per-patient heterogeneity (see module doc)."""

    label: str
    lesion_rows: list[dict]
    patients: dict[str, dict]
    threshold_percent: float
    notes: list[str] = field(default_factory=list)

    def first_followup(self) -> list[dict]:
        """Lesion rows of each patient's first follow-up scan."""
        return [r for r in self.lesion_rows if r["followup_index"] == 1]

    def to_dict(self, include_lesions: bool = True) -> dict:
        first = self.first_followup()
        counts = {c: sum(r["category"] == c for r in first) for c in LESION_CATEGORIES}
        pts = [v for v in self.patients.values() if v["followups"]]
        n_het = sum(v["followups"][0]["heterogeneous"] for v in pts)
        new_first = [v["new_at_first_resolved_at_last"] for v in pts if v["new_at_first_resolved_at_last"]]
        dis_first = [v["disappearing_at_first_returned_at_last"] for v in pts
                     if v["disappearing_at_first_returned_at_last"]]
        d = {"label": self.label, "threshold_percent": self.threshold_percent,
             "definition": f"each follow-up scan against baseline: decreasing < -{self.threshold_percent:g} %, stable "
                           f"within +/-{self.threshold_percent:g} %, increasing > +{self.threshold_percent:g} %, new = "
                           "not seen at baseline, disappearing = not seen at follow-up; heterogeneous = (new or "
                           "increasing) and (decreasing or disappearing)",
             "first_followup_lesion_counts": counts, "n_patients_with_followup": len(pts),
             "n_heterogeneous_first_followup": int(n_het),
             "new_at_first_followup_resolved_at_last": [int(sum(a for a, _ in new_first)),
                                                        int(sum(b for _, b in new_first))],
             "disappearing_at_first_followup_returned_at_last": [int(sum(a for a, _ in dis_first)),
                                                                 int(sum(b for _, b in dis_first))],
             "patients": self.patients, "notes": list(self.notes)}
        if include_lesions:
            d["lesions"] = self.lesion_rows
        return d


def categorize_pet_lesions(table: PetLesionTable,
                           threshold_percent: float = SEED003_THRESHOLD_PERCENT) -> PetResponse:
    """Categories of every lesion at every follow-up against baseline, heterogeneity per patient
    and follow-up, and the first-to-last follow-up transitions of new / disappearing lesions."""
    rows, patients = [], {}
    for p, days in table.scans.items():
        m = table.uptake[p]
        ids = table.lesions[p]
        fus = []
        cats_by_fu = []
        for k in range(1, days.size):
            counts = dict.fromkeys(LESION_CATEGORIES, 0)
            cats = {}
            for j, lesion in enumerate(ids):
                b, f = m[j, 0], m[j, k]
                if np.isnan(b) and np.isnan(f):
                    continue
                c = lesion_category(b, f, threshold_percent)
                cats[lesion] = c
                counts[c] += 1
                change = None if (np.isnan(b) or np.isnan(f)) else 100.0 * (f / b - 1.0)
                rows.append({"patient_id": p, "lesion_id": lesion, "followup_index": k,
                             "followup_day": float(days[k]), "category": c, "change_percent": change})
            cats_by_fu.append(cats)
            fus.append({"day": float(days[k]), **counts, "heterogeneous": _heterogeneous(counts)})
        entry = {"baseline_day": float(days[0]), "unit": table.unit[p], "followups": fus,
                 "new_at_first_resolved_at_last": None, "disappearing_at_first_returned_at_last": None}
        if len(cats_by_fu) >= 2:
            first, last_col = cats_by_fu[0], m[:, -1]
            new1 = [ids.index(x) for x, c in first.items() if c == "new"]
            dis1 = [ids.index(x) for x, c in first.items() if c == "disappearing"]
            entry["new_at_first_resolved_at_last"] = (len(new1), int(sum(np.isnan(last_col[j]) for j in new1)))
            entry["disappearing_at_first_returned_at_last"] = (len(dis1),
                                                               int(sum(~np.isnan(last_col[j]) for j in dis1)))
        patients[p] = entry
    return PetResponse(table.label, rows, patients, threshold_percent, list(table.notes))


def first_followup_arrays(resp: PetResponse) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(patient_id, lesion_id, category, change %) of the first follow-up, as arrays."""
    first = resp.first_followup()
    return (np.array([r["patient_id"] for r in first], dtype=object),
            np.array([r["lesion_id"] for r in first], dtype=object),
            np.array([r["category"] for r in first], dtype=object),
            np.array([math.nan if r["change_percent"] is None else r["change_percent"] for r in first], dtype=float))


def pet_lesion_csv_text(table: PetLesionTable) -> str:
    """The table back as CSV text (one row per lesion and scan; 0 = not seen)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["patient_id", "lesion_id", "days_from_start", "total_uptake", "uptake_unit", "modality"])
    for p, days in table.scans.items():
        for j, lesion in enumerate(table.lesions[p]):
            for k, d in enumerate(days):
                v = table.uptake[p][j, k]
                w.writerow([p, lesion, f"{d:.10g}", "0" if np.isnan(v) else f"{v:.10g}",
                            "" if table.unit[p] == "not stated" else table.unit[p], table.modality])
    return buf.getvalue()
