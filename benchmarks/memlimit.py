"""Run a command or a function in a process tree confined to a memory cgroup (cgroup v1).

``run_in_memory_limit(cmd_or_fn, limit_bytes)`` makes a fresh cgroup under
the caller's own memory cgroup, sets ``memory.limit_in_bytes`` (and the
memory+swap limit to the same value, so nothing escapes to swap), moves the
child into it before it runs anything, waits, and reports the exit status,
whether the kernel's OOM killer fired inside the group (``memory.oom_control``'s
``oom_kill`` counter: a killed DataLoader worker counts even when the parent
survives it), and the group's peak charge (``memory.max_usage_in_bytes``).
cgroup v1 charges the page cache of the files the group reads to the group,
so a reader that relies on the cache is squeezed as it would be in a
container with that memory limit.

Needs root and cgroup v1 mounted at ``/sys/fs/cgroup/memory``; see
:func:`available`.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

__all__ = ["LimitResult", "available", "run_in_memory_limit", "MEMORY_ROOT"]

#: Mount point of the cgroup v1 memory controller.
MEMORY_ROOT = "/sys/fs/cgroup/memory"
#: The ``memory.stat`` entries whose peaks a run reports (bytes, the group's own processes).
STAT_KEYS = ("rss", "cache", "mapped_file", "shmem")


@dataclass
class LimitResult:
    """What one confined run did.

    ``rc`` is the exit status (negative: killed by that signal, as
    ``subprocess`` reports it); ``oom_killed`` whether the OOM killer killed
    any process of the group (``oom_kills`` how many); ``peak_bytes`` the
    group's largest charge, page cache included; ``value`` what a function
    returned (``None`` for a command, or when the function did not return).
    """

    rc: int
    oom_killed: bool
    oom_kills: int
    peak_bytes: int
    limit_bytes: int
    seconds: float
    value: Any = None
    stdout: str = ""
    stderr: str = ""
    #: The largest value seen of each ``memory.stat`` entry of :data:`STAT_KEYS` (sampled every 50 ms):
    #: ``rss`` is anonymous memory (heaps, block caches), ``cache`` the page cache, ``shmem`` shared memory
    #: (DataLoader batches on their way from the workers).
    stat_peaks: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Finished with status 0 and nothing OOM-killed."""
        return self.rc == 0 and not self.oom_killed


def _own_group() -> str:
    """The caller's memory cgroup directory (new groups go under it, so outer limits still apply)."""
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _id, controllers, rel = line.rstrip("\n").split(":", 2)
                if "memory" in controllers.split(","):
                    path = os.path.join(MEMORY_ROOT, rel.lstrip("/"))
                    if os.path.isdir(path):
                        return path
    except OSError:
        pass
    return MEMORY_ROOT


def available() -> bool:
    """Whether a memory cgroup can be made here (cgroup v1 mounted and writable)."""
    parent = _own_group()
    if not os.path.isfile(os.path.join(parent, "memory.limit_in_bytes")):
        return False
    probe = os.path.join(parent, f"rocksds-probe-{uuid.uuid4().hex[:8]}")
    try:
        os.mkdir(probe)
    except OSError:
        return False
    os.rmdir(probe)
    return True


def _write(group: str, name: str, value: Union[int, str]) -> None:
    with open(os.path.join(group, name), "w") as fh:
        fh.write(str(value))


def _read_int(group: str, name: str) -> int:
    try:
        with open(os.path.join(group, name)) as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _oom_kills(group: str) -> int:
    try:
        with open(os.path.join(group, "memory.oom_control")) as fh:
            for line in fh:
                key, _, val = line.partition(" ")
                if key == "oom_kill":
                    return int(val)
    except OSError:
        pass
    return 0


