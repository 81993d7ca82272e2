"""The ``lu-dosimetry`` command line.

Subcommands:
  phantom OUT_DIR [--dicom]    write the synthetic patient (study.json + images + ground truth; DICOM series)
  run MANIFEST --out DIR       dosimetry of one patient (contract 2 outputs)
  batch STUDY... --out DIR     run over many studies (process pool or Dask), resumable, + cohort_table.csv
  demo --out DIR               phantom + run + report in one go
  inspect DIR                  list image/DICOM series found and what each was taken to be
  inspect DIR --write-manifest study.json   ... and write a draft study manifest (placeholders listed)
  cohort TABLE.csv --out DIR   cohort dose-response analysis (LuResponse); ``--demo`` for a synthetic cohort

Each subcommand is a thin wrapper around a library function; heavy imports are lazy so
``lu-dosimetry --help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .errors import error_message, shorten_text  # the one user-facing message of an error (also used by batch)

log = logging.getLogger("lu-dosimetry")

# kinetics.MODELS, repeated so that building the parser does not import numpy/scipy (tests check they agree)
FIT_MODELS = ("auto", "mono", "biexp", "triexp", "trapezoid", "mono_last2")


def _progress_logger(fraction: float, message: str) -> None:
    log.info("[%3d%%] %s", int(round(100 * fraction)), message)


def _cmd_phantom(args: argparse.Namespace) -> int:
    from .synthetic.phantom import PhantomConfig, write_phantom_study

    if args.dicom:
        from .synthetic.phantom_dicom import write_phantom_dicom

        manifest = write_phantom_dicom(Path(args.out_dir), PhantomConfig(seed=args.seed), progress=_progress_logger)
    else:
        manifest = write_phantom_study(Path(args.out_dir), PhantomConfig(seed=args.seed), progress=_progress_logger)
    print(f"Synthetic patient written: {manifest}")
    return 0


def _pvc_per_voi(items: list[str]) -> dict:
    """``["kidney_left=no", "tumor_3=yes"]`` -> {VOI name: bool}; a clear error for anything else."""
    from .errors import InputDataError

    out = {}
    for item in items:
        name, _, value = item.partition("=")
        flag = {"yes": True, "on": True, "true": True, "no": False, "off": False, "false": False}.get(value.lower())
        if not name or flag is None:
            raise InputDataError(f"--pvc-voi {item!r}: expected NAME=yes or NAME=no")
        out[name] = flag
    return out


def _run_options(args: argparse.Namespace):
    from .pipeline import PipelineOptions

    return PipelineOptions(
        registration=args.registration,
        dose_method=args.dose_method,
        fit_model=args.fit_model,
        min_tumor_volume_ml=args.min_volume_ml,
        save_maps=args.save_maps,
        resegment_each_cycle=args.resegment_each_cycle,
        planning_rule=getattr(args, "planning_rule", "kidney_23Gy"),
        use_cache=not getattr(args, "no_cache", False),
        **({"apply_pvc_to": tuple(k.strip() for k in args.pvc.split(",") if k.strip())}
           if getattr(args, "pvc", None) is not None else {}),
        **({"stp_method": args.stp_method} if getattr(args, "stp_method", None) else {}),
        **({"pvc_per_voi": _pvc_per_voi(args.pvc_voi)} if getattr(args, "pvc_voi", None) else {}),
    )


def resolve_manifest(path: Path) -> Path:
    """``run``'s MANIFEST: a study JSON file, or a folder holding exactly one ``study*.json``
    (e.g. ``study.json``); a clear error naming the folder when it holds none or several."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = sorted(p for p in path.glob("study*.json") if p.is_file())
    if len(found) == 1:
        log.info("Study manifest: %s", found[0])
        return found[0]
    if not found:
        raise FileNotFoundError(2, "no study manifest (study.json) in this folder; give the manifest file or "
                                   "write one with 'lu-dosimetry inspect DIR --write-manifest DIR/study.json'",
                                str(path))
    raise ValueError(f"{path} holds {len(found)} study manifests ({', '.join(p.name for p in found)}): "
                     "give the one to run, e.g. 'lu-dosimetry run " + str(found[0]) + " --out ...'")


def _cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import run_manifest

    result = run_manifest(resolve_manifest(Path(args.manifest)), Path(args.out), _run_options(args), progress=_progress_logger,
                          overwrite=args.overwrite)
    _print_summary(result)
    return 0


