"""Synthetic multi-cycle [177Lu]Lu-DOTATATE patient with an analytic ground truth.

The digital patient is a set of analytic shapes (body, lungs, liver, spleen, two kidneys,
spine, four tumours in liver and lymph nodes) in a canonical frame. Every VOI has its own
bi-exponential kinetics per cycle, Macsuka et al. 2026 Eq. 1::

    c(t) = A (exp(-lambda_wash t) - exp(-lambda_up t))        [Bq/mL]

with realistic values (Macsuka et al. 2026 Table 2): kidneys 0.43 Gy/GBq and 47 h washout; tumours
about 3.2 Gy/GBq in cycle 1 falling about 10 % per cycle, washout about 80 h. Administered
activities follow the Macsuka et al. 2026 trial rule (7.4 GBq, then planned from the kidney dose).

Each of the 4 cycles x 3 time points (4, 24, 72 h) is imaged with its own small rigid patient
pose (translation up to ``max_shift_mm``, rotation up to ``max_rotation_deg``; the cycle-1 24 h
reference scan defines the canonical pose). For registration tests, ``cycle_shift_mm`` adds a
repositioning of every later cycle (e.g. (10, 10, 20): 10-20 mm along z), and
``low_structure_ct`` makes a CT that shows only the body outline (no information along z). SPECT = true concentration blurred with a
Gaussian of ``fwhm_mm`` plus Poisson noise (:mod:`spect_model`); CT in HU with small noise.

Ground truth (``ground_truth.json``) is computed analytically from the activity model, not by
the pipeline: for a VOI of uniform concentration, the local-deposition absorbed dose is

    D = A (1/lambda_wash - 1/lambda_up) * E_electrons / rho

with the ICRP-107 mean electron energy per decay (non-penetrating emissions absorbed
locally, photons escaping — the local-deposition convention of EANM 2022 for 177Lu) and the
tissue density rho used to make the CT.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..physics.radionuclides import get_nuclide
from ..synthetic.spect_model import simulate_spect
from ..synthetic.spheres import ellipsoid_occupancy, measure_recovery_coefficients

# Seconds per hour and Bq per MBq, used in unit conversions of the analytic truth.
_S_PER_H = 3600.0


@dataclass
class Compartment:
    """A region of the phantom with one kinetic model.

    shape: "ellipsoid" (centre_mm, semi_axes_mm) or "cylinder_z" (centre x/y, radius in semi_axes[0]).
    ad_per_aa_Gy_per_GBq: cycle-1 local-deposition absorbed dose per administered activity.
    washout_h / uptake_h: half-times of exp(-lambda_wash t) and exp(-lambda_up t) (effective, h).
    cycle_factor: multiplicative change of AD/AA per cycle (0.9 = 10 % fall per cycle).
    """

    name: str
    kind: str  # tumor, kidney, organ, background
    shape: str
    centre_mm: tuple
    semi_axes_mm: tuple
    hu: float
    density_g_per_ml: float
    ad_per_aa_Gy_per_GBq: float
    washout_h: float
    uptake_h: float
    cycle_factor: float = 1.0
    label: int = 0  # label in the segmentation (0 = not a VOI)
    mode: str = "as_drawn"
    roi_margin_mm: float = 0.0  # for adaptive-threshold tumours: oversize of the drawn ROI

    @property
    def volume_ml(self) -> float:
        a, b, c = self.semi_axes_mm
        return 4.0 / 3.0 * math.pi * a * b * c / 1000.0


def _sphere_radius_mm(volume_ml: float) -> float:
    return (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)


def _tumour(name, label, centre, volume_ml, ad_per_aa, washout_h, cycle_factor, mode="adaptive_threshold"):
    r = _sphere_radius_mm(volume_ml)
    return Compartment(name=name, kind="tumor", shape="ellipsoid", centre_mm=centre, semi_axes_mm=(r, r, r),
                       hu=50.0, density_g_per_ml=1.05, ad_per_aa_Gy_per_GBq=ad_per_aa, washout_h=washout_h,
                       uptake_h=3.0, cycle_factor=cycle_factor, label=label, mode=mode,
                       roi_margin_mm=12.0 if mode == "adaptive_threshold" else 0.0)


def default_compartments() -> list[Compartment]:
    """The default anatomy, in painting order (later compartments overwrite earlier ones).

    Coordinates are LPS millimetres relative to the volume centre (+x patient left,
    +y posterior, +z superior).
    """
    c = Compartment
    return [
        c("body", "background", "cylinder_z", (0, 0, 0), (170, 115, 1e9), 40.0, 1.04, 0.02, 30.0, 0.5),
        c("lung_right", "background", "ellipsoid", (-85, 0, 125), (65, 80, 110), -800.0, 0.26, 0.004, 30.0, 0.5),
        c("lung_left", "background", "ellipsoid", (85, 0, 125), (65, 80, 110), -800.0, 0.26, 0.004, 30.0, 0.5),
        c("spine", "background", "cylinder_z", (0, 80, 0), (20, 20, 1e9), 700.0, 1.40, 0.03, 60.0, 2.0),
        c("liver", "organ", "ellipsoid", (-70, -10, 30), (95, 80, 70), 55.0, 1.06, 0.15, 60.0, 1.0, label=3),
        c("spleen", "organ", "ellipsoid", (85, 40, 40), (40, 30, 55), 45.0, 1.05, 0.60, 60.0, 1.0, label=4),
        c("kidney_left", "kidney", "ellipsoid", (72, 62, -45), (28, 25, 50), 30.0, 1.05, 0.43, 47.0, 0.7, label=1),
        c("kidney_right", "kidney", "ellipsoid", (-72, 62, -55), (28, 25, 50), 30.0, 1.05, 0.43, 47.0, 0.7, label=2),
        _tumour("tumor_liver_1", 10, (-60, -30, 40), 200.0, 3.6, 82.0, 0.89),
        _tumour("tumor_liver_2", 11, (-125, 20, 0), 30.0, 3.0, 78.0, 0.91),
        _tumour("tumor_node_1", 12, (0, 20, -110), 15.0, 2.9, 80.0, 0.90, mode="as_drawn"),
        _tumour("tumor_node_2", 13, (40, -40, -150), 6.0, 3.3, 76.0, 0.90),
    ]


@dataclass
class PhantomConfig:
    """Settings of the synthetic patient (defaults: the demo patient).

    ``spect_units`` selects what the SPECT files hold: activity concentration (Bq/mL); counts
    per voxel (the Bq/mL image times voxel volume, ``calibration_cps_per_MBq`` and the
    acquisition duration, both written to the manifest); or an absorbed-dose-rate map (Gy/h) by
    local deposition, ``rate = C x E_electrons / rho`` with the true tissue density (floored at
    0.26 g/mL, lung, so blurred activity in air does not blow up), as a Monte Carlo code would
    hand over.
    """

    seed: int = 1
    patient_id: str = "SYNTH001"
    shape_xyz: tuple = (128, 128, 96)
    spacing_mm: float = 4.8
    fwhm_mm: float = 12.0
    hours: tuple = (4.0, 24.0, 72.0)
    n_cycles: int = 4
    reference_hours: float = 24.0
    first_cycle_activity_MBq: float = 7400.0
    kidney_limit_Gy: float = 23.0
    activity_cap_MBq: float = 11100.0
    sensitivity_cps_per_MBq: float = 10.0
    acquisition_duration_s: float = 1800.0
    max_shift_mm: float = 8.0
    max_rotation_deg: float = 2.0
    cycle_shift_mm: tuple = (0.0, 0.0, 0.0)  # repositioning between cycles: cycle c > 1 moved by (0.5-1) x this, random sign
    low_structure_ct: bool = False  # CT shows only the body outline (uniform along z): no CT information along z
    ct_noise_HU: float = 10.0
    cycle_interval_days: float = 56.0
    first_injection: str = "2025-01-06T09:00:00+00:00"
    radionuclide: str = "Lu-177"
    spect_units: str = "Bq/mL"  # or "counts" (calibration_cps_per_MBq) or "Gy/h" (local-deposition dose rate)
    calibration_cps_per_MBq: float = 12.0  # for spect_units "counts": tomographic sensitivity written to the manifest
    compartments: list = field(default_factory=default_compartments)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ValueError if the settings cannot make a phantom: the reference scan
        (``reference_hours``, the registration target and segmentation geometry) must be one of
        ``hours``, and the ground truth and activity planning need a kidney compartment."""
        hours = [float(h) for h in self.hours]
        if not hours:
            raise ValueError("PhantomConfig.hours must list at least one scan time (h)")
        if float(self.reference_hours) not in hours:
            raise ValueError(f"PhantomConfig.reference_hours = {self.reference_hours:g} h is not one of "
                             f"PhantomConfig.hours = ({', '.join(f'{h:g}' for h in hours)}) h: the reference scan must "
                             "be one of the imaged time points")
        if len(self.cycle_shift_mm) != 3 or not all(math.isfinite(float(v)) for v in self.cycle_shift_mm):
            raise ValueError(f"PhantomConfig.cycle_shift_mm must be 3 finite numbers (x, y, z mm), "
                             f"got {self.cycle_shift_mm!r}")
        if not any(getattr(c, "kind", None) == "kidney" for c in self.compartments):
            raise ValueError("PhantomConfig.compartments has no compartment of kind 'kidney': the activity of cycles "
                             "after the first is planned from the kidney dose (Macsuka et al. 2026 rule); add a kidney compartment")


