"""Voxel S-value kernels (electron transport + photon point kernels), Lanconelli tables, FFT convolution to dose."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...checks import scalar as _scalar
from ...errors import InputDataError
from ..radionuclides import get_nuclide
from ._common import DEFAULT_MIN_DENSITY_G_PER_ML, SOFT_TISSUE_DENSITY_G_PER_ML, _KERNEL_CACHE_SIZE, _KEV_PER_G_TO_MGY_PER_MBQ_S, _S_PER_H, _array, _nuclide, _voxel_size
from .photon import _photon_local_keV, _photon_radial_keV_per_mm
from .electron import _MC_SEED, _electron_radial_deposition



# ----------------------------------------------------------------------------- validation helpers


# ----------------------------------------------------------------------------- CT density


# ----------------------------------------------------------------------------- local deposition


# ----------------------------------------------------------------------------- photon physics


# ----------------------------------------------------------------------------- electron transport


# ----------------------------------------------------------------------------- kernels

@dataclass(frozen=True, eq=False)
class VoxelSValueKernel:
    """A voxel S-value kernel: mean absorbed dose rate in each target voxel per unit activity
    in the central source voxel, mGy/(MBq·s).

    values_mGy_per_MBq_s: odd-sized array ``[z, y, x]`` (read-only), centre = source voxel.
    voxel_size_mm: ``(x, y, z)`` in mm. tissue_density_g_per_ml: density the kernel is for.
    components: "electrons+photons", "electrons" or "photons". source: provenance.
    """

    values_mGy_per_MBq_s: np.ndarray
    voxel_size_mm: tuple
    nuclide: str
    tissue_density_g_per_ml: float = SOFT_TISSUE_DENSITY_G_PER_ML
    components: str = "electrons+photons"
    source: str = ""
    notes: tuple = field(default_factory=tuple)

    @property
    def shape(self) -> tuple:
        return self.values_mGy_per_MBq_s.shape

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.voxel_size_mm)) / 1000.0

    @property
    def voxel_mass_g(self) -> float:
        return self.voxel_volume_ml * self.tissue_density_g_per_ml

    def absorbed_energy_per_decay_keV(self) -> float:
        """Σ S × voxel mass, as energy per decay (keV): what the kernel deposits in its extent."""
        return float(self.values_mGy_per_MBq_s.sum() * self.voxel_mass_g / _KEV_PER_G_TO_MGY_PER_MBQ_S)


def _fibonacci_directions(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = math.pi * (1.0 + 5.0 ** 0.5) * i
    s = np.sqrt(1.0 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def _blend_weight(r, r1, r2):
    """1 below r1, 0 above r2, raised-cosine between: the near/far split of the point kernel."""
    t = np.clip((np.asarray(r, dtype=float) - r1) / (r2 - r1), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def _near_part(radii_mm, energy_keV, h, half, rng, n_dirs):
    """Σ_k E_k·⟨T(r_k·d − c)⟩_d over directions, accumulated on the full kernel grid (keV/mm³)."""
    hx, hy, hz = h
    nx, ny, nz = half
    shape = (2 * nz + 1, 2 * ny + 1, 2 * nx + 1)
    acc = np.zeros(int(np.prod(shape)))
    dirs = _fibonacci_directions(n_dirs)
    from scipy.spatial.transform import Rotation

    keep = energy_keV > 0
    radii_mm, energy_keV = radii_mm[keep], energy_keV[keep]
    if radii_mm.size == 0:
        return acc.reshape(shape)
    rots = Rotation.random(radii_mm.size, random_state=rng.integers(2 ** 31)).as_matrix()
    chunk = max(1, 400000 // n_dirs)
    V = hx * hy * hz
    for s in range(0, radii_mm.size, chunk):
        R = rots[s:s + chunk]
        P = np.einsum("kab,nb->kna", R, dirs) * radii_mm[s:s + chunk, None, None]
        W = np.broadcast_to((energy_keV[s:s + chunk] / (n_dirs * V))[:, None], P.shape[:2]).ravel()
        P = P.reshape(-1, 3)
        idx_w = []
        for a, (ha, na) in enumerate(((hx, nx), (hy, ny), (hz, nz))):
            t = P[:, a] / ha
            i0 = np.floor(t)
            f = t - i0
            idx_w.append(((i0.astype(np.int64) + na, 1.0 - f), (i0.astype(np.int64) + 1 + na, f)))
        for (ix, wx) in idx_w[0]:
            for (iy, wy) in idx_w[1]:
                for (iz, wz) in idx_w[2]:
                    ok = (ix >= 0) & (ix <= 2 * nx) & (iy >= 0) & (iy <= 2 * ny) & (iz >= 0) & (iz <= 2 * nz)
                    flat = (iz[ok] * shape[1] + iy[ok]) * shape[2] + ix[ok]
                    acc += np.bincount(flat, weights=(W * wx * wy * wz)[ok], minlength=acc.size)
    return acc.reshape(shape)


def _far_part(func, h, half, r1, n_sub=4):
    """∫T(u − c)·f(|u|)du by sub-voxel sampling for every kernel voxel (octant, then mirrored);
    ``func(r_mm)`` is the smooth far part of the point kernel (keV/mm³)."""
    nx, ny, nz = half
    k = np.arange(-(n_sub - 1), n_sub)
    wk = (n_sub - np.abs(k)) / n_sub ** 2
    offs = [k * (ha / n_sub) for ha in h]
    out = np.zeros((nz + 1, ny + 1, nx + 1))
    cx, cy, cz = (np.arange(n + 1) * ha for n, ha in zip(half, h))
    diag = 0.5 * math.sqrt(sum((2 * ha) ** 2 for ha in h))  # farthest sub-sample from the voxel centre
    for iz in range(nz + 1):
        Z = cz[iz] + offs[2]  # (q,)
        for iy in range(ny + 1):
            Y = cy[iy] + offs[1]
            centre_r = np.sqrt(cx ** 2 + cy[iy] ** 2 + cz[iz] ** 2)
            cols = np.nonzero(centre_r + diag > r1)[0]
            if cols.size == 0:
                continue
            X = cx[cols][:, None] + offs[0][None, :]  # (c, q)
            r2 = (X[:, :, None, None] ** 2 + Y[None, None, :, None] ** 2 + Z[None, None, None, :] ** 2)
            vals = func(np.sqrt(r2))
            w = wk[:, None, None] * wk[None, :, None] * wk[None, None, :]
            out[iz, iy, cols] = np.einsum("cqrs,qrs->c", vals, w)
    full = np.zeros((2 * nz + 1, 2 * ny + 1, 2 * nx + 1))
    full[nz:, ny:, nx:] = out
    full[:nz, :, :] = full[2 * nz:nz:-1, :, :]
    full[:, :ny, :] = full[:, 2 * ny:ny:-1, :]
    full[:, :, :nx] = full[:, :, 2 * nx:nx:-1]
    return full


def _symmetrise(a: np.ndarray) -> np.ndarray:
    return (a + a[::-1] + a[:, ::-1] + a[:, :, ::-1] + a[::-1, ::-1] + a[::-1, :, ::-1] + a[:, ::-1, ::-1]
            + a[::-1, ::-1, ::-1]) / 8.0


def _half_sizes(size_voxels, h, photon_radius_mm, electron_range_mm):
    if size_voxels is None:
        # a target voxel at offset n (voxels) can get electron dose only if (n - 1)·h < range
        extent = max(photon_radius_mm, electron_range_mm)
        return tuple(int(math.ceil(extent / ha - 1e-9)) for ha in h)
    s = np.atleast_1d(np.asarray(size_voxels))
    if s.ndim != 1 or s.size not in (1, 3) or not np.all(np.mod(s, 1) == 0):
        raise InputDataError(f"size_voxels: expected an odd integer or 3 odd integers (x, y, z), got {size_voxels!r}")
    s = np.repeat(s, 3) if s.size == 1 else s
    if np.any(s < 1) or np.any(s % 2 == 0):
        raise InputDataError(f"size_voxels: kernel sizes must be odd and >= 1, got {size_voxels!r}")
    return tuple(int(v) // 2 for v in s)


@lru_cache(maxsize=_KERNEL_CACHE_SIZE)
def _build_kernel(name, h, half, density, electrons, photons):
    nuc = get_nuclide(name)
    rng = np.random.default_rng(_MC_SEED + 1)
    rho_mm = density / 1000.0  # g/mm³
    hmax, hmin = max(h), min(h)
    r1, r2 = 2.0 * hmax, 4.0 * hmax
    n_dirs = int(min(60000, max(3000, 250.0 * (r2 / hmin) ** 2)))
    near = np.zeros((2 * half[2] + 1, 2 * half[1] + 1, 2 * half[0] + 1))
    # far part of the point kernel, tabulated on a fine radial grid out to the kernel corners
    r_corner = math.sqrt(sum(((n + 1) * ha) ** 2 for n, ha in zip(half, h)))
    r_tab = np.linspace(0.0, r_corner, int(min(200000, math.ceil(r_corner / (hmin / 20.0)))) + 2)
    eps_far = np.zeros_like(r_tab)  # keV per mm of radius per decay
    if electrons:
        edges_g, e_keV = _electron_radial_deposition(nuc.name)
        edges = np.asarray(edges_g) / density * 10.0  # g/cm² -> mm
        mid = 0.5 * (edges[1:] + edges[:-1])
        wnear = _blend_weight(mid, r1, r2)
        radii = mid.copy()
        radii[0] = 0.0  # bin 0 (local deposits) at the origin
        near += _near_part(radii, np.asarray(e_keV) * wnear, h, half, rng, n_dirs)
        if np.any(wnear < 1.0):
            dens_per_mm = np.asarray(e_keV) / np.diff(edges)
            eps_far += np.where(r_tab < edges[-1], np.interp(r_tab, mid, dens_per_mm), 0.0)
    if photons and nuc.photon_lines:
        dr = hmin / 10.0  # ε_γ is smooth; this resolves the tent functions
        rp = (np.arange(int(math.ceil(r2 / dr))) + 0.5) * dr
        eps = _photon_radial_keV_per_mm(nuc, rp, density) * dr * _blend_weight(rp, r1, r2)
        eps[0] += _photon_local_keV(nuc)
        near += _near_part(rp, eps, h, half, rng, n_dirs)
        eps_far += _photon_radial_keV_per_mm(nuc, r_tab, density)
    values = _symmetrise(near)
    if np.any(eps_far > 0):
        def far(r):
            rs = np.maximum(r, 1e-9)
            return (1.0 - _blend_weight(rs, r1, r2)) * np.interp(rs, r_tab, eps_far) / (4.0 * math.pi * rs ** 2)

        values = values + _far_part(far, h, half, r1)
    values = values / rho_mm * _KEV_PER_G_TO_MGY_PER_MBQ_S
    values.setflags(write=False)
    comps = "+".join(c for c, on in (("electrons", electrons), ("photons", photons)) if on)
    return VoxelSValueKernel(
        values_mGy_per_MBq_s=values, voxel_size_mm=h, nuclide=nuc.name, tissue_density_g_per_ml=density,
        components=comps,
        source="generated: ICRP-107 spectra, electron condensed-history transport in water, photon point kernel "
               "(NIST mu/mu_en, ANS-6.4.3 G-P build-up), source/target voxel averaging",
        notes=(f"extent +/-{half} voxels (x, y, z)", f"near/far blend {r1:.3g}-{r2:.3g} mm"))


def voxel_s_value_kernel(nuclide="Lu-177", voxel_size_mm=4.8, size_voxels=None, *,
                         tissue_density_g_per_ml: float = SOFT_TISSUE_DENSITY_G_PER_ML,
                         include_electrons: bool = True, include_photons: bool = True,
                         photon_radius_mm: float = 100.0) -> VoxelSValueKernel:
    """Voxel S-value kernel (mGy/(MBq·s)) for soft tissue, generated from ICRP-107 emissions.

    ``voxel_size_mm``: a number or ``(x, y, z)`` mm (anisotropic voxels are supported).
    ``size_voxels``: odd kernel size (int or (x, y, z)); default covers ``photon_radius_mm``
    (100 mm) per axis, and at least the maximum electron range.
    ``include_electrons`` / ``include_photons``: select components (e.g. electrons only to
    compare with LED). Generation takes ~1–3 s (electron transport once per nuclide, then ~1 s
    per voxel size); results are cached. See the module docstring for the physics.
    """
    nuc = _nuclide(nuclide)
    h = _voxel_size(voxel_size_mm)
    rho = _scalar(tissue_density_g_per_ml, "tissue_density_g_per_ml", positive=True)
    radius = _scalar(photon_radius_mm, "photon_radius_mm", positive=True)
    if not (include_electrons or include_photons):
        raise InputDataError("include_electrons/include_photons: at least one component must be included")
    if max(h) / min(h) > 10:
        raise InputDataError(f"voxel_size_mm: anisotropy above 10:1 is not supported, got {h}")
    e_range = 0.0
    if include_electrons:
        e_range = _electron_range_g_per_cm2(nuc.name) / rho * 10.0
    half = _half_sizes(size_voxels, h, radius if include_photons else 0.0, e_range)
    if np.prod([2 * n + 1 for n in half]) > 256 ** 3:
        raise InputDataError(f"size_voxels: kernel of {[2 * n + 1 for n in half]} voxels is too large")
    key_h = tuple(round(v, 9) for v in h)
    return _disk_cached_kernel(nuc.name, key_h, half, round(rho, 9), bool(include_electrons),
                               bool(include_photons and len(nuc.photon_lines) > 0))


@lru_cache(maxsize=16)
def _electron_range_g_per_cm2(name: str) -> float:
    """Maximum electron range (g/cm²) of the radial deposition table, from the user cache folder
    (:mod:`...cache`) when present (the transport behind it costs ~1 s per nuclide)."""
    from ... import cache

    key = cache.key_of("electron_range", name, _code_digest())
    stored = cache.read_json(_CACHE_NS, key)
    if isinstance(stored, (int, float)):
        return float(stored)
    value = float(_electron_radial_deposition(name)[0][-1])
    cache.write_json(_CACHE_NS, key, value)
    return value


_CACHE_NS = "vsv_kernel"


@lru_cache(maxsize=1)
def _code_digest() -> str:
    """SHA-256 of this package's dose modules, nuclide code and physics data tables (part of every kernel
    cache key)."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for f in sorted(here.glob("*.py")) + [here.parent / "radionuclides.py"] + sorted((here.parent / "data").glob("*")):
        h.update(f.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=_KERNEL_CACHE_SIZE)