def _batch_cohort(results_dir: Path):
    from LuResponseLib.assemble import assemble_cohort_table

    assembled = assemble_cohort_table(results_dir)
    return assembled.table.to_csv_text(), assembled.notes


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch, stderr_progress

    try:
        result = run_batch(args.studies, Path(args.out), resolve_manifest, _run_options(args), workers=args.workers,
                           threads_per_worker=args.threads_per_worker, scheduler=args.scheduler,
                           overwrite=args.overwrite, progress=stderr_progress, cohort=_batch_cohort)
    except KeyboardInterrupt:
        print(f"lu-dosimetry batch: interrupted; patients already finished keep their complete results in {args.out}: "
              "the same command resumes with the others", file=sys.stderr)
        return 130
    print(result.to_text(problems=False))
    if result.problems_text():
        print(result.problems_text(), file=sys.stderr)
    return 1 if result.n_failed or result.cohort_error else 0


DEMO_PATIENT_FOLDER = "synthetic_patient"


def demo_patient(out: Path, seed: int, config=None) -> tuple[Path, bool]:
    """The demo's synthetic patient in ``out/synthetic_patient``: ``(study.json path, reused)``.

    Written when the folder is absent or empty. A folder from an earlier ``demo --out`` run is
    reused when it holds ``study.json`` and a ``ground_truth.json`` made with the same ``seed``;
    anything else there is refused with :class:`FileExistsError` (never overwritten).
    ``config`` (a :class:`~LuDosimetryLib.phantom.PhantomConfig`, default ``PhantomConfig(seed=seed)``)
    is used when the patient has to be written.
    """
    import json

    from .synthetic.phantom import PhantomConfig, write_phantom_study

    phantom_dir = Path(out) / DEMO_PATIENT_FOLDER
    manifest = phantom_dir / "study.json"
    if not phantom_dir.exists() or (phantom_dir.is_dir() and not any(phantom_dir.iterdir())):
        log.info("Writing synthetic patient to %s", phantom_dir)
        return write_phantom_study(phantom_dir, config or PhantomConfig(seed=seed), progress=_progress_logger), False
    truth_file = phantom_dir / "ground_truth.json"
    found_seed = None
    if manifest.is_file() and truth_file.is_file():
        try:
            found_seed = json.loads(truth_file.read_text(encoding="utf-8")).get("seed")
        except (OSError, ValueError, AttributeError):
            found_seed = None
    if found_seed == seed:
        log.info("Reusing the synthetic patient (seed %d) already in %s", seed, phantom_dir)
        return manifest, True
    what = (f"holds a synthetic patient made with seed {found_seed}, not seed {seed}" if found_seed is not None
            else "is not a synthetic patient written by 'lu-dosimetry demo' (no study.json with ground_truth.json)")
    raise FileExistsError(f"{phantom_dir} already exists and {what}: give another --out or remove that folder")


def _cmd_demo(args: argparse.Namespace) -> int:
    from .pipeline import run_manifest
    from .results.truth import compare_with_ground_truth

    out = Path(args.out)
    phantom_dir = out / DEMO_PATIENT_FOLDER
    manifest, _ = demo_patient(out, args.seed)
    result = run_manifest(manifest, out, _run_options(args), progress=_progress_logger, overwrite=args.overwrite,
                          inputs_may_be_inside=[phantom_dir])
    _print_summary(result)
    comparison = compare_with_ground_truth(out / "voi_cycle_doses.csv", phantom_dir / "ground_truth.json")
    print()
    print(comparison.to_text())
    return 0


