"""The feature matrix as the frame path builds it, for the tests that hold the paths equal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flight_delay.ml import TrainedModel


def frame_codes(model: TrainedModel, records: list[dict[str, object]]) -> np.ndarray:
    features = model.features.transform(pd.DataFrame.from_records(records))
    return np.column_stack(
        [
            features[c].cat.codes.replace(-1, np.nan).to_numpy(float)
            if isinstance(features[c].dtype, pd.CategoricalDtype)
            else features[c].to_numpy(float)
            for c in features.columns
        ]
    )
