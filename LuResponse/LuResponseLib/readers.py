"""Reading and validating the CSV tables of LuResponse: column specifications and typed columns.

What each input table may contain is declared here as :class:`ColumnSpec` lists
(:data:`COHORT_COLUMNS` for the cohort table, architecture contract 3; :data:`CYCLE_COLUMNS` for
contract-2 ``voi_cycle_doses.csv``; :data:`LESION_COLUMNS` for the lesion table).
:func:`read_csv_rows` reads a CSV file into header, rows and line numbers, and
:func:`validate_rows` types every column, collecting *every* problem (unknown response codes,
missing required columns, duplicate patients, non-numeric or out-of-range values) into one
:class:`CohortTableError` listing each by line, patient and column.  Empty cells (or ``NA``,
``NaN``, ``n/a``, ``.``) are *missing values*: not errors, kept as NaN / ``None`` and listed.

The table objects built from these columns live in :mod:`.cohort`; assembly from result
folders in :mod:`.assemble`.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import CohortTableError, TableProblem

RESPONSE_CODES = ("CR", "PR", "SD", "PD")
RESPONDER_CODES = ("CR", "PR")
MISSING_TOKENS = {"", "na", "nan", "n/a", "none", "null", ".", "-", "missing"}

CAD = "cumulative_tumor_dose_Gy"
DELTA = "delta_ad_per_aa_percent"
REQUIRED_COLUMNS = ("patient_id", CAD, DELTA, "response")


@dataclass(frozen=True)
class ColumnSpec:
    """Type and allowed range of one column.

    kind: ``id`` (non-empty text), ``number``, ``integer``, ``event`` (0/1), ``category`` (text),
    ``response`` (CR/PR/SD/PD).
    """

    name: str
    kind: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""


COHORT_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("patient_id", "id", True, description="patient identifier (unique)"),
    ColumnSpec(CAD, "number", True, 0.0, None, "cumulative tumour absorbed dose cAD (Gy), patient mean over tumours"),
    ColumnSpec(DELTA, "number", True, -100.0, None, "change of tumour AD/AA, last cycle vs cycle 1 (%)"),
    ColumnSpec("response", "response", True, description="best overall RECIST 1.1 response: CR, PR, SD, PD"),
    ColumnSpec("sex", "category", description="sex (e.g. M/F)"),
    ColumnSpec("primary_site", "category", description="primary tumour site"),
    ColumnSpec("grade", "category", description="tumour grade"),
    ColumnSpec("pfs_months", "number", False, 0.0, None, "progression-free survival time (months)"),
    ColumnSpec("pfs_event", "event", description="1 = progression or death, 0 = censored"),
    ColumnSpec("os_months", "number", False, 0.0, None, "overall survival time (months)"),
    ColumnSpec("os_event", "event", description="1 = death, 0 = censored"),
    ColumnSpec("kidney_cumulative_dose_Gy", "number", False, 0.0, None, "cumulative kidney absorbed dose (Gy)"),
    ColumnSpec("kidney_bed_Gy", "number", False, 0.0, None, "kidney biologically effective dose (Gy)"),
    ColumnSpec("best_shrinkage_percent", "number", False, -100.0, None,
               "best % change from baseline of the sum of target-lesion diameters (negative = shrinkage)"),
    ColumnSpec("mean_lesion_ad_Gy", "number", False, 0.0, None, "mean over lesions of the total lesion AD (Gy)"),
    ColumnSpec("min_lesion_ad_Gy", "number", False, 0.0, None, "lowest total lesion AD of the patient (Gy)"),
    ColumnSpec("max_lesion_ad_Gy", "number", False, 0.0, None, "highest total lesion AD of the patient (Gy)"),
    ColumnSpec("n_lesions", "integer", False, 0.0, None, "number of tumours in the dosimetry"),
    ColumnSpec("cumulative_aa_GBq", "number", False, 0.0, None, "cumulative administered activity (GBq)"),
    ColumnSpec("age_years", "number", False, 0.0, 130.0, "age (years)"),
)
OPTIONAL_COLUMNS = tuple(s.name for s in COHORT_COLUMNS if not s.required)


# --------------------------------------------------------------------------------------------
# generic CSV reading and validation
# --------------------------------------------------------------------------------------------

def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


def read_csv_rows(path: str | Path, notes: list[str] | None = None
                  ) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Read a CSV file: (header, rows as dicts of stripped strings, 1-based line numbers).

    Encodings (UTF-8 with or without BOM, UTF-16, Windows-1252), ``;``/tab delimiters with decimal
    commas and strict quoting are handled by :func:`.csv_text.read_table_cells`; ``notes``
    collects what was assumed. Blank lines are skipped. A row with more cells than the header
    raises a table error listing it (with a hint when decimal commas are the likely cause).
    """
    import logging

    from .csv_text import read_table_cells

    own_notes: list[str] = []
    header, cell_rows, delimiter = read_table_cells(path, own_notes)
    for n in own_notes:
        logging.getLogger("lu-dosimetry.cohort").warning(n)
    if notes is not None:
        notes.extend(own_notes)
    if header is None:
        raise CohortTableError(str(path), [TableProblem(None, None, "the file is empty (no header line)")])
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    problems: list[TableProblem] = []
    for line, cells in cell_rows:
        if len(cells) > len(header) and any(cells[len(header):]):
            hint = ""
            if delimiter == "," and any(c.isdigit() for c in cells[len(header):]):
                hint = (" (numbers with a decimal comma in a comma-separated file? Save it with ';' as separator "
                        "or with decimal points)")
            problems.append(TableProblem(line, None, f"{len(cells)} cells but the header has {len(header)} columns"
                                         + hint))
        cells = list(cells) + [""] * (len(header) - len(cells))
        rows.append({h: cells[i] for i, h in enumerate(header)})
        lines.append(line)
    if problems:
        raise CohortTableError(str(path), problems)
    return header, rows, lines


