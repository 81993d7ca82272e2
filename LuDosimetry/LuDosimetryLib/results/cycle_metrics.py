"""Cross-cycle dose metrics from per-VOI-per-cycle rows (contract 2, ``voi_cycle_doses.csv``).

Input: a sequence of plain dicts, one per VOI per cycle, with the contract-2 columns
``patient_id, cycle, voi, kind, volume_ml, administered_activity_MBq, absorbed_dose_Gy,
ad_per_aa_Gy_per_GBq, fit_model, effective_half_life_h, recovery_coefficient, flags``
(required: patient_id, cycle, voi, kind, administered_activity_MBq, absorbed_dose_Gy; numbers may
be numeric strings as read back from the CSV). Optional keys: ``excluded`` (bool; tumours below
the minimum volume, e.g. 10 mL in Macsuka et al. 2026, 2 mL in Hebert et al. 2024) and ``lea_catcheside_g`` (kidney
rows; enables the kidney BED).

Definitions (Macsuka et al. 2026 unless stated)
-----------------------------------
* AD/AA per VOI and cycle, Gy/GBq (from the row, or AD / (AA/1000) when absent); % change of
  AD/AA vs cycle 1 and vs the previous cycle of the patient.
* Cumulative AD per tumour = Σ over cycles; **cAD** = mean over the patient's (included) tumours.
* **ΔAD/AA** = 100 × (patient-mean tumour AD/AA at the last cycle / at cycle 1 − 1) %, the means
  taken over the tumours present at both cycles (paired).
* Kidney cumulative dose = mean over the kidney VOIs (normally left and right) of each kidney's
  cumulative AD (arithmetic mean, not mass-weighted; with one kidney VOI, that VOI). Kidney BED
  (if G is given per row) = mean over kidneys of Σ_c [D_c + G_c D_c²/(α/β)], α/β = 2.6 Gy.
* Lesion min/mean/max total AD per patient (Hebert et al. 2024, Table 6): min, mean, max over the tumours
  of their cumulative AD.
* Washout (effective) half-life per VOI per cycle as given by the fit, and the patient mean over
  tumours per cycle.

Missing cycles (a VOI without a row for a cycle the patient received) are explicit: the VOI table
gets a row with ``present=False``, and ``missing_cycles`` decides the aggregates: ``"warn"``
(default: sum over the cycles present and a warning), ``"exclude"`` (that VOI is left out of the
patient aggregates, with a warning) or ``"raise"`` (:class:`InputDataError`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..checks import scalar
from ..errors import InputDataError
from ..physics.radiobiology import KIDNEY_ALPHA_BETA_GY, bed_Gy

__all__ = ["VoiCycleMetrics", "PatientCycleSummary", "CrossCycleMetrics", "cross_cycle_metrics"]

REQUIRED_KEYS = ("patient_id", "cycle", "voi", "kind", "administered_activity_MBq", "absorbed_dose_Gy")
KINDS = ("tumor", "kidney", "organ")
_MISSING_POLICIES = ("warn", "exclude", "raise")


@dataclass(frozen=True)
class VoiCycleMetrics:
    """One VOI in one cycle (``present=False``: the patient had the cycle, the VOI has no row)."""

    patient_id: str
    voi: str
    kind: str
    cycle: int
    present: bool
    excluded: bool
    absorbed_dose_Gy: float | None
    administered_activity_MBq: float | None
    ad_per_aa_Gy_per_GBq: float | None
    ad_per_aa_change_vs_cycle1_percent: float | None
    ad_per_aa_change_vs_previous_percent: float | None
    effective_half_life_h: float | None
    volume_ml: float | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PatientCycleSummary:
    """Per-patient cross-cycle metrics (doses Gy, AD/AA Gy/GBq, half-lives h, changes %)."""

    patient_id: str
    cycles: tuple
    tumors: tuple
    excluded_tumors: tuple
    tumor_cumulative_dose_Gy: dict
    cumulative_tumor_dose_Gy: float | None
    lesion_total_dose_min_Gy: float | None
    lesion_total_dose_mean_Gy: float | None
    lesion_total_dose_max_Gy: float | None
    tumor_mean_ad_Gy_by_cycle: dict
    tumor_mean_ad_per_aa_by_cycle: dict
    tumor_mean_effective_half_life_h_by_cycle: dict
    delta_ad_per_aa_percent: float | None
    kidney_cumulative_dose_Gy: float | None
    kidney_cumulative_dose_Gy_per_kidney: dict
    kidney_mean_dose_Gy_by_cycle: dict
    kidney_bed_Gy: float | None
    warnings: list = field(default_factory=list)

    def summary_fields(self) -> dict:
        """The contract-2 ``summary.json`` fields this module owns."""
        return {
            "patient_id": self.patient_id,
            "cycles": list(self.cycles),
            "cumulative_tumor_dose_Gy": self.cumulative_tumor_dose_Gy,
            "delta_ad_per_aa_percent": self.delta_ad_per_aa_percent,
            "kidney_cumulative_dose_Gy": self.kidney_cumulative_dose_Gy,
            "kidney_bed_Gy": self.kidney_bed_Gy,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class CrossCycleMetrics:
    """Result of :func:`cross_cycle_metrics`."""

    voi_cycles: list
    patients: dict
    warnings: list = field(default_factory=list)

    def voi_rows(self) -> list[dict]:
        """VOI-per-cycle metrics as plain dicts (for a CSV table)."""
        return [m.as_dict() for m in self.voi_cycles]


# ----------------------------------------------------------------------------- parsing


def _num(row_i: int, row: dict, key: str, *, required: bool, positive=False, nonneg=False):
    v = row.get(key)
    if v is None or (isinstance(v, str) and v.strip() == ""):
        if required:
            raise InputDataError(f"rows[{row_i}]: missing value for {key!r}")
        return None
    if isinstance(v, bool):
        raise InputDataError(f"rows[{row_i}][{key!r}] must be a number, got {v!r}")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise InputDataError(f"rows[{row_i}][{key!r}] must be a number, got {v!r}") from None
    if not math.isfinite(x):
        if required:
            raise InputDataError(f"rows[{row_i}][{key!r}] must be finite, got {v!r}")
        return None
    if positive and x <= 0:
        raise InputDataError(f"rows[{row_i}][{key!r}] must be > 0, got {x:g}")
    if nonneg and x < 0:
        raise InputDataError(f"rows[{row_i}][{key!r}] must be >= 0, got {x:g}")
    return x


def _bool(row_i: int, row: dict, key: str) -> bool:
    v = row.get(key, False)
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("", "0", "false", "no", "f", "n"):
        return False
    if isinstance(v, str) and v.strip().lower() in ("1", "true", "yes", "t", "y"):
        return True
    raise InputDataError(f"rows[{row_i}][{key!r}] must be a boolean, got {v!r}")


def _parse(rows) -> list[dict]:
    if isinstance(rows, (str, bytes)) or not hasattr(rows, "__iter__"):
        raise InputDataError("rows must be a sequence of dicts (one per VOI per cycle)")
    out = []
    seen: dict = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputDataError(f"rows[{i}] must be a dict, got {type(row).__name__}")
        for k in REQUIRED_KEYS:
            if k not in row:
                raise InputDataError(f"rows[{i}]: missing column {k!r}")
        pid = str(row["patient_id"]).strip()
        voi = str(row["voi"]).strip()
        if not pid:
            raise InputDataError(f"rows[{i}]['patient_id'] must not be empty")
        if not voi:
            raise InputDataError(f"rows[{i}]['voi'] must not be empty")
        kind = str(row["kind"]).strip().lower()
        if kind == "tumour":
            kind = "tumor"
        if kind not in KINDS:
            raise InputDataError(f"rows[{i}]['kind'] must be one of {KINDS}, got {row['kind']!r}")
        c = row["cycle"]
        try:
            cf = float(c)
        except (TypeError, ValueError):
            raise InputDataError(f"rows[{i}]['cycle'] must be an integer >= 1, got {c!r}") from None
        if isinstance(c, bool) or not math.isfinite(cf) or cf != int(cf) or cf < 1:
            raise InputDataError(f"rows[{i}]['cycle'] must be an integer >= 1, got {c!r}")
        cycle = int(cf)
        key = (pid, voi, cycle)
        if key in seen:
            raise InputDataError(
                f"rows[{i}]: duplicate (patient_id, voi, cycle) = {key}, also in rows[{seen[key]}]"
            )
        seen[key] = i
        aa = _num(i, row, "administered_activity_MBq", required=True, positive=True)
        ad = _num(i, row, "absorbed_dose_Gy", required=True, nonneg=True)
        adaa_given = _num(i, row, "ad_per_aa_Gy_per_GBq", required=False, nonneg=True)
        adaa = ad / (aa / 1000.0)
        note = None
        if adaa_given is not None:
            if abs(adaa_given - adaa) > 0.01 * max(adaa, 1e-12):
                note = (
                    f"{pid} {voi} cycle {cycle}: ad_per_aa_Gy_per_GBq {adaa_given:.4g} differs from "
                    f"absorbed_dose_Gy / AA = {adaa:.4g} by > 1 %; the given value is used"
                )
            adaa = adaa_given
        out.append({
            "i": i, "patient_id": pid, "voi": voi, "kind": kind, "cycle": cycle, "aa": aa, "ad": ad,
            "adaa": adaa, "note": note,
            "teff": _num(i, row, "effective_half_life_h", required=False, positive=True),
            "volume": _num(i, row, "volume_ml", required=False, nonneg=True),
            "g": _num(i, row, "lea_catcheside_g", required=False, nonneg=True),
            "excluded": _bool(i, row, "excluded"),
        })
    if not out:
        raise InputDataError("rows is empty: no VOI-per-cycle results")
    return out


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _pct(new, ref):
    if new is None or ref is None or ref == 0:
        return None
    return 100.0 * (new / ref - 1.0)


# ----------------------------------------------------------------------------- main


def cross_cycle_metrics(
    rows,
    *,
    missing_cycles: str = "warn",
    min_tumor_volume_ml: float | None = None,
    kidney_alpha_beta_Gy: float = KIDNEY_ALPHA_BETA_GY,
) -> CrossCycleMetrics:
    """Cross-cycle metrics per VOI and per patient (see the module docstring for definitions).

    Parameters
    ----------
    rows : sequence of dict
        Contract-2 rows (one per VOI per cycle); several patients allowed.
    missing_cycles : {"warn", "exclude", "raise"}
        What to do when a VOI lacks a cycle the patient received.
    min_tumor_volume_ml : float, optional
        Exclude tumours whose cycle-1 ``volume_ml`` (first available cycle if no cycle 1) is
        below this, in addition to rows flagged ``excluded`` (a tumour excluded in any row is
        excluded in all cycles, since exclusion is decided once).
    kidney_alpha_beta_Gy : float
        α/β for the kidney BED (Gy), used only when rows carry ``lea_catcheside_g``.
    """
    if missing_cycles not in _MISSING_POLICIES:
        raise InputDataError(f"missing_cycles must be one of {_MISSING_POLICIES}, got {missing_cycles!r}")
    if min_tumor_volume_ml is not None:
        min_tumor_volume_ml = scalar(min_tumor_volume_ml, "min_tumor_volume_ml", nonneg=True, unit="mL")
    ab = scalar(kidney_alpha_beta_Gy, "kidney_alpha_beta_Gy", positive=True, unit="Gy")

    parsed = _parse(rows)
    all_warnings: list[str] = []
    voi_table: list[VoiCycleMetrics] = []
    patients: dict[str, PatientCycleSummary] = {}

    for pid in sorted({r["patient_id"] for r in parsed}):
        prow = [r for r in parsed if r["patient_id"] == pid]
        warn: list[str] = [r["note"] for r in prow if r["note"]]
        cycles = sorted({r["cycle"] for r in prow})
        by_voi: dict[str, dict[int, dict]] = {}
        kinds: dict[str, str] = {}
        for r in prow:
            if r["voi"] in kinds and kinds[r["voi"]] != r["kind"]:
                raise InputDataError(
                    f"rows[{r['i']}]: VOI {r['voi']!r} of patient {pid} has kind {r['kind']!r} "
                    f"but {kinds[r['voi']]!r} in another cycle"
                )
            kinds[r["voi"]] = r["kind"]
            by_voi.setdefault(r["voi"], {})[r["cycle"]] = r

        # exclusion of tumours
        excluded = set()
        for voi, per in by_voi.items():
            if kinds[voi] != "tumor":
                continue
            if any(r["excluded"] for r in per.values()):
                excluded.add(voi)
            elif min_tumor_volume_ml is not None:
                ref_cycle = 1 if 1 in per else min(per)
                vol = per[ref_cycle]["volume"]
                if vol is None:
                    warn.append(f"{voi}: no volume_ml at cycle {ref_cycle}; minimum-volume rule not applied")
                elif vol < float(min_tumor_volume_ml):
                    excluded.add(voi)
                    warn.append(
                        f"{voi}: excluded (volume {vol:.3g} mL at cycle {ref_cycle} < {float(min_tumor_volume_ml):g} mL)"
                    )

        # missing cycles
        incomplete = set()
        for voi, per in by_voi.items():
            miss = [c for c in cycles if c not in per]
            if not miss:
                continue
            if missing_cycles == "raise":
                raise InputDataError(
                    f"patient {pid}: VOI {voi!r} has no row for cycle(s) {miss} "
                    f"(patient cycles {cycles}); pass missing_cycles='warn' or 'exclude' to proceed"
                )
            incomplete.add(voi)
            if missing_cycles == "warn":
                warn.append(
                    f"{voi}: missing cycle(s) {miss}; cumulative dose summed over cycles "
                    f"{sorted(per)} only (underestimate)"
                )
            else:
                warn.append(f"{voi}: missing cycle(s) {miss}; left out of the patient aggregates")

        # VOI-per-cycle table
        for voi in sorted(by_voi):
            per = by_voi[voi]
            ref1 = per.get(1)
            for k, c in enumerate(cycles):
                r = per.get(c)
                prev = per.get(cycles[k - 1]) if k > 0 else None
                if r is None:
                    voi_table.append(VoiCycleMetrics(
                        pid, voi, kinds[voi], c, False, voi in excluded, None, None, None, None, None, None, None))
                    continue
                voi_table.append(VoiCycleMetrics(
                    pid, voi, kinds[voi], c, True, voi in excluded, r["ad"], r["aa"], r["adaa"],
                    _pct(r["adaa"], ref1["adaa"]) if (ref1 is not None and c != 1) else (0.0 if c == 1 else None),
                    _pct(r["adaa"], prev["adaa"]) if prev is not None else None,
                    r["teff"], r["volume"],
                ))

        def usable(voi):
            return not (missing_cycles == "exclude" and voi in incomplete)

        tumors = sorted(v for v in by_voi if kinds[v] == "tumor" and v not in excluded and usable(v))
        cum = {v: sum(r["ad"] for r in by_voi[v].values()) for v in tumors}
        cad = _mean(cum.values())
        mean_ad = {c: _mean([by_voi[v][c]["ad"] for v in tumors if c in by_voi[v]]) for c in cycles}
        mean_adaa = {c: _mean([by_voi[v][c]["adaa"] for v in tumors if c in by_voi[v]]) for c in cycles}
        mean_teff = {c: _mean([by_voi[v][c]["teff"] for v in tumors if c in by_voi[v]]) for c in cycles}
        delta = None
        if tumors:
            last = cycles[-1]
            if 1 not in cycles:
                warn.append("no cycle 1: delta AD/AA not computed")
            elif last == 1:
                warn.append("only cycle 1: delta AD/AA not computed")
            else:
                paired = [v for v in tumors if 1 in by_voi[v] and last in by_voi[v]]
                if not paired:
                    warn.append(f"no tumour has both cycle 1 and cycle {last}: delta AD/AA not computed")
                else:
                    m1 = _mean([by_voi[v][1]["adaa"] for v in paired])
                    mL = _mean([by_voi[v][last]["adaa"] for v in paired])
                    delta = _pct(mL, m1)
                    if len(paired) < len(tumors):
                        warn.append(
                            f"delta AD/AA over the {len(paired)} tumour(s) present at cycles 1 and {last} "
                            f"(of {len(tumors)})"
                        )
        else:
            warn.append("no included tumour: cAD and delta AD/AA not computed")

        kidneys = sorted(v for v in by_voi if kinds[v] == "kidney" and usable(v))
        kcum = {v: sum(r["ad"] for r in by_voi[v].values()) for v in kidneys}
        kmean = _mean(kcum.values())
        kby_c = {c: _mean([by_voi[v][c]["ad"] for v in kidneys if c in by_voi[v]]) for c in cycles}
        kbed = None
        if not kidneys:
            warn.append("no kidney VOI: kidney cumulative dose not computed")
        else:
            if len(kidneys) == 1:
                warn.append(f"one kidney VOI ({kidneys[0]}): its cumulative dose is the kidney dose")
            elif len(kidneys) > 2:
                warn.append(f"{len(kidneys)} kidney VOIs: kidney dose is their mean")
            gs_ok = all(r["g"] is not None for v in kidneys for r in by_voi[v].values())
            if gs_ok:
                beds = []
                for v in kidneys:
                    cs = sorted(by_voi[v])
                    beds.append(bed_Gy([by_voi[v][c]["ad"] for c in cs], [by_voi[v][c]["g"] for c in cs], ab))
                kbed = sum(beds) / len(beds)

        summ = PatientCycleSummary(
            patient_id=pid, cycles=tuple(cycles), tumors=tuple(tumors),
            excluded_tumors=tuple(sorted(excluded)), tumor_cumulative_dose_Gy=cum,
            cumulative_tumor_dose_Gy=cad,
            lesion_total_dose_min_Gy=min(cum.values()) if cum else None,
            lesion_total_dose_mean_Gy=cad,
            lesion_total_dose_max_Gy=max(cum.values()) if cum else None,
            tumor_mean_ad_Gy_by_cycle=mean_ad, tumor_mean_ad_per_aa_by_cycle=mean_adaa,
            tumor_mean_effective_half_life_h_by_cycle=mean_teff, delta_ad_per_aa_percent=delta,
            kidney_cumulative_dose_Gy=kmean, kidney_cumulative_dose_Gy_per_kidney=kcum,
            kidney_mean_dose_Gy_by_cycle=kby_c, kidney_bed_Gy=kbed, warnings=warn,
        )
        patients[pid] = summ
        all_warnings += [f"{pid}: {w}" for w in warn]

    return CrossCycleMetrics(voi_cycles=voi_table, patients=patients, warnings=all_warnings)
