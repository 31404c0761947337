"""Redis failover under load: the master SIGKILLed, or SIGSTOPped (hung), while two API hosts
serve predictions, deploys go on and training jobs are queued.

The hosts of ``multi_host_deploy.py`` (two gunicorn APIs x 2 processes, two workers, SeaweedFS,
no shared disk) reach Redis only through three Sentinels (a master and one replica, default
settings of the service). Load, bounded and on loopback: one predictor thread per API process,
one deployer (a deploy every 0.5 s, alternating models), one trainer (a small job every 2 s).
``--fault kill``: SIGKILL of the master, restarted (as a supervisor would) once the Sentinels
promoted the replica, so it rejoins as a replica. ``--fault stop``: SIGSTOP of the master for
``--hang`` seconds, then SIGCONT.

At the fault the deployer pauses and the main thread deploys another model (retrying until
acknowledged), then waits until every process of both hosts serves it. Afterwards every
acknowledged write is checked: each model record (POST /models 202) must exist, each deploy
(PUT /deploy 204) must be in the deployment history, each job must finish exactly once.

    python benchmarks/sentinel_failover.py --fault kill
    python benchmarks/sentinel_failover.py --fault stop
"""

from __future__ import annotations

import argparse
import collections
import re
import signal
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from multi_host_deploy import KEY, hosts_sharing_no_disk, predict, time_to_served

from flight_delay.devstack import call
from tests.support.sentinel import running_sentinel_group

TRAIN = {"dataset": "flights.csv", "params": {"n_estimators": 50}, "cv_folds": 0}


class Load:
    """The bounded load; every request's outcome and duration, by kind."""

    def __init__(self, hosts: dict[str, set[str]], ids: list[str]) -> None:
        self.hosts, self.ids = hosts, ids
        self.stop = threading.Event()
        self.deploying = threading.Event()
        self.deploying.set()
        self.lock = threading.Lock()
        self.outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.longest: dict[str, float] = collections.defaultdict(float)
        self.acked_models: list[str] = []
        self.acked_deploys: list[tuple[str, float, float]] = []  # model, sent, answered (epoch)
        self.threads = [
            threading.Thread(target=self.predictor, args=(base,), daemon=True)
            for base, processes in hosts.items()
            for _ in processes
        ]
        self.threads += [
            threading.Thread(target=self.deployer, daemon=True),
            threading.Thread(target=self.trainer, daemon=True),
        ]

    def record(self, kind: str, ok: bool, seconds: float) -> None:
        with self.lock:
            self.outcomes[kind]["ok" if ok else "failed"] += 1
            self.longest[kind] = max(self.longest[kind], seconds)

    def predictor(self, base: str) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                _, served = predict(base)
            except OSError:
                served = None
            self.record("predict", served is not None, time.monotonic() - started)

    def deployer(self) -> None:
        number = 0
        while not self.stop.wait(0.5):
            if not self.deploying.is_set():
                continue
            number += 1
            target = self.ids[number % len(self.ids)]
            base = list(self.hosts)[number % len(self.hosts)]
            sent, started = time.time(), time.monotonic()
            status, _ = call("PUT", f"{base}/deploy?model-id={target}", key=KEY, timeout=60)
            self.record("deploy", status == 204, time.monotonic() - started)
            if status == 204:
                with self.lock:
                    self.acked_deploys.append((target, sent, time.time()))

    def trainer(self) -> None:
        while not self.stop.wait(2.0):
            base = list(self.hosts)[len(self.acked_models) % len(self.hosts)]
            started = time.monotonic()
            status, body = call("POST", f"{base}/models", TRAIN, key=KEY, timeout=60)
            self.record("create", status == 202, time.monotonic() - started)
            if status == 202:
                with self.lock:
                    self.acked_models.append(body["id"])

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)


def deploy_until_served(load: Load, fault_at: float, current: str) -> tuple[float, float, int]:
    """With the deployer paused: deploy a model other than ``current`` through the first host,
    retrying until it is acknowledged; seconds from the fault until acknowledged and until every
    process of both hosts serves it, and the refused attempts."""
    target = next(i for i in load.ids if i != current)
    base = next(iter(load.hosts))
    refused = 0
    while True:
        status, _ = call("PUT", f"{base}/deploy?model-id={target}", key=KEY, timeout=60)
        if status == 204:
            break
        refused += 1
        time.sleep(0.2)
    acked = time.monotonic() - fault_at
    served = time_to_served(load.hosts, target, limit=60)
    return acked, acked + served, refused


