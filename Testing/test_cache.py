"""On-disk cache of registrations and VSV kernels (issue 17): location, --no-cache, and a re-run
with another dose method reusing the registrations with identical results."""

import json
import os
from pathlib import Path

import numpy as np
from LuDosimetryLib import cache
from LuDosimetryLib.pipeline import PipelineOptions, run_manifest


def test_location_env_override_platformdirs_and_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"
    monkeypatch.setenv(cache.ENV_VAR, "off")
    assert cache.cache_dir() is None and not cache.enabled()
    monkeypatch.delenv(cache.ENV_VAR)
    monkeypatch.setitem(__import__("sys").modules, "platformdirs", None)  # not installed
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "lu-dosimetry"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_dir() == Path.home() / ".cache" / "lu-dosimetry"


def test_entries_round_trip_and_disabled(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    k = cache.key_of("x", 1, [2.0])
    assert k != cache.key_of("x", 1, [2.5])
    assert cache.read_json("t", k) is None
    cache.write_json("t", k, {"a": [1, 2]})
    assert cache.read_json("t", k) == {"a": [1, 2]}
    with cache.disabled():
        assert cache.read_json("t", k) is None
        cache.write_json("t", cache.key_of("y"), 1)
    assert cache.read_json("t", cache.key_of("y")) is None
    (next((tmp_path / "t").rglob("*.json"))).write_text("{broken")
    assert cache.read_json("t", k) is None  # unreadable entry = miss


def test_vsv_kernel_from_disk_is_identical(monkeypatch, tmp_path):
    from LuDosimetryLib.physics.dose import kernels

    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path))
    kernels._disk_cached_kernel.cache_clear()
    kernels._electron_range_g_per_cm2.cache_clear()
    before = dict(cache.stats)
    k1 = kernels.voxel_s_value_kernel("Lu-177", 9.6)
    assert list((tmp_path / kernels._CACHE_NS).rglob("*.npz"))
    kernels._disk_cached_kernel.cache_clear()
    kernels._build_kernel.cache_clear()
    kernels._electron_range_g_per_cm2.cache_clear()
    k2 = kernels.voxel_s_value_kernel("Lu-177", 9.6)
    assert cache.stats.get("vsv_kernel:hits", 0) - before.get("vsv_kernel:hits", 0) >= 2  # kernel + range
    assert kernels._build_kernel.cache_info().misses == 0  # not rebuilt
    assert np.array_equal(k1.values_mGy_per_MBq_s, k2.values_mGy_per_MBq_s)
    assert (k1.voxel_size_mm, k1.nuclide, k1.source, k1.notes) == (k2.voxel_size_mm, k2.nuclide, k2.source, k2.notes)


def _matrices(result):
    from LuDosimetryLib.imaging.registration import transform_to_dict

    return {k: transform_to_dict(r.transform)["matrix_fixed_to_moving_mm"]
            for k, r in result.registrations.items() if r is not None}


def test_rerun_with_other_dose_method_uses_cached_registrations(monkeypatch, tmp_path, coarse_patient):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "cache"))
    hits = lambda: cache.stats.get("registration:hits", 0)
    writes = lambda: cache.stats.get("registration:writes", 0)
    h0, w0 = hits(), writes()
    first = run_manifest(coarse_patient, tmp_path / "a", PipelineOptions(registration="auto"))
    n = len([r for r in first.registrations.values() if r is not None])
    assert n >= 3 and hits() == h0 and writes() - w0 >= 3  # 2 cycles x 3 scans: 5 registrations computed
    stored = list((tmp_path / "cache" / "registration").rglob("*.json"))
    assert len(stored) == writes() - w0
    assert not any(p.name.endswith(".json") and "cache" in str(p) for p in (tmp_path / "a").rglob("*"))
    second = run_manifest(coarse_patient, tmp_path / "b",
                          PipelineOptions(registration="auto", dose_method="voxel_s_value"))
    assert hits() - h0 == writes() - w0  # every registration came from the cache
    assert _matrices(second) == _matrices(first)
    for key, r in first.registrations.items():
        if r is not None:
            s = second.registrations[key]
            assert (s.method, s.start, s.translation_mm, s.rotation_deg) == (r.method, r.start, r.translation_mm,
                                                                            r.rotation_deg)
    reg_a = json.loads((tmp_path / "a" / "summary.json").read_text())["registration"]
    reg_b = json.loads((tmp_path / "b" / "summary.json").read_text())["registration"]
    assert _without_times(reg_a) == _without_times(reg_b)
    # --no-cache: neither read nor written, recorded in the summary
    h1, w1 = hits(), writes()
    third = run_manifest(coarse_patient, tmp_path / "c", PipelineOptions(registration="auto", use_cache=False))
    assert (hits(), writes()) == (h1, w1)
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["options"]["use_cache"] is False
    assert third.registrations.keys() == first.registrations.keys()
    assert os.environ[cache.ENV_VAR] == str(tmp_path / "cache")


def _without_times(obj):
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in ("seconds", "elapsed_s")}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj
