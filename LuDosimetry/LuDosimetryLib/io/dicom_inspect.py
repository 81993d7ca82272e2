"""What a folder of DICOM holds, and a draft study manifest from it (``lu-dosimetry inspect``).

:func:`inspect_directory` reads every header under a folder (no pixel data), groups the series by
PatientID → StudyInstanceUID → FrameOfReferenceUID, lists what each series is (reconstructed
volume, projections, planar, copies of one image, ...), and groups the usable emission series by
injection into treatment cycles, each time point paired with its CT.

Times: a naive time (no DT offset, no TimezoneOffsetFromUTC) is resolved with the offset that other
series of the same patient state for the same date, when they state exactly one (a warning says
so); when they state several (a daylight-saving change that day) the series gets a time-zone
problem naming the manifest field that fixes it (:func:`resolve_naive_times`, also used by
:mod:`.study`). Injections given only as a time of day are dated by an injection of the same
patient with a full date-time at the same clock time, else by the earliest acquisition.

:func:`write_draft_manifest` writes the manifest the headers give, every value they do not give
left as a ``"FILL IN: ..."`` placeholder (``lu-dosimetry run`` refuses placeholders by name).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..errors import InputDataError
from .dicom_quant import recompute_admin_decay
from .dicom_series import (
    DicomSeriesInfo,
    _looks_like_non_dicom,
    _read_headers,
    _update_hours,
    group_series,
    series_info_from_datasets,
)
from .dicom_tags import find_placeholders, fmt_dt, naive_utc, placeholder

IMAGE_FILE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


@dataclass
class InspectedTimePoint:
    emission: DicomSeriesInfo
    ct: DicomSeriesInfo | None = None


@dataclass
class InspectedCycle:
    """Series grouped under one injection (a treatment cycle of one patient)."""

    number: int
    injection_datetime: datetime | None
    administered_activity_MBq: float | None
    radionuclide: str | None
    timepoints: list[InspectedTimePoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    patient_id: str | None = None


@dataclass
class InspectionReport:
    """Result of :func:`inspect_directory`: every series found, grouped by patient and injection.
    ``refused`` holds the emission series that are not dosimetry input (with ``info.refusal``)."""

    root: Path
    series: list[DicomSeriesInfo]
    cycles: list[InspectedCycle]
    unassigned: list[DicomSeriesInfo]
    image_files: list[dict]
    unreadable: list[str] = field(default_factory=list)
    refused: list[DicomSeriesInfo] = field(default_factory=list)

    @property
    def patient_ids(self) -> list[str]:
        return sorted({s.patient_id for s in self.series if s.patient_id})

    def to_text(self) -> str:
        """Human-readable listing (``lu-dosimetry inspect DIR``)."""
        out = [f"Inspection of {self.root}",
               f"  {len(self.series)} DICOM series, {len(self.image_files)} other image file(s), "
               f"{len(self.patient_ids) or 'no'} patient ID(s), {len(self.cycles)} injection(s) (cycles)"]
        out += _hierarchy_lines(self.series)
        for ci, cyc in enumerate(self.cycles):
            inj = fmt_dt(cyc.injection_datetime) if cyc.injection_datetime else "unknown"
            aa = f"{cyc.administered_activity_MBq:.1f} MBq" if cyc.administered_activity_MBq else "activity unknown"
            out.append("")
            ci = _index_in_patient(self, cyc)
            out.append(f"Patient {cyc.patient_id or '?'}, cycle {cyc.number} (cycles[{ci}]): "
                       f"injection {inj}, {aa}, {cyc.radionuclide or 'radionuclide unknown'}")
            out += [f"  note: {n}" for n in cyc.notes]
            for tj, tp in enumerate(cyc.timepoints):
                s = tp.emission
                hrs = (f"{s.hours_post_injection:7.2f} h p.i." if s.hours_post_injection is not None and not s.time_problem
                       else "   ?    h p.i.")
                out.append(f"  [{tj}] {hrs}  {_series_line(s)}")
                if s.spect_units == "counts":
                    out.append(f"       duration: {s.duration_derivation or 'not in the header (ActualFrameDuration missing)'}")
                if tp.ct is not None:
                    out.append(f"       CT: {_series_line(tp.ct)}")
                else:
                    out.append("       CT: none found (optional; CT-based registration then not possible)")
                for s2 in (s, tp.ct):
                    if s2 is not None:
                        out.extend(_issue_lines(s2, ci, tj))
        if self.refused:
            out.append("")
            out.append("Not dosimetry input (refused by `lu-dosimetry run`):")
            for s in self.refused:
                out.append(f"  {_series_line(s)}")
                out.append(f"       {s.image_kind}: {s.refusal}")
        if self.unassigned:
            out.append("")
            out.append("Series not assigned to a cycle:")
            for s in self.unassigned:
                out.append(f"  {_series_line(s)}")
                out.extend(_issue_lines(s))
        if self.image_files:
            out.append("")
            out.append("Other image files (units, times and activity must be given in the manifest):")
            for f in self.image_files:
                if "error" in f:
                    out.append(f"  {f['path']}: {f['error']}")
                else:
                    out.append(f"  {f['path']}: size {f['size']}, spacing {_fmt_tuple(f['spacing_mm'])} mm")
        if self.unreadable:
            out.append("")
            out.append(f"{len(self.unreadable)} file(s) skipped (not DICOM or unreadable), e.g. {self.unreadable[0]}")
        return "\n".join(out)

    def cycles_of(self, patient_id: str | None) -> list[InspectedCycle]:
        return [c for c in self.cycles if patient_id is None or c.patient_id in (patient_id, None)]

    def choose_patient(self, patient_id: str | None = None) -> str | None:
        """The one patient a manifest is written for; several without ``patient_id`` → InputDataError."""
        ids = self.patient_ids
        if patient_id is not None:
            if patient_id not in ids:
                raise InputDataError(f"{self.root}: no series of patient {patient_id!r}; PatientID (0010,0020) values "
                                     f"found: {', '.join(ids) or 'none'}")
            return patient_id
        if len(ids) > 1:
            raise InputDataError(f"{self.root}: series of {len(ids)} patients found (PatientID (0010,0020) "
                                 f"{', '.join(ids)}); a study manifest is one patient: choose one (--patient-id)")
        return ids[0] if ids else None

    def to_manifest(self, patient_id: str | None = None, relative_to: str | os.PathLike | None = None) -> dict:
        """A draft study manifest (contract 1) of one patient from what the headers say.

        Values the headers do not give are ``"FILL IN: ..."`` placeholders (listed by
        :func:`~.dicom_tags.find_placeholders`; ``run`` refuses them). Paths are made relative to
        ``relative_to`` (the folder the manifest will be written to) when given. A series that
        shares its folder with other series is given as its single file when it has one file, else
        as the folder plus ``spect_series_uid``/``ct_series_uid``. Counts: no
        ``acquisition_duration_s`` (``run`` derives it from the headers with
        ``calibration_time_basis``), the calibration factor is a placeholder, and the basis too
        for a multi-head camera.
        """
        pid = self.choose_patient(patient_id)

        def rel(p: Path) -> str:
            return str(p) if relative_to is None else os.path.relpath(p, relative_to)

        folder_counts = defaultdict(int)
        for s in self.series:
            folder_counts[s.folder] += 1

        def series_path(s: DicomSeriesInfo) -> tuple[str, str | None]:
            if len(s.files) == 1:
                return rel(s.files[0]), None
            return rel(s.folder), (s.series_instance_uid if folder_counts[s.folder] > 1 else None)

        cycles_in = self.cycles_of(pid)
        nuclides = [c.radionuclide for c in cycles_in if c.radionuclide]
        manifest: dict = {"patient_id": pid or placeholder("patient ID (PatientID (0010,0020) is empty)"),
                          "radionuclide": nuclides[0] if nuclides else placeholder(
                              "radionuclide, e.g. Lu-177 (RadionuclideCodeSequence (0054,0300) missing)")}
        cycles = []
        for ci, cyc in enumerate(cycles_in):
            c: dict = {"cycle": cyc.number}
            c["administered_activity_MBq"] = (round(cyc.administered_activity_MBq, 3) if cyc.administered_activity_MBq
                                              else placeholder("administered activity in MBq (RadionuclideTotalDose "
                                                               "(0018,1074) missing or 0)"))
            bad_times = [tp.emission.time_problem for tp in cyc.timepoints if tp.emission.time_problem]
            if cyc.injection_datetime is not None and not bad_times:
                c["injection_time"] = cyc.injection_datetime.isoformat()
            else:
                c["injection_time"] = placeholder("injection date-time, ISO 8601 with offset ("
                                                  + (bad_times[0] if bad_times else "RadiopharmaceuticalStartDateTime "
                                                     "(0018,1078) missing") + ")")
            tps = []
            for tj, tp in enumerate(cyc.timepoints):
                s = tp.emission
                t: dict = {}
                t["acquisition_time"] = (s.acquisition_datetime.isoformat() if s.acquisition_datetime is not None
                                         else placeholder("acquisition date-time (AcquisitionDate/Time missing)"))
                if s.tz_problem:
                    t["acquisition_time"] = placeholder(s.tz_problem)
                t["spect"], uid = series_path(s)
                if uid:
                    t["spect_series_uid"] = uid
                t["spect_units"] = s.spect_units or placeholder(f"Bq/mL or counts (Units (0054,1001) = {s.units!r})")
                if s.spect_units == "counts":
                    t["calibration_cps_per_MBq"] = placeholder("camera calibration in counts per second per MBq (not "
                                                               "a DICOM tag)")
                    if (s.number_of_heads or 1) > 1:
                        t["calibration_time_basis"] = placeholder(
                            f"scan_duration ({s.acquisition_duration_s:g} s) or detector_time "
                            f"({s.acquisition_duration_s * s.number_of_heads:g} s = {s.number_of_heads} heads): what "
                            "the calibration factor refers to")
                    else:
                        t["calibration_time_basis"] = "scan_duration"
                    if s.acquisition_duration_s is None:
                        t["acquisition_duration_s"] = placeholder("acquisition duration in s (ActualFrameDuration "
                                                                  "(0018,1242) missing)")
                if tp.ct is not None:
                    t["ct"], uid = series_path(tp.ct)
                    if uid:
                        t["ct_series_uid"] = uid
                tps.append(t)
            c["timepoints"] = tps
            cycles.append(c)
        manifest["cycles"] = cycles
        manifest["segmentation"] = {"file": placeholder("labelmap file (NRRD/NIfTI), not in DICOM"),
                                    "labels": placeholder('{"1": {"name": "...", "kind": "tumor|kidney|organ"}}')}
        return manifest

    def missing_messages(self) -> list[str]:
        """Every missing-tag message with the cycle/time-point indices filled in."""
        msgs = []
        for cyc in self.cycles:
            ci = _index_in_patient(self, cyc)
            for tj, tp in enumerate(cyc.timepoints):
                for s in (tp.emission, tp.ct):
                    if s is not None:
                        msgs += s.missing_messages(ci, tj)
        for s in self.unassigned:
            msgs += s.missing_messages()
        return msgs


def _index_in_patient(report: InspectionReport, cyc: InspectedCycle) -> int:
    return [c for c in report.cycles if c.patient_id == cyc.patient_id].index(cyc)


def _hierarchy_lines(series: list[DicomSeriesInfo]) -> list[str]:
    """Patient → study → frame of reference → series, one line per level."""
    tree = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for s in series:
        tree[s.patient_id or "?"][s.study_instance_uid or "?"][s.frame_of_reference_uid or "?"].append(s)
    out = []
    for pid in sorted(tree):
        out.append("")
        out.append(f"Patient {pid}:")
        for study, fors in tree[pid].items():
            out.append(f"  study {study}")
            for for_uid, members in fors.items():
                out.append(f"    frame of reference {for_uid}")
                for s in members:
                    out.append(f"      {s.modality} {s.image_kind}: '{s.series_description}' ({len(s.files)} file(s))")
    return out


def _fmt_tuple(t) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in t) + ")"


def _issue_lines(series, *where) -> list[str]:
    """Indented 'missing:' and 'warning:' lines of one series for the inspection text."""
    return ([f"       missing: {m}" for m in series.missing_messages(*where)]
            + [f"       warning: {w}" for w in series.warnings]
            + ([f"       time zone: {series.tz_problem}"] if series.tz_problem else []))


def _series_line(s: DicomSeriesInfo) -> str:
    shape = "x".join(str(v) for v in s.shape_zyx[::-1]) if s.shape_zyx else "?"
    sp = _fmt_tuple(s.spacing_mm) + " mm" if s.spacing_mm else ""
    units = f", units {s.units or '?'}" + (f" → {s.spect_units}" if s.spect_units and s.spect_units != s.units else "")
    if not s.is_emission:
        units = ""
    desc = f" '{s.series_description}'" if s.series_description else ""
    acq = f", acquired {fmt_dt(s.acquisition_datetime)}" if s.acquisition_datetime else ""
    where = s.files[0] if len(s.files) == 1 else s.folder
    return (f"{s.modality}{desc} {shape} {sp}{units}{acq}; {s.manufacturer or 'manufacturer ?'}; "
            f"{len(s.files)} file(s) in {where}")


# --------------------------------------------------------------------------------------------
# Time zones across series of one patient
# --------------------------------------------------------------------------------------------

def resolve_naive_times(series: list[DicomSeriesInfo]) -> None:
    """Give naive injection/acquisition times the offset other series of the same patient state
    for the same date (exactly one offset: resolved, with a warning; several: ``tz_problem``).
    A date no other series states an offset for stays naive (local clock time)."""
    by_patient = defaultdict(list)
    for s in series:
        by_patient[s.patient_id].append(s)
    for members in by_patient.values():
        offsets = defaultdict(set)
        for s in members:
            for d in (s.injection_datetime, s.acquisition_datetime):
                if d is not None and d.tzinfo is not None:
                    offsets[d.date()].add(d.utcoffset())
        if not offsets:
            continue  # no series of this patient states an offset: all local clock time
        for s in members:
            changed = False
            for attr, fld in (("injection_datetime", "cycles[i].injection_time"),
                              ("acquisition_datetime", "cycles[i].timepoints[j].acquisition_time")):
                d = getattr(s, attr)
                if d is None or d.tzinfo is not None:
                    continue
                found = offsets.get(d.date(), set())
                if len(found) == 1:
                    off = next(iter(found))
                    setattr(s, attr, d.replace(tzinfo=timezone(off)))
                    s.warnings.append(f"{attr.split('_')[0]} time {d.isoformat()} has no time-zone offset in this series; "
                                      f"taken at UTC{_fmt_offset(off)}, the offset other series of patient "
                                      f"{s.patient_id or '?'} state on {d.date().isoformat()}")
                    changed = True
                elif len(found) > 1:
                    s.tz_problem = (f"{attr.split('_')[0]} time {d.isoformat()} has no time-zone offset and other series "
                                    f"of patient {s.patient_id or '?'} state several offsets on {d.date().isoformat()} "
                                    f"({', '.join('UTC' + _fmt_offset(o) for o in sorted(found))}: a daylight-saving "
                                    f"change?): give {fld} with an offset")
            if changed:
                _update_hours(s)
                recompute_admin_decay(s)


def _fmt_offset(off: timedelta) -> str:
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# --------------------------------------------------------------------------------------------
# Directory inspection and grouping by injection
# --------------------------------------------------------------------------------------------

def _walk_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.is_file():  # a FIFO, socket or device would block the header read (issue 13)
                yield p


def _image_file_information(path: Path) -> dict:
    """Size and spacing of a non-DICOM image file from its header (SimpleITK, no voxels read)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputDataError(f"{path}: cannot be read as an image ({str(exc).strip().splitlines()[-1]})") from None
    return {"size": tuple(reader.GetSize()), "spacing_mm": tuple(reader.GetSpacing()),
            "pixel_type": sitk.GetPixelIDValueAsString(reader.GetPixelID())}


