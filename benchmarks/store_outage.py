"""The object store down for ``--seconds`` under a bounded predict load, on two API hosts that
share no disk (benchmarks/multi_host_deploy.py's set-up).

The store is first hung (SIGSTOP: connections accepted, never answered), the harder case. The
script counts failed predictions, reads /readyz on both hosts while it is down, tries a deploy
(refused while the store cannot be read), then lets the store back and times a deploy until
every process of both hosts serves it.

    python benchmarks/store_outage.py --seconds 30
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from multi_host_deploy import KEY, hosts_sharing_no_disk, predict, time_to_served

from flight_delay.devstack import call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=4, help="concurrent predict clients")
    args = parser.parse_args()
    with hosts_sharing_no_disk(2) as (hosts, ids, store):
        bases = list(hosts)
        answered: list[int] = []
        failed: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(number: int) -> None:
            base = bases[number % len(bases)]
            while not stop.is_set():
                _, model = predict(base)
                with lock:
                    if model == ids[0]:
                        answered.append(1)
                    else:
                        failed.append(f"{base}: {model}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        store.process.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            for base in bases:  # each host's own look at the store finds it hung
                while True:
                    status, ready = call("GET", f"{base}/readyz", timeout=10)
                    if "artifact_store" in (ready or {}).get("checks", {}):
                        break
                    time.sleep(0.5)
                print(f"{base}/readyz {time.monotonic() - started:.1f} s after the store hung: "
                      f"{status} {ready['checks']}")  # fmt: skip
            asked = time.monotonic()
            status, refused = call(
                "PUT", f"{bases[0]}/deploy?model-id={ids[1]}", key=KEY, timeout=120
            )
            print(f"a deploy while down: {status} after {time.monotonic() - asked:.1f} s: "
                  f"{refused.get('message') if refused else ''}")  # fmt: skip
            time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
        finally:
            store.process.send_signal(signal.SIGCONT)
            stop.set()
            for thread in threads:
                thread.join()
        down = time.monotonic() - started
        print(
            f"store hung {down:.1f} s: {len(answered)} predictions answered, {len(failed)} failed"
        )
        assert call("PUT", f"{bases[1]}/deploy?model-id={ids[1]}", key=KEY)[0] == 204
        print(f"a deploy after it returned: served by every process of both hosts in "
              f"{time_to_served(hosts, ids[1]):.3f} s")  # fmt: skip
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
