"""Issue 13 acceptance: ``kill -9`` at 10 random moments of ``run`` and of ``cohort`` into an
``--out`` that already holds a complete result set leaves one complete set (old or new), never a mix.

After each kill the folder is checked twice: as the kill left it (when no switch was pending,
the set its manifest lists must be complete and the visible results exactly those files; when
the kill hit between commit point and the end of the switch, a journal is pending) and after
:func:`settle_output_folder` — what the next run and every ``--results-dir`` reader do first —
which must always give a complete set equal to the old one or to a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from LuDosimetryLib.results import result_set as rs

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "LuDosimetry"), str(ROOT / "LuResponse")]),
       "MPLBACKEND": "Agg"}


def _cmd(*args) -> list[str]:
    return [sys.executable, "-c", "import sys; from LuDosimetryLib.cli import main; sys.exit(main())", *args]


def _visible(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and not rs.is_internal_path(p, out)}


def _manifest_files(out: Path) -> dict[str, str]:
    m = rs.read_manifest(out)
    assert m is not None, f"no manifest in {out}"
    return {k: v["sha256"] for k, v in m["files"].items()}


def _kill_at_random_moments(args: list[str], out: Path, seed: int, n: int = 10) -> list[str]:
    """Run ``args`` once to completion (timing it), then n times killed with SIGKILL at a random
    moment; after each, check the folder. Returns what each kill hit (for the report)."""
    t0 = time.perf_counter()
    subprocess.run(_cmd(*args), env=ENV, check=True, capture_output=True)
    full = time.perf_counter() - t0
    user_file = out / "user_notes.txt"
    user_file.write_text("mine", encoding="utf-8")
    rng = random.Random(seed)
    outcomes = []
    for i in range(n):
        old = _manifest_files(out)
        old_visible = _visible(out)
        proc = subprocess.Popen(_cmd(*args, "--overwrite"), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        # half the moments anywhere in the run, half in its last fifth (results written and switched)
        time.sleep(rng.uniform(0.2, 1.05 * full) if i % 2 == 0 else rng.uniform(0.8 * full, 1.15 * full))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        pending = (out / rs.PENDING_NAME).exists()
        if not pending:
            now = _manifest_files(out)
            assert rs.verify_result_set(out) == []
            assert {k: v for k, v in _visible(out).items() if k != "user_notes.txt"} == now  # no mix
            if now == old:
                assert _visible(out) == old_visible
        state = rs.settle_output_folder(out)
        assert state in ("none", "completed")
        assert rs.verify_result_set(out) == []
        now = _manifest_files(out)
        assert {k: v for k, v in _visible(out).items() if k != "user_notes.txt"} == now
        assert user_file.read_text(encoding="utf-8") == "mine"
        assert not [p for p in out.iterdir() if p.name.startswith(rs.STAGING_PREFIX)]
        outcomes.append("old set" if now == old else ("new set (rolled forward)" if pending else "new set"))
    return outcomes


@pytest.mark.slow
def test_kill_9_during_run_leaves_one_complete_set(tmp_path):
    from LuDosimetryLib.synthetic.phantom import PhantomConfig, write_phantom_study

    manifest = write_phantom_study(tmp_path / "study", PhantomConfig(
        seed=2, n_cycles=1, shape_xyz=(32, 24, 20), spacing_mm=9.6, max_shift_mm=0.0, max_rotation_deg=0.0))
    out = tmp_path / "study" / "results"
    outcomes = _kill_at_random_moments(["run", str(manifest), "--out", str(out), "--registration", "none",
                                        "--save-maps"], out, seed=13)
    print("run kills:", outcomes)
    assert len(outcomes) == 10


@pytest.mark.slow
def test_kill_9_during_cohort_leaves_one_complete_set(tmp_path):
    from LuResponseLib.synthetic import make_demo_cohort

    table = tmp_path / "cohort.csv"
    table.write_text(make_demo_cohort(1).table.to_csv_text(), encoding="utf-8")
    out = tmp_path / "cohort_out"
    outcomes = _kill_at_random_moments(["cohort", str(table), "--out", str(out), "--bootstrap", "20",
                                        "--cv-repeats", "1"], out, seed=31)
    print("cohort kills:", outcomes)
    assert json.loads((out / "cohort_results.json").read_text(encoding="utf-8"))["n_patients"] == 73
