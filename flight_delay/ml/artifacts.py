"""A trained model: one fitted pipeline plus its metadata, saved atomically and loaded with checks."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from flight_delay.errors import (
    ExplanationUnavailable,
    FlightIssue,
    InvalidFlights,
    ModelArtifactError,
)
from flight_delay.features import FlightFeatures
from flight_delay.ml import compiled
from flight_delay.ml.calibration import Calibration
from flight_delay.ml.compiled import CompiledForest
from flight_delay.ml.live_model import LiveClassifier

MODEL_FILE = "model.joblib"
METADATA_FILE = "model.json"
FORMAT_VERSION = 1

# library -> how many leading version parts must match for a pickled model to be trusted
_COMPATIBILITY = {"scikit-learn": 2, "lightgbm": 1, "pandas": 1, "numpy": 1}
_RECORDED = ("flight-delay", "scikit-learn", "lightgbm", "pandas", "numpy", "joblib", "holidays")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _RECORDED:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


#: up to this many records are predicted without pandas (see FlightFeatures.records_matrix)
FAST_PATH_MAX_FLIGHTS = 256

FlightsInput: TypeAlias = pd.DataFrame | Sequence[Mapping[str, Any]]


def _explanations(
    contributions: np.ndarray, names: list[str], columns: list[list[Any]], top: int
) -> list[dict[str, Any]]:
    """Per row: base value, log-odds and the ``top`` largest contributions with their values."""
    explanations = []
    for row, values in enumerate(contributions):
        order = np.argsort(-np.abs(values[:-1]), kind="stable")[:top]
        explanations.append(
            {
                "base_value": float(values[-1]),
                "log_odds": float(values.sum()),
                "contributions": [
                    {
                        "feature": names[i],
                        "value": columns[i][row],
                        "contribution": float(values[i]),
                    }
                    for i in order
                ],
            }
        )
    return explanations


def _plain(value: Any) -> str | float | None:
    """A feature value as JSON: a category's text, a finite number, or None (missing/unseen)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, str):
        return value
    number = float(value)
    return number if np.isfinite(number) else None


