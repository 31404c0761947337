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
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from flight_delay.data import FlightData, load_flights, schema
from flight_delay.devstack import default_dataset
from flight_delay.features import FEATURE_SETS, FeatureSet
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
    ("lightgbm", "schedule_delay_rates"),
    ("lightgbm", "minimal"),
    ("logistic_regression", "schedule"),
    ("logistic_regression", "minimal"),
)
#: feature ablation: the schedule set without each group, to show what each group earns
ABLATIONS = {
    "holiday distances": ("days_to_holiday", "days_since_holiday"),
    "high season": ("high_season",),
    "day of month": ("day_of_month",),
    "minute of day": ("minute_of_day",),
    "flight number value": ("flight_number_value",),
    "schedule load": (
        "slot_flights_per_week",
        "weekday_flights_per_week",
        "airline_slot_flights_per_week",
        "flight_number_flights_per_week",
    ),
    "destination": ("destination",),
    "airline code": ("carrier_code",),
}
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
) -> tuple[dict[str, Any], float, dict[str, Any]]:
    started = time.perf_counter()
    model = train(
        data, {**protocol, "model_type": model_type, "features": features, "refit": False}
    )
    return model.metrics["holdout"], time.perf_counter() - started, model.metadata


def ablation(data: FlightData, protocol: dict[str, Any], drop: tuple[str, ...]) -> dict[str, Any]:
    """The library evaluation of lightgbm on the schedule set less ``drop``. The variant is
    registered under a benchmark-only name for the one training and removed after."""
    base = FEATURE_SETS["schedule"]
    variant = dataclasses.replace(
        base,
        name="benchmark_ablation",
        categorical=tuple(c for c in base.categorical if c not in drop),
        numeric=tuple(c for c in base.numeric if c not in drop),
    )
    registry = cast(dict[str, FeatureSet], FEATURE_SETS)
    registry[variant.name] = variant
    try:
        metrics, _, metadata = ours(data, protocol, "lightgbm", variant.name)
    finally:
        del registry[variant.name]
    return {"holdout": metrics, "cv": metadata["cross_validation"]}


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


def fold_scores(cv: dict[str, Any]) -> np.ndarray:
    return np.array([fold["roc_auc"] for fold in cv["folds"]])


def spread(cv: dict[str, Any]) -> str:
    folds = " ".join(f"{v:.3f}" for v in fold_scores(cv))
    return f"{cv['roc_auc_mean']:.4f} ± {cv['roc_auc_std']:.4f} [{folds}]"


def paired_gain(cv: dict[str, Any], reference: dict[str, Any]) -> str:
    """Mean ± standard error of the per-fold ROC AUC change against the shipped set."""
    gains = fold_scores(cv) - fold_scores(reference)
    error = gains.std(ddof=1) / np.sqrt(len(gains)) if len(gains) > 1 else float("nan")
    return f"{gains.mean():+.4f} ± {error:.4f}"


def row(
    protocol: str,
    name: str,
    metrics: dict[str, Any],
    seconds: float,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    delayed = metrics["classes"]["delayed"]
    cv = (metadata or {}).get("cross_validation") or {}
    return {
        "protocol": protocol,
        "model": name,
        "cv_roc_auc": cv.get("roc_auc_mean", np.nan),
        "cv_std": cv.get("roc_auc_std", np.nan),
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
    default = default_dataset(os.environ, REPO) or None
    parser.add_argument("--data", default=default, help="default: FLIGHT_DELAY_DATASET, ...")
    args = parser.parse_args()
    if not args.data or not Path(args.data).is_file():
        print(
            "the real SCL dataset is needed: put it at datasets/dataset_SCL.csv or set "
            "FLIGHT_DELAY_DATASET=/path/to/dataset_SCL.csv (see datasets/README.md)",
            file=sys.stderr,
        )
        return 2
    data = load_flights(args.data)
    rows, details = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for protocol_name, protocol in PROTOCOLS.items():
            metrics, seconds, extra = production_path(data, protocol, Path(workdir))
            rows.append(
                row(
                    protocol_name,
                    "PRODUCTION PATH: lightgbm / schedule",
                    metrics,
                    seconds,
                    {"cross_validation": extra["cv"]},
                )
            )
            details.append((protocol_name, extra))
    shipped: dict[str, dict[str, Any]] = {}
    for protocol_name, protocol in PROTOCOLS.items():
        rows.append(
            row(
                protocol_name,
                "challenge baseline (LR, 10 one-hot, t=0.5)",
                *challenge_baseline(data, protocol),
            )
        )
        for model_type, features in OURS:
            metrics, seconds, metadata = ours(data, protocol, model_type, features)
            if (model_type, features) == ("lightgbm", "schedule"):
                shipped[protocol_name] = metadata["cross_validation"]
            rows.append(
                row(
                    protocol_name,
                    f"library evaluation: {model_type} / {features}",
                    metrics,
                    seconds,
                    metadata,
                )
            )
    ablations = []
    for group, drop in ABLATIONS.items():
        for protocol_name, protocol in PROTOCOLS.items():
            ablations.append((group, protocol_name, ablation(data, protocol, drop)))
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
        print(
            "cv_roc_auc, cv_std = mean and spread of the model's own cross-validation folds "
            "inside its training part (chosen setting and tree count)"
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
        print(
            "feature ablation (library evaluation, lightgbm): the schedule set without each group."
            " gain = the per-fold change in cross-validated ROC AUC from leaving the group out, "
            "mean ± standard error over the same folds; a group stays unless leaving it out gains "
            "by more than twice its standard error under the time protocol (the forecast's)"
        )
        print(
            f"    {'without':<24}{'protocol':<9}{'cv ROC AUC ± std [folds]':<46}{'gain ± se':>18}"
            f"{'holdout ROC':>12}{'holdout PR':>11}"
        )
        for protocol_name in PROTOCOLS:
            print(
                f"    {'(shipped schedule set)':<24}{protocol_name:<9}{spread(shipped[protocol_name]):<46}"
            )
        for group, protocol_name, result in ablations:
            cv = result["cv"]
            print(
                f"    {group:<24}{protocol_name:<9}{spread(cv):<46}"
                f"{paired_gain(cv, shipped[protocol_name]):>18}"
                f"{result['holdout']['roc_auc']:>12.4f}{result['holdout']['pr_auc']:>11.4f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