def inspect_directory(path: str | os.PathLike) -> InspectionReport:
    """List the DICOM series (and other image files) under ``path`` and what each is taken to be.

    Usable emission series are grouped by injection (patient, injection date-time, or start time
    + dose): each group is a treatment cycle of its patient, numbered in date order; its time
    points in order of hours p.i., each paired with the CT of the same frame of reference (else
    same study and nearest acquisition time, within 2 h). Projections, planar images and copies are
    listed as refused. Every missing or suspicious tag is listed with the manifest field that
    overrides it. This is ``lu-dosimetry inspect DIR``.
    """
    root = Path(path)
    if not root.exists():
        raise InputDataError(f"{root}: folder not found")
    if not root.is_dir():
        raise InputDataError(f"{root}: not a folder")
    unreadable: list[str] = []
    image_files: list[dict] = []
    candidates = []
    for f in _walk_files(root):
        if f.name.lower().endswith(IMAGE_FILE_SUFFIXES):
            try:
                image_files.append({"path": str(f), **_image_file_information(f)})
            except InputDataError as exc:
                image_files.append({"path": str(f), "error": str(exc)})
        elif not _looks_like_non_dicom(f):
            candidates.append(f)
    series = [series_info_from_datasets([ds for _, ds in items], [f for f, _ in items])
              for items in group_series(_read_headers(candidates, unreadable)).values()]
    series.sort(key=lambda s: (s.patient_id or "", naive_utc(s.acquisition_datetime) if s.acquisition_datetime
                               else datetime.max, s.modality))
    refused = [s for s in series if s.is_emission and s.refusal]
    cycles, unassigned = _group_by_injection([s for s in series if s not in refused])
    return InspectionReport(root=root, series=series, cycles=cycles, unassigned=unassigned, image_files=image_files,
                            unreadable=unreadable, refused=refused)