@dataclass
class Pose:
    """Rigid pose of the patient at one scan: rotation (deg, about x, y, z) then translation (mm)."""

    rotation_deg: tuple
    translation_mm: tuple

    def matrix(self) -> np.ndarray:
        ax, ay, az = np.deg2rad(self.rotation_deg)
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        return rz @ ry @ rx


def kinetic_parameters(comp: Compartment, cycle: int, energy_Gy_g_per_MBq_h: float) -> dict:
    """Bi-exponential parameters of ``comp`` in ``cycle`` per GBq administered.

    Returns A (Bq/mL per GBq), lambda_wash and lambda_up (1/h), chosen so that the analytic
    local-deposition AD/AA equals the compartment's value times cycle_factor**(cycle-1).
    """
    target = comp.ad_per_aa_Gy_per_GBq * comp.cycle_factor ** (cycle - 1)
    lw = math.log(2) / comp.washout_h
    lu = math.log(2) / comp.uptake_h
    tia_per_ml_MBq_h = target * comp.density_g_per_ml / energy_Gy_g_per_MBq_h
    a_MBq_per_ml = tia_per_ml_MBq_h / (1.0 / lw - 1.0 / lu)
    return {"A_Bq_per_ml_per_GBq": a_MBq_per_ml * 1e6, "lambda_wash_per_h": lw, "lambda_up_per_h": lu}