def _disk_cached_kernel(name, h, half, density, electrons, photons) -> VoxelSValueKernel:
    """:func:`_build_kernel` through the user cache folder (per nuclide, voxel size, extent, density
    and components; the key includes a hash of the kernel code, so a changed model is rebuilt)."""
    import io

    from ... import cache

    key = cache.key_of("vsv_kernel", name, list(h), list(half), density, electrons, photons, _code_digest())
    data = cache.read_bytes(_CACHE_NS, key, ".npz")
    if data is not None:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                values = np.array(z["values"])
                meta = json.loads(str(z["meta"]))
            values.setflags(write=False)
            return VoxelSValueKernel(values_mGy_per_MBq_s=values, voxel_size_mm=tuple(meta["voxel_size_mm"]),
                                     nuclide=meta["nuclide"], tissue_density_g_per_ml=meta["density"],
                                     components=meta["components"], source=meta["source"], notes=tuple(meta["notes"]))
        except (OSError, KeyError, ValueError):
            pass  # unreadable entry: rebuilt below
    k = _build_kernel(name, h, half, density, electrons, photons)
    buf = io.BytesIO()
    meta = {"voxel_size_mm": list(k.voxel_size_mm), "nuclide": k.nuclide, "density": k.tissue_density_g_per_ml,
            "components": k.components, "source": k.source, "notes": list(k.notes)}
    np.savez_compressed(buf, values=k.values_mGy_per_MBq_s, meta=np.asarray(json.dumps(meta)))
    cache.write_bytes(_CACHE_NS, key, buf.getvalue(), ".npz")
    return k