def _has_full_injection(s: DicomSeriesInfo) -> bool:
    return bool(s.injection_source and s.injection_source.startswith("RadiopharmaceuticalStartDateTime")
                and s.injection_datetime is not None)


def _group_by_injection(series: list[DicomSeriesInfo]):
    """``(cycles, unassigned)``: usable emission series grouped by injection, CTs paired; emission
    series with a ``refusal`` (projections, planar, ...) are never put into a cycle. Naive times are
    first resolved across the series (:func:`resolve_naive_times`)."""
    resolve_naive_times(series)
    emission = [s for s in series if s.is_emission and not s.refusal]
    others = [s for s in series if not s.is_emission]
    groups = defaultdict(list)
    unassigned = [s for s in series if s.is_emission and s.refusal]
    time_only = []
    for s in emission:
        if _has_full_injection(s):
            groups[(s.patient_id, naive_utc(s.injection_datetime).replace(second=0, microsecond=0))].append(s)
        elif s.injection_time_of_day is not None:
            time_only.append(s)
        else:
            unassigned.append(s)
    for s in time_only:  # a time of day only: join the injection of the same patient at that clock time, if any
        tod = s.injection_time_of_day.replace(second=0, microsecond=0)
        match = [k for k, m in groups.items() if k[0] == s.patient_id
                 and m[0].injection_datetime.time().replace(second=0, microsecond=0) == tod
                 and (s.acquisition_datetime is None
                      or timedelta(0) < naive_utc(s.acquisition_datetime) - naive_utc(m[0].injection_datetime)
                      < timedelta(days=30))]
        if len(match) == 1:
            ref = groups[match[0]][0]
            s.injection_datetime = ref.injection_datetime
            s.injection_source = ("RadiopharmaceuticalStartTime (0018,1072); date and offset from "
                                  f"RadiopharmaceuticalStartDateTime of series '{ref.series_description}'")
            _drop_date_assumption(s, f"injection date and offset taken from series '{ref.series_description}' "
                                     "(same patient, same clock time)")
            _update_hours(s)
            recompute_admin_decay(s)
            groups[match[0]].append(s)
        else:
            dose = round(s.administered_activity_MBq, 1) if s.administered_activity_MBq else None
            groups[(s.patient_id, "time", tod, dose)].append(s)
    cycles_raw = []
    for key, members in groups.items():
        notes = []
        if len(key) == 4:  # injection date unknown: the day of the earliest acquisition, or the day before
            acqs = [s.acquisition_datetime for s in members if s.acquisition_datetime is not None]
            if acqs:
                first = min(acqs, key=naive_utc)
                tod = members[0].injection_time_of_day
                d = first.date() if first.time().replace(tzinfo=None) >= tod else first.date() - timedelta(days=1)
                inj = datetime.combine(d, tod, tzinfo=first.tzinfo)
                notes.append(f"injection date inferred as {d.isoformat()} from the earliest acquisition of this "
                             "injection (only RadiopharmaceuticalStartTime in the headers); check cycles[i].injection_time")
                for s in members:
                    s.injection_datetime = inj
                    s.injection_source = "RadiopharmaceuticalStartTime (0018,1072), date inferred from earliest acquisition"
                    _drop_date_assumption(s, f"only RadiopharmaceuticalStartTime (0018,1072) is present: injection "
                                             f"date inferred as {d.isoformat()}")
                    _update_hours(s)
                    recompute_admin_decay(s)
            else:
                inj = members[0].injection_datetime
        else:
            inj = members[0].injection_datetime
            spread = [s for s in members if _has_full_injection(s)
                      and abs((naive_utc(s.injection_datetime) - naive_utc(inj)).total_seconds()) > 60]
            if spread:
                notes.append("injection times of this injection's series differ by more than 1 min: "
                             + ", ".join(f"'{s.series_description}' {s.injection_datetime.isoformat()}" for s in members))
        doses = {round(s.administered_activity_MBq, 1) for s in members if s.administered_activity_MBq}
        if len(doses) > 1:
            notes.append("series of this injection give different RadionuclideTotalDose values: "
                         + ", ".join(f"{d:g} MBq" for d in sorted(doses)))
        if inj is not None and inj.tzinfo is None:
            notes.append("no time-zone information (TimezoneOffsetFromUTC (0008,0201) or DT offsets): times are local "
                         "clock time of the site; hours p.i. are right unless a daylight-saving change lies between")
        nucs = [s.radionuclide for s in members if s.radionuclide]
        cycles_raw.append((key[0], inj, members[0].administered_activity_MBq, nucs[0] if nucs else None, members, notes))
    cycles_raw.sort(key=lambda c: (c[0] or "", naive_utc(c[1]) if c[1] else datetime.max))
    cycles = []
    number = defaultdict(int)
    for pid, inj, aa, nuc, members, notes in cycles_raw:
        number[pid] += 1
        members.sort(key=lambda s: (s.hours_post_injection if s.hours_post_injection is not None else float("inf")))
        cyc = InspectedCycle(number=number[pid], injection_datetime=inj, administered_activity_MBq=aa, radionuclide=nuc,
                             timepoints=[InspectedTimePoint(emission=s) for s in members], notes=notes, patient_id=pid)
        for a, b in zip(members, members[1:]):
            if (a.hours_post_injection is not None and b.hours_post_injection is not None
                    and abs(a.hours_post_injection - b.hours_post_injection) < 0.25):
                cyc.notes.append(f"two emission series at ~{a.hours_post_injection:.1f} h p.i. "
                                 f"('{a.series_description}', '{b.series_description}'): keep one time point per scan")
        cycles.append(cyc)
    used = set()
    for cyc in cycles:
        for tp in cyc.timepoints:
            tp.ct = _find_ct(tp.emission, others, used)
            if tp.ct is not None:
                used.add(tp.ct.series_instance_uid)
    unassigned += [s for s in others if s.series_instance_uid not in used]
    return cycles, unassigned


