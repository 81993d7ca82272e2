"""Study rows as edited in a table (the Slicer Study step) <-> manifest dict <-> validated Study.

A GUI shows a study as one row per scan (:class:`ScanRow`: cycle, hours p.i., administered
activity, units, times, and the names of the SPECT and CT images). These functions turn the rows
into a contract-1 manifest dict and let :func:`LuDosimetryLib.io.study.study_from_dict` validate it
and build the :class:`~LuDosimetryLib.io.study.Study` -- once, with the manifest's own rules -- so
that what "Validate" accepts is exactly what "Run" computes with. Problems come back per row and
column (:class:`RowProblem`) so a GUI can mark the cells.

The images themselves stay where they are (volumes of a scene): :attr:`RowsStudy.keys` maps each
row to the ``(cycle, time-point index)`` key used by ``LuDosimetryLib.pipeline.StudyImages``.
:func:`rows_from_series` groups scans found in a scene into cycles and pairs their CTs with the
DICOM module's own grouping (the one behind ``lu-dosimetry inspect`` and the draft manifest).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ManifestError
from .study import Study, VoiDefinition, hours_between, parse_iso_time, study_from_dict

_FIELD = re.compile(r"^cycles\[(\d+)\](?:\.timepoints(?:\[(\d+)\])?)?(?:\.(\w+))?$")


@dataclass
class ScanRow:
    """One scan of a study as a table row. ``spect`` / ``ct``: image names ("" = none selected);
    times are ISO-8601 text ("" = not given); hours in h, activity in MBq."""

    cycle: int = 1
    hours_post_injection: float | None = None
    administered_activity_MBq: float | None = None
    spect_units: str = "Bq/mL"
    injection_time: str = ""
    acquisition_time: str = ""
    calibration_cps_per_MBq: float | None = None
    acquisition_duration_s: float | None = None
    spect: str = ""
    ct: str = ""

    def label(self) -> str:
        """Short text such as "C1 24 h" (hours "?" when unknown)."""
        hours = self.hours_post_injection
        return f"C{self.cycle} {'?' if hours is None else f'{hours:g}' if isinstance(hours, float) else hours} h"


#: Table columns of a ScanRow (``scan_row_cells`` / ``scan_row_from_cells``), in this order.
ROW_COLUMNS = ["cycle", "hours_post_injection", "administered_activity_MBq", "spect_units", "injection_time",
               "acquisition_time", "calibration_cps_per_MBq", "acquisition_duration_s", "spect", "ct"]


def scan_row_cells(row: ScanRow) -> list:
    """The cells of a row in ROW_COLUMNS order ("" for missing values)."""
    return ["" if getattr(row, c) is None else getattr(row, c) for c in ROW_COLUMNS]


def _parsed(text, kind):
    """``text`` as ``kind`` (int or float); None when empty; the text itself when it does not parse, so
    that validation names the bad cell instead of the value being dropped silently."""
    text = "" if text is None else str(text).strip()
    if not text or text.lower() == "nan":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if kind is int:
        return int(value) if value.is_integer() else text
    return value


def scan_row_from_cells(cells: dict) -> ScanRow:
    """A row from table cells ({column: text}); numbers are parsed, unparseable text is kept for validation."""
    row = ScanRow()
    for column in ROW_COLUMNS:
        value = cells.get(column, "")
        if column == "cycle":
            value = _parsed(value, int)
            value = 1 if value is None else value
        elif column in ("hours_post_injection", "administered_activity_MBq", "calibration_cps_per_MBq",
                        "acquisition_duration_s"):
            value = _parsed(value, float)
        else:
            value = str(value or "").strip() or ("Bq/mL" if column == "spect_units" else "")
        setattr(row, column, value)
    return row


def _cycle_key(cycle):
    """Sort key for cycle numbers that may still be unparsed text (text sorts after numbers)."""
    return (0, cycle, "") if isinstance(cycle, int) else (1, 0, str(cycle))


@dataclass
class RowProblem:
    """A validation message: ``row`` index (-1: the whole study), ``column`` (a manifest field name, "" if none)."""

    row: int
    column: str
    message: str


@dataclass
class RowsStudy:
    """Result of :func:`study_from_rows`: the validated Study (None when there are problems), the
    problems, and row index -> (cycle, time-point index) of the Study (time points in time order)."""

    study: Study | None
    problems: list[RowProblem] = field(default_factory=list)
    keys: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.study is not None and not self.problems

    def problems_text(self) -> str:
        """One line per problem ("- row 2 hours_post_injection: ...")."""
        return "\n".join(f"- row {p.row + 1} {p.column}: {p.message}" if p.row >= 0 else f"- {p.column}: {p.message}"
                         for p in self.problems)


def _row_hours(row: ScanRow) -> float:
    """Hours p.i. of a row for ordering: given, else from acquisition - injection time, else +inf."""
    if isinstance(row.hours_post_injection, (int, float)):
        return float(row.hours_post_injection)
    try:
        return hours_between(parse_iso_time(row.injection_time), parse_iso_time(row.acquisition_time))
    except (ValueError, TypeError):
        return math.inf


def _cycle_rows(rows: list[ScanRow]) -> dict[int, list[int]]:
    """cycle number -> row indices in time order, cycles in increasing order."""
    cycles: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        cycles.setdefault(row.cycle, []).append(index)
    return {c: sorted(cycles[c], key=lambda i: (_row_hours(rows[i]), i)) for c in sorted(cycles, key=_cycle_key)}


def manifest_from_rows(patient_id: str, rows: list[ScanRow], radionuclide: str = "Lu-177",
                       recovery_coefficients: dict | None = None) -> tuple[dict, dict]:
    """Contract-1 manifest dict of the rows (image entries are the image names) and the map
    (cycle index, time-point index) -> row index. A cycle's activity and injection time are those
    of its first row; hours p.i. typed in a row win over its acquisition time."""
    manifest_cycles, where = [], {}
    for ci, (number, indices) in enumerate(_cycle_rows(rows).items()):
        first = rows[indices[0]]
        entry: dict = {"cycle": number, "timepoints": []}
        if first.administered_activity_MBq is not None:
            entry["administered_activity_MBq"] = first.administered_activity_MBq
        if first.injection_time:
            entry["injection_time"] = first.injection_time
        for ti, index in enumerate(indices):
            row = rows[index]
            tp: dict = {"spect": row.spect, "spect_units": row.spect_units}
            if row.hours_post_injection is not None:
                tp["hours_post_injection"] = row.hours_post_injection
            elif row.acquisition_time:
                tp["acquisition_time"] = row.acquisition_time
            if row.ct:
                tp["ct"] = row.ct
            if row.calibration_cps_per_MBq is not None:
                tp["calibration_cps_per_MBq"] = row.calibration_cps_per_MBq
            if row.acquisition_duration_s is not None:
                tp["acquisition_duration_s"] = row.acquisition_duration_s
            entry["timepoints"].append(tp)
            where[(ci, ti)] = index
        manifest_cycles.append(entry)
    manifest = {"patient_id": patient_id, "radionuclide": radionuclide, "cycles": manifest_cycles}
    if recovery_coefficients:
        manifest["recovery_coefficients"] = {k: list(v) if isinstance(v, (list, tuple)) else v
                                             for k, v in recovery_coefficients.items()}
    return manifest, where


def _problems_of(exc: ManifestError, where: dict, n_rows: int) -> list[RowProblem]:
    """ManifestError (field, message) pairs -> RowProblem per table cell."""
    cycle_rows: dict[int, list[int]] = {}
    for (ci, _ti), index in where.items():
        cycle_rows.setdefault(ci, []).append(index)
    problems = []
    for name, message in exc.problems:
        match = _FIELD.match(name)
        if not match:
            problems.append(RowProblem(-1, name, message))
            continue
        ci, ti, column = int(match.group(1)), match.group(2), match.group(3) or ""
        if ti is not None:
            problems.append(RowProblem(where.get((ci, int(ti)), -1), column or "hours_post_injection", message))
            continue
        if not column and ".timepoints" in name:
            column = "hours_post_injection"
        problems.extend(RowProblem(index, column, message) for index in cycle_rows.get(ci, [-1]))
    return problems


def study_from_rows(patient_id: str, rows: list[ScanRow], radionuclide: str = "Lu-177",
                    vois: list[VoiDefinition] | tuple = (), recovery_coefficients: dict | None = None) -> RowsStudy:
    """Validate the rows with the manifest rules (``study_from_dict(..., check_files=False)``) and
    return the Study built by that validation, with ``vois`` attached, or the problems per row.

    Also checked here (a table can say what a manifest cannot): every row has a SPECT image, and
    all rows of one cycle give the same administered activity.
    """
    if not rows:
        return RowsStudy(None, [RowProblem(-1, "cycles", "add at least one time point")])
    problems = [RowProblem(i, "spect", "no SPECT volume selected") for i, r in enumerate(rows) if not r.spect]
    for number, indices in _cycle_rows(rows).items():
        if len({rows[i].administered_activity_MBq for i in indices}) > 1:
            problems.extend(RowProblem(i, "administered_activity_MBq",
                                       f"rows of cycle {number} give different administered activities")
                            for i in indices)
    manifest, where = manifest_from_rows(patient_id, rows, radionuclide, recovery_coefficients)
    study = None
    try:
        study = study_from_dict(manifest, Path.cwd(), check_files=False)
    except ManifestError as exc:
        problems = _problems_of(exc, where, len(rows)) + problems
    if problems:
        return RowsStudy(None, problems)
    study.vois = list(vois)
    keys = {index: (study.cycles[ci].cycle, ti) for (ci, ti), index in where.items()}
    return RowsStudy(study, [], keys)


def default_reference_row(rows: list[ScanRow], reference_hours: float = 24.0) -> int:
    """Row of the first cycle's scan closest to ``reference_hours`` (first row of that cycle when no
    hours are known; -1 without rows)."""
    if not rows:
        return -1
    first = min((r.cycle for r in rows), key=_cycle_key)
    candidates = [i for i, r in enumerate(rows) if r.cycle == first and math.isfinite(_row_hours(r))]
    if not candidates:
        return next(i for i, r in enumerate(rows) if r.cycle == first)
    return min(candidates, key=lambda i: (abs(_row_hours(rows[i]) - reference_hours), i))


def rows_from_study(study: Study, names: dict | None = None) -> list[ScanRow]:
    """Rows of a loaded Study (cycle by cycle, in time order). ``names``: optional
    {(cycle, i): (spect name, ct name)}; by default the file names."""
    rows = []
    for cycle in study.cycles:
        for i, tp in enumerate(cycle.timepoints):
            spect, ct = (names or {}).get((cycle.cycle, i), (tp.spect.name if tp.spect else "",
                                                              tp.ct.name if tp.ct else ""))
            rows.append(ScanRow(cycle=cycle.cycle, hours_post_injection=tp.hours_post_injection,
                                administered_activity_MBq=cycle.administered_activity_MBq, spect_units=tp.spect_units,
                                injection_time=cycle.injection_time or "", acquisition_time=tp.acquisition_time or "",
                                calibration_cps_per_MBq=tp.calibration_cps_per_MBq,
                                acquisition_duration_s=tp.acquisition_duration_s, spect=spect, ct=ct or ""))
    return rows


def rows_from_series(scans: list[tuple[str, object]], cts: list[tuple[str, object]],
                     names: dict | None = None) -> tuple[list, list[str]]:
    """Study rows from the emission scans and CTs found in a scene.

    ``scans`` / ``cts``: (image name, ``DicomSeriesInfo`` or None when the image did not come from
    DICOM). DICOM scans are grouped into cycles by injection and paired with a CT (same frame of
    reference, else closest in time) by the DICOM module's grouping (:mod:`LuDosimetryLib.io.dicom`);
    scans without DICOM information become rows of cycle 1 with empty fields, and a message says
    what to type. Returns (rows, messages); a row's ``spect`` / ``ct`` are the keys given here, messages
    name an image by ``names[key]`` (e.g. a volume's name for its node ID) when given.
    """
    from .dicom import _group_by_injection  # the grouping behind inspect_directory / the draft manifest

    def shown(key):
        return (names or {}).get(key, key)

    messages = []
    by_uid = {}
    infos = []
    for name, info in list(scans) + list(cts):
        if info is not None:
            by_uid[info.series_instance_uid] = name
            infos.append(info)
    cycles, _unassigned = _group_by_injection(infos)
    rows = []
    for cycle in cycles:
        for tp in cycle.timepoints:
            s = tp.emission
            name = by_uid[s.series_instance_uid]
            rows.append(ScanRow(
                cycle=cycle.number, hours_post_injection=s.hours_post_injection,
                administered_activity_MBq=s.administered_activity_MBq or cycle.administered_activity_MBq,
                spect_units=s.spect_units or "Bq/mL",
                injection_time=cycle.injection_datetime.isoformat() if cycle.injection_datetime else "",
                acquisition_time=s.acquisition_datetime.isoformat() if s.acquisition_datetime else "",
                acquisition_duration_s=s.acquisition_duration_s, spect=name,
                ct=by_uid.get(tp.ct.series_instance_uid, "") if tp.ct is not None else ""))
            messages += [f"{shown(name)}: {m}" for m in s.missing_messages() + list(s.warnings)]
        messages += [f"cycle {cycle.number}: {n}" for n in cycle.notes]
    grouped = {r.spect for r in rows}
    for name, info in scans:
        if name in grouped:
            continue
        if info is not None and info.is_emission:
            messages.append(f"{shown(name)}: no injection time in the DICOM header; type hours p.i., activity and cycle")
        else:
            messages.append(f"{shown(name)}: not from the DICOM database; type hours p.i., activity and units in the table.")
        rows.append(ScanRow(cycle=1, spect=name))
    return rows, messages

