"""The one definition of a saved response-model file (``models/*_model.json``).

:data:`MODEL_FIELDS` lists every top-level key with its JSON type; :func:`validate_model_dict`
checks a parsed file against it and against the shapes the prediction needs (one scaler mean,
scale, training minimum and maximum per feature; one coefficient per feature for the logistic
model; support vectors of that width and one dual coefficient each for the SVM), with finite
numbers only. Every problem is listed in one :class:`ModelFileError` naming the file and field,
so no ``TypeError``/``KeyError``/``OverflowError`` can come out of loading a model.
:func:`parse_model_json` parses the text strictly (duplicate keys, ``NaN``/``Infinity`` literals,
absurd nesting refused). The report and the Slicer module read model files through these too.
"""

from __future__ import annotations

import difflib
import json
import math

from .errors import AnalysisError

MODEL_FORMAT = "LuResponse.ResponseModel"
MODEL_FORMAT_VERSION = 1
MODEL_KINDS = ("logistic", "svm")
MAX_FEATURES = 100
MAX_SUPPORT_VECTORS = 100_000

# key -> (JSON kind, required)
MODEL_FIELDS: dict[str, tuple[str, bool]] = {
    "format": ("string", True),
    "format_version": ("integer", True),
    "kind": ("string", True),
    "features": ("list", True),
    "scaler": ("object", True),
    "params": ("object", True),
    "training": ("object", True),
    "settings": ("object", False),
    "provenance": ("object", False),
    "probability": ("string", False),
    "standardisation": ("string", False),
    "coefficients_original_units": ("object", False),
    "bootstrap": ("object", False),
}
MAX_REPLICATES = 10_000
PARAM_FIELDS = {"logistic": ("coef", "intercept"),
                "svm": ("support_vectors", "dual_coef", "intercept", "gamma", "platt_A", "platt_B")}


class ModelFileError(AnalysisError):
    """A model file does not follow :data:`MODEL_FIELDS`; ``problems`` lists (field, message)."""

    def __init__(self, source, problems: list[tuple[str, str]]):
        self.source = str(source)
        self.problems = list(problems)
        lines = [f"{len(self.problems)} problem(s) in model file {self.source}:"]
        lines += [f"  - {f}: {m}" for f, m in self.problems[:20]]
        if len(self.problems) > 20:
            lines.append(f"  - ... and {len(self.problems) - 20} more")
        super().__init__("\n".join(lines))


_TYPES = {"string": str, "integer": int, "list": list, "object": dict}


