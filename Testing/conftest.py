"""Shared pytest fixtures. The pure packages are importable without installation through
``pythonpath`` below (also set in pyproject's pytest config when installed).

Session fixtures computed once and shared by the end-to-end tests that only read their outputs
(so the default suite stays within a few minutes on 2 cores):

- ``demo_dir``: ``lu-dosimetry demo`` (4-cycle synthetic patient with patient motion, registration
  ``auto``) written into one session folder;
- ``motion_free_patient``: the synthetic patient with 2 cycles and no motion (Bq/mL, default grid),
  ``(config, study.json path)``;
- ``motion_free_run``: ``run_manifest`` on it with ``registration="none"`` (the contract-2 outputs in
  ``motion_free_run.out_dir``);
- ``coarse_patient``: the same patient on a 9.6 mm grid (8x fewer voxels, same field of view), for tests
  that need their own run with other options and whose claim does not depend on the image resolution.

Tests must not write into these folders (tests that re-run write into their own ``tmp_path``).
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "LuDosimetry", ROOT / "LuResponse"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

@pytest.fixture(scope="session", autouse=True)
def _private_cache_folder(tmp_path_factory):
    """The on-disk cache (LuDosimetryLib.cache) in a folder of this test session, never the user's."""
    import os

    before = os.environ.get("LU_DOSIMETRY_CACHE_DIR")
    os.environ["LU_DOSIMETRY_CACHE_DIR"] = str(tmp_path_factory.mktemp("lu_dosimetry_cache"))
    yield
    if before is None:
        os.environ.pop("LU_DOSIMETRY_CACHE_DIR", None)
    else:
        os.environ["LU_DOSIMETRY_CACHE_DIR"] = before


MOTION_FREE = dict(n_cycles=2, max_shift_mm=0.0, max_rotation_deg=0.0)
COARSE = dict(MOTION_FREE, shape_xyz=(64, 64, 48), spacing_mm=9.6)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """Output folder of ``lu-dosimetry demo --out DIR`` (patient in ``DIR/synthetic_patient``)."""
    from LuDosimetryLib.cli import main

    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def motion_free_patient(tmp_path_factory):
    """``(PhantomConfig, study.json)`` of the 2-cycle motion-free synthetic patient (NIfTI, Bq/mL)."""
    from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

    cfg = PhantomConfig(**MOTION_FREE)
    return cfg, write_phantom_study(tmp_path_factory.mktemp("motion_free") / "patient", cfg)


@pytest.fixture(scope="session")
def motion_free_run(motion_free_patient, tmp_path_factory):
    """``PipelineResult`` of ``run_manifest`` (registration none) on ``motion_free_patient``."""
    from LuDosimetryLib.pipeline import PipelineOptions, run_manifest

    _, manifest = motion_free_patient
    return run_manifest(manifest, tmp_path_factory.mktemp("motion_free_run") / "out",
                        PipelineOptions(registration="none"))


@pytest.fixture(scope="session")
def coarse_patient(tmp_path_factory):
    """study.json of the 2-cycle motion-free patient on a 64 x 64 x 48 grid of 9.6 mm voxels."""
    from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

    return write_phantom_study(tmp_path_factory.mktemp("coarse") / "patient", PhantomConfig(**COARSE))