_VOXEL_RE = re.compile(r"(\d+(?:\.\d+)?)\s*mm", re.IGNORECASE)


def load_lanconelli_kernel(path, voxel_size_mm=None, nuclide: str | None = None,
                           tissue_density_g_per_ml: float = SOFT_TISSUE_DENSITY_G_PER_ML) -> VoxelSValueKernel:
    """Read a Lanconelli et al. 2012 (Phys Med Biol 57:517) voxel S-value octant table.

    Format: header lines, then rows ``i j k S`` (tab, space, comma or semicolon separated) for
    all voxel offsets 0..n in each axis, S in mGy/(MBq·s). The octant is mirrored into the
    full ``(2n+1)³`` kernel; (i, j, k) are offsets along (x, y, z). ``voxel_size_mm`` defaults to
    the "… 2.21mm …" size in the header; ``nuclide`` to the first header word.
    """
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"path: kernel file {str(p)!r} does not exist")
    header, rows = [], []
    for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        parts = [t for t in re.split(r"[\s,;]+", line.strip()) if t]
        if not parts:
            continue
        try:
            nums = [float(t) for t in parts]
        except ValueError:
            if rows:
                raise InputDataError(f"path: {p.name} line {n}: expected 'i j k S' numbers, got {line.strip()!r}") from None
            header.append(line.strip())
            continue
        if len(nums) < 4:
            raise InputDataError(f"path: {p.name} line {n}: expected 4 columns 'i j k S', got {line.strip()!r}")
        rows.append(nums[:4])
    if not rows:
        raise InputDataError(f"path: {p.name} has no 'i j k S' rows")
    t = np.asarray(rows)
    ijk, S = t[:, :3], t[:, 3]
    if np.any(ijk < 0) or np.any(np.mod(ijk, 1) != 0):
        raise InputDataError(f"path: {p.name}: i, j, k must be non-negative integers (an octant table)")
    if not np.all(np.isfinite(S)) or np.any(S < 0):
        raise InputDataError(f"path: {p.name}: S-values must be finite and >= 0 mGy/(MBq·s)")
    ijk = ijk.astype(int)
    n = ijk.max(axis=0)
    expected = int(np.prod(n + 1))
    if len(np.unique(ijk, axis=0)) != len(ijk):
        raise InputDataError(f"path: {p.name}: duplicate (i, j, k) rows")
    if len(ijk) != expected:
        raise InputDataError(f"path: {p.name}: incomplete octant, {len(ijk)} rows for offsets 0..{tuple(n)} "
                             f"({expected} expected)")
    if voxel_size_mm is None:
        m = _VOXEL_RE.search(" ".join(header))
        if not m:
            raise InputDataError(f"voxel_size_mm: not given and no '<size> mm' found in the header of {p.name}")
        voxel_size_mm = float(m.group(1))
    h = _voxel_size(voxel_size_mm)
    if nuclide is None:
        nuclide = header[0].split()[0] if header and header[0].split() else "unknown"
        try:
            nuclide = get_nuclide(nuclide).name
        except InputDataError:
            pass  # keep the header's word
    rho = _scalar(tissue_density_g_per_ml, "tissue_density_g_per_ml", positive=True)
    oct_ = np.zeros((n[2] + 1, n[1] + 1, n[0] + 1))
    oct_[ijk[:, 2], ijk[:, 1], ijk[:, 0]] = S
    full = np.zeros((2 * n[2] + 1, 2 * n[1] + 1, 2 * n[0] + 1))
    for zs in (1, -1):
        for ys in (1, -1):
            for xs in (1, -1):
                full[n[2] + zs * np.arange(n[2] + 1)[:, None, None],
                     n[1] + ys * np.arange(n[1] + 1)[None, :, None],
                     n[0] + xs * np.arange(n[0] + 1)[None, None, :]] = oct_
    full.setflags(write=False)
    return VoxelSValueKernel(values_mGy_per_MBq_s=full, voxel_size_mm=h, nuclide=str(nuclide),
                             tissue_density_g_per_ml=rho, components="as tabulated",
                             source=f"Lanconelli-format table {p.name}", notes=tuple(header))