RESPONSE_WORDS = {
    "complete response": "CR", "complete remission": "CR", "complete": "CR", "icr": "CR",
    "partial response": "PR", "partial remission": "PR", "partial": "PR", "ipr": "PR",
    "stable disease": "SD", "stable": "SD", "no change": "SD", "isd": "SD",
    "progressive disease": "PD", "progression": "PD", "progressive": "PD", "icpd": "PD",
}
"""RECIST 1.1 words (and iRECIST confirmed codes) accepted for the response codes."""


def response_code(value) -> str:
    """CR/PR/SD/PD for a code or a RECIST word ('partial response', 'Stable disease', 'PR (partial
    response)', 'iCPD'); anything else is returned upper-cased (and then refused as unknown)."""
    text = str(value).strip()
    code = text.upper()
    if code in RESPONSE_CODES:
        return code
    words = " ".join(text.lower().replace("_", " ").replace("-", " ").split())
    if words in RESPONSE_WORDS:
        return RESPONSE_WORDS[words]
    head = words.split("(")[0].strip().upper()  # "PR (partial response)"
    if head in RESPONSE_CODES:
        return head
    inner = words[words.find("(") + 1: words.rfind(")")].strip() if "(" in words and ")" in words else ""
    return RESPONSE_WORDS.get(inner, inner.upper() if inner.upper() in RESPONSE_CODES else code)


def _parse_number(text) -> float:
    if isinstance(text, (int, float, np.integer, np.floating)) and not isinstance(text, bool):
        return float(text)
    return float(str(text).strip())


def _parse_event(text) -> float:
    if isinstance(text, bool):
        return float(text)
    s = str(text).strip().lower()
    if s in ("1", "1.0", "true", "yes", "y", "event"):
        return 1.0
    if s in ("0", "0.0", "false", "no", "n", "censored"):
        return 0.0
    raise ValueError(s)