def concentration_Bq_per_ml(params: dict, aa_GBq: float, t_h: float) -> float:
    """Analytic concentration (Bq/mL) at ``t_h`` hours after injecting ``aa_GBq``."""
    return aa_GBq * params["A_Bq_per_ml_per_GBq"] * (math.exp(-params["lambda_wash_per_h"] * t_h)
                                                       - math.exp(-params["lambda_up_per_h"] * t_h))


def _grid_mm(cfg: PhantomConfig):
    nx, ny, nz = cfg.shape_xyz
    s = cfg.spacing_mm
    z, y, x = np.meshgrid(*[(np.arange(n) - (n - 1) / 2.0) * s for n in (nz, ny, nx)], indexing="ij")
    return x, y, z


def _origin_mm(cfg: PhantomConfig):
    return tuple(-(n - 1) / 2.0 * cfg.spacing_mm for n in cfg.shape_xyz)


def _occupancy(comp: Compartment, x, y, z, voxel_mm: float, margin_mm: float = 0.0) -> np.ndarray:
    """Fraction of each voxel inside ``comp`` (anti-aliased, see sphere_phantom.ellipsoid_occupancy)."""
    semi = tuple(s + margin_mm for s in comp.semi_axes_mm)
    return ellipsoid_occupancy(x, y, z, comp.centre_mm, semi, voxel_mm, cylinder_z=comp.shape == "cylinder_z")


def _pose_grid(cfg: PhantomConfig, pose: Pose | None):
    """Canonical coordinates of the voxel centres of a scan taken with ``pose``."""
    x, y, z = _grid_mm(cfg)
    if pose is None:
        return x, y, z
    # image point p = R q + t  =>  canonical q = R^T (p - t)
    r = pose.matrix()
    px, py, pz = x - pose.translation_mm[0], y - pose.translation_mm[1], z - pose.translation_mm[2]
    return (r[0, 0] * px + r[1, 0] * py + r[2, 0] * pz, r[0, 1] * px + r[1, 1] * py + r[2, 1] * pz,
            r[0, 2] * px + r[1, 2] * py + r[2, 2] * pz)


