"""The ``flight-delay`` command: trains, saves, prints metrics or JSON; bad input exits 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flight_delay.cli import main
from flight_delay.ml import load_model

FAST = '{"n_estimators": 200, "learning_rate": 0.1}'


def test_train_prints_json_and_saves_a_loadable_model(
    synthetic_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    code = main(
        ["train", "--data", str(synthetic_csv), "--out", str(out), "--json", "--params", FAST]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["path"] == str(out)
    assert printed["metrics"]["holdout"]["roc_auc"] > 0.6
    assert load_model(out).metadata["model_uid"] == printed["model_uid"]


def test_train_prints_a_metrics_table(
    synthetic_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "train", "--data", str(synthetic_csv), "--out", str(tmp_path / "m"),
        "--model", "logistic_regression", "--features", "minimal", "--split", "random",
    ])  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert "logistic_regression / minimal features" in table
    assert "random split" in table
    assert "ROC AUC" in table and "delayed P / R / F1" in table


def test_a_bad_file_exits_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert f"flight-delay: error: {bad}: the file is empty" in err
    assert not (tmp_path / "m").exists()


def test_bad_params_exit_2(synthetic_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(synthetic_csv), "--params", '{"num_leaves": 0}']) == 2
    assert "params.num_leaves: must be at least 2" in capsys.readouterr().err
    assert main(["train", "--data", str(synthetic_csv), "--params", "{oops"]) == 2
    assert "--params is not valid JSON" in capsys.readouterr().err


def test_the_console_script_is_installed(synthetic_csv: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "flight-delay"
    result = subprocess.run(
        [str(script), "train", "--data", str(synthetic_csv), "--out", str(tmp_path / "m"), "--params", FAST],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ROC AUC" in result.stdout


class FakeTerminal:
    def __init__(self) -> None:
        self.written: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.written.append(text)

    def flush(self) -> None:
        pass


def test_progress_is_drawn_on_a_terminal_only() -> None:
    from flight_delay.cli import TerminalProgress

    terminal = FakeTerminal()
    progress = TerminalProgress(terminal)  # type: ignore[arg-type]
    progress("fitting lightgbm", 40)
    progress("done", 100)
    assert "[############------------------]  40%" in terminal.written[0]
    assert "fitting lightgbm" in terminal.written[0]
    assert terminal.written[-1] == "\n"
