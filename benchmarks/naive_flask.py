"""The naive server issue 10 compares ours with: request JSON -> DataFrame ->
``pipeline.predict_proba``, nothing else (no validation, no record path, no calibration), on the
same deployed pipeline file. ``benchmarks/serving.py`` runs it under gunicorn (2 sync workers,
one prediction thread each) beside ours. Not part of the product.

    NAIVE_MODEL=models/<id>/model.joblib gunicorn -w 2 --chdir benchmarks naive_flask:app
"""

from __future__ import annotations

import os

import joblib
import pandas as pd
from flask import Flask, jsonify, request

app = Flask(__name__)
pipeline = joblib.load(os.environ["NAIVE_MODEL"])
pipeline.named_steps["model"].set_params(n_jobs=1)


@app.post("/predict")
def predict():  # type: ignore[no-untyped-def]
    frame = pd.DataFrame(request.get_json()["flights"])
    probabilities = pipeline.predict_proba(frame)[:, 1]
    return jsonify({"predictions": [{"delay_probability": float(p)} for p in probabilities]})


@app.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return {"status": "ok"}
