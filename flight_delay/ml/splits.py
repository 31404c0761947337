"""Holdout and validation splits: time-ordered by default, or stratified and seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from flight_delay.data import schema
from flight_delay.errors import InvalidConfig

MIN_ROWS = 50  # below this a holdout says nothing


def time_ordered_split(
    scheduled_at: pd.Series, share: float, cutoff: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Earlier flights train, later flights test: the last ``share`` by Fecha-I, or from ``cutoff``."""
    order = np.argsort(scheduled_at.to_numpy(), kind="stable")
    if cutoff is not None:
        later = (scheduled_at >= pd.Timestamp(cutoff)).to_numpy()
        return np.flatnonzero(~later), np.flatnonzero(later)
    n_test = round(len(order) * share)
    return np.sort(order[: len(order) - n_test]), np.sort(order[len(order) - n_test :])


def random_split(labels: pd.Series, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified, seeded sample of ``share`` of the rows."""
    positions = np.arange(len(labels))
    stratify = (
        labels.to_numpy() if labels.nunique() > 1 and labels.value_counts().min() >= 2 else None
    )
    train, test = train_test_split(positions, test_size=share, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def split_positions(
    frame: pd.DataFrame, how: str, share: float, seed: int, cutoff: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of (train, test) rows; checks both sides are usable."""
    if how == "time":
        train, test = time_ordered_split(frame[schema.SCHEDULED_AT], share, cutoff)
    else:
        train, test = random_split(frame[schema.LABEL], share, seed)
    for side, rows in (("training", train), ("held-out", test)):
        if len(rows) < MIN_ROWS:
            raise InvalidConfig(
                "split", f"the {side} part has {len(rows)} flights; at least {MIN_ROWS} are needed"
            )
        if frame[schema.LABEL].iloc[rows].nunique() < 2:
            raise InvalidConfig(
                "split", f"the {side} part holds only one class (all delayed or none)"
            )
    return train, test