def _finite(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _vector(v, n: int | None, where: str, problems: list, positive: bool = False) -> None:
    if not isinstance(v, list):
        problems.append((where, f"must be a list of numbers, got {type(v).__name__}"))
        return
    if n is not None and len(v) != n:
        problems.append((where, f"must hold {n} number(s) (one per feature), holds {len(v)}"))
    bad = [i for i, x in enumerate(v) if not _finite(x) or (positive and float(x) <= 0)]
    if bad:
        problems.append((f"{where}[{bad[0]}]", f"must be a finite{' positive' if positive else ''} number, got "
                                               f"{v[bad[0]]!r:.40}" + (f" ({len(bad)} such values)" if len(bad) > 1 else "")))


def _scalar(d: dict, key: str, where: str, problems: list, positive: bool = False) -> None:
    if key not in d:
        problems.append((f"{where}.{key}", "is missing"))
    elif not _finite(d[key]) or (positive and float(d[key]) <= 0):
        problems.append((f"{where}.{key}", f"must be a finite{' positive' if positive else ''} number, got "
                                           f"{d[key]!r:.40}"))


def validate_model_dict(d, source="model file") -> None:
    """Raise :class:`ModelFileError` listing every problem of a parsed model file ``d``."""
    problems: list[tuple[str, str]] = []
    if not isinstance(d, dict):
        raise ModelFileError(source, [("<root>", f"must be a JSON object, got {type(d).__name__}")])
    if d.get("format") != MODEL_FORMAT:
        raise ModelFileError(source, [("format", f"not a LuResponse model (format = {d.get('format')!r:.60})")])
    for key in d:
        if key not in MODEL_FIELDS:
            close = difflib.get_close_matches(str(key), list(MODEL_FIELDS), n=1, cutoff=0.6)
            problems.append((str(key)[:80], "unknown key" + (f"; did you mean '{close[0]}'?" if close else "")))
    for key, (kind, required) in MODEL_FIELDS.items():
        if key not in d:
            if required:
                problems.append((key, "is missing"))
        elif isinstance(d[key], bool) or not isinstance(d[key], _TYPES[kind]):
            problems.append((key, f"must be a {kind}, got {type(d[key]).__name__}"))
    if problems:
        raise ModelFileError(source, problems)
    if d["format_version"] > MODEL_FORMAT_VERSION or d["format_version"] < 1:
        raise ModelFileError(source, [("format_version", f"{d['format_version']} is not a version this library reads "
                                                         f"(1 to {MODEL_FORMAT_VERSION})")])
    kind = d["kind"]
    if kind not in MODEL_KINDS:
        raise ModelFileError(source, [("kind", f"unknown model kind {kind!r:.40} (one of {', '.join(MODEL_KINDS)})")])
    feats = d["features"]
    if not feats or len(feats) > MAX_FEATURES or not all(isinstance(f, str) and f for f in feats):
        problems.append(("features", f"must be 1 to {MAX_FEATURES} non-empty names"))
    elif len(set(feats)) != len(feats):
        problems.append(("features", "names must be unique"))
    nf = len(feats) if isinstance(feats, list) else None
    sc = d["scaler"]
    for k in ("mean", "scale"):
        if k not in sc:
            problems.append((f"scaler.{k}", "is missing"))
        else:
            _vector(sc[k], nf, f"scaler.{k}", problems, positive=(k == "scale"))
    tr = d["training"]
    for k in ("n", "n_responders"):
        v = tr.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > 10 ** 9:
            problems.append((f"training.{k}", f"must be a whole number >= 0, got {v!r:.40}"))
    if isinstance(tr.get("n"), int) and isinstance(tr.get("n_responders"), int) and tr["n_responders"] > tr["n"]:
        problems.append(("training.n_responders", "exceeds training.n"))
    for k in ("min", "max"):
        if k not in tr:
            problems.append((f"training.{k}", "is missing"))
        else:
            _vector(tr[k], nf, f"training.{k}", problems)
    p = d["params"]
    for k in PARAM_FIELDS[kind]:
        if k not in p:
            problems.append((f"params.{k}", "is missing"))
    if kind == "logistic":
        if "coef" in p:
            _vector(p["coef"], nf, "params.coef", problems)
        if "intercept" in p:
            _scalar(p, "intercept", "params", problems)
    else:
        sv = p.get("support_vectors")
        if "support_vectors" in p:
            if not isinstance(sv, list) or not sv or len(sv) > MAX_SUPPORT_VECTORS:
                problems.append(("params.support_vectors", f"must be a list of 1 to {MAX_SUPPORT_VECTORS} vectors"))
                sv = None
            else:
                for i, row in enumerate(sv):
                    before = len(problems)
                    _vector(row, nf, f"params.support_vectors[{i}]", problems)
                    if len(problems) > before:
                        break
        if "dual_coef" in p:
            _vector(p["dual_coef"], len(sv) if isinstance(sv, list) else None, "params.dual_coef", problems)
        for k in ("intercept", "platt_A", "platt_B"):
            if k in p:
                _scalar(p, k, "params", problems)
        if "gamma" in p:
            _scalar(p, "gamma", "params", problems, positive=True)
    cou = d.get("coefficients_original_units")
    if isinstance(cou, dict):
        bad = [k for k, v in cou.items() if not _finite(v)]
        if bad:
            problems.append((f"coefficients_original_units.{str(bad[0])[:60]}", "must be a finite number"))
    if isinstance(d.get("bootstrap"), dict):
        _validate_bootstrap(d["bootstrap"], kind, nf, problems)
    if problems:
        raise ModelFileError(source, problems)


def _validate_bootstrap(b: dict, kind: str, nf: int | None, problems: list) -> None:
    """The optional ``bootstrap`` field: refits on resamples (:mod:`.prediction`), each a
    ``{"scaler": {"mean", "scale"}, "params": {...}}`` of the model's own shape."""
    reps = b.get("replicates")
    if not isinstance(reps, list) or not reps or len(reps) > MAX_REPLICATES:
        problems.append(("bootstrap.replicates", f"must be a list of 1 to {MAX_REPLICATES} replicates"))
        return
    n = b.get("n_resamples")
    if isinstance(n, bool) or not isinstance(n, int) or n != len(reps):
        problems.append(("bootstrap.n_resamples", f"must be the number of replicates ({len(reps)}), got {n!r:.40}"))
    for i, r in enumerate(reps):
        where = f"bootstrap.replicates[{i}]"
        before = len(problems)
        if not isinstance(r, dict) or not isinstance(r.get("scaler"), dict) or not isinstance(r.get("params"), dict):
            problems.append((where, "must be an object with 'scaler' and 'params' objects"))
            break
        for k in ("mean", "scale"):
            _vector(r["scaler"].get(k), nf, f"{where}.scaler.{k}", problems, positive=(k == "scale"))
        p = r["params"]
        if kind == "logistic":
            _vector(p.get("coef"), nf, f"{where}.params.coef", problems)
            _scalar(p, "intercept", f"{where}.params", problems)
        else:
            sv = p.get("support_vectors")
            if not isinstance(sv, list) or not sv or len(sv) > MAX_SUPPORT_VECTORS:
                problems.append((f"{where}.params.support_vectors", "must be a list of support vectors"))
            else:
                for j, row in enumerate(sv):
                    _vector(row, nf, f"{where}.params.support_vectors[{j}]", problems)
                    if len(problems) > before:
                        break
                _vector(p.get("dual_coef"), len(sv), f"{where}.params.dual_coef", problems)
            for k in ("intercept", "platt_A", "platt_B"):
                _scalar(p, k, f"{where}.params", problems)
            _scalar(p, "gamma", f"{where}.params", problems, positive=True)
        if len(problems) > before:
            break


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k[:60]!r}")
        d[k] = v
    return d


def _reject_constant(name):
    raise ValueError(f"{name} is not a finite JSON number")


def parse_model_json(text: str, source="model file"):
    """Parse model-file text strictly; any parser problem -> :class:`ModelFileError`."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except RecursionError:
        raise ModelFileError(source, [("<file>", "not valid JSON (nested too deeply)")]) from None
    except ValueError as exc:
        raise ModelFileError(source, [("<file>", f"not valid JSON ({str(exc)[:300]})")]) from None
