"""Compare model quality on the real SCL data: the challenge baseline against our families and
feature sets, on the same data and the same splits, under two protocols.

The headline rows ("production path") are what a user gets: the raw rows of the training side
written to a CSV, trained exactly as `flight-delay train --data FILE` / `POST /models` do with
their defaults (TrainConfig()), saved, loaded with `load_model`, and the other side's raw rows,
operated columns removed, scored through `predict_proba` at the model's own threshold. The other
rows ("library evaluation") are each model's own holdout inside `train` with `refit: False`, for
comparison between families and feature sets.

- random: a stratified random 33 % holdout with random_state=42 (the challenge's protocol);
- time:   train on flights scheduled before 2017-11-01, test on those from then on.

The challenge baseline is the widely used one: logistic regression with class balancing on ten
one-hot columns, thresholded at 0.5 as published. Its MES is derived from Fecha-I here (the file's
MES column is the *operated* month; they differ on 9 rows).

Usage: python benchmarks/model_quality.py [--data PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from flight_delay.data import FlightData, load_flights, schema
from flight_delay.ml import load_model, train
from flight_delay.ml.evaluation import classification_metrics
from flight_delay.ml.splits import split_positions

CHALLENGE_FEATURES = (
    "OPERA_Latin American Wings", "MES_7", "MES_10", "OPERA_Grupo LATAM", "MES_12",
    "TIPOVUELO_I", "MES_4", "MES_11", "OPERA_Sky Airline", "OPERA_Copa Air",
)  # fmt: skip
PROTOCOLS: dict[str, dict[str, Any]] = {
    "random": {"split": "random", "test_size": 0.33, "seed": 42},
    "time": {"split": "time", "time_cutoff": "2017-11-01"},
}
OURS = (
    ("lightgbm", "schedule"),
    ("lightgbm", "minimal"),
    ("logistic_regression", "schedule"),
    ("logistic_regression", "minimal"),
)
REPO = Path(__file__).resolve().parents[1]


def challenge_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    columns = pd.DataFrame(
        {
            "OPERA": frame[schema.AIRLINE],
            "MES": frame[schema.SCHEDULED_AT].dt.month,
            "TIPOVUELO": frame[schema.FLIGHT_TYPE],
        }
    )
    dummies = pd.get_dummies(columns, columns=["OPERA", "MES", "TIPOVUELO"], dtype=float)
    return dummies.reindex(columns=list(CHALLENGE_FEATURES), fill_value=0.0)


def challenge_baseline(data: FlightData, protocol: dict[str, Any]) -> tuple[dict[str, Any], float]:
    frame, labels = data.frame, data.labels.to_numpy()
    train_pos, test_pos = split_positions(
        frame, protocol["split"], protocol.get("test_size", 0.2), protocol.get("seed", 42),
        protocol.get("time_cutoff"),
    )  # fmt: skip
    features = challenge_matrix(frame)
    started = time.perf_counter()
    model = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=1)
    model.fit(features.iloc[train_pos], labels[train_pos])
    elapsed = time.perf_counter() - started
    probability = model.predict_proba(features.iloc[test_pos])[:, 1]
    return classification_metrics(labels[test_pos], probability, 0.5), elapsed


def ours(
    data: FlightData, protocol: dict[str, Any], model_type: str, features: str
) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    model = train(
        data, {**protocol, "model_type": model_type, "features": features, "refit": False}
    )
    return model.metrics["holdout"], time.perf_counter() - started


def raw_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as the file has them: dates as text, without the label columns."""
    raw = frame.drop(columns=[schema.LABEL, "delay_minutes"], errors="ignore").copy()
    for column in (schema.SCHEDULED_AT, schema.OPERATED_AT):
        raw[column] = raw[column].dt.strftime(schema.DATETIME_FORMAT)
    return raw


def production_path(
    data: FlightData, protocol: dict[str, Any], workdir: Path
) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """Train as a user does (defaults) on the training side's raw rows, save, load, and score
    the other side's raw rows without their operated columns."""
    frame, labels = data.frame, data.labels.to_numpy()
    train_pos, test_pos = split_positions(
        frame, protocol["split"], protocol.get("test_size", 0.2), protocol.get("seed", 42),
        protocol.get("time_cutoff"),
    )  # fmt: skip
    source = raw_rows(data.frame)
    training_file = workdir / f"{protocol['split']}-training.csv"
    source.iloc[train_pos].to_csv(training_file, index=False)
    started = time.perf_counter()
    model = train(str(training_file), {})  # what the CLI and POST /models run by default
    seconds = time.perf_counter() - started
    model.save(workdir / protocol["split"])
    loaded = load_model(workdir / protocol["split"])
    later = source.iloc[test_pos].drop(columns=list(schema.OPERATED_COLUMNS), errors="ignore")
    probability = loaded.predict_proba(later.reset_index(drop=True))
    metrics = classification_metrics(labels[test_pos], probability, loaded.threshold)
    extra = {
        "warnings": len(loaded.warnings(later.reset_index(drop=True))),
        "trees": loaded.metadata["params"].get("n_estimators"),
        "mean_probability": float(np.mean(probability)),
        "cv": loaded.metadata.get("cross_validation"),
        "calibration": loaded.metadata.get("calibration", {}).get("method"),
        "reliability": metrics["reliability"],
        "delay_rate": float(np.mean(labels[test_pos])),
    }
    return metrics, seconds, extra


