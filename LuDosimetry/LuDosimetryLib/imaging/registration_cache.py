"""Registration results cached on disk between runs (:mod:`..cache`).

A registration of one scan pair is keyed by the content hashes (SHA-256 of voxels and geometry)
of the images it used (fixed/moving SPECT and CT), the function and its options, and a hash of
the registration code itself (a changed algorithm never reuses an old result). A re-run of the
same study with another dose method or ``--save-maps`` then reuses every transform; the
per-VOI SPECT check and the resampling still run (they are cheap and depend on the VOIs).
Only transforms SimpleITK can rebuild from their parameters (Euler 3-D, translation, affine,
identity) are stored; anything else is recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import cache
from . import registration

NAMESPACE = "registration"


def image_digest(img: sitk.Image | None) -> str | None:
    """SHA-256 of an image's voxels, pixel type and geometry (None for None)."""
    if img is None:
        return None
    h = hashlib.sha256()
    h.update(repr((img.GetSize(), img.GetSpacing(), img.GetOrigin(), img.GetDirection(),
                   img.GetPixelIDTypeAsString())).encode())
    h.update(np.ascontiguousarray(sitk.GetArrayViewFromImage(img)).tobytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 of the registration modules' source (part of every key)."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in ("registration.py", "registration_search.py"):
        h.update((here / name).read_bytes())
    h.update(sitk.Version_VersionString().encode())
    return h.hexdigest()


def _transform_to_json(tx: sitk.Transform) -> dict | None:
    name = tx.GetName()
    if name == "IdentityTransform":
        return {"type": name}
    if name not in ("Euler3DTransform", "TranslationTransform", "AffineTransform", "VersorRigid3DTransform"):
        return None
    return {"type": name, "parameters": list(tx.GetParameters()), "fixed_parameters": list(tx.GetFixedParameters())}


def _transform_from_json(d: dict) -> sitk.Transform:
    if d["type"] == "IdentityTransform":
        return sitk.Transform(3, sitk.sitkIdentity)
    tx = getattr(sitk, d["type"])()
    tx.SetFixedParameters(tuple(d["fixed_parameters"]))
    tx.SetParameters(tuple(d["parameters"]))
    return tx


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return {"float": repr(v)}
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _unjson(v):
    if isinstance(v, dict) and set(v) == {"float"}:
        return float(v["float"])
    if isinstance(v, list):
        return [_unjson(x) for x in v]
    if isinstance(v, dict):
        return {k: _unjson(x) for k, x in v.items()}
    return v


def result_to_json(res: registration.RegistrationResult) -> dict | None:
    """JSON of a result, or None when it cannot be stored (composite transform, local boxes)."""
    tx = _transform_to_json(res.transform)
    if tx is None or res.local:
        return None
    fields = {f.name: _jsonable(getattr(res, f.name)) for f in dataclasses.fields(res)
              if f.name not in ("transform", "local")}
    return {"transform": tx, "fields": fields}


def result_from_json(d: dict) -> registration.RegistrationResult:
    f = {k: _unjson(v) for k, v in d["fields"].items()}
    for k in ("translation_mm", "rotation_deg"):
        f[k] = tuple(f[k])
    return registration.RegistrationResult(transform=_transform_from_json(d["transform"]), **f)


def registration_key(function: str, images: tuple, options: dict) -> str:
    """Cache key of one registration: the images' digests, the function and its options."""
    return cache.key_of("registration", function, code_digest(), list(images), options)


def cached(function: str, images: tuple, options: dict, compute) -> tuple[registration.RegistrationResult, bool]:
    """``(result, from_cache)``: the stored result for this key, else ``compute()`` (stored after).

    ``images``: digests (:func:`image_digest`) of every image the registration reads."""
    key = registration_key(function, images, options)
    stored = cache.read_json(NAMESPACE, key)
    if stored is not None:
        try:
            res = result_from_json(stored)
            res.elapsed_s = 0.0  # seconds spent in this run
            return res, True
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError):
            pass  # an entry of another layout: recompute
    res = compute()
    d = result_to_json(res)
    if d is not None:
        cache.write_json(NAMESPACE, key, d)
    return res, False
