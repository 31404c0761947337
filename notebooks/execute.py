"""Execute a notebook with the project's kernel and write it back with its outputs.

Usage: python notebooks/execute.py notebooks/eda.ipynb [--output OUT.ipynb] [--timeout SECONDS]
The notebook runs with its own folder as the working directory; FLIGHT_DELAY_DATASET, when set,
tells it where the real SCL file is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(notebook: Path, output: Path | None = None, timeout: int = 900) -> Path:
    """Run every cell of ``notebook``; raise on the first failing cell."""
    document = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        document,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.resolve().parent)}},
    )
    client.execute()
    target = output or notebook
    nbformat.write(document, target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args()
    print(execute(args.notebook, args.output, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