def row(protocol: str, name: str, metrics: dict[str, Any], seconds: float) -> dict[str, Any]:
    delayed = metrics["classes"]["delayed"]
    return {
        "protocol": protocol,
        "model": name,
        "roc_auc": metrics["roc_auc"],
        "pr_auc": metrics["pr_auc"],
        "brier": metrics["brier"],
        "ece": metrics["ece"],
        "threshold": metrics["threshold"],
        "recall_delayed": delayed["recall"],
        "precision_delayed": delayed["precision"],
        "f1_delayed": delayed["f1"],
        "holdout_rows": metrics["rows"],
        "train_seconds": seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    default = next(
        (p for p in (REPO / "datasets/dataset_SCL.csv", REPO.parent / "shared/datasets/dataset_SCL.csv") if p.is_file()),
        None,
    )  # fmt: skip
    parser.add_argument("--data", default=str(default) if default else None)
    args = parser.parse_args()
    if not args.data or not Path(args.data).is_file():
        print("the real SCL dataset is needed: pass --data PATH", file=sys.stderr)
        return 2
    data = load_flights(args.data)
    rows, details = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for protocol_name, protocol in PROTOCOLS.items():
            metrics, seconds, extra = production_path(data, protocol, Path(workdir))
            rows.append(
                row(protocol_name, "PRODUCTION PATH: lightgbm / schedule", metrics, seconds)
            )
            details.append((protocol_name, extra))
    for protocol_name, protocol in PROTOCOLS.items():
        rows.append(
            row(
                protocol_name,
                "challenge baseline (LR, 10 one-hot, t=0.5)",
                *challenge_baseline(data, protocol),
            )
        )
        for model_type, features in OURS:
            metrics, seconds = ours(data, protocol, model_type, features)
            rows.append(
                row(
                    protocol_name,
                    f"library evaluation: {model_type} / {features}",
                    metrics,
                    seconds,
                )
            )
    table = pd.DataFrame(rows)
    with pd.option_context(
        "display.width", 250, "display.max_columns", 20, "display.float_format", "{:.3f}".format
    ):
        print(
            f"data: {args.data} ({len(data.frame)} flights, delay rate {np.mean(data.labels):.4f})"
        )
        print(
            "random = stratified 33 % holdout, seed 42; time = train before 2017-11-01, test from then on"
        )
        print(
            "PRODUCTION PATH = defaults of flight-delay train / POST /models on the training side's "
            "raw rows, saved, load_model, predict_proba on the other side's raw rows (operated "
            "columns removed), at the model's threshold; train_seconds includes its internal "
            "cross-validation, holdout evaluation and refit on all rows"
        )
        print(
            "library evaluation = the model's own holdout inside train (refit: False), for "
            "comparing families and feature sets"
        )
        print(table.to_string(index=False))
        for protocol_name, extra in details:
            cv = extra["cv"] or {}
            print(
                f"production path, {protocol_name}: {extra['trees']} trees; mean predicted "
                f"probability {extra['mean_probability']:.4f}; {extra['warnings']} warnings "
                "(flights predicted with a never-seen destination, code or flight number), none "
                f"refused; cross-validation ({cv.get('method')}): ROC AUC "
                f"{cv.get('roc_auc_mean', float('nan')):.4f} ± {cv.get('roc_auc_std', float('nan')):.4f}, "
                f"PR AUC {cv.get('pr_auc_mean', float('nan')):.4f} ± {cv.get('pr_auc_std', float('nan')):.4f}"
            )
            print(
                f"    calibration chosen by the folds: {extra['calibration']}; reliability on "
                f"the held-out flights (actual delay rate {extra['delay_rate']:.4f}):"
            )
            for cell in extra["reliability"]:
                print(
                    f"      p in [{cell['from']:.1f}, {cell['to']:.1f}): {cell['flights']:>6} "
                    f"flights, mean predicted {cell['mean_predicted']:.3f}, delayed "
                    f"{cell['delay_rate']:.3f}"
                )
            for fold in cv.get("folds", []):
                print(
                    f"    fold {fold.get('origin', '')[:10] or '(stratified)'}: ROC AUC "
                    f"{fold['roc_auc']:.4f}, PR AUC {fold['pr_auc']:.4f}, base rate {fold['base_rate']:.3f}, "
                    f"best at {fold['best_step']}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
