"""`make run` as a supervisor (issue 9): the stack ends whole on every signal, crashed parts come
back while predictions keep answering, and the dataset setting, symlinks and busy ports behave.

Every test runs the real `make run` (embedded redis-server, a Celery worker, gunicorn) on free
loopback ports with its own state directory, and leaves no process behind.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from flight_delay.data import make_synthetic_flights
from flight_delay.devstack import call, free_port
from tests.conftest import REPO
from tests.support.make_run import (
    FLIGHT,
    Stack,
    assert_all_gone,
    deploy_small_model,
    request,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[list[Stack]]:
    started: list[Stack] = []
    yield started
    for stack in started:
        with contextlib.suppress(AssertionError, psutil.Error):
            stack.stop()


def fresh_clone(target: Path) -> Path:
    """The repository's tracked files as a fresh clone holds them, in ``target`` (no ../shared
    beside it, no state, no model). The files keep their times and ``.venv`` links to this
    checkout's, so make finds the package installed instead of reinstalling it."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, copy = REPO / name, target / name
        if not os.path.lexists(source):  # deleted in the working tree, not yet committed
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            copy.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, copy)
    (target / ".venv").symlink_to(REPO / ".venv")
    return target


def readme_blocks(section: str, language: str) -> list[str]:
    """The ``language`` code blocks of the README's section whose heading starts ``section``."""
    text = (REPO / "README.md").read_text()
    body = text.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", body, re.S)