def paint(cfg: PhantomConfig, values, background: float, pose: Pose | None = None) -> np.ndarray:
    """Map [z, y, x] of a per-compartment quantity (``values[i]`` for cfg.compartments[i]) for a pose.

    Compartments are painted in order; a boundary voxel holds the volume-weighted mix of the
    compartment and what lies under it (partial-volume anti-aliasing).
    """
    x, y, z = _pose_grid(cfg, pose)
    out = np.full(x.shape, float(background))
    for comp, value in zip(cfg.compartments, values):
        box = _box(cfg, comp, pose)
        occ = _occupancy(comp, x[box], y[box], z[box], cfg.spacing_mm)
        inside = occ > 0
        sub = out[box]
        sub[inside] = sub[inside] * (1.0 - occ[inside]) + value * occ[inside]
    return out


def _box(cfg: PhantomConfig, comp: Compartment, pose: Pose | None, pad_voxels: int = 3) -> tuple:
    """Slices [z, y, x] of the voxels that can be (partly) inside ``comp`` in a scan with ``pose``:
    the compartment's bounding box in canonical coordinates, mapped to the image, plus
    ``pad_voxels`` (the anti-aliased occupancy is 0 more than half a voxel outside the surface).
    Painting inside this box only gives the same image as painting the whole grid, much faster."""
    n_xyz = np.asarray(cfg.shape_xyz)
    c = np.asarray(comp.centre_mm, float)
    # a cylinder along z (body, spine) is unbounded along z, and tilted by the pose: the whole grid
    semi = np.asarray(comp.semi_axes_mm, float) if comp.shape != "cylinder_z" else np.full(3, np.inf)
    lo_idx, hi_idx = np.zeros(3, int), n_xyz - 1
    if np.all(np.isfinite(semi)):
        corners = c + semi * np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).T.reshape(-1, 3)
        if pose is not None:  # image point p = R q + t
            corners = corners @ pose.matrix().T + np.asarray(pose.translation_mm)
        idx = corners / cfg.spacing_mm + (n_xyz - 1) / 2.0
        lo_idx = np.clip(np.floor(idx.min(axis=0)).astype(int) - pad_voxels, 0, n_xyz - 1)
        hi_idx = np.clip(np.ceil(idx.max(axis=0)).astype(int) + pad_voxels, 0, n_xyz - 1)
    return tuple(slice(int(lo_idx[k]), int(hi_idx[k]) + 1) for k in (2, 1, 0))


def region_map(cfg: PhantomConfig, pose: Pose | None = None) -> np.ndarray:
    """Index (1-based, into cfg.compartments; 0 = air) of the compartment covering most of each voxel."""
    x, y, z = _pose_grid(cfg, pose)
    region = np.zeros(x.shape, dtype=np.int16)
    for i, comp in enumerate(cfg.compartments, start=1):
        box = _box(cfg, comp, pose)
        region[box][_occupancy(comp, x[box], y[box], z[box], cfg.spacing_mm) >= 0.5] = i
    return region


def segmentation_labelmap(cfg: PhantomConfig) -> np.ndarray:
    """Labelmap in the reference (canonical) pose: kidneys/organs as drawn, adaptive-threshold
    tumours as oversized spherical ROIs (true radius + roi_margin_mm)."""
    x, y, z = _grid_mm(cfg)
    region = region_map(cfg)
    labels = np.zeros(region.shape, dtype=np.uint8)
    for i, comp in enumerate(cfg.compartments, start=1):
        if comp.label and comp.kind != "tumor":
            labels[region == i] = comp.label
    for comp in cfg.compartments:
        if comp.kind == "tumor":
            labels[_occupancy(comp, x, y, z, cfg.spacing_mm, comp.roi_margin_mm) >= 0.5] = comp.label
    return labels


