"""The one definition of every key a study manifest (``study.json``, contract 1) may hold.

:data:`MANIFEST_FIELDS` is a single table: for each level of the manifest (the root, a cycle, a
time point, the segmentation, a label, the recovery-coefficient table) the keys allowed there,
their JSON type and, for numbers, the plausible range. Another issue adding a manifest key adds
one line here (and reads the value in :mod:`.study`).

:func:`check_manifest_structure` walks a parsed manifest against the table *before* any value is
used and returns every problem as ``(field path, message)``:

* an unknown key is an error with a "did you mean" from :mod:`difflib` (a misspelt
  ``recovery_coefficients`` would otherwise silently switch off the partial-volume correction);
  keys starting with ``_`` are comments and ignored;
* a value of the wrong JSON type, a number that is not finite, beyond float range or outside the
  plausible range, an over-long string or one holding a NUL character is an error;
* segmentation label keys must be the plain decimal integer (``"3"``, not ``"03"``, ``" 3"`` or
  ``"3.0"``), and two keys naming the same label are an error.

:func:`load_json_strict` parses the file text: duplicate keys (JSON allows them, Python keeps the
last silently), ``NaN``/``Infinity`` literals and nesting deeper than :data:`MAX_DEPTH` are
errors; nothing raised by the parser escapes other than :class:`~LuDosimetryLib.errors.ManifestError`.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ManifestError

MAX_DEPTH = 32
MAX_STRING_CHARS = 4096


@dataclass(frozen=True)
class Key:
    """One manifest key: JSON ``kind`` (``string``, ``boolean``, ``integer``, ``number``, ``list``,
    ``object``, ``number_list``), plausible ``minimum``/``maximum`` for numbers and list items (inclusive),
    and the level its value opens (``child``, for objects and lists of objects)."""

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    child: str | None = None
    description: str = ""


# level -> {key: Key}. "labels" is a level whose keys are label values (checked separately).
MANIFEST_FIELDS: dict[str, dict[str, Key]] = {
    "root": {
        "patient_id": Key("string", description="patient identifier"),
        "radionuclide": Key("string", description="e.g. Lu-177"),
        "cycles": Key("list", child="cycle", description="treatment cycles"),
        "segmentation": Key("object", child="segmentation", description="labelmap file and its labels"),
        "recovery_coefficients": Key("object", child="recovery_coefficients",
                                     description="recovery coefficient per volume (partial-volume correction)"),
        "allow_mixed_patients": Key("boolean", description="DICOM series of several PatientIDs accepted (warning)"),
        "uncertainty": Key("object", child="uncertainty",
                           description="inputs of the uncertainty budget (physics.uncertainty, Gear et al. EJNMMI 2018)"),
    },
    "cycle": {
        "cycle": Key("integer", 1, 1000, description="cycle number"),
        "administered_activity_MBq": Key("number", -1e6, 1e6, description="administered activity (MBq)"),
        "injection_time": Key("string", description="ISO-8601 injection time"),
        "timepoints": Key("list", child="timepoint", description="SPECT(/CT) acquisitions of the cycle"),
    },
    "timepoint": {
        "acquisition_time": Key("string", description="ISO-8601 acquisition time"),
        "hours_post_injection": Key("number", -1e5, 1e5, description="time after injection (h)"),
        "spect": Key("string", description="SPECT image file or DICOM folder"),
        "spect_units": Key("string", description="Bq/mL, counts or Gy/h"),
        "ct": Key("string", description="CT image file or DICOM folder"),
        "calibration_cps_per_MBq": Key("number", -1e12, 1e12, description="camera sensitivity (cps/MBq)"),
        "acquisition_duration_s": Key("number", -1e7, 1e7, description="acquisition duration (s)"),
        "spect_series_uid": Key("string", description="SeriesInstanceUID of the SPECT series"),
        "ct_series_uid": Key("string", description="SeriesInstanceUID of the CT series"),
        "calibration_time_basis": Key("string", description="scan_duration or detector_time (counts calibration)"),
    },
    "segmentation": {
        "file": Key("string", description="labelmap file"),
        "labels": Key("object", child="labels", description="{label value: {name, kind, mode}}"),
    },
    "label": {
        "name": Key("string", description="VOI name"),
        "kind": Key("string", description="tumor, kidney or organ"),
        "mode": Key("string", description="as_drawn or adaptive_threshold"),
    },
    "uncertainty": {  # defaults: physics.uncertainty.DEFAULTS (and where they come from)
        "calibration_rel": Key("number", 0, 1, description="calibration factor, relative 1 sigma (default 0.03)"),
        "rc_rel": Key("number", 0, 1, description="recovery coefficient, relative 1 sigma (default 0.05)"),
        "volume_rel": Key("number", 0, 1, description="VOI volume, relative 1 sigma (default: voxel/sqrt(12) boundary "
                                                      "on a sphere of the VOI volume)"),
        "registration_mm": Key("number", 0, 100, description="residual misregistration when the registration check "
                                                             "gives none, mm (default 2, the check threshold)"),
        "teff_rel": Key("number", 0, 1, description="single time point: T_eff relative 1 sigma when the fit gives none "
                                                    "(default 0)"),
    },
    "recovery_coefficients": {
        "volume_ml": Key("number_list", -1e9, 1e9, description="sphere volumes (mL)"),
        "rc": Key("number_list", -1e6, 1e6, description="recovery coefficients"),
        "source": Key("string", description="where the table comes from (free text)"),
    },
}

_LABEL_KEY = re.compile(r"[1-9][0-9]{0,8}")


def _type_name(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else type(v).__name__)


def _short(v, n: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= n else text[:n] + "..."


def check_number(value, where: str, key: Key, problems: list) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append((where, f"must be a number, got {_type_name(value)} {_short(value)}"))
        return
    try:
        x = float(value)
    except OverflowError:
        problems.append((where, "number beyond the floating-point range"))
        return
    if not math.isfinite(x):
        problems.append((where, f"must be a finite number, got {x}"))
    elif (key.minimum is not None and x < key.minimum) or (key.maximum is not None and x > key.maximum):
        problems.append((where, f"{x:g} is outside the plausible range [{key.minimum:g}, {key.maximum:g}]"))


def _check_value(value, where: str, key: Key, problems: list) -> None:
    if value is None:
        return  # null = not given; the reader says whether the field is required
    kind = key.kind
    if kind == "string":
        if not isinstance(value, str):
            problems.append((where, f"must be a string, got {_type_name(value)} {_short(value)}"))
        elif len(value) > MAX_STRING_CHARS:
            problems.append((where, f"string of {len(value)} characters (more than {MAX_STRING_CHARS})"))
        elif "\x00" in value:
            problems.append((where, "contains a NUL character"))
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append((where, f"must be true or false, got {_type_name(value)} {_short(value)}"))
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append((where, f"must be an integer, got {_type_name(value)} {_short(value)}"))
        else:
            check_number(value, where, key, problems)
    elif kind == "number":
        check_number(value, where, key, problems)
    elif kind == "number_list":
        if not isinstance(value, list):
            problems.append((where, f"must be a list of numbers, got {_type_name(value)}"))
        else:
            for j, v in enumerate(value):
                check_number(v, f"{where}[{j}]", key, problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append((where, f"must be a list, got {_type_name(value)}"))
        elif key.child:
            for j, item in enumerate(value):
                _check_level(item, f"{where}[{j}]", key.child, problems)
    elif kind == "object":
        if not isinstance(value, dict):
            problems.append((where, f"must be an object, got {_type_name(value)}"))
        elif key.child == "labels":
            _check_labels(value, where, problems)
        elif key.child:
            _check_level(value, where, key.child, problems)


def _check_level(d, where: str, level: str, problems: list) -> None:
    if not isinstance(d, dict):
        problems.append((where or "<root>", f"must be an object, got {_type_name(d)}"))
        return
    fields = MANIFEST_FIELDS[level]
    for k, v in d.items():
        path = f"{where}.{k}" if where else str(k)
        if k.startswith("_"):
            continue  # comment
        key = fields.get(k)
        if key is None:
            close = difflib.get_close_matches(k, list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed here: {', '.join(fields)}"
            problems.append((_short_path(path), f"unknown key{hint} (keys starting with '_' are comments)"))
            continue
        _check_value(v, path, key, problems)


def _short_path(path: str) -> str:
    return path if len(path) <= 120 else path[:100] + "..."


def _check_labels(labels: dict, where: str, problems: list) -> None:
    seen: dict[int, str] = {}
    for k, spec in labels.items():
        path = _short_path(f"{where}[{k}]")
        stripped = k.strip()
        try:
            value = int(stripped)
        except ValueError:
            try:
                f = float(stripped)
                value = int(f) if f.is_integer() else None
            except (ValueError, OverflowError):
                value = None
        if value is not None and value in seen:
            problems.append((path, f"names label {value} again (also '{seen[value]}'): one entry per label value"))
            continue
        if not _LABEL_KEY.fullmatch(k):
            hint = f"; write it as '{value}'" if value is not None and value > 0 else ""
            problems.append((path, f"label value must be a positive integer written plainly{hint}"))
            if value is not None:
                seen[value] = k
            continue
        seen[value] = k
        _check_level(spec, path, "label", problems)


def check_manifest_structure(d) -> list[tuple[str, str]]:
    """Every structural problem of a parsed manifest ``d`` (see the module doc)."""
    problems: list[tuple[str, str]] = []
    _check_level(d, "", "root", problems)
    return problems


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key '{_short(k, 80)[1:-1]}' in one object (JSON readers keep only one of "
                             "them): remove one")
        d[k] = v
    return d


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number; write a finite number")


def _depth(obj, limit: int) -> int:
    stack = [(obj, 1)]
    deepest = 0
    while stack:
        o, n = stack.pop()
        deepest = max(deepest, n)
        if n > limit:
            return n
        if isinstance(o, dict):
            stack.extend((v, n + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, n + 1) for v in o)
    return deepest


def load_json_strict(text: str, source, max_depth: int = MAX_DEPTH):
    """Parse manifest text; any problem -> :class:`ManifestError` naming ``source``."""
    try:
        d = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except RecursionError:
        raise ManifestError(source, [("<file>", "not valid JSON (nested deeper than Python can read)")]) from None
    except ValueError as exc:  # includes JSONDecodeError, duplicate keys, huge integers
        raise ManifestError(source, [("<file>", f"not valid JSON ({_short(str(exc), 300)[1:-1]})")]) from None
    if _depth(d, max_depth) > max_depth:
        raise ManifestError(source, [("<file>", f"nested deeper than {max_depth} levels; a study manifest is "
                                                "at most 5 levels deep")])
    return d


def resolve_manifest_path(base: Path, value, field_name, problems, required=True, check_files=True, warnings=None):
    """The absolute path of a manifest path value (relative to ``base``), or None with a problem
    appended: missing, not a string, NUL character, unusable (name too long, link loop), absent,
    or not a regular file/folder (a FIFO or device would block a reader). ``..``/absolute paths
    outside the study folder are allowed and recorded in ``warnings``."""
    if not check_files and (value is None or value == ""):
        return None
    if value is None or value == "":
        if required:
            problems.append((field_name, "is missing"))
        return None
    if not isinstance(value, str):
        problems.append((field_name, f"must be a path string, got {value!r:.60}"))
        return None
    if "\x00" in value:
        problems.append((field_name, "contains a NUL character"))
        return None
    shown = value if len(value) <= 120 else value[:80] + "..." + value[-30:]
    try:
        p = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
        if check_files:
            if not p.exists():
                problems.append((field_name, f"file or folder not found: {p}"))
            elif not (p.is_file() or p.is_dir()):
                problems.append((field_name, f"{p} is not a regular file or folder (a FIFO, socket or device): "
                                             "give an image file or a DICOM folder"))
    except (OSError, ValueError, RuntimeError) as exc:  # name too long, symlink loop, ...
        problems.append((field_name, f"unusable path {shown!r} ({getattr(exc, 'strerror', None) or exc})"))
        return None
    if warnings is not None and (Path(value).is_absolute() or ".." in Path(value).parts):
        try:
            inside = p.is_relative_to(Path(base).resolve())
        except (OSError, ValueError):
            inside = False
        if not inside:
            warnings.append(f"{field_name} = {shown}: outside the study folder ({p})")
    return p