@pytest.mark.parametrize("real_file", [False, True], ids=["without the real file", "with it"])
def test_the_readme_walkthrough_works_verbatim_on_a_fresh_clone(
    tmp_path: Path, stacks: list[Stack], real_file: bool, request: pytest.FixtureRequest
) -> None:
    """`make run` in a fresh clone with its defaults, then the README's walkthrough commands as
    written (only the API's port differs: it is a free one), then its Python snippet."""
    if shutil.which("curl") is None:
        pytest.skip("the walkthrough calls curl (apt-get install curl; .ci/run does)")
    clone = fresh_clone(tmp_path / "clone" / "flight-delay")
    if real_file:  # where CI keeps it: ../shared/datasets/ beside the clone
        shared = tmp_path / "clone" / "shared" / "datasets"
        shared.mkdir(parents=True)
        real = request.getfixturevalue("real_dataset").resolve()  # make test names it relatively
        (shared / "dataset_SCL.csv").symlink_to(real)
    stack = Stack(tmp_path, repo=clone, own_defaults=True)
    stack.start(timeout=600)
    stacks.append(stack)
    said = stack.output()
    print(said)  # what make run said, shown with -s
    dataset = "dataset_SCL.csv" if real_file else "synthetic"
    assert ("trained on dataset_SCL.csv" in said) == real_file, said
    assert ("trained on SYNTHETIC flights" in said) != real_file, said

    script = "\n".join(readme_blocks("Walkthrough", "bash"))
    assert "API=http://127.0.0.1:8000\n" in script
    script = script.replace("API=http://127.0.0.1:8000\n", f"API={stack.base}\n")
    walked = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], cwd=clone, timeout=600, env=stack.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    print(walked.stdout)  # what the commands printed, shown with -s
    assert walked.returncode == 0, walked.stdout[-4000:]
    output = walked.stdout.splitlines()

    def read(path: str) -> Any:  # an anonymous read, as the walkthrough's own
        status, body = call("GET", f"{stack.base}{path}")
        assert status == 200, (path, status, body)
        return body

    default = read("/deployment")
    assert output[0].startswith(f"{dataset} 0."), output  # the default's data and ROC AUC
    assert output[1].startswith("completed 0."), output
    assert output.count("204") == 3, output  # deploy, roll back, delete the schedule
    answer = json.loads(next(line for line in output if line.startswith("{")))
    trained = [m for m in read("/models")
               if m["model_type"] == "logistic_regression"]  # fmt: skip
    assert len(trained) == 1 and trained[0]["status"] == "completed"
    assert answer["model_id"] == trained[0]["id"]
    assert 0 < answer["predictions"][0]["delay_probability"] < 1
    assert output[-3] == default["model_id"]  # rolled back to make run's default
    assert [h["model_id"] for h in default["history"][:2]] == [
        default["model_id"], trained[0]["id"]]  # fmt: skip
    assert read(f"/models/{trained[0]['id']}")["dataset"] == dataset
    assert read("/schedules") == []  # created, listed, deleted
    assert "weekly" in output[-2]

    if not real_file:  # the Python snippet, as written, in the same clone
        snippet = readme_blocks("Command line and Python", "python")
        assert len(snippet) == 1
        ran = subprocess.run(
            [str(clone / ".venv" / "bin" / "python"), "-c", snippet[0]], cwd=clone, timeout=600,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        print(ran.stdout)
        assert ran.returncode == 0, ran.stdout[-4000:]
        assert (clone / "models" / "mine" / "model.json").is_file()
    stack.stop()


@pytest.mark.parametrize(
    "how",
    ["SIGTERM to make", "SIGHUP to the terminal's group", "SIGINT to the group",
     "SIGKILL of the supervisor"],
)  # fmt: skip
def test_every_way_of_stopping_leaves_no_process_and_the_next_run_starts(
    tmp_path: Path, stacks: list[Stack], how: str
) -> None:
    stack = Stack(tmp_path).start()
    stacks.append(stack)
    processes = stack.processes()
    names = " ".join(" ".join(p.cmdline()) for p in processes)
    assert "redis-server" in names and "celery" in names and "gunicorn" in names
    assert stack.make is not None
    if how == "SIGTERM to make":
        os.kill(stack.make.pid, signal.SIGTERM)  # what timeout, IDEs and service managers send
    elif how == "SIGHUP to the terminal's group":
        os.killpg(stack.make.pid, signal.SIGHUP)  # the terminal closing
    elif how == "SIGINT to the group":
        os.killpg(stack.make.pid, signal.SIGINT)  # Ctrl-C
    else:
        stack.supervisor().kill()
    seconds = assert_all_gone(processes)
    stack.reap()
    print(f"{how}: every process gone after {seconds:.1f}s")

    again = Stack(tmp_path)  # same state directory, fresh ports
    again.start()
    stacks.append(again)
    assert request(again.base, "GET", "/healthz")[0] == 200
    if how == "SIGKILL of the supervisor":
        assert "An earlier make run did not stop cleanly; its state is cleared." in again.output()


def test_a_killed_worker_and_redis_come_back_while_predictions_keep_answering(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    stack = Stack(tmp_path).start()
    stacks.append(stack)
    deploy_small_model(stack)
    outcomes: list[int] = []
    done = threading.Event()

    def load() -> None:  # bounded: until the test ends, at most 20,000 requests
        while not done.is_set() and len(outcomes) < 20_000:
            try:
                outcomes.append(request(stack.base, "POST", "/predict", {"flights": [FLIGHT]})[0])
            except OSError:
                outcomes.append(0)
            time.sleep(0.01)

    client = threading.Thread(target=load, daemon=True)
    client.start()
    try:
        for name in ("celery worker", "redis-server"):
            before = stack.child(name)
            os.kill(before, signal.SIGKILL)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if stack.child(name) != before and psutil.pid_exists(stack.child(name)):
                        break
                except (OSError, KeyError, ValueError):
                    pass
                time.sleep(0.2)
            else:
                raise AssertionError(f"{name} was not restarted:\n{stack.output()[-2000:]}")
            assert f"{name} exited with -9; restarting in" in stack.output()
        # Redis is back: its data too (append-only file), so the deployment is still there
        deadline = time.monotonic() + 20
        while request(stack.base, "GET", "/deployment")[0] != 200:
            assert time.monotonic() < deadline, "the API did not reach the restarted Redis"
            time.sleep(0.3)
        # and the restarted worker takes jobs
        deploy_small_model(stack)
    finally:
        done.set()
        client.join(timeout=10)
    failures = [status for status in outcomes if status != 200]
    print(f"{len(outcomes)} single-flight predictions during the kills, {len(failures)} failed")
    assert len(outcomes) > 50
    assert failures == []


def test_an_unwritable_state_directory_does_not_stop_the_stack(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """The state directory turns unwritable (a full or read-only volume) and a component
    crashes: it is restarted, the stack keeps answering, and the supervisor says it could not
    record the new process and records it once it can. Before, the PermissionError of the
    restart's bookkeeping ended the supervisor and the whole stack (issue 19, finding 9)."""
    stack = Stack(tmp_path).start(unprivileged=True)
    stacks.append(stack)
    state = tmp_path / "state"
    assert request(stack.base, "GET", "/healthz")[0] == 200
    worker = stack.child("celery worker")
    state.chmod(0o500)
    try:
        os.kill(worker, signal.SIGKILL)
        stack.wait_for("could not record the running processes", 30)
        assert stack.make is not None and stack.make.poll() is None
        deadline = time.monotonic() + 30
        while not any(
            "celery" in " ".join(p.cmdline()) and "worker" in " ".join(p.cmdline())
            for p in stack.supervisor().children()
        ):
            assert time.monotonic() < deadline, stack.output()[-2000:]
            time.sleep(0.2)
        assert request(stack.base, "GET", "/healthz")[0] == 200
    finally:
        state.chmod(0o700)
    stack.wait_for("running processes recorded again", 30)
    assert stack.child("celery worker") != worker
    assert request(stack.base, "GET", "/healthz")[0] == 200


def test_training_never_waits_behind_reports(tmp_path: Path, stacks: list[Stack]) -> None:
    """Drift reports run on their own queue and worker: a training job asked for while reports
    are being computed starts at once. Before, reports shared the training queue (one job at a
    time): 59 anonymous drift requests delayed a training job 46 s (issue 19, finding 4)."""
    stack = Stack(tmp_path).start()
    stacks.append(stack)
    model_id = deploy_small_model(stack)
    flights = [{**FLIGHT, "Vlo-I": str(100 + i % 500)} for i in range(5000)]
    assert request(stack.base, "POST", "/predict", {"flights": flights}, timeout=30)[0] == 200
    time.sleep(2)  # the writer logs them
    asked = []
    for minute in range(8):  # distinct windows: the first four are queued, the rest refused
        since = f"2026-01-01T00:{minute:02d}:00Z"
        asked.append(request(stack.base, "GET", f"/models/{model_id}/drift?since={since}")[0])
    assert asked[:4] == [202] * 4 and set(asked[4:]) == {429}, asked
    status, created = request(
        stack.base, "POST", "/models", {"dataset": "synthetic:2000", "cv_folds": 0}
    )
    assert status == 202
    asked_at = time.monotonic()
    while request(stack.base, "GET", f"/models/{created['id']}")[1]["status"] == "pending":
        assert time.monotonic() - asked_at < 20, stack.output()[-2000:]
        time.sleep(0.1)
    started_after = time.monotonic() - asked_at
    pending = [
        request(stack.base, "GET", f"/models/{model_id}/drift?since=2026-01-01T00:{m:02d}:00Z")[0]
        for m in range(4)
    ]
    print(f"\ntraining started {started_after:.1f} s after it was asked; reports then: {pending}")
    assert started_after < 5
    assert 202 in pending  # reports were still being computed when training started


def test_a_busy_port_is_one_line_with_the_fix(tmp_path: Path, stacks: list[Stack]) -> None:
    stack = Stack(tmp_path)
    with contextlib.ExitStack() as held:
        squatters = []
        while not squatters:  # the API's port and the next one, both busy
            try:
                pair = [held.enter_context(socket.socket()) for _ in range(2)]
                pair[0].bind(("127.0.0.1", stack.port))
                pair[1].bind(("127.0.0.1", stack.port + 1))
                squatters = pair
            except OSError:
                stack.port = free_port()
        for squatter in squatters:
            squatter.listen()
        stack.env["PORT"] = str(stack.port)
        stack.start(wait=False)
        stacks.append(stack)
        assert stack.make is not None
        assert stack.make.wait(timeout=30) == 2
    output = stack.output()
    assert f"error: 127.0.0.1:{stack.port} (the API) is in use by pid {os.getpid()}" in output
    hint = int(output.split("PORT=", 1)[1].split()[0])
    assert hint > stack.port + 1, output  # never a port that is itself busy
    assert "Traceback" not in output
    assert not (tmp_path / "state" / "redis").exists()  # nothing was started


def test_flight_delay_dataset_trains_the_default_model_and_says_which(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    elsewhere = tmp_path / "elsewhere" / "my-flights.csv"
    elsewhere.parent.mkdir()
    make_synthetic_flights(3000, seed=11).to_csv(elsewhere, index=False)
    stack = Stack(tmp_path, FLIGHT_DELAY_DATASET=str(elsewhere), FLIGHT_DELAY_API_KEYS="")
    del stack.env["FLIGHT_DELAY_DATA_ROOT"]  # the file's folder becomes the data root
    stack.start(timeout=300)
    stacks.append(stack)
    assert "trained on my-flights.csv" in stack.output()
    deployment = request(stack.base, "GET", "/deployment")[1]  # reads need no key
    status, record = request(stack.base, "GET", f"/models/{deployment['model_id']}")
    assert status == 200
    assert record["dataset"] == "my-flights.csv"
    assert record["metrics"]["holdout"]["rows"] == 600  # 20 % of the file's 3,000 flights


def test_a_synthetic_default_is_named_and_replaced_once_the_real_file_is_there(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    first = Stack(tmp_path, FLIGHT_DELAY_API_KEYS="").start(timeout=300)
    stacks.append(first)
    assert "trained on SYNTHETIC flights" in first.output()
    # its console is not filled with its own polling of the model (one access-log line a poll)
    assert '"GET /models' not in first.output(), first.output()
    synthetic_id = request(first.base, "GET", "/deployment")[1]["model_id"]
    first.stop()

    real = tmp_path / "data" / "dataset_SCL.csv"  # the file arrives (a small one in its format)
    make_synthetic_flights(3000, seed=13).to_csv(real, index=False)
    second = Stack(tmp_path, FLIGHT_DELAY_API_KEYS="", FLIGHT_DELAY_DATASET=str(real))
    second.start(timeout=300)
    stacks.append(second)
    said = second.output()
    assert f"Serving the deployed model {synthetic_id}, lightgbm trained on SYNTHETIC" in said
    assert "holdout ROC AUC" in said.split("Serving the deployed model", 1)[1].splitlines()[0]
    assert "replacing the synthetic default with one of dataset_SCL.csv" in said
    deployed = request(second.base, "GET", "/deployment")[1]["model_id"]
    assert deployed != synthetic_id
    assert request(second.base, "GET", f"/models/{deployed}")[1]["dataset"] == "dataset_SCL.csv"
    second.stop()

    third = Stack(tmp_path, FLIGHT_DELAY_API_KEYS="", FLIGHT_DELAY_DATASET=str(real)).start()
    stacks.append(third)
    assert f"Serving the deployed model {deployed}, lightgbm trained on dataset_SCL.csv" in (
        third.output()
    )
    assert "Nothing deployed" not in third.output() and "replacing" not in third.output()


def test_a_symlink_the_operator_put_in_the_data_root_is_followed(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    real = tmp_path / "big-disk" / "dataset_SCL.csv"
    real.parent.mkdir()
    make_synthetic_flights(3000, seed=12).to_csv(real, index=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_SCL.csv").symlink_to(real)  # ln -s /big-disk/... datasets/
    stack = Stack(
        tmp_path,
        FLIGHT_DELAY_DATASET=str(tmp_path / "data" / "dataset_SCL.csv"),
        FLIGHT_DELAY_API_KEYS="",
    )
    stack.start(timeout=300)
    stacks.append(stack)
    assert "trained on dataset_SCL.csv" in stack.output()
    assert "SYNTHETIC" not in stack.output()


def test_make_run_honours_bind_and_web_workers(tmp_path: Path, stacks: list[Stack]) -> None:
    """The README's FLIGHT_DELAY_BIND and FLIGHT_DELAY_WEB_WORKERS, not make run's defaults."""
    bind_port = free_port()
    stack = Stack(
        tmp_path, FLIGHT_DELAY_BIND=f"127.0.0.1:{bind_port}", FLIGHT_DELAY_WEB_WORKERS="3"
    )
    stack.base = f"http://127.0.0.1:{bind_port}"
    stack.start()
    stacks.append(stack)
    assert request(stack.base, "GET", "/healthz")[0] == 200
    master = psutil.Process(stack.child("gunicorn"))
    assert len(master.children()) == 3
    with socket.socket() as probe:  # nothing on PORT: BIND won
        assert probe.connect_ex(("127.0.0.1", stack.port)) != 0


def test_flower_and_the_metrics_endpoints_under_make_run(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """FLOWER=1 make run adds Flower on loopback, behind a user and password (it shows task
    arguments and tracebacks); the API's and the worker's metrics answer; stopping leaves none
    of them behind."""
    flower_port = free_port()
    stack = Stack(tmp_path, FLOWER="1", FLOWER_PORT=str(flower_port))
    stack.env.pop("FLOWER_BASIC_AUTH", None)
    stack.start()
    stacks.append(stack)
    password_file = tmp_path / "state" / "flower-password"
    assert (
        f"Flower:    http://127.0.0.1:{flower_port} (user flower, password: cat {password_file})"
        in stack.output()
    )
    deploy_small_model(stack)
    with urllib.request.urlopen(f"{stack.base}/metrics", timeout=10) as response:
        api = response.read().decode()
    assert 'flight_delay_http_requests_total{endpoint="/predict",method="POST",status="200"}' in api
    worker_url = f"http://127.0.0.1:{stack.worker_metrics_port}/metrics"
    with urllib.request.urlopen(worker_url, timeout=10) as response:
        assert (
            'flight_delay_training_jobs_total{outcome="completed"} 1.0' in response.read().decode()
        )
    credentials = base64.b64encode(f"flower:{password_file.read_text().strip()}".encode())
    deadline = time.monotonic() + 60
    while True:  # Flower's page, from its own process on loopback: 401 without the password
        try:
            anonymous = urllib.request.Request(f"http://127.0.0.1:{flower_port}/")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(anonymous, timeout=5)
            refused.value.close()
            assert refused.value.code == 401
            signed = urllib.request.Request(
                f"http://127.0.0.1:{flower_port}/",
                headers={"Authorization": f"Basic {credentials.decode()}"},
            )
            with urllib.request.urlopen(signed, timeout=5) as page:
                assert page.status == 200 and b"Flower" in page.read()
                break
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, stack.output()[-2000:]
            time.sleep(0.5)
    # what the stack wrote is this user's alone (issue 19, finding 12): 0644 files before
    state = tmp_path / "state"
    # the memory-mapped metrics files are not on the state disk: a write to them on a full disk
    # killed every gunicorn worker (SIGBUS)
    assert not (state / "metrics").exists()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    written = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name.startswith("predictions.db") for p in written)
    assert any(p.name.startswith("appendonly.aof") for p in written), written
    loose = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in written
             if stat.S_IMODE(p.stat().st_mode) & 0o077}  # fmt: skip
    assert not loose, loose
    processes = stack.processes()
    assert any("flower" in " ".join(p.cmdline()) for p in processes)
    stack.stop()