def _print_summary(result) -> None:
    from .physics.uncertainty import value_with_sigma

    s = result.summary
    print(f"Patient {s['patient_id']}: {len(s['cycles'])} cycles (± 1σ: uncertainty budget, Gear et al. EJNMMI 2018)")
    if s.get("cumulative_tumor_dose_Gy") is not None:
        print(f"  cumulative tumour dose (cAD, mean over tumours): {value_with_sigma(s, 'cumulative_tumor_dose_Gy', 1)} Gy")
    if s.get("delta_ad_per_aa_percent") is not None:
        print(f"  delta AD/AA (last vs first cycle): {value_with_sigma(s, 'delta_ad_per_aa_percent', 1)} %")
    if s.get("kidney_cumulative_dose_Gy") is not None:
        bed = value_with_sigma(s, "kidney_bed_Gy", 2)
        print(f"  kidney cumulative dose: {value_with_sigma(s, 'kidney_cumulative_dose_Gy', 2)} Gy, BED "
              f"{bed if bed is not None else 'not defined'} Gy")
    for w in s.get("warnings", []):
        print(f"  warning: {w}", file=sys.stderr)
    print(f"Results in {result.out_dir}: " + ", ".join(sorted(p.name for p in result.files)))


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .io.dicom import inspect_directory, write_draft_manifest

    if not args.write_manifest:
        print(inspect_directory(Path(args.directory)).to_text())
        return 0
    _, lines, report = write_draft_manifest(Path(args.directory), Path(args.write_manifest),
                                            patient_id=args.patient_id, defaults_path=args.defaults)
    print(report.to_text())
    print()
    print(f"Draft manifest written: {args.write_manifest}")
    holes = [x for x in lines if not x.startswith("note: ")]
    for x in lines:
        if x.startswith("note: "):
            print(f"  {x}")
    if holes:
        print(f"{len(holes)} value(s) the headers do not give are placeholders (\"FILL IN: ...\"); "
              "replace them before `lu-dosimetry run`, which refuses placeholders:")
        for x in holes:
            print(f"  {x}")
    else:
        print("No placeholders left: `lu-dosimetry run` can use it as it is.")
    return 0