def validate_rows(
    header: Sequence[str],
    rows: Sequence[Mapping[str, object]],
    lines: Sequence[int | None],
    specs: Sequence[ColumnSpec],
    source: str,
    kind: str,
    id_column: str | None,
    unique_ids: bool = True,
    collect: list[TableProblem] | None = None,
) -> tuple[dict[str, np.ndarray], list[TableProblem]]:
    """Type every column, collect every problem (raised together) and every missing value.

    With ``collect`` given, problems are appended to it instead of raised (the caller adds its
    own checks and raises once)."""
    problems: list[TableProblem] = []
    missing: list[TableProblem] = []
    spec_by_name = {s.name: s for s in specs}
    header = [h for h in header if h]
    dupl_cols = sorted({h for h in header if header.count(h) > 1})
    for h in dupl_cols:
        problems.append(TableProblem(None, h, "column appears more than once in the header"))
    for s in specs:
        if s.required and s.name not in header:
            hint = difflib.get_close_matches(s.name, header, n=1, cutoff=0.6)
            extra = f" (found '{hint[0]}': check the spelling)" if hint else ""
            problems.append(TableProblem(None, s.name, f"required column is missing{extra}"))

    def pid(i: int) -> str | None:
        if id_column is None:
            return None
        v = rows[i].get(id_column)
        return None if _is_missing(v) else str(v).strip()

    columns: dict[str, np.ndarray] = {}
    for name in header:
        if name in dupl_cols and name in columns:
            continue
        spec = spec_by_name.get(name)
        raw = [r.get(name) for r in rows]
        if spec is None:  # unknown column: numbers if every present value parses, else text
            try:
                vals = [np.nan if _is_missing(v) else _parse_number(v) for v in raw]
                arr = np.asarray(vals, dtype=float)
                if not np.all(np.isfinite(arr[~np.isnan(arr)])):
                    raise ValueError
                columns[name] = arr
            except (TypeError, ValueError):
                columns[name] = np.array([None if _is_missing(v) else str(v).strip() for v in raw], dtype=object)
            continue
        if spec.kind in ("number", "integer", "event"):
            arr = np.full(len(rows), np.nan)
            for i, v in enumerate(raw):
                if _is_missing(v):
                    missing.append(TableProblem(lines[i], name, "missing value", pid(i)))
                    continue
                try:
                    x = _parse_event(v) if spec.kind == "event" else _parse_number(v)
                except (TypeError, ValueError):
                    expected = "0 or 1" if spec.kind == "event" else "a number"
                    problems.append(TableProblem(lines[i], name, f"'{v}' is not {expected}", pid(i)))
                    continue
                if not math.isfinite(x):
                    problems.append(TableProblem(lines[i], name, f"'{v}' is not a finite number", pid(i)))
                    continue
                if spec.kind == "integer" and x != round(x):
                    problems.append(TableProblem(lines[i], name, f"'{v}' is not a whole number", pid(i)))
                    continue
                if spec.minimum is not None and x < spec.minimum:
                    problems.append(TableProblem(lines[i], name, f"{x:g} is below the minimum {spec.minimum:g}", pid(i)))
                    continue
                if spec.maximum is not None and x > spec.maximum:
                    problems.append(TableProblem(lines[i], name, f"{x:g} is above the maximum {spec.maximum:g}", pid(i)))
                    continue
                arr[i] = x
            columns[name] = arr
        elif spec.kind == "response":
            arr = np.empty(len(rows), dtype=object)
            for i, v in enumerate(raw):
                if _is_missing(v):
                    arr[i] = None
                    missing.append(TableProblem(lines[i], name, "missing value", pid(i)))
                    continue
                code = response_code(v)
                if code not in RESPONSE_CODES:
                    problems.append(TableProblem(lines[i], name,
                                                 f"unknown response code '{v}' (allowed: {', '.join(RESPONSE_CODES)} or "
                                                 "the RECIST words, e.g. 'partial response')", pid(i)))
                    arr[i] = None
                else:
                    arr[i] = code
            columns[name] = arr
        elif spec.kind == "id":
            arr = np.empty(len(rows), dtype=object)
            for i, v in enumerate(raw):
                if _is_missing(v):
                    problems.append(TableProblem(lines[i], name, "empty identifier"))
                    arr[i] = None
                else:
                    arr[i] = str(v).strip()
            columns[name] = arr
        else:  # category / text
            arr = np.empty(len(rows), dtype=object)
            for i, v in enumerate(raw):
                arr[i] = None if _is_missing(v) else str(v).strip()
            columns[name] = arr

    if id_column is not None and unique_ids and id_column in columns:
        seen: dict[str, int | None] = {}
        for i, v in enumerate(columns[id_column]):
            if v is None:
                continue
            if v in seen:
                first = seen[v]
                where = f"line {first}" if first is not None else "an earlier row"
                problems.append(TableProblem(lines[i], id_column, f"duplicate patient '{v}' (also on {where})", v))
            else:
                seen[v] = lines[i]

    if collect is not None:
        collect.extend(problems)
    elif problems:
        raise CohortTableError(source, _sorted(problems, header), kind)
    return columns, missing


