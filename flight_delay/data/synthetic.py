"""Synthetic SCL-shaped flights with a planted, learnable delay pattern.

Tests and demos that must not depend on the real file use these. The pattern is documented in
:data:`PLANTED_PATTERN` so tests can check that a model learned it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flight_delay.data import schema

# (airline, carrier code, destination, destination city, flight type)
_ROUTES: tuple[tuple[str, str, str, str, str], ...] = (
    ("Grupo LATAM", "LAN", "SCFA", "Antofagasta", "N"),
    ("Grupo LATAM", "LAN", "SCCF", "Calama", "N"),
    ("Grupo LATAM", "LAN", "SCTE", "Puerto Montt", "N"),
    ("Grupo LATAM", "LAN", "SPJC", "Lima", "I"),
    ("Grupo LATAM", "TAM", "SBGR", "Sao Paulo", "I"),
    ("Sky Airline", "SKU", "SCFA", "Antofagasta", "N"),
    ("Sky Airline", "SKU", "SCIE", "Concepcion", "N"),
    ("Sky Airline", "SKU", "SPJC", "Lima", "I"),
    ("Aerolineas Argentinas", "ARG", "SABE", "Buenos Aires", "I"),
    ("Copa Air", "CMP", "MPTO", "Ciudad de Panama", "I"),
    ("Latin American Wings", "JMR", "SCIE", "Concepcion", "N"),
    ("Latin American Wings", "JMR", "SCTE", "Puerto Montt", "N"),
    ("American Airlines", "AAL", "KMIA", "Miami", "I"),
)
_DAY_NAMES = ("Lunes", "Martes", "Miercoles", "Jueves", "Viernes", "Sabado", "Domingo")

#: what raises the delay odds in generated data (log-odds added to a base of -2.4)
PLANTED_PATTERN = {
    "airline Latin American Wings": 1.8,
    "departure hour 18-23": 1.0,
    "month July or December": 0.9,
    "international flight": 0.4,
    "departure hour 5-9": -0.9,
}


def make_synthetic_flights(n_flights: int = 4000, seed: int = 0, year: int = 2017) -> pd.DataFrame:
    """Generate flights in the SCL schema (all 18 published columns, as text).

    Each route keeps a fixed flight number and departure minute, as real schedules do; the delay
    odds follow :data:`PLANTED_PATTERN`.

    Args:
        n_flights: how many rows.
        seed: random seed; the same seed gives the same frame.
        year: calendar year of the scheduled dates.
    """
    rng = np.random.default_rng(seed)
    routes = pd.DataFrame(_ROUTES, columns=["OPERA", "Emp-I", "Des-I", "SIGLADES", "TIPOVUELO"])
    # Three scheduled departures a day per route, at fixed times with their own flight numbers.
    slots = routes.loc[routes.index.repeat(3)].reset_index(drop=True)
    slots["minute_of_day"] = rng.integers(5 * 60, 24 * 60 - 5, len(slots)) // 5 * 5
    slots["Vlo-I"] = (100 + np.arange(len(slots)) * 7).astype(str)

    pick = rng.integers(0, len(slots), n_flights)
    flights = slots.iloc[pick].reset_index(drop=True)
    days = rng.integers(0, 365, n_flights)
    scheduled = (
        pd.Timestamp(f"{year}-01-01")
        + pd.to_timedelta(days, unit="D")
        + pd.to_timedelta(flights["minute_of_day"].to_numpy(), unit="m")
    )
    hour = scheduled.hour
    logit = (
        -2.4
        + 1.8 * (flights["OPERA"] == "Latin American Wings").to_numpy()
        + 1.0 * ((hour >= 18) & (hour <= 23))
        + 0.9 * np.isin(scheduled.month, (7, 12))
        + 0.4 * (flights["TIPOVUELO"] == "I").to_numpy()
        - 0.9 * ((hour >= 5) & (hour <= 9))
    )
    delayed = rng.random(n_flights) < 1 / (1 + np.exp(-logit))
    offset = np.where(delayed, rng.integers(16, 180, n_flights), rng.integers(-10, 15, n_flights))
    operated = scheduled + pd.to_timedelta(offset, unit="m")

    fmt = schema.DATETIME_FORMAT
    frame = pd.DataFrame(
        {
            "Fecha-I": scheduled.strftime(fmt),
            "Vlo-I": flights["Vlo-I"],
            "Ori-I": schema.SCL_ORIGIN,
            "Des-I": flights["Des-I"],
            "Emp-I": flights["Emp-I"],
            "Fecha-O": operated.strftime(fmt),
            "Vlo-O": flights["Vlo-I"],
            "Ori-O": schema.SCL_ORIGIN,
            "Des-O": flights["Des-I"],
            "Emp-O": flights["Emp-I"],
            "DIA": operated.day.astype(str),
            "MES": operated.month.astype(str),
            "AÑO": operated.year.astype(str),
            "DIANOM": [_DAY_NAMES[d] for d in operated.day_of_week],
            "TIPOVUELO": flights["TIPOVUELO"],
            "OPERA": flights["OPERA"],
            "SIGLAORI": "Santiago",
            "SIGLADES": flights["SIGLADES"],
        }
    )
    return frame.sort_values("Fecha-I", kind="stable").reset_index(drop=True).astype(object)