# ----------------------------------------------------------------------------- convolution

def _check_kernel(kernel) -> VoxelSValueKernel:
    if not isinstance(kernel, VoxelSValueKernel):
        raise InputDataError(f"kernel: expected a VoxelSValueKernel (voxel_s_value_kernel or load_lanconelli_kernel), "
                             f"got {type(kernel).__name__}")
    k = kernel.values_mGy_per_MBq_s
    if k.ndim != 3 or any(s % 2 == 0 for s in k.shape):
        raise InputDataError(f"kernel: values must be a 3-D array of odd sizes, got shape {k.shape}")
    return kernel


def _convolve(values, name, kernel, density_g_per_ml, voxel_size_mm, min_density_g_per_ml, factor):
    from scipy.signal import fftconvolve

    kernel = _check_kernel(kernel)
    a = _array(values, name, ndim=3)
    if voxel_size_mm is not None:
        h = _voxel_size(voxel_size_mm)
        if not np.allclose(h, kernel.voxel_size_mm, rtol=1e-3, atol=0):
            raise InputDataError(f"voxel_size_mm: image voxels {h} mm differ from the kernel's {kernel.voxel_size_mm} "
                                 "mm; make a kernel for this voxel size or resample the image")
    out = fftconvolve(a, kernel.values_mGy_per_MBq_s, mode="same") * factor
    np.maximum(out, 0.0, out=out)  # FFT round-off
    if density_g_per_ml is not None:
        rho = _array(density_g_per_ml, "density_g_per_ml", ndim=3)
        if rho.shape != a.shape:
            raise InputDataError(f"density_g_per_ml: shape {rho.shape} does not match {name} shape {a.shape}")
        floor = _scalar(min_density_g_per_ml, "min_density_g_per_ml", positive=True)
        out *= kernel.tissue_density_g_per_ml / np.maximum(rho, floor)
    return out