def make_poses(cfg: PhantomConfig) -> dict:
    """Rigid pose per (cycle, hours); the cycle-1 reference scan has the identity pose."""
    rng = np.random.default_rng(cfg.seed + 1000)
    poses = {}
    cycle_rng = np.random.default_rng(cfg.seed + 2000)  # own stream: the default patient's poses do not change
    for c in range(1, cfg.n_cycles + 1):
        offset = np.zeros(3)
        if c > 1 and any(cfg.cycle_shift_mm):
            offset = (np.asarray(cfg.cycle_shift_mm, float) * cycle_rng.uniform(0.5, 1.0, 3)
                      * cycle_rng.choice([-1.0, 1.0], 3))
        for h in cfg.hours:
            t = tuple(float(v) for v in rng.uniform(-cfg.max_shift_mm, cfg.max_shift_mm, 3) + offset)
            rot = tuple(float(v) for v in np.clip(rng.normal(0, cfg.max_rotation_deg / 2, 3),
                                                  -cfg.max_rotation_deg, cfg.max_rotation_deg))
            if c == 1 and h == cfg.reference_hours:
                t, rot = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
            poses[(c, h)] = Pose(rotation_deg=rot, translation_mm=t)
    return poses


def plan_activities_MBq(cfg: PhantomConfig, kidney_ad_per_aa_Gy_per_GBq: float) -> list[float]:
    """Administered activities by the Macsuka et al. 2026 trial rule (see radiobiology.plan_next_activity_seed000)."""
    from ..physics.radiobiology import plan_next_activity_seed000

    activities = [cfg.first_cycle_activity_MBq]
    delivered = [cfg.first_cycle_activity_MBq / 1000.0 * kidney_ad_per_aa_Gy_per_GBq]
    for c in range(2, cfg.n_cycles + 1):
        plan = plan_next_activity_seed000(delivered, kidney_ad_per_aa_Gy_per_GBq, cycles_remaining=cfg.n_cycles - c + 1,
                                          limit_Gy=cfg.kidney_limit_Gy, cap_GBq=cfg.activity_cap_MBq / 1000.0)
        activities.append(plan.next_activity_GBq * 1000.0)
        delivered.append(plan.next_activity_GBq * kidney_ad_per_aa_Gy_per_GBq)
    return activities


def ground_truth(cfg: PhantomConfig) -> dict:
    """Analytic truth per VOI per cycle (no image is made): doses, kinetics, activities, poses."""
    nuc = get_nuclide(cfg.radionuclide)
    energy = nuc.local_deposition_Gy_g_per_MBq_h
    cfg.validate()
    kidney = next(c for c in cfg.compartments if c.kind == "kidney")
    activities = plan_activities_MBq(cfg, kidney.ad_per_aa_Gy_per_GBq)
    vois = []
    for comp in cfg.compartments:
        if not comp.label:
            continue
        per_cycle = []
        for c, aa in zip(range(1, cfg.n_cycles + 1), activities):
            p = kinetic_parameters(comp, c, energy)
            aa_GBq = aa / 1000.0
            tia_per_ml_MBq_h = aa_GBq * p["A_Bq_per_ml_per_GBq"] / 1e6 * (1 / p["lambda_wash_per_h"] - 1 / p["lambda_up_per_h"])
            dose = tia_per_ml_MBq_h * energy / comp.density_g_per_ml
            per_cycle.append({
                "cycle": c, "administered_activity_MBq": aa, "absorbed_dose_Gy": dose,
                "ad_per_aa_Gy_per_GBq": dose / aa_GBq,
                "time_integrated_activity_MBq_h": tia_per_ml_MBq_h * comp.volume_ml,
                "washout_half_time_h": comp.washout_h, "kinetics": p,
                "concentration_Bq_per_ml": {f"{h:g}": concentration_Bq_per_ml(p, aa_GBq, h) for h in cfg.hours},
            })
        vois.append({"name": comp.name, "label": comp.label, "kind": comp.kind, "mode": comp.mode,
                     "volume_ml": comp.volume_ml, "density_g_per_ml": comp.density_g_per_ml,
                     "centre_mm": list(comp.centre_mm), "cycles": per_cycle})
    poses = make_poses(cfg)
    return {
        "description": "Analytic ground truth of the LuDosimetry synthetic patient (local energy deposition of the "
                       "electron energy per decay, uniform concentration per VOI; not computed by the pipeline)",
        "patient_id": cfg.patient_id, "radionuclide": nuc.name, "seed": cfg.seed,
        "electron_energy_Gy_g_per_MBq_h": energy,
        "administered_activity_MBq": activities,
        "vois": vois,
        "poses": [{"cycle": c, "hours": h, **asdict(p)} for (c, h), p in poses.items()],
    }


