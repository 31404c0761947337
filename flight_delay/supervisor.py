"""A small process supervisor for ``make run``: the stack ends whole, and what crashes restarts.

Why not supervisord or honcho (both on PyPI): ``make run`` needs children that die with their
supervisor even when it is SIGKILLed, which neither gives (supervisord's children outlive a killed
supervisord; honcho stops every process when one exits instead of restarting it), and supervisord
adds a config file, a control socket and a daemon for three processes. What is needed is short:

- each child runs in its own session, so the terminal's signals (Ctrl-C, SIGHUP on closing it)
  reach only the supervisor, which then stops the children in order (a SIGHUP sent straight to
  gunicorn or Celery would make them reload, not stop);
- each child gets a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``): SIGTERM the moment
  its supervisor dies, however it dies;
- the supervisor sets the same for itself, so SIGTERM to ``make`` (which does not forward it)
  stops the supervisor and with it the stack;
- a child that exits while the stack runs is restarted with exponential backoff and logged.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_PR_SET_PDEATHSIG = 1
#: restart delays: first, doubling up to the maximum; a child that ran this long starts over
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once in the parent: children only call it (after fork, before
    exec, nothing should load libraries)."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(None, use_errno=True).prctl


def set_parent_death_signal(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux only)."""
    prctl = _prctl()
    if prctl is not None and prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def die_with_parent(parent: int) -> None:
    """In this process: SIGTERM when ``parent`` dies; if it already has, stop now."""
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _child_setup() -> None:
    """Runs in each child between fork and exec: one prctl call, prepared in the parent (the
    supervisor is single-threaded, as preexec_fn requires)."""
    set_parent_death_signal(signal.SIGTERM)


@dataclass
class Child:
    """One supervised process: how to start it, and its current state."""

    name: str
    start: Callable[[Callable[[], None]], subprocess.Popen[Any]]
    process: subprocess.Popen[Any] | None = None
    started_at: float = 0.0
    backoff: float = BACKOFF_FIRST_SECONDS
    restart_at: float | None = None
    restarts: int = 0


@dataclass
class Supervisor:
    """Starts children in order, restarts crashed ones, stops all in reverse order."""

    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def add(self, name: str, start: Callable[[Callable[[], None]], subprocess.Popen[Any]]) -> Child:
        """Start a child now. ``start(preexec)`` must pass ``preexec`` as ``preexec_fn`` and
        ``start_new_session=True`` to ``Popen``."""
        child = Child(name, start)
        self._launch(child)
        self.children.append(child)
        return child

    def _launch(self, child: Child) -> None:
        _prctl()  # looked up here, in the parent, before any fork
        child.process = child.start(_child_setup)
        child.started_at = time.monotonic()
        child.restart_at = None

    def pids(self) -> dict[str, int]:
        return {c.name: c.process.pid for c in self.children if c.process is not None}

    def check(self) -> bool:
        """Restart children that exited, each after its backoff delay; True if any restarted."""
        now, restarted = time.monotonic(), False
        for child in self.children:
            assert child.process is not None
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self.log(f"restarting {child.name}")
                    try:
                        self._launch(child)
                    except Exception as exc:  # say, its port still taken: try again later
                        self.log(f"{child.name} did not start: {exc}")
                        self._schedule(child, time.monotonic())
                        continue
                    child.restarts += 1
                    restarted = True
                continue
            code = child.process.poll()
            if code is None or self.stopping:
                continue
            if now - child.started_at >= STABLE_SECONDS:
                child.backoff = BACKOFF_FIRST_SECONDS
            self.log(f"{child.name} exited with {code}; restarting in {child.backoff:g}s")
            self._schedule(child, now)
        return restarted

    @staticmethod
    def _schedule(child: Child, now: float) -> None:
        child.restart_at = now + child.backoff
        child.backoff = min(child.backoff * 2, BACKOFF_MAX_SECONDS)

    def stop(self, timeout: float = 6.0, last_timeout: float = 2.0) -> None:
        """Stop every child: SIGTERM to all but the first-started at once (they depend on it,
        say on Redis), wait up to ``timeout``, then the first, waiting ``last_timeout``; a child
        still running then is SIGKILLed with its whole session."""
        self.stopping = True
        if not self.children:
            return
        first, rest = self.children[0], self.children[1:]
        self._stop_group(list(reversed(rest)), timeout)
        self._stop_group([first], last_timeout)

    def _stop_group(self, children: list[Child], timeout: float) -> None:
        running = [c for c in children if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.terminate()
        deadline = time.monotonic() + timeout
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                self.log(f"{child.name} did not stop in {timeout:g}s; killing it")
                _kill_group(child.process)
                child.process.wait()


def _kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the child's whole session (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
