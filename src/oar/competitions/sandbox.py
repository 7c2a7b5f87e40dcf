"""Run a command for one submission in a sandbox, as root sets it up and an unprivileged user lives in it.

- its own network namespace (no interface but a down loopback: no socket reaches anything) and its own
  PID namespace (it sees no other process; everything it starts ends with it);
- its own mount namespace: /tmp, /var/tmp, /dev/shm, /run, /root and /home are empty root-owned tmpfs
  mounts (no file socket of the host can be reached, nothing of the host's temp files or homes seen), the box
  and the Python it runs bound back in (read-only);
- runs as ``nobody``: the hidden labels (root's, mode 0600, in a 0700 folder) and other submissions'
  folders cannot be opened, nothing outside its work folder can be written;
- read-only inputs: ``in/`` is root's, mode 0755/0644; ``work/`` (its home and ``TMPDIR``) is its own;
- limits (setrlimit): address space (memory), CPU seconds, processes (a fork bomb stops at the limit),
  file size, open files; CPU affinity to ``cpus`` cores; the wall time is enforced from outside by
  killing its process group.

A package holds only an ONNX graph, weights and a tokenizer (no code), so the sandbox is the second
wall: it is what keeps a hostile graph or a runtime exploit away from the labels and the network.
Running it needs root (as in the studio's containers and CI); elsewhere ``available()`` says why not.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SANDBOX_USER = "nobody"
MAX_PROCESSES = 32
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_OUTPUT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    wall_s: float = 120.0
    memory_mb: int = 2048
    cpus: int = 1


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None: killed at the wall-time limit
    timed_out: bool
    seconds: float
    stderr_tail: str


def available() -> str | None:
    """None when sandboxes can run here, else the reason."""
    if os.geteuid() != 0:
        return "the scoring sandbox needs root (network and PID namespaces, an unprivileged user to run as)"
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            return f"the scoring sandbox needs '{tool}' (util-linux)"
    try:
        pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        return f"no '{SANDBOX_USER}' user to run submissions as"
    return None


class Box:
    """A fresh sandbox folder: ``in/`` (read-only for the guest) and ``work/`` (the guest's own)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="oar-box-"))
        os.chmod(self.root, 0o711)  # the guest may pass through, not list
        self.inputs = self.root / "in"
        self.work = self.root / "work"
        self.inputs.mkdir(mode=0o755)
        self.work.mkdir(mode=0o700)
        (self.work / "tmp").mkdir(mode=0o700)
        user = pwd.getpwnam(SANDBOX_USER)
        for path in (self.work, self.work / "tmp"):
            os.chown(path, user.pw_uid, user.pw_gid)

    def add_input(self, source: Path, name: str) -> Path:
        """Copy a file or folder into ``in/``, readable by the guest and writable by nobody but root."""
        target = self.inputs / name
        if source.is_dir():
            shutil.copytree(source, target, symlinks=False)
        else:
            shutil.copyfile(source, target)
        for path in [target, *target.rglob("*")] if target.is_dir() else [target]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        return target

    def read_output(self, name: str) -> bytes:
        """A file the guest wrote, never through a link it planted, never more than ``MAX_OUTPUT_BYTES``."""
        fd = os.open(self.work / name, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            if not os.fstat(handle.fileno()).st_size <= MAX_OUTPUT_BYTES or not os.path.isfile(self.work / name):
                raise OSError(f"{name} is not a plain file under {MAX_OUTPUT_BYTES} bytes")
            return handle.read(MAX_OUTPUT_BYTES)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _limits(limits: Limits, work: Path) -> None:
    """In the child, before exec (still root): the limits every process of the sandbox inherits."""
    memory = limits.memory_mb * 1024 * 1024
    cpu = int(limits.wall_s) + 1
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))  # counted for the guest user
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: limits.cpus])
    os.chdir(work)


# Runs as root inside the new namespaces, then becomes the guest: the world-writable folders, /run (where
# daemons keep their sockets) and the users' homes become empty root-owned tmpfs mounts. What the guest needs
# from under them (the Python it runs and oar's code: ``keep``, colon-separated) is first bound aside on a
# private /mnt, then bound back read-only; the box is bound back from the working directory, which still
# reaches it under the new /tmp.
_ENTER = """set -e
box="$1"; keep="$2"; shift 2
cd "$box"
IFS=:
mount -t tmpfs -o size=1m,mode=0755 tmpfs /mnt
i=0; for k in $keep; do i=$((i+1)); mkdir /mnt/$i; mount --bind "$k" /mnt/$i; done
for d in /tmp /var/tmp /dev/shm /run /root /home; do
  if [ -d "$d" ]; then mount -t tmpfs -o size=1m,mode=0755 tmpfs "$d"; fi
done
i=0; for k in $keep; do i=$((i+1)); mkdir -p "$k"; mount --bind /mnt/$i "$k"; mount -o remount,bind,ro "$k"; done
unset IFS
mkdir -p "$box"
mount -c --bind /proc/self/cwd "$box"
cd "$box/work"
exec "$@"
"""
COVERED = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/root", "/home")


def kept_paths() -> list[str]:
    """The folders under ``COVERED`` that the guest's Python needs: its installation, its virtual environment
    and oar's own code (a checkout or a venv may live in /tmp or a home; nothing else there is shown)."""
    import oar

    wanted = {sys.prefix, sys.base_prefix, str(Path(oar.__file__).resolve().parents[1])}
    wanted |= {os.path.realpath(path) for path in wanted}
    under = sorted(p for p in wanted if any(p == c or p.startswith(c + "/") for c in COVERED) and ":" not in p)
    return [p for p in under if not any(p.startswith(other + "/") for other in under)]


def wrap(box: Box, command: list[str]) -> list[str]:
    """New mount, network and PID namespaces (``unshare``; when its first process ends the kernel ends every
    other one, so nothing the guest forked or daemonized outlives it), then the guest user (``setpriv``)."""
    user = pwd.getpwnam(SANDBOX_USER)
    namespaces = ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    drop = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]
    return [*namespaces, "sh", "-c", _ENTER, "sh", str(box.root), ":".join(kept_paths()), *drop, *command]


def run(box: Box, command: list[str], limits: Limits, env: dict[str, str] | None = None) -> Outcome:
    """Run ``command`` in ``box``; kill its whole process group at the wall-time limit."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(box.work),
        "TMPDIR": str(box.work / "tmp"),
        "OMP_NUM_THREADS": str(limits.cpus),
        "LANG": "C.UTF-8",
        **(env or {}),
    }
    started = time.monotonic()
    stderr = box.root / "stderr"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            wrap(box, command),
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            preexec_fn=lambda: _limits(limits, box.work),  # setrlimit between fork and exec
            close_fds=True,
        )
        timed_out = False
        try:
            process.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(process.pid)  # whatever it left behind (a fork bomb's children, a sleeper) goes too
        if timed_out:
            process.wait()
    tail = stderr.read_bytes()[-4000:].decode("utf-8", "replace")
    code = None if timed_out else process.returncode
    return Outcome(code, timed_out, time.monotonic() - started, tail)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