def simulate_scan(cfg: PhantomConfig, truth: dict, cycle: int, hours: float, pose: Pose,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """SPECT (Bq/mL, float32) and CT (HU, int16) arrays [z, y, x] of one scan."""
    energy = truth["electron_energy_Gy_g_per_MBq_h"]
    aa_GBq = truth["administered_activity_MBq"][cycle - 1] / 1000.0
    conc = [concentration_Bq_per_ml(kinetic_parameters(comp, cycle, energy), aa_GBq, hours) for comp in cfg.compartments]
    spacing = (cfg.spacing_mm,) * 3
    spect = simulate_spect(paint(cfg, conc, 0.0, pose), spacing, cfg.fwhm_mm, cfg.sensitivity_cps_per_MBq,
                           cfg.acquisition_duration_s, rng)
    body_hu = next((comp.hu for comp in cfg.compartments if comp.name == "body"), 40.0)
    hu = paint(cfg, [body_hu if cfg.low_structure_ct else comp.hu for comp in cfg.compartments], -1000.0, pose)
    ct = hu + rng.normal(0.0, cfg.ct_noise_HU, hu.shape) * (hu > -900)
    if cfg.spect_units == "counts":
        voxel_ml = cfg.spacing_mm ** 3 / 1000.0
        spect = (spect * (voxel_ml * 1e-6 * cfg.calibration_cps_per_MBq * cfg.acquisition_duration_s)).astype(np.float32)
    elif cfg.spect_units == "Gy/h":
        rho = np.maximum(paint(cfg, [comp.density_g_per_ml for comp in cfg.compartments], 0.0012, pose), 0.26)
        spect = (spect * 1e-6 * energy / rho).astype(np.float32)
    elif cfg.spect_units != "Bq/mL":
        raise ValueError(f"PhantomConfig.spect_units must be 'Bq/mL', 'counts' or 'Gy/h', got {cfg.spect_units!r}")
    return spect, np.clip(np.round(ct), -1024, 3071).astype(np.int16)


@dataclass
class Scan:
    """One simulated SPECT/CT scan: arrays [z, y, x] on the phantom grid (see :func:`phantom_image`)."""

    cycle: int
    hours: float
    injection_time: datetime
    acquisition_time: datetime
    spect: np.ndarray  # float32, in cfg.spect_units
    ct: np.ndarray  # int16, HU


def iter_scans(cfg: PhantomConfig, truth: dict | None = None):
    """Yield every :class:`Scan` of the synthetic patient, cycle by cycle, in acquisition order.

    One random stream (``cfg.seed``) runs through all scans in this order, so every writer of the
    phantom (NIfTI :func:`write_phantom_study`, DICOM ``phantom_dicom``) gets identical images.
    """
    truth = truth if truth is not None else ground_truth(cfg)
    poses = make_poses(cfg)
    rng = np.random.default_rng(cfg.seed)
    inj0 = datetime.fromisoformat(cfg.first_injection)
    for c in range(1, cfg.n_cycles + 1):
        inj = inj0 + timedelta(days=cfg.cycle_interval_days * (c - 1))
        for h in cfg.hours:
            spect, ct = simulate_scan(cfg, truth, c, h, poses[(c, h)], rng)
            yield Scan(cycle=c, hours=h, injection_time=inj, acquisition_time=inj + timedelta(hours=h), spect=spect, ct=ct)


def phantom_image(array: np.ndarray, cfg: PhantomConfig) -> sitk.Image:
    """``array`` [z, y, x] as a SimpleITK image on the phantom grid (identity direction, LPS mm)."""
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((cfg.spacing_mm,) * 3)
    img.SetOrigin(_origin_mm(cfg))
    return img


def recovery_coefficient_table(cfg: PhantomConfig) -> dict:
    """Recovery coefficients of the phantom's own SPECT resolution (spheres, cold background).

    Volumes are those of the voxelised spheres; on a coarse grid two small spheres can voxelise
    to the same (or a smaller) volume, so only spheres whose voxel volume exceeds that of the
    previous one are kept (the manifest requires strictly increasing volumes).
    """
    volumes, rc = measure_recovery_coefficients([0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                                                (cfg.spacing_mm,) * 3, cfg.fwhm_mm)
    kept_v, kept_rc = [], []
    for v, r in zip(volumes, rc):
        if not kept_v or round(v, 3) > kept_v[-1]:
            kept_v.append(round(v, 3))
            kept_rc.append(round(r, 4))
    return {"volume_ml": kept_v, "rc": kept_rc,
            "source": f"simulated spheres, Gaussian FWHM {cfg.fwhm_mm} mm, {cfg.spacing_mm} mm voxels"}


def voi_labels(cfg: PhantomConfig) -> dict:
    """The manifest's ``segmentation.labels`` of the phantom: {label: {name, kind, mode}}."""
    return {str(comp.label): {"name": comp.name, "kind": comp.kind, "mode": comp.mode}
            for comp in cfg.compartments if comp.label}


@contextlib.contextmanager
def new_output_folder(out_dir, prefix: str = ".phantom-"):
    """Yield a temporary folder next to ``out_dir`` that becomes ``out_dir`` only if the block
    completes: written completely or not at all. A non-empty ``out_dir`` is refused."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"phantom output folder is not empty: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    try:
        yield tmp
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_phantom_study(out_dir, config: PhantomConfig | None = None, progress=None) -> Path:
    """Write the synthetic patient as a study manifest (contract 1) with images, segmentation,
    recovery coefficients and ``ground_truth.json``. Returns the path of ``study.json``.

    ``progress(fraction 0..1, message)`` (optional, :mod:`LuDosimetryLib.progress`) is called at
    each stage: ground truth, every simulated scan, segmentation, manifest.

    The folder is written completely or not at all (built in a temporary folder, then moved).
    An existing non-empty ``out_dir`` is refused rather than overwritten.
    """
    cfg = config or PhantomConfig()
    out = Path(out_dir)
    from ..progress import report_progress

    n_scans = cfg.n_cycles * len(cfg.hours)
    with new_output_folder(out) as tmp:
        report_progress(progress, 0.0, "synthetic patient: ground truth and activity plan")
        truth = ground_truth(cfg)
        cycles = []
        report_progress(progress, 0.02, f"synthetic patient: simulating {n_scans} SPECT/CT scans")
        for k, scan in enumerate(iter_scans(cfg, truth)):
            c, h = scan.cycle, scan.hours
            report_progress(progress, 0.02 + 0.93 * (k + 1) / n_scans,
                            f"synthetic patient: scan {k + 1}/{n_scans} (cycle {c}, {h:g} h p.i.) simulated")
            if not cycles or cycles[-1]["cycle"] != c:
                (tmp / f"cycle{c}").mkdir()
                cycles.append({"cycle": c, "administered_activity_MBq": round(truth["administered_activity_MBq"][c - 1], 1),
                               "injection_time": scan.injection_time.astimezone(timezone.utc).isoformat(),
                               "timepoints": []})
            sp = f"cycle{c}/spect_{int(round(h)):03d}h.nii.gz"
            cp = f"cycle{c}/ct_{int(round(h)):03d}h.nii.gz"
            sitk.WriteImage(phantom_image(scan.spect, cfg), str(tmp / sp), True)
            sitk.WriteImage(phantom_image(scan.ct, cfg), str(tmp / cp), True)
            tp = {"acquisition_time": scan.acquisition_time.isoformat(), "spect": sp,
                  "spect_units": cfg.spect_units, "ct": cp}
            if cfg.spect_units == "counts":
                tp.update(calibration_cps_per_MBq=cfg.calibration_cps_per_MBq,
                          acquisition_duration_s=cfg.acquisition_duration_s)
            cycles[-1]["timepoints"].append(tp)
        report_progress(progress, 0.96, "synthetic patient: segmentation and manifest")
        sitk.WriteImage(phantom_image(segmentation_labelmap(cfg), cfg), str(tmp / "segmentation.nii.gz"), True)
        manifest = {"patient_id": cfg.patient_id, "radionuclide": cfg.radionuclide, "cycles": cycles,
                    "segmentation": {"file": "segmentation.nii.gz", "labels": voi_labels(cfg)},
                    "recovery_coefficients": recovery_coefficient_table(cfg)}
        (tmp / "study.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        (tmp / "ground_truth.json").write_text(json.dumps(truth, indent=2), encoding="utf-8")
    report_progress(progress, 1.0, f"synthetic patient written: {out}")
    return out / "study.json"