def _sorted(problems: list[TableProblem], header: Sequence[str]) -> list[TableProblem]:
    header = list(header)
    return sorted(problems, key=lambda p: (-1 if p.line is None else p.line,
                                           header.index(p.column) if p.column in header else -1))


def _cell(name: str, v) -> str:
    from LuDosimetryLib.results.result_set import csv_safe_text

    if v is None:
        return ""
    if isinstance(v, str):
        return csv_safe_text(v)
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return ""
        if name.endswith("_event") or name in ("cycle", "n_lesions"):
            return str(int(v))
        return f"{float(v):.10g}"
    return str(v)


def columns_to_csv_text(columns: Mapping[str, np.ndarray]) -> str:
    """CSV text of a column dict (missing values as empty cells, numbers with 10 digits)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = list(columns)
    w.writerow(names)
    n = len(next(iter(columns.values()))) if columns else 0
    for i in range(n):
        w.writerow([_cell(k, columns[k][i]) for k in names])
    return buf.getvalue()


def write_columns_csv(columns: Mapping[str, np.ndarray], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(columns_to_csv_text(columns), encoding="utf-8")
    return path


CYCLE_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("patient_id", "id", True),
    ColumnSpec("cycle", "integer", True, 1.0),
    ColumnSpec("voi", "id", True),
    ColumnSpec("kind", "category", True),
    ColumnSpec("volume_ml", "number", False, 0.0),
    ColumnSpec("administered_activity_MBq", "number", False, 0.0),
    ColumnSpec("absorbed_dose_Gy", "number", True, 0.0),
    ColumnSpec("ad_per_aa_Gy_per_GBq", "number", True, 0.0),
    ColumnSpec("effective_half_life_h", "number", False, 0.0),
)


LESION_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("patient_id", "id", True),
    ColumnSpec("lesion_id", "id", True),
    ColumnSpec("lesion_ad_Gy", "number", False, 0.0, None, "total absorbed dose of the lesion over the course (Gy)"),
    ColumnSpec("delta_volume_percent", "number", False, -100.0, None,
               "lesion volume change, follow-up vs baseline CT (%), DeltaV% of Hebert et al."),
    ColumnSpec("total_uptake_baseline", "number", False, 0.0, None,
               "lesion total uptake at baseline (e.g. SUVtotal); empty or 0 = new lesion"),
    ColumnSpec("total_uptake_followup", "number", False, 0.0, None,
               "lesion total uptake at follow-up (same unit); empty or 0 = disappeared"),
    ColumnSpec("uptake_unit", "category", description="unit of the total uptake columns: SUVtotal or MBq"),
    ColumnSpec("uptake_modality", "category",
               description="PET = baseline vs follow-up PET (Santoro-Fernandes et al.); SPECT = therapy-SPECT "
                           "uptake between cycles (dosimetry analogue)"),
)


_validate_rows = validate_rows  # the name used before the split of table.py


def group_rows_by_patient(pid: np.ndarray, day: np.ndarray) -> dict:
    """{patient: row indices with a day, sorted by day} in first-appearance order, O(n log n)."""
    ok = np.flatnonzero(~np.isnan(day) & np.array([p is not None for p in pid], dtype=bool))
    keys = np.array([str(p) for p in pid[ok]], dtype=object)
    codes, first = {}, []
    for k in keys:
        if k not in codes:
            codes[k] = len(codes)
            first.append(k)
    code = np.array([codes[k] for k in keys], dtype=np.int64)
    order = ok[np.lexsort((day[ok], code))]
    bounds = np.searchsorted(np.sort(code), np.arange(len(first) + 1))
    return {k: order[bounds[i]:bounds[i + 1]] for i, k in enumerate(first)}