def _drop_date_assumption(s: DicomSeriesInfo, detail: str) -> None:
    s.warnings = [w for w in s.warnings if w != s.time_problem]
    for m in s.missing:
        if m.keyword == "RadiopharmaceuticalStartDateTime":
            m.detail = detail


def _find_ct(em: DicomSeriesInfo, others: list[DicomSeriesInfo], used: set) -> DicomSeriesInfo | None:
    cts = [s for s in others if s.modality == "CT" and not s.refusal and s.series_instance_uid not in used
           and (s.patient_id == em.patient_id or not s.patient_id or not em.patient_id)]
    if not cts:
        return None

    def dt_gap(s):
        if s.acquisition_datetime is None or em.acquisition_datetime is None:
            return float("inf")
        return abs((naive_utc(s.acquisition_datetime) - naive_utc(em.acquisition_datetime)).total_seconds()) / 3600.0

    same_for = [s for s in cts if em.frame_of_reference_uid and s.frame_of_reference_uid == em.frame_of_reference_uid]
    if same_for:
        return min(same_for, key=dt_gap)
    close = [s for s in cts if dt_gap(s) <= 2.0 and (s.study_instance_uid == em.study_instance_uid or dt_gap(s) <= 1.0)]
    return min(close, key=dt_gap) if close else None