def _cmd_cohort(args: argparse.Namespace) -> int:
    from LuResponseLib.cli import run_cohort_command

    return run_cohort_command(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lu-dosimetry", description="Patient-specific [177Lu]Lu-DOTATATE SPECT/CT dosimetry and cohort dose-response analysis (the pure-Python core of the LuDosimetry 3D Slicer extension).")
    from . import __version__

    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (and full tracebacks on errors)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                   help="print the version of LuDosimetryLib and exit")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("phantom", help="write a synthetic patient")
    sp.add_argument("out_dir", help="folder to write the synthetic patient into (must be absent or empty)")
    sp.add_argument("--seed", type=int, default=1,
                    help="random seed of the synthetic patient (motion, noise; default %(default)s)")
    sp.add_argument("--dicom", action="store_true",
                    help="write DICOM series (NM SPECT + CT per scan) with segmentation.nii.gz and study_dicom.json")
    sp.set_defaults(func=_cmd_phantom)

    def add_run_options(q: argparse.ArgumentParser) -> None:
        q.add_argument("--registration", default="auto",
                       choices=["auto", "translation", "rigid_ct", "local", "none"],
                       help="time-point registration method (default: auto = CT rigid, fallback translation)")
        q.add_argument("--dose-method", default="local_deposition", choices=["local_deposition", "voxel_s_value"],
                       help="activity to absorbed dose conversion: local energy deposition (default) or voxel "
                            "S-value convolution")
        q.add_argument("--fit-model", default="auto", choices=list(FIT_MODELS),
                       help="time-activity model (default: auto = bi-exponential with fallbacks)")
        q.add_argument("--min-volume-ml", type=float, default=10.0,
                       help="minimum tumour volume on the cycle-1 reference scan "
                            "(default 10 mL, as Macsuka et al., J Nucl Med 2026)")
        q.add_argument("--save-maps", action="store_true", help="also write dose and TIA maps (NRRD)")
        q.add_argument("--pvc", metavar="KINDS", default=None,
                       help="comma-separated VOI kinds or organ names given partial-volume correction (default "
                            "tumor,kidney,spleen; '' for none; e.g. tumor,kidney,spleen,liver)")
        q.add_argument("--pvc-voi", action="append", metavar="NAME=yes|no", default=None,
                       help="switch partial-volume correction on or off for one VOI, overriding --pvc (repeatable)")
        q.add_argument("--stp-method", default=None, choices=["auto", "ratio", "madsen", "hanscheid"],
                       help="single-time-point cycles: auto (ratio method of Hebert et al., J Nucl Med 2024 when "
                            "the VOI has a fully imaged cycle, else Madsen with a stated T_eff), ratio, madsen, or "
                            "hanscheid (Hänscheid et al., J Nucl Med 2018; flagged outside 72-120 h p.i.)")
        q.add_argument("--no-cache", action="store_true",
                       help="neither read nor write the cache of registrations and VSV kernels (a user cache "
                            "folder; LU_DOSIMETRY_CACHE_DIR overrides its location)")
        q.add_argument("--overwrite", action="store_true",
                       help="replace a result set already in --out (atomically); without it such a folder is refused "
                            "before any computation")
        q.add_argument("--resegment-each-cycle", action="store_true",
                       help="contour adaptive-threshold tumours again on each cycle's reference scan "
                            "(default: the cycle-1 contour is copied to every scan, as Macsuka et al., "
                            "J Nucl Med 2026)")
        q.add_argument("--planning-rule", default="kidney_23Gy", choices=["kidney_23Gy", "renal_BED_27Gy"],
                       help="rule whose next-cycle activity the report states as the planning aid; the other is shown "
                            "for comparison (kidney_23Gy: cumulative kidney dose 23 Gy, Macsuka et al., J Nucl Med "
                            "2026; renal_BED_27Gy: renal BED 27 ± 2 Gy, Sundlöv et al., Eur J Nucl Med Mol "
                            "Imaging 2022)")

    sp = sub.add_parser("run", help="dosimetry of one patient from a study manifest")
    sp.add_argument("manifest", help="study manifest (study.json), or a folder holding exactly one study*.json")
    sp.add_argument("--out", required=True, help="output folder for the result set (tables, summary.json, report)")
    add_run_options(sp)
    sp.set_defaults(func=_cmd_run)

    sp = sub.add_parser("batch", help="dosimetry of many patients (process pool or Dask cluster), resumable, "
                                      "with cohort_table.csv")
    sp.add_argument("studies", nargs="+", help="study manifests, study folders (as for run) or folders of study "
                                               "folders")
    sp.add_argument("--out", required=True, help="one result folder per patient is written below this folder")
    sp.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    sp.add_argument("--threads-per-worker", type=int, default=1, help="threads of each worker (default 1)")
    sp.add_argument("--scheduler", metavar="ADDRESS", help="run the patients on the Dask distributed cluster of "
                                                           "this scheduler (e.g. tcp://host:8786) instead of local "
                                                           "processes (--workers is then ignored); needs "
                                                           'pip install "lu-dosimetry[dask]"')
    add_run_options(sp)
    sp._option_string_actions["--overwrite"].help = ("compute every patient again, also those whose folder holds a "
                                                     "complete result set (without it they are skipped: resume)")
    sp.set_defaults(func=_cmd_batch)

    sp = sub.add_parser("demo", help="synthetic patient + dosimetry + report")
    sp.add_argument("--out", default="lu_dosimetry_demo",
                    help="output folder; the synthetic patient goes into OUT/synthetic_patient (default %(default)s)")
    sp.add_argument("--seed", type=int, default=1,
                    help="random seed of the synthetic patient (motion, noise; default %(default)s)")
    add_run_options(sp)
    sp.set_defaults(func=_cmd_demo)

    sp = sub.add_parser("inspect", help="list image/DICOM series in a folder and what each was taken to be")
    sp.add_argument("directory", help="folder to scan (recursively) for image files and DICOM series")
    sp.add_argument("--write-manifest", metavar="STUDY_JSON",
                    help="also write a draft study manifest of the folder (never overwrites); values the headers do "
                         "not give are \"FILL IN: ...\" placeholders, listed on stdout")
    sp.add_argument("--patient-id", help="the patient to write the manifest for when the folder holds several")
    sp.add_argument("--defaults", metavar="JSON",
                    help="a manifest (e.g. an earlier study.json of the site) whose segmentation, "
                         "recovery_coefficients and calibration_cps_per_MBq/calibration_time_basis fill the draft")
    sp.set_defaults(func=_cmd_inspect)

    sp = sub.add_parser("cohort", help="cohort dose-response analysis (LuResponse)")
    from LuResponseLib.cli import add_cohort_arguments  # cheap: heavy imports are lazy there

    add_cohort_arguments(sp)
    sp.set_defaults(func=_cmd_cohort)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(message)s")
    import csv

    from .errors import LuDosimetryError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"lu-dosimetry {args.command}: interrupted; nothing written", file=sys.stderr)
        return 130
    except Exception as exc:  # user-facing: one clear message, full trace with -v
        if args.verbose:
            raise
        if isinstance(exc, (LuDosimetryError, OSError, ValueError, csv.Error)):
            print(f"lu-dosimetry {args.command}: error: {error_message(exc)}", file=sys.stderr)
            return 2
        if isinstance(exc, (RecursionError, MemoryError, OverflowError)):
            print(f"lu-dosimetry {args.command}: error: the input is too large or too deeply nested to process "
                  f"({type(exc).__name__}); nothing written", file=sys.stderr)
            return 2
        print(f"lu-dosimetry {args.command}: unexpected error (a bug: please report it with the output of -v): "
              f"{type(exc).__name__}: {shorten_text(exc, 400)}; nothing written", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