def _make_group(limit_bytes: int) -> str:
    group = os.path.join(_own_group(), f"rocksds-limit-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.mkdir(group)
    try:
        _write(group, "memory.limit_in_bytes", limit_bytes)
        if os.path.exists(os.path.join(group, "memory.memsw.limit_in_bytes")):
            _write(group, "memory.memsw.limit_in_bytes", limit_bytes)
        if os.path.exists(os.path.join(group, "memory.swappiness")):
            _write(group, "memory.swappiness", 0)
    except OSError:
        os.rmdir(group)
        raise
    return group


def _tasks(group: str) -> list[int]:
    try:
        with open(os.path.join(group, "cgroup.procs")) as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


class _StatSampler(threading.Thread):
    """Samples the group's ``memory.stat`` and keeps each entry's maximum (the kernel keeps only the total's)."""

    def __init__(self, group: str) -> None:
        super().__init__(daemon=True)
        self.group = group
        self.peaks: dict[str, int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            try:
                with open(os.path.join(self.group, "memory.stat")) as fh:
                    for line in fh:
                        key, _, val = line.partition(" ")
                        if key in STAT_KEYS:
                            self.peaks[key] = max(self.peaks.get(key, 0), int(val))
            except (OSError, ValueError):
                pass

    def stop(self) -> dict[str, int]:
        self.stopped.set()
        self.join()
        return dict(self.peaks)


def _remove_group(group: str) -> None:
    """Kill what the confined tree left behind (only processes in this group), then remove the group."""
    deadline = time.monotonic() + 10
    while _tasks(group) and time.monotonic() < deadline:
        for pid in _tasks(group):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    for _ in range(50):
        try:
            os.rmdir(group)
            return
        except OSError:
            time.sleep(0.1)


def run_in_memory_limit(cmd_or_fn: Union[Sequence[str], Callable[[], Any]], limit_bytes: int, *,
                        timeout: Optional[float] = None, env: Optional[dict[str, str]] = None) -> LimitResult:
    """Run ``cmd_or_fn`` with its whole process tree confined to ``limit_bytes`` of memory.

    A command (a sequence of arguments) runs through ``subprocess`` with its
    output captured; a function runs in a forked child, and its return value,
    pickled back through a pipe, is ``LimitResult.value`` (the child exits 1
    if it raised). Children the command or function starts (DataLoader
    workers) stay in the group. ``timeout`` kills the tree after that many
    seconds (``rc`` is then ``-9``).

    Raises:
        OSError: no memory cgroup can be made here (see :func:`available`).
    """
    limit_bytes = int(limit_bytes)
    group = _make_group(limit_bytes)
    procs = os.path.join(group, "cgroup.procs")
    t0 = time.perf_counter()
    value: Any = None
    out = err = ""
    sampler = _StatSampler(group)  # started once the child exists: a fork copies no other thread
    try:
        if callable(cmd_or_fn):
            rc, value = _run_function(cmd_or_fn, procs, timeout, group, sampler)
        else:
            def join() -> None:
                with open(procs, "w") as fh:
                    fh.write(str(os.getpid()))

            proc = subprocess.Popen(list(cmd_or_fn), preexec_fn=join, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=env)
            sampler.start()
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                for pid in _tasks(group):
                    os.kill(pid, signal.SIGKILL)
                out, err = proc.communicate()
            rc = proc.returncode
        seconds = time.perf_counter() - t0
        kills = _oom_kills(group)
        peak = _read_int(group, "memory.max_usage_in_bytes")
    finally:
        peaks = sampler.stop() if sampler.is_alive() else dict(sampler.peaks)
        _remove_group(group)
    return LimitResult(rc=rc, oom_killed=kills > 0, oom_kills=kills, peak_bytes=peak, limit_bytes=limit_bytes,
                       seconds=seconds, value=value, stdout=out, stderr=err, stat_peaks=peaks)


def _run_function(fn: Callable[[], Any], procs: str, timeout: Optional[float], group: str,
                  sampler: _StatSampler) -> tuple[int, Any]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: join the group before doing anything else
        os.close(r)
        status = 1
        try:
            with open(procs, "w") as fh:
                fh.write(str(os.getpid()))
            payload = pickle.dumps(fn())
            with os.fdopen(w, "wb") as fh:
                fh.write(payload)
            status = 0
        except BaseException:  # noqa: BLE001 - the child reports failure through its exit status
            import traceback

            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(w)
    sampler.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks = []
    with os.fdopen(r, "rb") as fh:
        os.set_blocking(fh.fileno(), False)
        while True:
            try:
                chunk = fh.read()
            except BlockingIOError:
                chunk = None
            if chunk:
                chunks.append(chunk)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                try:
                    rest = fh.read()
                    if rest:
                        chunks.append(rest)
                except BlockingIOError:
                    pass
                break
            if deadline is not None and time.monotonic() > deadline:
                for p in _tasks(group):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.02)
    rc = os.waitstatus_to_exitcode(status)
    data = b"".join(chunks)
    value = pickle.loads(data) if rc == 0 and data else None
    return rc, value