# --------------------------------------------------------------------------------------------
# Draft manifests
# --------------------------------------------------------------------------------------------

_DEFAULT_STUDY_KEYS = ("segmentation", "recovery_coefficients")
_DEFAULT_TIMEPOINT_KEYS = ("calibration_cps_per_MBq", "calibration_time_basis")


def _apply_defaults(manifest: dict, defaults_path: Path, relative_to: Path | None) -> list[str]:
    """Fill a draft from a defaults manifest (e.g. an earlier study.json of the site): its
    ``segmentation`` (file path re-based) and ``recovery_coefficients``, and for counts time
    points ``calibration_cps_per_MBq``/``calibration_time_basis`` (top level, or the value all its
    time points share). Returns notes of what was taken."""
    try:
        d = json.loads(defaults_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputDataError(f"{defaults_path}: cannot read the defaults manifest ({exc})") from None
    if not isinstance(d, dict):
        raise InputDataError(f"{defaults_path}: the defaults manifest must be a JSON object")
    notes = []
    for key in _DEFAULT_STUDY_KEYS:
        if key not in d:
            continue
        value = json.loads(json.dumps(d[key]))
        if key == "segmentation" and isinstance(value, dict) and isinstance(value.get("file"), str) \
                and not Path(value["file"]).is_absolute():
            f = (defaults_path.parent / value["file"]).resolve()
            value["file"] = os.path.relpath(f, relative_to) if relative_to is not None else str(f)
        manifest[key] = value
        notes.append(f"{key} taken from {defaults_path}")
    for key in _DEFAULT_TIMEPOINT_KEYS:
        value = d.get(key)
        if value is None:
            values = {json.dumps(tp.get(key)) for c in d.get("cycles", []) if isinstance(c, dict)
                      for tp in c.get("timepoints", []) if isinstance(tp, dict) and tp.get(key) is not None}
            value = json.loads(values.pop()) if len(values) == 1 else None
        if value is None:
            continue
        n = 0
        for c in manifest["cycles"]:
            for tp in c["timepoints"]:
                if tp.get("spect_units") == "counts":
                    tp[key] = value
                    n += 1
        if n:
            notes.append(f"{key} = {value!r} taken from {defaults_path} for {n} counts time point(s)")
    return notes


def study_dict_from_dicom(path: str | os.PathLike, patient_id: str | None = None,
                          relative_to: str | os.PathLike | None = None) -> tuple[dict, list[str]]:
    """Draft study manifest (contract 1) from a DICOM folder: ``(manifest_dict, messages)``.

    ``messages`` lists every missing tag with the manifest field to fill in, the refused series,
    and every placeholder left in the draft (see :meth:`InspectionReport.to_manifest`).
    """
    report = inspect_directory(path)
    manifest = report.to_manifest(patient_id=patient_id, relative_to=relative_to)
    msgs = report.missing_messages()
    msgs += [f"not used: {s.folder if len(s.files) > 1 else s.files[0]} ({s.image_kind}: {s.refusal})"
             for s in report.refused]
    if not report.cycles:
        msgs.append("no usable emission (NM/PT) series with injection information found: add cycles by hand")
    return manifest, msgs


def write_draft_manifest(directory: str | os.PathLike, manifest_path: str | os.PathLike, patient_id: str | None = None,
                         defaults_path: str | os.PathLike | None = None) -> tuple[dict, list[str], InspectionReport]:
    """Write the draft manifest of ``directory`` to ``manifest_path`` (``inspect --write-manifest``).

    Returns ``(manifest, placeholder lines, report)``; each placeholder line is ``field: text``.
    An existing ``manifest_path`` is never overwritten. Paths in the manifest are relative to its
    folder. ``defaults_path``: see :func:`_apply_defaults`.
    """
    out = Path(manifest_path)
    if out.exists():
        raise InputDataError(f"{out}: already exists; not overwritten (choose another --write-manifest path)")
    if not out.parent.is_dir():
        raise InputDataError(f"{out.parent}: folder not found for the manifest")
    report = inspect_directory(directory)
    manifest = report.to_manifest(patient_id=patient_id, relative_to=out.parent.resolve())
    notes = _apply_defaults(manifest, Path(defaults_path), out.parent.resolve()) if defaults_path else []
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(tmp, out)
    lines = [f"{where}: {text}" for where, text in find_placeholders(manifest)]
    return manifest, lines + [f"note: {n}" for n in notes], report