def deployed_now(base: str) -> str:
    return str(call("GET", f"{base}/deployment", key=KEY)[1]["model_id"])


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def check_writes(load: Load, root: Path, timeout: float = 240) -> dict[str, Any]:
    """Acknowledged writes that are gone, and jobs that never finished or ran twice."""
    base = next(iter(load.hosts))
    missing_models = [m for m in load.acked_models if call("GET", f"{base}/models/{m}")[0] != 200]
    history = call("GET", f"{base}/deployment", key=KEY)[1]["history"]
    events = [(e["model_id"], epoch(e["deployed_at"])) for e in history]
    missing_deploys = [
        (model, sent)
        for model, sent, answered in load.acked_deploys
        if not any(m == model and sent - 1 <= at <= answered + 1 for m, at in events)
    ]
    deadline = time.monotonic() + timeout
    unfinished = set(load.acked_models) - set(missing_models)
    statuses: dict[str, str] = {}
    while unfinished and time.monotonic() < deadline:
        for model_id in list(unfinished):
            status = call("GET", f"{base}/models/{model_id}")[1]["status"]
            if status in ("completed", "failed"):
                statuses[model_id] = status
                unfinished.discard(model_id)
        time.sleep(1)
    logs = "".join(p.read_text(errors="replace") for p in root.glob("worker-*.log"))
    started = collections.Counter(re.findall(r"job (\w+): attempt \d+ \(\w+\) started", logs))
    adopted = set(re.findall(r"job (\w+): an earlier attempt published the model", logs))
    return {
        "acknowledged model records": len(load.acked_models),
        "acknowledged deploys": len(load.acked_deploys),
        "model records lost": len(missing_models),
        "deploys lost": len(missing_deploys),
        "jobs never finished": len(unfinished),
        "jobs failed": sum(1 for s in statuses.values() if s == "failed"),
        "jobs trained to the end twice": len(adopted & set(load.acked_models)),
        "jobs with a second attempt": sum(1 for m in load.acked_models if started.get(m, 0) > 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=("kill", "stop"), required=True)
    parser.add_argument("--before", type=float, default=10.0, help="seconds of load before")
    parser.add_argument("--after", type=float, default=30.0, help="seconds of load after")
    parser.add_argument("--hang", type=float, default=15.0, help="--fault stop: for how long")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sentinel-failover-"))
    with (
        running_sentinel_group(root / "redis") as group,
        hosts_sharing_no_disk(3, root, group.environment()) as (hosts, ids, _),
    ):
        load = Load(hosts, ids)
        load.start()
        time.sleep(args.before)
        load.deploying.clear()
        time.sleep(0.6)  # a deploy in flight lands before the pointer is read
        current = deployed_now(next(iter(hosts)))
        old = group.master()
        fault_at = time.monotonic()
        if args.fault == "kill":
            group.kill(old)
        else:
            group.signal(old, signal.SIGSTOP)
        new = group.wait_for_failover(old)
        failover = time.monotonic() - fault_at
        acked, served, refused = deploy_until_served(load, fault_at, current)
        load.deploying.set()
        if args.fault == "kill":
            group.start_server(old, replica_of=new)
        else:
            time.sleep(max(0.0, args.hang - (time.monotonic() - fault_at)))
            group.signal(old, signal.SIGCONT)
        group.wait_replicating(old, timeout=60)
        rejoined = time.monotonic() - fault_at
        time.sleep(max(0.0, args.after - (time.monotonic() - fault_at)))
        load.join()
        writes = check_writes(load, root)
    print(f"fault: {'SIGKILL' if args.fault == 'kill' else f'SIGSTOP for {args.hang:.0f} s'} "
          f"of the Redis master, {args.before:.0f} s into the load, {args.after:.0f} s after")  # fmt: skip
    print(f"Sentinels promoted the replica after {failover:.1f} s; "
          f"the old master was a replica again after {rejoined:.1f} s")  # fmt: skip
    print(f"a new deploy: acknowledged {acked:.2f} s after the fault ({refused} refused "
          f"attempts before), served by all 4 processes {served:.2f} s after")  # fmt: skip
    for kind in ("predict", "deploy", "create"):
        counts = load.outcomes[kind]
        print(f"{kind}: {counts['ok']} ok, {counts['failed']} failed, "
              f"longest {load.longest[kind]:.2f} s")  # fmt: skip
    for name, value in writes.items():
        print(f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
