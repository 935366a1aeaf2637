"""Executors: independent items run somewhere, their results yielded as they finish.

An executor takes a *work* object and a list of tasks. The work object is what a worker needs to
make items (the settings, the input files): a worker calls ``work.open()`` once (it loads the
backbone) and then ``worker(task)`` for each task, keeping the backbone across tasks. The driver
gets a :class:`Done` per task, in the order they finish, and writes the outputs itself.

- ``local`` (:class:`LocalExecutor`): one worker, this process, the tasks in order; the step
  callbacks of the work object reach the command line's progress display.
- ``ray`` / ``ray:ADDRESS`` (:class:`RayExecutor`): Ray actors, one per GPU (``num_gpus=1``), or
  ``workers`` CPU actors where the cluster has no GPU. The work object travels to each actor once
  (input files as bytes: no shared filesystem is needed), each task and each result through Ray. A
  worker that dies has its tasks run again on another (a new actor replaces it), up to
  :data:`ATTEMPTS` times a task; Ctrl-C stops every actor and keeps what finished; a head (or this
  machine's node) that stops answering is :class:`~dreamstyle.errors.ClusterLost`, what finished
  kept. Each actor uses this process's number of torch threads: on the same kind of CPU its pictures
  are then the bytes a local run makes (how a sum is split over threads changes its last bits).

A task that fails for a user reason (a bad image) comes back as a :class:`Done` with ``error`` set
(one line); the other tasks go on. The engine never prints: ``on_event(kind, worker, info)`` tells
the caller of workers started, lost and tasks run again.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .errors import ClusterLost, OptionError, UserError
from .settings import INPUT_FIELDS

ATTEMPTS = 3  # runs of one task (a worker dying under it counts one)
RAY_HINT = "pip install 'dreamstyle[ray]'"


@dataclass
class Done:
    """A task finished: its index in the task list, what the worker returned (None on ``error``),
    which worker ran it and how many attempts it took."""

    index: int
    value: object
    worker: int = 0
    error: str = ""
    attempts: int = 1


def run_task(worker, task) -> tuple[object, str]:
    """``worker(task)`` with a user error turned into its one line (the other tasks go on)."""
    try:
        return worker(task), ""
    except UserError as exc:
        return None, str(exc)


class LocalExecutor:
    """Every task in this process, in order, on one worker."""

    name = "local"
    workers = 1

    def __init__(self):
        self.retried = 0
        self.counts: dict[int, int] = {}

    def run(self, work, tasks: Sequence, on_event: Callable | None = None) -> Iterator[Done]:
        worker = work.open()
        for index, task in enumerate(tasks):
            value, error = run_task(worker, task)
            self.counts[0] = self.counts.get(0, 0) + 1
            yield Done(index, value, 0, error)


def executor_for(spec: str = "local", workers: int | None = None):
    """The executor ``spec`` names (``--executor``, checked by the settings: local, ray or ray:ADDRESS),
    with ``workers`` workers (default: one per GPU, else one per CPU)."""
    kind, _, address = str(spec).partition(":")
    if kind == "local":
        if workers is not None:
            raise OptionError("--workers goes with --executor ray (a local run has one worker: this process)")
        return LocalExecutor()
    return RayExecutor(address.strip() or None, workers)


def require_ray():
    try:
        import ray
    except ImportError:
        raise OptionError(f"--executor ray needs Ray: {RAY_HINT}") from None
    return ray


RAY_QUIET_LOGGERS = ("ray._private.authentication.authentication_token_setup",)  # its notes on its own defaults


def _authenticate_as_ray_start(address: str | None) -> None:
    """``ray start`` turns token authentication on where a token exists (~/.ray/auth_token) and
    RAY_AUTH_MODE is unset; a driver that joins must then send it, so the same rule applies here
    (before Ray is imported: it reads the mode once). A local instance (no address) gets token
    authentication as ``ray.init`` gives it by default, asked for explicitly: Ray then does not print
    its "Token authentication is enabled" warning into dreamstyle's output. RAY_AUTH_MODE set by the
    user is left as it is."""
    for name in RAY_QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "RAY_AUTH_MODE" in os.environ:
        return
    token = os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    if address or os.environ.get("RAY_ADDRESS"):
        if os.path.isfile(token):
            os.environ["RAY_AUTH_MODE"] = "token"
    else:
        os.environ["RAY_AUTH_MODE"] = "token"


def _reachable(address: str, timeout: float = 5.0) -> None:
    """A head that does not answer is one line now (Ray itself would retry for minutes)."""
    why = _silent(address, timeout)
    if why:
        raise OptionError(
            f"cannot reach the Ray head at {address}: {why} (is `ray start --head --port "
            f"{address.rpartition(':')[2]}` running there?)"
        )


def _silent(address: str, timeout: float) -> str:
    """Why ``address`` (host:port) accepts no connection; "" where it does, or is no host:port ("auto",
    a ray:// client address: left to Ray)."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        return ""
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def _reason(exc: BaseException) -> str:
    """The line of a Ray error that says why (the worker's own exception, where there is one)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    said = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line)]
    return (said or lines or [type(exc).__name__])[-1][:300]


class _Actor:
    """A Ray worker: opens the work once (the backbone loads once) and runs its tasks."""

    def __init__(self, work, threads: int):
        torch.set_num_threads(max(1, threads))
        self.worker = work.open()

    def pid(self) -> int:
        return os.getpid()

    def run(self, task):
        return run_task(self.worker, task)


class RayExecutor:
    """Tasks on Ray actors (see the module's notes). ``address`` None starts or joins a local Ray
    instance; otherwise it joins the cluster whose head is at ``address`` (``ray start --head``)."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        in_flight: int = 2,
        on_event: Callable | None = None,
    ):
        _authenticate_as_ray_start(address)
        self.ray = require_ray()
        self.address, self.wanted, self.in_flight, self.on_event = address, workers, in_flight, on_event
        self.retried = 0
        self.counts: dict[int, int] = {}
        self.actors: dict[int, object] = {}  # worker number -> actor (the live ones)
        self.workers = 0
        self._owned = False
        self.watched: dict[str, str] = {}  # what must answer while the work runs: address -> what it is
        self.lost = ""  # why the cluster was given up (then nothing more is asked of it)

    # --- the cluster ------------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster at ``address`` (or the one ``RAY_ADDRESS`` names), else start a Ray instance
        on this machine; one this process has joined already is used."""
        ray = self.ray
        address = self.address or os.environ.get("RAY_ADDRESS") or "local"
        if address != "local":
            _reachable(address)
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = "a local Ray instance" if address == "local" else f"the Ray cluster at {address}"
                raise OptionError(f"cannot connect to {where}: {str(exc).strip().splitlines()[0]}") from None
            self._owned = True
        self._watch()

    def _watch(self) -> None:
        """The cluster's head (its GCS) and this machine's Ray node (its raylet): where either dies, Ray
        ends this process from its own threads a minute later (or seconds, for the node) with its last
        log line, so the work watches them itself and stops first, keeping what finished."""
        context = self.ray.get_runtime_context()
        here = next((n for n in self.ray.nodes() if n.get("NodeID") == context.get_node_id()), {})
        self.watched = {context.gcs_address: "its head"}
        if here.get("NodeManagerPort"):
            self.watched[f"{here['NodeManagerAddress']}:{here['NodeManagerPort']}"] = "this machine's Ray node"

    def check_alive(self) -> None:
        """:class:`~dreamstyle.errors.ClusterLost` where the head or this machine's node stopped answering."""
        for address, what in self.watched.items():
            why = _silent(address, timeout=5.0)
            if why:
                self.lost = f"the Ray cluster stopped answering ({what}, {address}: {why})"
                raise ClusterLost(f"{self.lost}; see the Ray logs (ray status) for why")

    def shape(self, device: str = "auto") -> tuple[int, dict]:
        """How many actors, and each one's resources: one per GPU; where the cluster has none, as many as
        its CPUs hold this process's torch threads (each actor uses that many), or ``workers``."""
        resources = self.ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        if gpus and not str(device).startswith("cpu"):
            return min(self.wanted or gpus, gpus), {"num_gpus": 1, "num_cpus": 1}
        count = self.wanted or max(1, cpus // torch.get_num_threads())
        nodes = [int(n["Resources"]["CPU"]) for n in self.ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")]
        return count, {"num_cpus": max(1, min(cpus // count, min(nodes, default=1)))}  # every actor fits a node

    def _start(self, number: int, work_ref, options: dict) -> None:
        actor_cls = self.ray.remote(_Actor)
        # this process's torch threads: a CPU's sums depend on how they are split, so the same count
        # gives the bytes a local run gives (two workers on one machine then share its cores)
        threads = torch.get_num_threads()
        self.actors[number] = actor_cls.options(max_restarts=0, **options).remote(work_ref, threads)

    def close(self) -> None:
        if self.lost:  # a dead cluster answers nothing: asking it would only wait for Ray to end the process
            self.actors.clear()
            return
        for actor in list(self.actors.values()):
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - an actor already gone
                pass
        self.actors.clear()
        if self._owned:
            self.ray.shutdown()
            self._owned = False

    # --- running ----------------------------------------------------------------------------------
    def run(self, work, tasks: Sequence, on_event: Callable | None = None) -> Iterator[Done]:
        self.connect()
        count, options = self.shape(getattr(work, "device", "auto"))
        work_ref = self.ray.put(work)
        for number in range(count):
            self._start(number, work_ref, options)
        self.workers, started = count, count
        try:
            yield from self._dispatch(work, tasks, work_ref, options, started, on_event or self.on_event)
        finally:
            self.close()

    def _dispatch(self, work, tasks, work_ref, options, started, on_event) -> Iterator[Done]:
        ray, notify = self.ray, on_event or (lambda *a: None)
        queue = list(range(len(tasks)))
        attempts = [0] * len(tasks)
        flying: dict = {}  # ref -> (task index, worker number)
        while queue or flying:
            for number, actor in list(self.actors.items()):
                while queue and sum(1 for _, w in flying.values() if w == number) < self.in_flight:
                    index = queue.pop(0)
                    attempts[index] += 1
                    task = work.ship(tasks[index]) if hasattr(work, "ship") else tasks[index]
                    flying[actor.run.remote(task)] = (index, number)
                    notify("submitted", number, index)
            ready, _ = ray.wait(list(flying), num_returns=1, timeout=1.0)
            if not ready:
                self.check_alive()
            for ref in ready:
                index, number = flying.pop(ref)
                try:
                    value, error = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                    started = self._lost(number, exc, work_ref, options, started, notify)
                    if attempts[index] < ATTEMPTS:
                        self.retried += 1
                        queue.insert(0, index)
                        notify("retried", number, index)
                        continue
                    value, error = None, f"its Ray worker died {ATTEMPTS} times while making it ({_reason(exc)})"
                except ray.exceptions.RayTaskError as exc:
                    raise exc.as_instanceof_cause() from None
                self.counts[number] = self.counts.get(number, 0) + 1
                yield Done(index, value, number, error, attempts[index])

    def _lost(self, number, exc, work_ref, options, started, notify) -> int:
        """Worker ``number`` died: a new actor takes its place (the cluster allowing: not where the node
        or the head died with it)."""
        self.check_alive()
        if number in self.actors:
            del self.actors[number]
            notify("lost", number, _reason(exc))
            if started < 4 * max(1, self.workers):  # a cluster that keeps killing workers ends the run
                self._start(started, work_ref, options)
                notify("started", started, None)
                started += 1
        if not self.actors:
            raise OptionError("every Ray worker died; see the Ray logs (ray status) for why")
        return started

    def pids(self, timeout: float = 60.0) -> dict[int, int]:
        """{worker number: process id} of the live actors (tests kill one)."""
        deadline = time.monotonic() + timeout
        refs = {n: a.pid.remote() for n, a in self.actors.items()}
        return {n: self.ray.get(r, timeout=max(1.0, deadline - time.monotonic())) for n, r in refs.items()}


# --- input files as bytes: a worker needs no shared filesystem --------------------------------------


def pack_inputs(settings) -> dict[str, bytes]:
    """{path as given: its bytes} of every input file the settings name (styles, masks, guide, init
    image, weights), to travel with the work to another machine."""
    files = {}
    for v in settings.input_files():
        if str(v) not in files:
            with open(v, "rb") as fh:
                files[str(v)] = fh.read()
    return files


def unpack_inputs(settings, files: dict[str, bytes]):
    """The settings with each packed file written to a temporary folder of this process (under its own
    name, so recipes say the same) and named there: ``(settings, {temporary path: path as given})``."""

    if not files:
        return settings, {}
    root = Path(tempfile.mkdtemp(prefix="dreamstyle-worker-"))
    here = {}
    for i, (given, data) in enumerate(files.items()):
        path = root / str(i) / Path(given).name
        path.parent.mkdir()
        path.write_bytes(data)
        here[given] = str(path)

    def moved(v):
        return here.get(str(v), v) if isinstance(v, str) else v

    changes = {}
    for name in INPUT_FIELDS & settings.names():
        value = getattr(settings, name)
        changes[name] = tuple(moved(v) for v in value) if isinstance(value, tuple) else moved(value)
    return settings.replace(**changes), {v: k for k, v in here.items()}


def relocated(value, back: dict[str, str]):
    """``value`` (a recipe, a line) with each temporary path of :func:`unpack_inputs` named as given."""
    if not back:
        return value
    if isinstance(value, str):
        for tmp, given in back.items():
            value = value.replace(tmp, given)
        return value
    if isinstance(value, dict):
        return {k: relocated(v, back) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(relocated(v, back) for v in value)
    return value