@dataclass
class TrainedModel:
    """A fitted ``features -> estimator`` pipeline and what is known about it.

    ``metadata`` holds the family, parameters, feature set and input schema, the threshold, the
    evaluation metrics, the data fingerprint and library versions (see ``model.json``).
    """

    pipeline: Pipeline
    metadata: dict[str, Any]
    #: threads LightGBM or the compiled forest predict with (0: all cores); see limit_threads
    prediction_threads: int = 0
    #: the compiled forest when one was saved and loads here (see flight_delay.ml.compiled)
    forest: CompiledForest | None = None
    #: "compiled", or why LightGBM predicts (logged when a server loads the model)
    forest_status: str = "not loaded"

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"]["value"])

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.metadata["metrics"])

    @cached_property
    def calibration(self) -> Calibration:
        """The map from the estimator's probability to the served one (model.json); read once,
        as the metadata does not change once a model is trained."""
        return Calibration.from_dict(self.metadata.get("calibration"))

    @property
    def features(self) -> FlightFeatures:
        step = self._step("features")
        assert isinstance(step, FlightFeatures)
        return step

    def _step(self, name: str) -> Any:
        # not pipeline.named_steps: it builds a new Bunch on every call (~2 µs, several times per
        # single-flight request)
        for step_name, step in self.pipeline.steps:
            if step_name == name:
                return step
        raise KeyError(name)

    @property
    def input_schema(self) -> dict[str, Any]:
        return dict(self.metadata["feature_set"]["input_schema"])

    # -- predicting ----------------------------------------------------------------------------
    def predict_proba(self, flights: FlightsInput) -> np.ndarray:
        """Delay probability of each flight, in input order.

        Args:
            flights: raw SCL rows (a frame or a list of dicts); operated columns may be absent.

        Raises:
            InvalidFlights: listing every offending flight index and field.
        """
        if isinstance(flights, pd.DataFrame):
            flights = flights.reset_index(drop=True)
        else:
            _check_records(flights)
        self.features.check_flights(flights)
        if self._booster() is None:
            frame = (
                flights
                if isinstance(flights, pd.DataFrame)
                else pd.DataFrame.from_records(list(flights))
            )
            return self.calibration.apply(np.asarray(self.pipeline.predict_proba(frame)[:, 1]))
        return self._probabilities(self._matrix(flights))

    @cached_property
    def blind_calibration(self) -> Calibration:
        """A live model's calibration of its rows with nothing observed (its schedule model's)."""
        return Calibration.from_dict((self.metadata.get("blind") or {}).get("calibration"))

    def _probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of a booster's matrix; a live model's rows with nothing
        observed go to its schedule model, with that model's calibration."""
        model = self._step("model")
        if not isinstance(model, LiveClassifier):
            return self.calibration.apply(self._predict_matrix(matrix))
        blind = model.blind_rows(matrix)
        out = np.empty(len(matrix))
        if blind.any():
            raw = model.blind.booster_.predict(
                matrix[blind, : model.blind_columns], num_threads=self.prediction_threads
            )
            out[blind] = self.blind_calibration.apply(np.asarray(raw))
        if (~blind).any():
            out[~blind] = self.calibration.apply(self._predict_matrix(matrix[~blind]))
        return out

    def _matrix(self, flights: FlightsInput) -> np.ndarray:
        """The booster's input for checked flights: categories as codes, unseen as NaN.

        Frames go through ``transform``; records (the API) one by one in small batches
        (``records_matrix``) and column by column in large ones (``columns_matrix``). Tests hold
        the three equal.
        """
        if isinstance(flights, pd.DataFrame):
            return self.features.codes_matrix(self.features.transform(flights))
        if len(flights) <= FAST_PATH_MAX_FLIGHTS:
            return self.features.records_matrix(flights)
        return self.features.columns_matrix(flights)

    def _predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """LightGBM's probabilities (before calibration): from the compiled forest when loaded."""
        if self.forest is not None:
            return self.forest.predict(matrix, self.prediction_threads)
        booster = self._booster()
        return np.asarray(booster.predict(matrix, num_threads=self.prediction_threads))

    def warnings(self, flights: FlightsInput) -> list[FlightIssue]:
        """Flights the model predicts although a field's value was never seen in training
        (destination, airline code, flight number): each flight index, field and why. The API
        returns these as ``warnings`` beside the predictions."""
        if isinstance(flights, pd.DataFrame):
            flights = flights.reset_index(drop=True)
        return self.features.flight_warnings(flights)

    def explain(self, flights: FlightsInput, top: int = 5) -> list[dict[str, Any]]:
        """Why each flight got its probability: LightGBM's per-feature contributions (SHAP
        values of the trees) in log-odds, in the user's terms.

        Returns, per flight in input order, ``base_value`` (the log-odds before any feature is
        known), ``log_odds`` (base value plus every contribution: the model's raw score) and the
        ``top`` contributions by size, each ``{"feature", "value", "contribution"}``; ``value``
        is what the model saw (a category, a number, or None for missing or unseen).

        Raises:
            InvalidFlights: as :meth:`predict_proba`.
            ExplanationUnavailable: the model is not a LightGBM model.
        """
        booster = self._booster()
        if booster is None:
            raise ExplanationUnavailable(str(self.metadata.get("model_type")))
        if isinstance(self._step("model"), LiveClassifier):
            raise ExplanationUnavailable(
                "live",
                "explanations are not available for live models yet (two boosters answer, by "
                "lead time): ask without explain",
            )
        if isinstance(flights, pd.DataFrame):
            flights = flights.reset_index(drop=True)
        else:
            _check_records(flights)
        self.features.check_flights(flights)
        names = list(self.features.feature_names_out_)
        if not isinstance(flights, pd.DataFrame) and len(flights) <= FAST_PATH_MAX_FLIGHTS:
            # the record path, as in predict_proba: categories as codes, no frames
            matrix = self.features.records_matrix(flights)
            contributions = np.asarray(
                booster.predict(matrix, pred_contrib=True, num_threads=self.prediction_threads),
                dtype=float,
            )
            categories = self.features.categories_
            columns: list[list[Any]] = []
            for j, name in enumerate(names):
                if name in categories:
                    known = categories[name]
                    columns.append(
                        [None if np.isnan(code) else known[int(code)] for code in matrix[:, j]]
                    )
                else:
                    columns.append([_plain(value) for value in matrix[:, j]])
            return _explanations(contributions, names, columns, top)
        frame = (
            flights
            if isinstance(flights, pd.DataFrame)
            else pd.DataFrame.from_records(list(flights))
        )
        transformed = self.features.transform(frame)
        contributions = np.asarray(
            self.pipeline.named_steps["model"].predict(
                transformed, pred_contrib=True, num_threads=self.prediction_threads
            ),
            dtype=float,
        )
        columns = [[_plain(value) for value in transformed.iloc[:, j]] for j in range(len(names))]
        return _explanations(contributions, names, columns, top)

    def predict_explained(
        self, flights: FlightsInput, top: int = 5
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Probabilities and explanations in one pass (what ``?explain=true`` serves): each
        probability is the calibrated sigmoid of its explanation's ``log_odds``, LightGBM's raw
        score, so it equals :meth:`predict_proba`'s to floating-point error (a test holds them
        within 1e-9) without predicting twice.

        Raises:
            InvalidFlights, ExplanationUnavailable: as :meth:`explain`.
        """
        explanations = self.explain(flights, top)
        log_odds = np.array([e["log_odds"] for e in explanations], dtype=float)
        return self.calibration.apply(1.0 / (1.0 + np.exp(-log_odds))), explanations

    def importances(self) -> dict[str, float]:
        """Each feature's share of the total split gain (LightGBM), or {} for other families."""
        booster = self._booster()
        if booster is None:
            return {}
        gains = np.asarray(booster.feature_importance(importance_type="gain"), dtype=float)
        total = gains.sum() or 1.0
        names = list(self.features.feature_names_out_)
        ranked = sorted(zip(names, gains / total, strict=True), key=lambda item: -item[1])
        return {name: round(float(share), 6) for name, share in ranked}

    def _booster(self) -> Any:
        """The LightGBM booster when the estimator is one (the record path needs it), else None."""
        return getattr(self._step("model"), "booster_", None)

    def predict(self, flights: FlightsInput) -> np.ndarray:
        """Whether each flight is predicted delayed (probability at or above the threshold)."""
        return self.predict_proba(flights) >= self.threshold

    def limit_threads(self, threads: int = 1) -> None:
        """Predict with ``threads`` threads: serving processes use one each, or OpenMP threads
        of several processes fight over the cores."""
        self.prediction_threads = threads
        for _, step in self.pipeline.steps:
            if "n_jobs" in step.get_params(deep=False):
                step.set_params(n_jobs=threads)

    # -- saving --------------------------------------------------------------------------------
    def save(
        self,
        directory: str | Path,
        compile_trees: bool = True,
        compile_timeout_seconds: float = 300.0,
    ) -> Path:
        """Write ``model.joblib``, the compiled forest, then ``model.json``, each atomically.

        The metadata goes last and records each file's sha256, so a reader that finds
        ``model.json`` finds the complete model it describes.

        Args:
            directory: the model's folder (created if needed).
            compile_trees: compile a LightGBM forest with lleaves (flight_delay.ml.compiled)
                for fast batch predictions; a failed compilation is recorded, never raised.
            compile_timeout_seconds: the compiler is stopped after this long.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model_path = directory / MODEL_FILE
        _atomic_write(model_path, lambda handle: joblib.dump(self.pipeline, handle, compress=3))
        self.metadata["artifact"] = {"file": MODEL_FILE, "sha256": _sha256(model_path)}
        booster = self._booster()
        (directory / compiled.COMPILED_FILE).unlink(missing_ok=True)  # an earlier save's
        if booster is None:
            self.metadata.pop("compiled_trees", None)
        elif compile_trees:
            self.metadata["compiled_trees"] = compiled.compile_forest(
                booster, directory, compile_timeout_seconds
            )
        else:
            self.metadata["compiled_trees"] = {"compiled": False, "reason": "not requested"}
        text = json.dumps(self.metadata, indent=2, sort_keys=False, default=_json_default)
        _atomic_write(directory / METADATA_FILE, lambda handle: handle.write(text.encode()))
        return directory


def load_model(directory: str | Path, compiled_trees: bool = True) -> TrainedModel:
    """Load a model saved by :meth:`TrainedModel.save`.

    Args:
        directory: the model's folder.
        compiled_trees: also load the compiled forest, when one was saved and can run here
            (``forest_status`` says why not otherwise; LightGBM predicts then).

    Raises:
        ModelArtifactError: a file is missing or corrupt, the metadata is of another format, or the
            model was saved with library versions this environment cannot safely load. Files
            that go away while they are read (a model deleted meanwhile) are missing files too.
    """
    try:
        return _load_model(Path(directory), compiled_trees)
    except OSError as exc:  # removed between a check and a read: never a crash of the caller
        raise ModelArtifactError(
            f"{directory}: model files disappeared while loading ({type(exc).__name__}: "
            f"{exc.strerror or exc}); was the model deleted?"
        ) from exc


def _load_model(directory: Path, compiled_trees: bool) -> TrainedModel:
    meta_path = directory / METADATA_FILE
    model_path = directory / MODEL_FILE
    if not meta_path.is_file():
        raise ModelArtifactError(f"{meta_path}: no model metadata (was the model saved here?)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelArtifactError(f"{meta_path}: corrupt metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ModelArtifactError(
            f"{meta_path}: unsupported model format {meta.get('format_version') if isinstance(meta, dict) else None!r}"
            f" (this version reads format {FORMAT_VERSION})"
        )
    _check_versions(meta_path, meta.get("versions", {}))
    if not model_path.is_file():
        raise ModelArtifactError(f"{model_path}: model file is missing")
    expected = meta.get("artifact", {}).get("sha256")
    if expected != _sha256(model_path):
        raise ModelArtifactError(
            f"{model_path}: corrupt model file (sha256 does not match the one recorded in {METADATA_FILE})"
        )
    try:
        pipeline = joblib.load(model_path)
    except Exception as exc:  # unpickling can raise almost anything
        raise ModelArtifactError(
            f"{model_path}: cannot be loaded ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(pipeline, Pipeline) or "features" not in pipeline.named_steps:
        raise ModelArtifactError(f"{model_path}: not a flight-delay pipeline")
    model = TrainedModel(pipeline, meta)
    booster = model._booster()
    if booster is not None and compiled_trees:
        model.forest, model.forest_status = compiled.load_forest(
            directory, meta.get("compiled_trees"), booster
        )
    return model


def _check_versions(meta_path: Path, saved: Mapping[str, str]) -> None:
    installed = library_versions()
    for name, parts in _COMPATIBILITY.items():
        then, now = saved.get(name), installed.get(name)
        if then is None or now is None:
            continue
        if then.split(".")[:parts] != now.split(".")[:parts]:
            raise ModelArtifactError(
                f"{meta_path}: saved with {name} {then}, but {now} is installed; "
                f"install {name}=={then} or retrain the model"
            )


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _check_records(flights: Any) -> None:
    if type(flights) is list and all(type(flight) is dict for flight in flights):
        return  # what the API sends: the checks below cost more than predicting one flight
    if (
        isinstance(flights, Mapping)
        or not isinstance(flights, Sequence)
        or isinstance(flights, str)
    ):
        raise InvalidFlights([FlightIssue(0, "flights", "must be a list of flight objects")])
    bad = [
        FlightIssue(i, "flight", "must be an object of SCL fields")
        for i, flight in enumerate(flights)
        if not isinstance(flight, Mapping)
    ]
    if bad:
        raise InvalidFlights(bad)
