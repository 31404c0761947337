"""``flight-delay``: the command-line entry point (a thin caller of the model library)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from flight_delay.errors import FlightDelayError
from flight_delay.features import FEATURE_SETS
from flight_delay.ml.config import SPLITS, TrainConfig
from flight_delay.ml.families import FAMILIES

EXIT_USAGE = 2


class TerminalProgress:
    """One self-overwriting progress line on a terminal; silent when not a terminal."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.started = time.monotonic()

    def __call__(self, stage: str, percent: int) -> None:
        if not self.enabled:
            return
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        elapsed = time.monotonic() - self.started
        self.stream.write(f"\r[{bar}] {percent:3d}% {elapsed:5.1f}s {stage:<40}")
        if percent >= 100:
            self.stream.write("\n")
        self.stream.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flight-delay", description="Train and evaluate SCL flight-delay models."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train, evaluate and save a model")
    train.add_argument(
        "--data", required=True, help="a CSV file, a folder of CSVs, or a parquet file"
    )
    # defaults: TrainConfig's, the same as POST /models; only the options given are passed on
    defaults = TrainConfig.defaults()
    train.add_argument(
        "--model", dest="model_type", choices=sorted(FAMILIES),
        help=f"model family (default {defaults['model_type']})",
    )  # fmt: skip
    train.add_argument(
        "--features", choices=sorted(FEATURE_SETS),
        help=f"feature set (default {defaults['features']})",
    )  # fmt: skip
    train.add_argument(
        "--split", choices=SPLITS, help=f"holdout protocol (default {defaults['split']})"
    )
    train.add_argument(
        "--test-size", type=float, help=f"held-out share (default {defaults['test_size']})"
    )
    train.add_argument(
        "--time-cutoff", help="with --split time: hold out flights from this date on"
    )
    train.add_argument("--seed", type=int, help=f"random seed (default {defaults['seed']})")
    train.add_argument(
        "--cv-folds", type=int,
        help=f"cross-validation folds choosing tree count and threshold; 0: one validation "
        f"slice (default {defaults['cv_folds']})",
    )  # fmt: skip
    train.add_argument(
        "--min-recall", type=float,
        help=f"the threshold flags at least this share of delayed flights in cross-validation "
        f"(default {defaults['min_recall']})",
    )  # fmt: skip
    train.add_argument(
        "--no-refit", dest="refit", action="store_false", default=None,
        help="keep the evaluated model, no refit",
    )  # fmt: skip
    train.add_argument(
        "--no-compiled-trees", dest="compiled_trees", action="store_false",
        help="save without compiling the LightGBM trees (lleaves; compiling takes ~10 s per "
        "300 trees and makes large batches ~5x faster)",
    )  # fmt: skip
    train.add_argument("--params", help="hyperparameters as JSON, e.g. '{\"num_leaves\": 63}'")
    train.add_argument("--out", help="model directory (default: models/<model>-<features>-<time>)")
    train.add_argument("--json", action="store_true", help="print the model metadata as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _train(args)
    except FlightDelayError as exc:
        print(f"flight-delay: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _train(args: argparse.Namespace) -> int:
    # imported here so that `flight-delay --help` answers without loading the ML stack
    from flight_delay.ml import train

    settings: dict[str, Any] = {
        name: getattr(args, name)
        for name in (
            "model_type",
            "features",
            "split",
            "test_size",
            "time_cutoff",
            "seed",
            "cv_folds",
            "min_recall",
            "refit",
        )
        if getattr(args, name) is not None
    }
    if args.params is not None:
        try:
            settings["params"] = json.loads(args.params)
        except ValueError as exc:
            print(f"flight-delay: error: --params is not valid JSON ({exc})", file=sys.stderr)
            return EXIT_USAGE
    started = time.monotonic()
    model = train(args.data, settings, progress=TerminalProgress(sys.stderr))
    out = Path(args.out) if args.out else _default_out(model.metadata)
    model.save(out, compile_trees=args.compiled_trees)
    elapsed = time.monotonic() - started
    if args.json:
        print(
            json.dumps({"path": str(out), "seconds": round(elapsed, 2), **model.metadata}, indent=2)
        )
    else:
        print(metrics_table(model.metadata, out, elapsed))
    return 0


def _default_out(meta: dict[str, Any]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("models") / f"{meta['model_type']}-{meta['feature_set']['name']}-{stamp}"


def metrics_table(meta: dict[str, Any], out: Path, elapsed: float) -> str:
    holdout = meta["metrics"]["holdout"]
    delayed, on_time = holdout["classes"]["delayed"], holdout["classes"]["on_time"]
    matrix = holdout["confusion_matrix"]
    evaluation = meta["evaluation"]
    rows = [
        ("model", f"{meta['model_type']} / {meta['feature_set']['name']} features"),
        (
            "holdout",
            f"{evaluation['protocol']} split, {evaluation['holdout_rows']} "
            + (
                f"rows ({evaluation['holdout_rows'] // len(evaluation['lead_times'])} flights "
                f"x {len(evaluation['lead_times'])} lead times) "
                if evaluation.get("lead_times")
                else "flights "
            )
            + f"({evaluation['holdout_scheduled_from'][:10]} .. {evaluation['holdout_scheduled_to'][:10]})",
        ),
        ("base rate", f"{holdout['base_rate']:.3f}"),
        ("ROC AUC", f"{holdout['roc_auc']:.3f}"),
        ("PR AUC", f"{holdout['pr_auc']:.3f}"),
        ("Brier score", f"{holdout['brier']:.4f}"),
        ("log loss", f"{holdout['log_loss']:.4f}"),
        ("calibration error", f"{holdout['ece']:.4f}"),
        (
            "threshold",
            f"{holdout['threshold']:.3f} ({meta['threshold']['strategy']}, on "
            f"{'cross-validation' if meta.get('cross_validation') else 'validation'})",
        ),
        *(
            [
                (
                    "cross-validation",
                    f"{len(cv['folds'])} folds, ROC AUC {cv['roc_auc_mean']:.3f} ± "
                    f"{cv['roc_auc_std']:.3f}; {cv['capacity']} = {cv['chosen']}"
                    if cv["capacity"]
                    else f"{len(cv['folds'])} folds, ROC AUC {cv['roc_auc_mean']:.3f} ± "
                    f"{cv['roc_auc_std']:.3f}",
                )
            ]
            if (cv := meta.get("cross_validation"))
            else []
        ),
        *(
            (
                f"at lead {lead}" + ("" if lead == "none" else " min"),
                f"ROC AUC {figures['roc_auc']:.3f}, PR AUC {figures['pr_auc']:.3f}, "
                f"calibration error {figures['ece']:.4f}",
            )
            for lead, figures in (holdout.get("by_lead") or {}).items()
        ),
        (
            "delayed P / R / F1",
            f"{delayed['precision']:.3f} / {delayed['recall']:.3f} / {delayed['f1']:.3f}",
        ),
        (
            "on time P / R / F1",
            f"{on_time['precision']:.3f} / {on_time['recall']:.3f} / {on_time['f1']:.3f}",
        ),
        ("confusion (tn fp fn tp)", f"{matrix['tn']} {matrix['fp']} {matrix['fn']} {matrix['tp']}"),
        (
            "final model",
            f"{meta['final_model']['rows']} rows"
            + (" (refit on all rows)" if meta["final_model"]["refit_on_all_rows"] else ""),
        ),
        ("saved to", str(out)),
        ("time", f"{elapsed:.1f}s"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