def vsv_dose_rate_Gy_per_h(activity_MBq, kernel: VoxelSValueKernel, density_g_per_ml=None, *, voxel_size_mm=None,
                           min_density_g_per_ml: float = DEFAULT_MIN_DENSITY_G_PER_ML) -> np.ndarray:
    """Absorbed dose rate map (Gy/h) from an activity map (MBq per voxel, ``[z, y, x]``) by FFT
    convolution with ``kernel`` (mGy/(MBq·s)).

    ``density_g_per_ml``: optional density map (same shape) for the ρ_tissue/ρ_voxel scaling
    (floored at ``min_density_g_per_ml``). ``voxel_size_mm`` (x, y, z), when given, must match
    the kernel's. Outside the image the activity is taken as zero.
    """
    # mGy/(MBq·s) × MBq = mGy/s; × 3600 s/h / 1000 mGy/Gy = Gy/h
    return _convolve(activity_MBq, "activity_MBq", kernel, density_g_per_ml, voxel_size_mm, min_density_g_per_ml,
                     _S_PER_H / 1000.0)


def vsv_dose_Gy(tia_MBq_h, kernel: VoxelSValueKernel, density_g_per_ml=None, *, voxel_size_mm=None,
                min_density_g_per_ml: float = DEFAULT_MIN_DENSITY_G_PER_ML) -> np.ndarray:
    """Absorbed dose map (Gy) from a time-integrated activity map (MBq·h per voxel); see
    :func:`vsv_dose_rate_Gy_per_h`."""
    return _convolve(tia_MBq_h, "tia_MBq_h", kernel, density_g_per_ml, voxel_size_mm, min_density_g_per_ml,
                     _S_PER_H / 1000.0)


# ----------------------------------------------------------------------------- VOI statistics


