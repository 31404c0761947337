"""The EDA notebook runs top to bottom on the real data (skipped with the reason when absent).

A smoke run: its comparison models train without the cross-validation that chooses their
capacity (FLIGHT_DELAY_NOTEBOOK_QUICK=1; the capacity choice has its own tests, and the
production-path cell still trains with every default)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_the_eda_notebook_executes_on_the_real_data(real_dataset: Path, tmp_path: Path) -> None:
    output = tmp_path / "eda.ipynb"
    result = subprocess.run(
        [sys.executable, str(REPO / "notebooks/execute.py"), str(REPO / "notebooks/eda.ipynb"),
         "--output", str(output), "--timeout", "600"],
        env={
            **os.environ,
            "FLIGHT_DELAY_DATASET": str(real_dataset.resolve()),
            "FLIGHT_DELAY_NOTEBOOK_QUICK": "1",
        },
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    notebook = nbformat.read(output, as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "data" in o and "image/png" in o.data]
    assert len(images) >= 8  # six volume/rate charts, ROC/PR/calibration per protocol
    text = "\n".join(o.data.get("text/plain", "") for o in outputs if "data" in o)
    assert "lightgbm / schedule" in text and "challenge baseline" in text
    assert "68,206 flights" in "".join(o.get("text", "") for o in outputs)
