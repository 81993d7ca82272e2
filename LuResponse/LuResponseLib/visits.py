"""The visit-level tumour measurement table: target-lesion size at every scan of every patient.

CSV, one row per patient and scan (the optional input of the shrinkage analyses of Pavel et al.,
Cancer Med 2025, NETTER-1 ad hoc analysis)::

    patient_id,days_from_start,sum_of_diameters_mm[,percent_change][,progression]

* ``days_from_start``: day of the scan counted from the start of therapy (day 0; the baseline
  scan is the last one on or before day 0, so it may be negative).
* ``sum_of_diameters_mm``: RECIST 1.1 sum of the target-lesion diameters (mm); the percent change
  from baseline (PCHG) is then computed from the baseline row.  Or ``percent_change`` directly
  (PCHG in %, negative = shrinkage; a baseline row is then optional).  At least one of the two
  columns must be present; where both are, ``percent_change`` must agree with the sums within
  0.5 percentage points.
* ``progression``: 1 if progression was found at this scan (RECIST: sum >= 20 % above the
  nadir and/or new lesions), else 0 (empty = 0).  A progression scan may lack a measurement
  (e.g. progression by new lesions only).

:class:`VisitTable` validates the rows (one :class:`CohortTableError` listing every problem:
duplicate scans, non-numbers, a progression flag that is not 0/1, neither size column) and
gives, per patient, the post-baseline PCHG series and the day of first progression;
:meth:`VisitTable.best_percent_change` is the best (lowest) PCHG up to a day limit, on or before
first progression, as in Pavel et al. §2.3.1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import CohortTableError, TableProblem
from .readers import ColumnSpec, _sorted, group_rows_by_patient, read_csv_rows, validate_rows

VISIT_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("patient_id", "id", True, description="patient identifier (as in the cohort table)"),
    ColumnSpec("days_from_start", "number", True, None, None,
               "day of the scan from the start of therapy (baseline: the last scan on or before day 0)"),
    ColumnSpec("sum_of_diameters_mm", "number", False, 0.0, None, "RECIST 1.1 sum of target-lesion diameters (mm)"),
    ColumnSpec("percent_change", "number", False, -100.0, None,
               "percent change of the sum of diameters from baseline (%), negative = shrinkage"),
    ColumnSpec("progression", "event", False, description="1 = progression found at this scan, 0 = not"),
)
PCHG_AGREEMENT_PERCENT = 0.5
RECIST_PD_INCREASE_PERCENT = 20.0


@dataclass
class PatientVisits:
    """One patient's scans after baseline (day > 0), sorted by day.

    ``percent_change``: PCHG of each scan (NaN where the scan has no measurement);
    ``progression``: progression flag; ``first_progression_day``: day of the first scan with
    progression (None = no progression recorded); ``has_baseline``: a baseline size is known
    (a row on or before day 0 with a sum of diameters, or PCHG given directly)."""

    days: np.ndarray
    percent_change: np.ndarray
    progression: np.ndarray
    has_baseline: bool
    first_progression_day: float | None

    def usable(self, limit_days: float | None = None) -> np.ndarray:
        """Mask of scans with a PCHG, after baseline, on or before ``limit_days`` (None = no
        limit) and on or before the first progression."""
        m = ~np.isnan(self.percent_change)
        if limit_days is not None:
            m &= self.days <= limit_days
        if self.first_progression_day is not None:
            m &= self.days <= self.first_progression_day
        return m

    def best_percent_change(self, limit_days: float | None = None) -> float:
        """Best (lowest) PCHG up to ``limit_days`` on or before first progression; NaN if none."""
        m = self.usable(limit_days)
        return float(self.percent_change[m].min()) if m.any() else math.nan

    def progressed_at_first_assessment(self) -> bool:
        """Best overall response PD from the scans alone: the first post-baseline scan shows
        progression (flag, or PCHG >= +20 %)."""
        if self.days.size == 0:
            return False
        pc = self.percent_change[0]
        return bool(self.progression[0]) or (not np.isnan(pc) and pc >= RECIST_PD_INCREASE_PERCENT)


@dataclass
class VisitTable:
    """Validated visit-level table (see module doc); ``patients`` maps patient_id to
    :class:`PatientVisits`; ``notes`` lists patients without a usable baseline."""

    columns: dict[str, np.ndarray]
    source: str = "<memory>"
    patients: dict[str, PatientVisits] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.columns["patient_id"])

    @property
    def patient_ids(self) -> list[str]:
        return list(self.patients)

    def best_percent_change(self, limit_days: float | None = None) -> dict[str, float]:
        """{patient: best PCHG up to ``limit_days`` (None = whole follow-up), on or before first
        progression} (NaN = no post-baseline measurement in that window)."""
        return {p: v.best_percent_change(limit_days) for p, v in self.patients.items()}

    def write_csv(self, path: str | Path) -> Path:
        from .readers import write_columns_csv

        return write_columns_csv(self.columns, path)


def visit_table_from_rows(rows: Sequence[Mapping[str, object]], source: str = "<memory>",
                          header: Sequence[str] | None = None,
                          lines: Sequence[int | None] | None = None) -> VisitTable:
    """Validate visit rows (one :class:`CohortTableError` listing every problem)."""
    if header is None:
        header = list(dict.fromkeys(k for r in rows for k in r)) or ["patient_id", "days_from_start"]
    lines = list(lines) if lines is not None else [i + 2 for i in range(len(rows))]
    problems: list[TableProblem] = []
    columns, _missing = validate_rows(header, rows, lines, VISIT_COLUMNS, source, "visit table", "patient_id",
                                      unique_ids=False, collect=problems)
    has_sum = "sum_of_diameters_mm" in columns
    has_pc = "percent_change" in columns
    if not (has_sum or has_pc):
        problems.append(TableProblem(None, "sum_of_diameters_mm",
                                     "the visit table needs a sum_of_diameters_mm or a percent_change column"))
    if not rows:
        problems.append(TableProblem(None, None, "the table has no rows"))
    if any(q.line is None for q in problems) or "days_from_start" not in columns:  # header-level: stop here
        raise CohortTableError(source, _sorted(problems, header), "visit table")
    n = len(rows)
    pid = columns["patient_id"]
    day = columns["days_from_start"]
    size = columns["sum_of_diameters_mm"] if has_sum else np.full(n, np.nan)
    pc = columns["percent_change"] if has_pc else np.full(n, np.nan)
    prog = columns["progression"] if "progression" in columns else np.zeros(n)
    prog = np.where(np.isnan(prog), 0.0, prog)
    seen: dict[tuple, int | None] = {}
    for i in range(n):
        if np.isnan(day[i]):
            continue
        key = (pid[i], float(day[i]))
        if key in seen:
            problems.append(TableProblem(lines[i], "days_from_start",
                                         f"two scans on day {day[i]:g} (also line {seen[key]})", str(pid[i])))
        seen[key] = lines[i]
        if np.isnan(size[i]) and np.isnan(pc[i]) and not prog[i] and day[i] > 0:
            problems.append(TableProblem(lines[i], "sum_of_diameters_mm",
                                         "a post-baseline scan without a measurement must be a progression scan "
                                         "(progression = 1)", str(pid[i])))
    patients: dict[str, PatientVisits] = {}
    notes: list[str] = []
    for p, sel in group_rows_by_patient(pid, day).items():
        base = [i for i in sel if day[i] <= 0 and not np.isnan(size[i])]
        base_size = float(size[base[-1]]) if base else math.nan
        if base and base_size <= 0:
            problems.append(TableProblem(lines[base[-1]], "sum_of_diameters_mm",
                                         "the baseline sum of diameters must be > 0 mm", str(p)))
            continue
        post = [i for i in sel if day[i] > 0]
        pchg = np.full(len(post), np.nan)
        for k, i in enumerate(post):
            from_size = 100.0 * (size[i] / base_size - 1.0) if base and not np.isnan(size[i]) else math.nan
            if not np.isnan(pc[i]):
                if not np.isnan(from_size) and abs(from_size - pc[i]) > PCHG_AGREEMENT_PERCENT:
                    problems.append(TableProblem(lines[i], "percent_change",
                                                 f"{pc[i]:g} % disagrees with the sums of diameters "
                                                 f"({from_size:.2f} % from the baseline {base_size:g} mm)", str(p)))
                pchg[k] = pc[i]
            else:
                pchg[k] = from_size
        has_baseline = bool(base) or bool(np.any(~np.isnan(pc[post]))) if post else bool(base)
        if not has_baseline:
            notes.append(f"{p}: no baseline sum of diameters (a scan on or before day 0): percent changes unknown")
        d = day[post].astype(float)
        pr = prog[post].astype(bool)
        first = float(d[pr][0]) if pr.any() else None
        patients[str(p)] = PatientVisits(d, pchg, pr, has_baseline, first)
    if problems:
        raise CohortTableError(source, _sorted(problems, header), "visit table")
    return VisitTable(columns, source, patients, notes)


def load_visit_table(path: str | Path) -> VisitTable:
    """Read and validate a visit-level CSV (columns in :data:`VISIT_COLUMNS`)."""
    header, rows, lines = read_csv_rows(path)
    return visit_table_from_rows(rows, str(path), header, lines)
