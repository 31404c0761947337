"""Real filesystem faults for tests: a size-limited tmpfs (a disk that fills up), and processes
that file permissions bind although they run as root (CI runs as root, and root ignores them).

Mounting needs root; elsewhere the tests that need it skip, saying why.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


class SmallDisk:
    """A tmpfs of ``size_mb`` MiB at ``path``."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path, self.size_mb = path, size_mb

    def fill(self, leave_bytes: int = 0) -> Path:
        """Fill the disk with a filler file, leaving about ``leave_bytes`` free."""
        filler = self.path / "filler"
        chunk = b"\0" * (1 << 20)
        with filler.open("ab") as handle:
            while self.free_bytes() > leave_bytes + len(chunk):
                handle.write(chunk)
                handle.flush()
            with contextlib.suppress(OSError):  # the last partial chunk
                while self.free_bytes() > leave_bytes:
                    handle.write(b"\0" * 4096)
                    handle.flush()
        return filler

    def free(self) -> None:
        """Give the filler's space back."""
        (self.path / "filler").unlink(missing_ok=True)

    def free_bytes(self) -> int:
        import os

        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def read_only(self) -> None:
        result = _mount("-o", "remount,ro", str(self.path))
        assert result.returncode == 0, result.stderr

    def writable(self) -> None:
        result = _mount("-o", "remount,rw", str(self.path))
        assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size_mb`` MiB at ``path`` for the block; skip when mounting is not
    permitted here."""
    path.mkdir(parents=True, exist_ok=True)
    result = _mount("-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()[:200]}")
    try:
        yield SmallDisk(path, size_mb)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


#: capabilities that let root ignore file permissions (linux/capability.h)
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3
PR_CAPBSET_DROP = 24


def without_file_privileges() -> None:
    """A ``preexec_fn``: in the child, before exec, drop the capabilities that let root write a
    read-only file or directory, so that file permissions bind the program (and its children) as
    they bind an unprivileged deployment."""
    import ctypes
    import os

    if os.geteuid() != 0:  # file permissions bind an unprivileged user already
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
