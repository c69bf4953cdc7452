"""The labelled alert benchmark: do the alerts fire on the runs that fail, and only on those?

Trains every case of `benchmarks/alert_cases.py` once with `RNNMonitor` (alerts on, probe data
given), keeps what the alert rules saw at every logged epoch (the `EpochRecord`s, Keras's loss
included), computes SageMaker-Debugger-style rules side by side on the same probe batch, checks
each case's label (held-out loss against the task's baseline, a control run), and prints the
table of docs/alerts.md. The records are saved, so the rules can be re-run on them offline with
other thresholds without training again (that is how the defaults were chosen)::

    python benchmarks/alert_benchmark.py                      # train all cases, print the table
    python benchmarks/alert_benchmark.py --reduced            # the CI subset (a few minutes)
    python benchmarks/alert_benchmark.py --cases huge_lr,nan_weight
    python benchmarks/alert_benchmark.py --evaluate           # re-run the rules on saved records
    python benchmarks/alert_benchmark.py --evaluate --thresholds '{"stall_improvement": 0.02}'
    python benchmarks/alert_benchmark.py --evaluate --markdown  # the docs/alerts.md table

SageMaker-style rules (computed by this script, not by rnn-monitor), per logged epoch on the
probe batch: *vanishing* when the mean |dL/dW| of any trainable weight tensor is below 1e-7
(Debugger's VanishingGradient rule, default threshold), *non-finite* when any weight, gradient
or the loss is NaN/Inf (its ExplodingTensor rule). A case's *kind* is caught by them when the
rule of that kind fires (non-finite covers the exploding and non-finite labels).

Output directory (default ``runs/alert_benchmark``): ``<case>/logs`` (the TensorBoard log),
``<case>/records.pkl`` (what the rules saw) and ``<case>/case.json`` (losses, live alerts,
SageMaker-style results, verification). Exit status 1 when a case's label did not verify or the
"done" criteria fail on the report split.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import pickle
import shutil
import sys
import time
from typing import Any, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

import alert_cases  # noqa: E402

SAGEMAKER_VANISHING = 1e-7  # Debugger VanishingGradient: mean |gradient| of a tensor below this


# ---------------------------------------------------------------- records on disk
def record_to_dict(record: Any) -> dict:
    """An EpochRecord as plain data (robust to later changes of the class)."""
    return {
        "epoch": int(record.epoch),
        "scalars": copy.deepcopy(record.scalars),
        "arrays": {layer: {k: np.asarray(v).copy() for k, v in arrays.items()}
                   for layer, arrays in record.arrays.items()},
        "nonfinite": [(nf.layer, nf.where, nf.gate, int(nf.count)) for nf in record.nonfinite],
        "logs": dict(getattr(record, "logs", {}) or {}),
        "probe_loss": getattr(record, "probe_loss", None),
        "constant_loss": getattr(record, "constant_loss", None),
    }


def record_from_dict(data: dict) -> Any:
    from rnn_monitor.record import EpochRecord, NonFinite

    record = EpochRecord(data["epoch"])
    record.scalars = copy.deepcopy(data["scalars"])
    record.arrays = {layer: dict(arrays) for layer, arrays in data["arrays"].items()}
    record.nonfinite = [NonFinite(*nf) for nf in data["nonfinite"]]
    record.logs = dict(data.get("logs", {}))
    record.probe_loss = data.get("probe_loss")
    record.constant_loss = data.get("constant_loss")
    return record


# ---------------------------------------------------------------- training one case
def _recording_monitor(log_dir: str, probe: tuple, sink: list):
    """An RNNMonitor whose alert engine also keeps a copy of every record it evaluates."""
    from rnn_monitor import RNNMonitor
    from rnn_monitor.alerts import AlertEngine

    class RecordingEngine(AlertEngine):
        def evaluate(self, epoch, record, model=None):
            sink.append(record_to_dict(record))
            return super().evaluate(epoch, record, model)

    class RecordingMonitor(RNNMonitor):
        def _make_alerts(self):
            return RecordingEngine(writer=self.writer, thresholds=self.thresholds,
                                   on_alert=self.on_alert, stop_on=self.stop_on)

    return RecordingMonitor(log_dir, probe_data=probe, images=False, histograms=False)


def _sagemaker_callback(probe: tuple, sink: list):
    """Per epoch: the smallest mean |dL/dW| over the trainable tensors, and NaN/Inf anywhere."""
    import keras
    import tensorflow as tf

    x, y = probe

    class SageMakerStyle(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            model = self.model
            weights = model.trainable_weights
            with tf.GradientTape() as tape:
                y_pred = model(x, training=False)
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred)
            grads = tape.gradient(loss, weights)
            means = []
            nonfinite = [] if np.isfinite(float(loss)) else ["probe loss"]
            if logs and "loss" in logs and not math.isfinite(float(logs["loss"])):
                nonfinite.append("training loss")
            for w, g in zip(weights, grads):
                w_np = np.asarray(w.numpy())
                if not np.all(np.isfinite(w_np)):
                    nonfinite.append(f"weight {w.path}")
                if g is None:
                    continue
                g_np = np.asarray(tf.convert_to_tensor(g).numpy())  # IndexedSlices too (embeddings)
                if not np.all(np.isfinite(g_np)):
                    nonfinite.append(f"gradient {w.path}")
                means.append((float(np.mean(np.abs(g_np))), w.path))
            finite = [m for m in means if math.isfinite(m[0])]
            low = min(finite) if finite else (float("nan"), None)
            sink.append({
                "epoch": int(epoch),
                "min_mean_abs_grad": low[0],
                "tensor": low[1],
                "vanishing": bool(finite) and low[0] < SAGEMAKER_VANISHING,
                "nonfinite": nonfinite[:5],
            })

    return SageMakerStyle()


def run_case(case: alert_cases.Case, out_dir: str, verify: bool = True) -> dict:
    """Train one case with the monitor; save its records and results; return the results."""
    import keras

    from rnn_monitor import load_run

    case_dir = os.path.join(out_dir, case.name)
    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(case_dir)
    keras.utils.set_random_seed(0)
    setup = case.make()
    records: list = []
    sagemaker: list = []
    monitor = _recording_monitor(os.path.join(case_dir, "logs"), setup.probe, records)
    started = time.time()
    history = setup.model.fit(setup.x, setup.y, verbose=0, callbacks=[monitor, _sagemaker_callback(setup.probe, sagemaker)],
                              **setup.fit)
    seconds = time.time() - started
    losses = [float(v) for v in history.history["loss"]]
    live = [{k: a.get(k) for k in ("epoch", "layer", "kind", "metric", "value")}
            for a in load_run(os.path.join(case_dir, "logs")).alerts]
    result = {
        "name": case.name, "family": case.family, "label": case.label, "split": case.split,
        "summary": case.summary, "control": case.control_summary, "losses": losses,
        "baseline": setup.baseline, "train_seconds": round(seconds, 1), "live_alerts": live,
        "sagemaker": sagemaker, "verified": None, "evidence": "",
    }
    if verify:
        started = time.time()
        ratio = alert_cases.control_ratio(case)
        ok, evidence = alert_cases.verify(case, setup, losses, ratio)
        result.update(verified=ok, evidence=evidence, verify_seconds=round(time.time() - started, 1))
    with open(os.path.join(case_dir, "records.pkl"), "wb") as handle:
        pickle.dump(records, handle)
    with open(os.path.join(case_dir, "case.json"), "w") as handle:
        json.dump(result, handle, indent=1, default=float)
    return result


# ---------------------------------------------------------------- offline evaluation
def load_case(out_dir: str, name: str) -> tuple[dict, list]:
    with open(os.path.join(out_dir, name, "case.json")) as handle:
        result = json.load(handle)
    with open(os.path.join(out_dir, name, "records.pkl"), "rb") as handle:
        records = [record_from_dict(r) for r in pickle.load(handle)]
    return result, records


def replay(records: list, thresholds: Optional[dict] = None, baseline: bool = True) -> tuple[list, list]:
    """Run the alert rules over saved records: (alerts raised, findings raised), oldest first.
    ``baseline=False`` drops the constant-prediction loss (as for outputs it cannot be built for)."""
    from rnn_monitor.alerts import AlertRules
    from rnn_monitor.config import Thresholds

    rules = AlertRules(Thresholds.from_mapping(thresholds))
    alerts, findings = [], []
    for record in records:
        if not baseline:
            record = copy.copy(record)
            record.constant_loss = None
        raised, _active, _cleared = rules.update(record)
        alerts.extend(raised)
        findings.extend(getattr(rules, "findings_raised", []) or [])
    return alerts, findings


def sagemaker_kinds(result: dict) -> dict:
    """{kind: first epoch} of the SageMaker-style rules ('vanishing', 'nonfinite')."""
    out: dict = {}
    for row in result["sagemaker"]:
        if row["vanishing"]:
            out.setdefault("vanishing", row["epoch"])
        if row["nonfinite"]:
            out.setdefault("nonfinite", row["epoch"])
    return out


def catches(label: str, kinds: dict, sagemaker: bool = False) -> bool:
    """Whether alerts of `kinds` catch a run labelled `label` (healthy: no alert at all)."""
    if label == "healthy":
        return not kinds
    if sagemaker and label == "exploding":
        return "nonfinite" in kinds
    return label in kinds


def evaluate(out_dir: str, names: list, thresholds: Optional[dict] = None, baseline: bool = True,
             loaded: Optional[dict] = None) -> list[dict]:
    """One row per case: our alerts and findings (replayed), SageMaker-style alerts, verdicts."""
    rows = []
    for name in names:
        result, records = loaded[name] if loaded else load_case(out_dir, name)
        alerts, findings = replay(records, thresholds, baseline)
        ours: dict = {}
        for a in alerts:
            ours.setdefault(a["kind"], a["epoch"])
        found: dict = {}
        for f in findings:
            found.setdefault(f["kind"], f["epoch"])
        sm = sagemaker_kinds(result)
        blew_up = result["label"] in ("nonfinite", "exploding") or any(
            not math.isfinite(v) for v in result["losses"])
        rows.append({
            "name": name, "family": result["family"], "label": result["label"], "split": result["split"],
            "summary": result["summary"], "ours": ours, "findings": found, "sagemaker": sm,
            "ours_ok": catches(result["label"], ours) and not (blew_up and "vanishing" in ours),
            "sagemaker_ok": catches(result["label"], sm, sagemaker=True),
            "sagemaker_any": bool(sm),
            "verified": result["verified"], "evidence": result["evidence"], "alerts": alerts,
            "epochs": len(result["losses"]), "first_loss": result["losses"][0], "last_loss": result["losses"][-1],
            "baseline": result["baseline"],
        })
    return rows


def _kinds_text(kinds: dict) -> str:
    return ", ".join(f"{k} ({e})" for k, e in sorted(kinds.items(), key=lambda kv: (kv[1], kv[0]))) or "none"


def summary(rows: list[dict]) -> dict:
    """Per split: faults caught / pathological runs and false alarms / healthy runs, for us and
    for the SageMaker-style rules."""
    out = {}
    for split in ("tune", "report", "all"):
        part = [r for r in rows if split == "all" or r["split"] == split]
        faults = [r for r in part if r["label"] != "healthy"]
        healthy = [r for r in part if r["label"] == "healthy"]
        out[split] = {
            "faults": len(faults), "healthy": len(healthy),
            "ours_caught": sum(r["ours_ok"] for r in faults),
            "ours_false_alarms": sum(not r["ours_ok"] for r in healthy),
            "sagemaker_caught": sum(r["sagemaker_ok"] for r in faults),
            "sagemaker_false_alarms": sum(not r["sagemaker_ok"] for r in healthy),
            "sagemaker_any_alert": sum(r["sagemaker_any"] for r in faults),
            "ours_latest_first_epoch": max((r["ours"].get(r["label"], -1) for r in faults), default=None),
            "vanishing_on_blown_up": sum(
                "vanishing" in r["ours"] and r["label"] in ("nonfinite", "exploding") for r in part),
        }
    return out


def _ranges(grid: list, good: list) -> str:
    """Contiguous runs of good grid values, e.g. '1e-06..0.001'."""
    runs, current = [], []
    for value in grid:
        if value in good:
            current.append(value)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return ", ".join(f"{r[0]:g}..{r[-1]:g}" if len(r) > 1 else f"{r[0]:g}" for r in runs) or "none"


def table_text(rows: list[dict]) -> str:
    lines = [f"{'case':22} {'split':6} {'label':9} {'ours (first epoch)':32} {'SageMaker-style':22} {'findings':30} ok"]
    for r in rows:
        mark = ("Y" if r["ours_ok"] else "N") + ("Y" if r["sagemaker_ok"] else "N") + (
            "" if r["verified"] is None else ("v" if r["verified"] else "!"))
        lines.append(f"{r['name']:22} {r['split']:6} {r['label']:9} {_kinds_text(r['ours']):32} "
                     f"{_kinds_text(r['sagemaker']):22} {_kinds_text(r['findings']):30} {mark}")
    return "\n".join(lines)


def _verdict(row: dict, kinds: dict, ok: bool) -> str:
    if ok:
        return ""
    if row["label"] == "healthy":
        return " **(false alarm)**"
    return " (other kind)" if kinds else " (miss)"


def table_markdown(rows: list[dict]) -> str:
    lines = [
        "| case | split | label | what it is | our alerts (first epoch) | SageMaker-style alerts | findings | label verified by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"`{r['name']}`", r["split"], r["label"], f"{r['family']}: {r['summary']}",
                 _kinds_text(r["ours"]) + _verdict(r, r["ours"], r["ours_ok"]),
                 _kinds_text(r["sagemaker"]) + _verdict(r, r["sagemaker"], r["sagemaker_ok"]),
                 _kinds_text(r["findings"]), r["evidence"] if r["verified"] else f"NOT VERIFIED: {r['evidence']}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def headline(stats: dict) -> str:
    lines = []
    for split in ("tune", "report", "all"):
        s = stats[split]
        lines.append(
            f"{split:6}: ours caught {s['ours_caught']}/{s['faults']} faults, {s['ours_false_alarms']}/{s['healthy']} "
            f"false alarms; SageMaker-style caught {s['sagemaker_caught']}/{s['faults']}, "
            f"{s['sagemaker_false_alarms']}/{s['healthy']} false alarms (any SageMaker-style alert on "
            f"{s['sagemaker_any_alert']}/{s['faults']} faults); blown-up runs also called vanishing: "
            f"{s['vanishing_on_blown_up']}; latest first alert of the right kind: epoch {s['ours_latest_first_epoch']}")
    return "\n".join(lines)


# Rule thresholds and the grid each is swept over (the others held at their defaults).
SWEEP = {
    "vanishing_flow": [10.0 ** e for e in range(-9, 1)],
    "learned_ratio": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0, 1.02, 1.05, 1.1],
    "stall_improvement": [0.001, 0.003, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3],
    "patience": [1, 2, 3, 4],
    "diverged_ratio": [1.5, 2, 3, 10, 30, 100, 300, 1000],
    "exploding_flow": [2, 3, 10, 1e2, 1e3, 1e4, 1e5],
    "exploding_grad_growth": [2, 5, 10, 30, 100, 1e3],
    "starvation_grad": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2, 0.1],
    "dead_alert_ratio": [0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99],
    "saturation_alert_ratio": [0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.99],
}


def sweep(out_dir: str, names: list) -> list[dict]:
    """For every rule threshold: the grid values at which the tune split is perfect (every fault
    caught with its kind, no false alarm, no blown-up run called vanishing) and the same for the
    report split, the others at their defaults."""
    from rnn_monitor.config import Thresholds

    loaded = {n: load_case(out_dir, n) for n in names}
    defaults = Thresholds()
    rows = []
    for name, grid in SWEEP.items():
        ok = {"tune": [], "report": []}
        for value in grid:
            stats = summary(evaluate(out_dir, names, {name: value}, loaded=loaded))
            for split in ok:
                s = stats[split]
                if s["ours_caught"] == s["faults"] and s["ours_false_alarms"] == 0 and s["vanishing_on_blown_up"] == 0:
                    ok[split].append(value)
        rows.append({"threshold": name, "default": getattr(defaults, name), "grid": grid,
                     "perfect_tune": ok["tune"], "perfect_report": ok["report"]})
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("runs", "alert_benchmark"), help="output directory")
    parser.add_argument("--cases", default=None, help="comma-separated case names (default: all)")
    parser.add_argument("--reduced", action="store_true", help="only the cases marked reduced (CI)")
    parser.add_argument("--split", choices=("tune", "report", "all"), default="all")
    parser.add_argument("--evaluate", action="store_true", help="re-run the rules on saved records only")
    parser.add_argument("--thresholds", default=None, help="JSON overrides of rnn_monitor.config.Thresholds")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="skip label checks and controls")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--sweep", action="store_true",
                        help="with --evaluate: the values of each threshold at which a split is perfect")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="with --evaluate: rules without the constant-prediction loss (Keras loss trend only)")
    parser.add_argument("--json", action="store_true", help="print rows and headline as JSON")
    return parser.parse_args(argv)


def select(args) -> list[alert_cases.Case]:
    cases = alert_cases.CASES
    if args.cases:
        wanted = args.cases.split(",")
        unknown = [n for n in wanted if n not in alert_cases.BY_NAME]
        if unknown:
            raise SystemExit(f"unknown case(s) {unknown}; known: {sorted(alert_cases.BY_NAME)}")
        cases = [alert_cases.BY_NAME[n] for n in wanted]
    if args.reduced:
        cases = [c for c in cases if c.reduced]
    if args.split != "all":
        cases = [c for c in cases if c.split == args.split]
    return cases


def main(argv=None) -> int:
    args = parse_args(argv)
    import logging

    logging.getLogger("rnn_monitor").setLevel(logging.ERROR)
    cases = select(args)
    thresholds = json.loads(args.thresholds) if args.thresholds else None
    if not args.evaluate:
        os.makedirs(args.out, exist_ok=True)
        for case in cases:
            result = run_case(case, args.out, verify=args.verify)
            print(f"{case.name:22} {case.label:9} trained in {result['train_seconds']:5.1f}s  "
                  f"verified={result['verified']}  {result['evidence']}", flush=True)
    if args.sweep:
        for row in sweep(args.out, [c.name for c in cases]):
            print(f"{row['threshold']:24} default {row['default']:<8g} perfect on tune: "
                  f"{_ranges(row['grid'], row['perfect_tune'])}; on report: {_ranges(row['grid'], row['perfect_report'])}")
        return 0
    rows = evaluate(args.out, [c.name for c in cases], thresholds, baseline=args.baseline)
    stats = summary(rows)
    if args.json:
        print(json.dumps({"rows": [{k: v for k, v in r.items() if k != "alerts"} for r in rows], "summary": stats},
                         indent=1, default=float))
    else:
        print(table_markdown(rows) if args.markdown else table_text(rows))
        print(headline(stats))
    bad = [r["name"] for r in rows if r["verified"] is False]
    if bad:
        print(f"labels that did not verify: {bad}")
    report = stats["report"]
    done = report["ours_caught"] == report["faults"] and report["ours_false_alarms"] == 0 \
        and report["vanishing_on_blown_up"] == 0
    return 0 if (not bad and done) else 1


if __name__ == "__main__":
    sys.exit(main())
