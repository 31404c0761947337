"""LightGBM forests compiled to machine code with lleaves, for fast batch predictions.

A 300-tree model predicts 10,000 flights in ~30 ms compiled against ~160 ms in LightGBM (one
thread; benchmarks/serving.py), to within floating-point rounding of LightGBM's probabilities (a
test holds them within 1e-9). Compiling takes ~10 s per 300 trees, so it happens once, when a model
is saved, in a child process with a time limit: a crash or a hang there costs the compiled file,
never the model. The object file is written beside ``model.joblib`` and recorded in ``model.json``
with its sha256, the lleaves/llvmlite versions and the target; a reader uses it only when all of
them match, and otherwise predicts with LightGBM (the fallback is always there).

The code is compiled for the architecture's baseline CPU (``generic``), not for the host that
trained: the API may run on another machine than the worker. Measured here, the baseline costs
nothing against host-specific code (30.5 vs 30.6 ms for 10,000 flights).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from ctypes import POINTER, c_double, cast
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

COMPILED_FILE = "forest.o"
#: the CPU the code is compiled for: the architecture's baseline, so any machine of it runs it
TARGET_CPU = "generic"
_LIBRARIES = ("lleaves", "llvmlite")
#: the child process: compile LightGBM's model text into an object file (imports lleaves only)
_CHILD = (
    "import sys, lleaves\n"
    "model = lleaves.Model(model_file=sys.argv[1])\n"
    "model.compile(cache=sys.argv[2], target_cpu=sys.argv[3], target_cpu_features='')\n"
)


def available() -> str | None:
    """None when lleaves can compile and load forests here, else why not."""
    try:
        import lleaves  # noqa: F401
        import llvmlite.binding  # noqa: F401
    except Exception as exc:  # an incompatible llvmlite fails at import with various errors
        return f"lleaves is not usable here ({type(exc).__name__}: {exc})"
    return None


def _versions() -> dict[str, str]:
    return {name: importlib_metadata.version(name) for name in _LIBRARIES}


def _target() -> str:
    import llvmlite.binding as llvm

    return str(llvm.get_process_triple())


def compile_forest(booster: Any, directory: Path, timeout_seconds: float) -> dict[str, Any]:
    """Compile ``booster`` into ``directory/forest.o``; the record for ``model.json``.

    Never raises for a failed compilation: the record then says ``"compiled": false`` and why,
    and the model is served by LightGBM.

    Args:
        booster: a fitted ``lightgbm.Booster``.
        directory: the model's folder (the object file is renamed into it when complete).
        timeout_seconds: the child process is killed after this long.
    """
    reason = available()
    if reason:
        return {"compiled": False, "reason": reason}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".compile-") as scratch:
        model_text = Path(scratch) / "model.txt"
        booster.save_model(str(model_text))
        output = Path(scratch) / COMPILED_FILE
        try:
            # a child process: LLVM crashing or running away must not take the worker with it
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(model_text), str(output), TARGET_CPU],
                capture_output=True,
                text=True,
                timeout=timeout_seconds,
                env=dict(os.environ, OMP_NUM_THREADS="1"),
            )
        except subprocess.TimeoutExpired:
            reason = f"compiling took longer than {timeout_seconds:g} s"
            log.warning("trees not compiled: %s; LightGBM will predict", reason)
            return {"compiled": False, "reason": reason}
        if done.returncode != 0 or not output.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1][-300:]
            reason = f"the compiler exited with {done.returncode}: {last}"
            log.warning("trees not compiled: %s; LightGBM will predict", reason)
            return {"compiled": False, "reason": reason}
        final = directory / COMPILED_FILE
        os.replace(output, final)
    return {
        "compiled": True,
        "file": COMPILED_FILE,
        "sha256": _sha256(final),
        "versions": _versions(),
        "target": _target(),
        "cpu": TARGET_CPU,
        "trees": int(booster.num_trees()),
        "seconds": round(time.monotonic() - started, 2),
    }


@dataclass
class CompiledForest:
    """A loaded compiled forest: ``predict`` gives LightGBM's probabilities (before calibration)."""

    model: Any

    def predict(self, matrix: np.ndarray, threads: int) -> np.ndarray:
        """Probabilities for a float matrix of ``records_matrix``'s layout (categories as codes)."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.model.num_feature():
            raise ValueError(
                f"expected (n, {self.model.num_feature()}) features, got {matrix.shape}"
            )
        entry = getattr(self.model, "_c_entry_func", None)
        if threads == 1 and entry is not None and len(matrix) < 2**31 - 1:
            # lleaves' own predict spends ~15 µs converting a single row before this same call
            out = np.empty(len(matrix), dtype=np.float64)
            entry(
                cast(matrix.ctypes.data, POINTER(c_double)),
                cast(out.ctypes.data, POINTER(c_double)),
                0,
                len(matrix),
            )
            return out
        # threads 0 means all cores, as in LightGBM
        return np.asarray(self.model.predict(matrix, n_jobs=threads if threads > 0 else None))


def load_forest(
    directory: Path, record: dict[str, Any] | None, booster: Any
) -> tuple[CompiledForest | None, str]:
    """The compiled forest recorded in ``model.json`` if it can be used here, and why (not).

    Returns (forest, "compiled") or (None, reason): the caller predicts with LightGBM then.
    """
    if not record or not record.get("compiled"):
        return None, (record or {}).get("reason") or "the model was saved without compiled trees"
    reason = available()
    if reason:
        return None, reason
    if record.get("versions") != _versions():
        return None, f"compiled with {record.get('versions')}, but {_versions()} is installed"
    if record.get("target") != _target():
        return None, f"compiled for {record.get('target')}, this machine is {_target()}"
    if record.get("trees") != booster.num_trees():
        return None, "the compiled file does not belong to this model (tree count differs)"
    path = directory / COMPILED_FILE
    if not path.is_file():
        return None, f"{COMPILED_FILE} is missing"
    try:
        with tempfile.TemporaryDirectory(prefix="fd-forest-") as scratch:
            # lleaves reads the object code from its cache path: a private copy, checked, so
            # the bytes that run are the bytes whose checksum matched
            code = path.read_bytes()
            if hashlib.sha256(code).hexdigest() != record.get("sha256"):
                return None, f"{COMPILED_FILE} is corrupt (sha256 differs from model.json)"
            copy = Path(scratch) / COMPILED_FILE
            copy.write_bytes(code)
            model_text = Path(scratch) / "model.txt"
            booster.save_model(str(model_text))
            import lleaves

            model = lleaves.Model(model_file=str(model_text))
            model.compile(cache=str(copy), target_cpu=TARGET_CPU, target_cpu_features="")
    except OSError as exc:  # no room for the scratch copies, say: LightGBM serves
        return None, f"the compiled forest could not be read ({exc.strerror or exc})"
    except Exception as exc:  # a bad object file: LightGBM serves
        return None, f"the compiled forest failed to load ({type(exc).__name__}: {exc})"
    return CompiledForest(model), "compiled"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
