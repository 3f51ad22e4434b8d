"""Writing task journals and running the commands of a task.

Every frame reaches the journal with one `write` on a file opened in append
mode, under a lock: frames from the task's log lines, its commands' output
and the reaper never interleave. Commands run in their own process group, so
that a timeout or a cancellation kills everything they started.
"""

import logging
import os
import select
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from tasks.journal import Command, encode_frame, log_frame

# Upstream reads command output 2048 bytes at a time, one BYTES frame per read.
OUTPUT_CHUNK = 2048
END_PREFIXES = ("Task succeeded", "Task failed")

logger = logging.getLogger(__name__)


# How much of a failed command's last output its CommandError keeps.
OUTPUT_TAIL = 2048


class CommandError(Exception):
    """A command of a task failed, timed out or was interrupted; `output_tail` holds the end of
    what it printed (its whole output is in the journal)."""

    def __init__(self, message: str, *, output_tail: str = "") -> None:
        super().__init__(message)
        self.output_tail = output_tail


class OutputSink(Protocol):
    """Where a CommandRunner reports: a task journal, or a terminal."""

    def log(self, message: str, level: int = logging.INFO) -> None: ...

    def output(self, data: bytes) -> None: ...


class TextStream(Protocol):
    """A text stream to write to: a file, or a management command's `self.stdout`."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...


class ConsoleOutput:
    """An OutputSink for management commands: log lines and command output on a terminal."""

    def __init__(self, stream: TextStream, *, verbose: bool = True) -> None:
        self.stream = stream
        self.verbose = verbose

    def log(self, message: str, level: int = logging.INFO) -> None:
        self.stream.write(message + "\n")
        self.stream.flush()

    def output(self, data: bytes) -> None:
        if self.verbose:
            self.stream.write(data.decode(errors="replace"))
            self.stream.flush()


class JournalWriter:
    """Appends whole frames to a task journal."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._lock = threading.Lock()

    def write_frame(self, frame: bytes) -> None:
        with self._lock:
            view = memoryview(frame)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]

    def log(self, message: str, level: int = logging.INFO) -> None:
        # Clients stop reading at a line starting with an end message (compat §3.4):
        # only the engine writes those, through end().
        if message.startswith(END_PREFIXES):
            message = f"» {message}"
        self.write_frame(log_frame(message, level))

    def output(self, data: bytes) -> None:
        if data:  # A zero-length BYTES frame crashes fatbuildrctl (compat §2.7).
            self.write_frame(encode_frame(Command.BYTES, data))

    def end(self, succeeded: bool, reason: str = "", *, task_id: str = "") -> None:
        """The last frames of a task (upstream `ServerTasksManager.run`)."""
        if succeeded:
            self.write_frame(log_frame("Task succeeded"))
            return
        self.write_frame(log_frame(f"error while running task {task_id}: {reason}", logging.ERROR))
        self.write_frame(log_frame(f"Task failed: {reason}" if reason else "Task failed"))

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> "JournalWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def process_group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, state) of each process of a group, from /proc (state "Z": a zombie)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            members.append((int(entry.name), fields[0]))
    return members


def process_group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies awaiting reaping count as gone)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # kill() succeeds on zombies too: look for one member that is not a zombie.
    return any(state != "Z" for _, state in process_group_members(pgid))


def kill_process_group(pgid: int, *, timeout: float = 10.0) -> bool:
    """SIGKILL a process group again and again until none of it runs; True when gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        if not process_group_alive(pgid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


class CommandRunner:
    """Runs the commands of one task, their output streamed into its journal.

    `interrupted` is checked while a command runs: when it returns a reason
    (cancellation, lost lease), the command's process group is killed and
    `CommandError` raised with that reason. `on_start(pgid | None)` records
    the running command's process group (for the reaper of another process).
    """

    def __init__(
        self,
        journal: OutputSink,
        *,
        interrupted: Callable[[], str | None] = lambda: None,
        on_start: Callable[[int | None], None] = lambda pgid: None,
        default_timeout: float = 3600.0,
    ) -> None:
        self.journal = journal
        self.interrupted = interrupted
        self.on_start = on_start
        self.default_timeout = default_timeout
        self.current_group: int | None = None

    def run(
        self,
        cmd: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        display: str | None = None,
    ) -> None:
        """Run *cmd*, stdout and stderr merged into the journal; raise CommandError unless it
        exits with status 0. *display* names the command in the journal and errors instead of
        its whole command line (a wrapped command), which is then logged at debug level."""
        printable = display or shlex.join(cmd)
        if display:
            self.journal.log(f"Command line: {shlex.join(cmd)}", logging.DEBUG)
        self.journal.log(f"Running command: {printable}")
        timeout = self.default_timeout if timeout is None else timeout
        try:
            process = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=dict(env) if env is not None else command_environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise CommandError(f"unable to run {printable}: {error.strerror}") from error
        self.current_group = process.pid
        self._tail = bytearray()
        try:
            self.on_start(process.pid)
            failure = self._pump(process, timeout)
        finally:
            kill_process_group(process.pid)
            process.wait()
            if process.stdout is not None:  # Always: stdout=PIPE.
                process.stdout.close()
            self.current_group = None
            self.on_start(None)
        tail = self._tail.decode(errors="replace")
        if failure:
            raise CommandError(f"command {printable} {failure}", output_tail=tail)
        if process.returncode != 0:
            raise CommandError(
                f"command {printable} failed with exit code {process.returncode}", output_tail=tail
            )

    def _pump(self, process: subprocess.Popen[bytes], timeout: float) -> str | None:
        """Copy output to the journal until the command exits and its output ends; the
        failure reason if the command was stopped."""
        assert process.stdout is not None, "started with stdout=PIPE"
        fd = process.stdout.fileno()
        deadline = time.monotonic() + timeout
        leader_gone_at: float | None = None
        output_open = True
        while True:
            ready: list[int] = []
            if output_open:
                ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, OUTPUT_CHUNK)
                if chunk:
                    self.journal.output(chunk)
                    self._tail = (self._tail + chunk)[-OUTPUT_TAIL:]
                else:
                    # Programs close their output before they exit (coreutils do, in
                    # their exit handler): wait for the exit, don't kill it.
                    output_open = False
            if not output_open:
                try:
                    process.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
                else:
                    return None
            # Checked on every turn (`interrupted` must be cheap), so a command that
            # never stops talking can still be canceled or time out.
            reason = self.interrupted()
            if reason:
                kill_process_group(process.pid)
                return f"interrupted: {reason}"
            if time.monotonic() > deadline:
                kill_process_group(process.pid)
                return f"timed out after {timeout:g} s"
            if not ready and process.poll() is not None:
                # The command exited but something it left behind holds the output
                # open: give it a moment, then it goes with the rest of the group.
                leader_gone_at = leader_gone_at or time.monotonic()
                if time.monotonic() - leader_gone_at > 2:
                    kill_process_group(process.pid)


def command_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for task commands: none of the server's secrets or settings."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    env.update(extra or {})
    return env
