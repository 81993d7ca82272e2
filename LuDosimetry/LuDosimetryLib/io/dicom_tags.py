"""DICOM value parsing shared by the DICOM modules: DA/TM/DT and time-zone offsets, numbers and
text from datasets, radionuclide names, and :class:`MissingTag` (a value the header lacks, with
the manifest field that supplies it). No pixel data, no SimpleITK."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np

_ELEMENTS = {
    "lutetium": "Lu", "yttrium": "Y", "iodine": "I", "terbium": "Tb", "technetium": "Tc", "fluorine": "F",
    "gallium": "Ga", "indium": "In", "holmium": "Ho", "actinium": "Ac", "radium": "Ra", "lead": "Pb",
    "copper": "Cu", "zirconium": "Zr", "samarium": "Sm", "rhenium": "Re", "thallium": "Tl", "bismuth": "Bi",
    "astatine": "At", "thorium": "Th", "scandium": "Sc", "erbium": "Er",
}
_SYMBOLS = {v.lower(): v for v in _ELEMENTS.values()}

@dataclass
class MissingTag:
    """A value the dosimetry needs that the DICOM header does not give.

    ``manifest_field`` uses ``[i]`` (cycle) and ``[j]`` (time point) placeholders until the series
    is placed in a cycle by :func:`inspect_directory`, which fills them in.
    """

    keyword: str
    tag: str
    manifest_field: str
    detail: str = ""

    def message(self, cycle_index: int | None = None, timepoint_index: int | None = None) -> str:
        f = self.manifest_field
        if cycle_index is not None:
            f = f.replace("cycles[i]", f"cycles[{cycle_index}]")
        if timepoint_index is not None:
            f = f.replace("timepoints[j]", f"timepoints[{timepoint_index}]")
        text = f"{self.keyword} {self.tag} missing → set {f}"
        return text + (f" ({self.detail})" if self.detail else "")

    def __str__(self) -> str:
        return self.message()



def _text(ds, keyword) -> str | None:
    v = ds.get(keyword, None) if ds is not None else None
    if v is None:
        return None
    if hasattr(v, "value"):
        v = v.value
    s = str(v).strip()
    return s or None


def _float(ds, keyword) -> float | None:
    v = ds.get(keyword, None) if ds is not None else None
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        if isinstance(v, (list, tuple)) or (hasattr(v, "__len__") and not isinstance(v, str)):
            v = v[0]
        f = float(v)
    except (TypeError, ValueError, IndexError):
        return None
    return f if np.isfinite(f) else None


def _int(ds, keyword) -> int | None:
    f = _float(ds, keyword)
    return int(round(f)) if f is not None else None


def parse_tz_offset(text: str | None) -> timezone | None:
    """'+0100' / '-0530' → timezone; None or malformed → None."""
    if not text:
        return None
    m = re.fullmatch(r"\s*([+-])(\d{2}):?(\d{2})\s*", str(text))
    if not m:
        return None
    sign = 1 if m.group(1) == "+" else -1
    return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))


def parse_da(text) -> date | None:
    """DICOM DA 'YYYYMMDD' (also the old 'YYYY.MM.DD'); None if absent or malformed."""
    if text is None:
        return None
    s = str(text).strip().replace(".", "").replace("-", "")
    if len(s) < 8 or not s[:8].isdigit():
        return None
    try:
        return date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None


def parse_tm(text) -> time | None:
    """DICOM TM 'HHMMSS.FFFFFF' (truncations and the old 'HH:MM:SS' accepted)."""
    if text is None:
        return None
    s = str(text).strip().replace(":", "")
    if not s:
        return None
    main, _, frac = s.partition(".")
    if not main.isdigit() or len(main) < 2:
        return None
    hh = int(main[0:2])
    mm = int(main[2:4]) if len(main) >= 4 else 0
    ss = int(main[4:6]) if len(main) >= 6 else 0
    us = int((frac + "000000")[:6]) if frac.isdigit() else 0
    try:
        return time(hh, mm, min(ss, 59), us)
    except ValueError:
        return None


def parse_dt(text) -> datetime | None:
    """DICOM DT 'YYYYMMDDHHMMSS.FFFFFF&ZZXX' (offset optional) → datetime (aware if offset)."""
    if text is None:
        return None
    s = str(text).strip()
    if len(s) < 8:
        return None
    tz = None
    m = re.search(r"([+-]\d{4})$", s)
    if m and len(s) > 8:
        tz = parse_tz_offset(m.group(1))
        s = s[: m.start()]
    d = parse_da(s[:8])
    if d is None:
        return None
    t = parse_tm(s[8:]) if len(s) > 8 else time(0, 0)
    if t is None:
        return None
    return datetime.combine(d, t, tzinfo=tz)


def normalise_radionuclide(text: str | None) -> str | None:
    """'^177^Lutetium', 'Lu-177', '177Lu', 'Lutetium-177' → 'Lu-177'; None if not recognised."""
    if not text:
        return None
    s = str(text)
    mass = re.search(r"(\d{1,3})\s*m?", s)
    metastable = bool(re.search(r"\d{1,3}\s*m\b|\d{1,3}m[A-Z^]|-\d{1,3}m\b", s))
    sym = None
    low = s.lower()
    for name, symbol in _ELEMENTS.items():
        if name in low:
            sym = symbol
            break
    if sym is None:
        for tok in re.findall(r"[A-Za-z]{1,2}", s):
            if tok.lower() in _SYMBOLS:
                sym = _SYMBOLS[tok.lower()]
                break
    if sym is None or mass is None:
        return None
    return f"{sym}-{mass.group(1)}{'m' if metastable else ''}"


def _reference_half_life_s(nuclide: str | None) -> float | None:
    if not nuclide:
        return None
    try:
        import radioactivedecay as rd  # optional, maintained nuclear data

        return float(rd.Nuclide(nuclide).half_life("s"))
    except Exception:  # noqa: BLE001 - not installed or unknown nuclide: no check
        return None


def _private_value(ds, group: int, offset: int, creator: str):
    try:
        return ds.get_private_item(group, offset, creator).value
    except (KeyError, ValueError, AttributeError):
        return None



def _local_datetime(d: date | None, t: time | None, tz: timezone | None) -> datetime | None:
    if d is None or t is None:
        return None
    return datetime.combine(d, t, tzinfo=tz)


def naive_utc(d: datetime) -> datetime:
    """A naive datetime for ordering: aware values converted to UTC, naive ones kept as they are."""
    return d.replace(tzinfo=None) if d.tzinfo is None else d.astimezone(timezone.utc).replace(tzinfo=None)


def fmt_dt(d: datetime | None) -> str:
    if d is None:
        return "?"
    return d.isoformat(sep=" ", timespec="minutes") + ("" if d.tzinfo else " (local time, no offset)")


# --------------------------------------------------------------------------------------------
# Placeholders of a draft manifest (``lu-dosimetry inspect --write-manifest``)
# --------------------------------------------------------------------------------------------

PLACEHOLDER_PREFIX = "FILL IN:"


def placeholder(what: str) -> str:
    """The marked placeholder a draft manifest holds for a value the headers do not give."""
    return f"{PLACEHOLDER_PREFIX} {what}"


def find_placeholders(obj, path: str = "") -> list[tuple[str, str]]:
    """``[(field path, placeholder text), ...]`` of every placeholder left in a manifest dict."""
    out = []
    if isinstance(obj, str) and obj.strip().startswith(PLACEHOLDER_PREFIX):
        out.append((path or "<root>", obj.strip()))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out += find_placeholders(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += find_placeholders(v, f"{path}[{i}]")
    return out
