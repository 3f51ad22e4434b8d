"""Journal writing and command running (tasks.runner), in-process: no database, no worker."""

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tasks.journal import Command, encode_frame, is_end_frame, log_frame, read_frames
from tasks.runner import (
    OUTPUT_CHUNK,
    CommandError,
    CommandRunner,
    JournalWriter,
    command_environment,
    kill_process_group,
    process_group_alive,
    process_group_members,
)
from tests.workers import process_running


@pytest.fixture
def journal_path(tmp_path) -> Path:
    return tmp_path / "workspace" / "task.journal"


@pytest.fixture
def journal(journal_path):
    writer = JournalWriter(journal_path)
    yield writer
    writer.close()


def frames_of(path: Path) -> list[tuple[int, bytes]]:
    with open(path, "rb") as handle:
        frames = [(command, payload) for command, payload, _ in read_frames(handle)]
        assert handle.read() == b"", "the journal ends with a partial frame"
    return frames


def output_of(frames: list[tuple[int, bytes]]) -> bytes:
    return b"".join(payload for command, payload in frames if command == Command.BYTES)


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- JournalWriter -------------------------------------------------------------------------


def test_journal_writer_writes_whole_frames_and_creates_the_workspace(journal, journal_path):
    journal.log("Building", 10)
    journal.output(b"some output\n")
    journal.output(b"")  # a zero-length BYTES frame crashes fatbuildrctl: never written
    journal.end(False, "it broke", task_id="1234")
    expected = [
        (Command.LOG, b"10:Building"),
        (Command.BYTES, b"some output\n"),
        (Command.LOG, b"40:error while running task 1234: it broke"),
        (Command.LOG, b"20:Task failed: it broke"),
    ]
    assert frames_of(journal_path) == expected
    assert journal_path.read_bytes() == b"".join(
        encode_frame(command, payload) for command, payload in expected
    )


def test_journal_writer_appends_and_ends_with_success(journal_path):
    journal_path.parent.mkdir(parents=True)
    journal_path.write_bytes(log_frame("earlier"))
    with JournalWriter(journal_path) as journal:
        journal.end(True)
    assert frames_of(journal_path) == [
        (Command.LOG, b"20:earlier"),
        (Command.LOG, b"20:Task succeeded"),
    ]


@pytest.mark.parametrize("message", ["Task failed: not really", "Task succeeded!"])
def test_a_log_line_that_looks_like_an_end_is_not_an_end_frame(journal, journal_path, message):
    journal.log(message)
    [(command, payload)] = frames_of(journal_path)
    assert message.encode() in payload
    assert not is_end_frame(command, payload)


def test_concurrent_writes_never_interleave(journal, journal_path):
    """Many threads on one writer, plus a second writer on the same file (the reaper)."""
    other = JournalWriter(journal_path)
    threads_count, per_thread = 8, 60

    def payload(thread: int, n: int) -> bytes:
        size = random.Random(thread * 1000 + n).randrange(1, 40_000)
        head = f"{thread}:{n}:".encode()
        return head + bytes([65 + thread]) * size

    def write(thread: int) -> None:
        writer = other if thread == 0 else journal
        for n in range(per_thread):
            if n % 2:
                writer.output(payload(thread, n))
            else:
                writer.log(payload(thread, n).decode())

    threads = [threading.Thread(target=write, args=(t,)) for t in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()

    frames = frames_of(journal_path)
    assert len(frames) == threads_count * per_thread
    seen: dict[int, list[int]] = {t: [] for t in range(threads_count)}
    for command, data in frames:
        if command == Command.LOG:
            assert data.startswith(b"20:")
            data = data[3:]
        thread, n, _ = data.split(b":", 2)
        thread, n = int(thread), int(n)
        assert command == (Command.BYTES if n % 2 else Command.LOG)
        assert data == payload(thread, n), f"frame {thread}:{n} is corrupted"
        seen[thread].append(n)
    # Each thread's frames are all there, in the order it wrote them.
    assert all(numbers == list(range(per_thread)) for numbers in seen.values())


# --- CommandRunner -------------------------------------------------------------------------


def test_output_is_streamed_as_bytes_frames_of_at_most_2048_bytes(journal, journal_path):
    script = "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done"
    CommandRunner(journal).run(["sh", "-c", script])
    frames = frames_of(journal_path)
    assert frames[0] == (Command.LOG, f"20:Running command: sh -c '{script}'".encode())
    chunks = [payload for command, payload in frames[1:]]
    assert all(command == Command.BYTES for command, _ in frames[1:])
    assert all(0 < len(chunk) <= 2048 for chunk in chunks)
    expected = "".join(f"line{i}\n" for i in range(3000)).encode()
    assert b"".join(chunks) == expected
    assert len(chunks) >= len(expected) // 2048
    assert OUTPUT_CHUNK == 2048


def test_stderr_is_merged_with_stdout(journal, journal_path, tmp_path):
    CommandRunner(journal).run(["sh", "-c", "echo out; echo err >&2; pwd"], cwd=tmp_path)
    assert output_of(frames_of(journal_path)) == f"out\nerr\n{tmp_path}\n".encode()


def test_failing_command_raises_with_its_exit_code(journal, journal_path):
    with pytest.raises(
        CommandError, match=r"^command sh -c 'echo bad; exit 3' failed with exit code 3$"
    ):
        CommandRunner(journal).run(["sh", "-c", "echo bad; exit 3"])
    assert output_of(frames_of(journal_path)) == b"bad\n"


def test_a_wrapped_command_is_named_by_its_display_name(journal, journal_path):
    wrapper = ["env", "WRAPPED=1", "sh", "-c", "exit 4"]
    with pytest.raises(
        CommandError, match=r"^command exit 4 \(in a box\) failed with exit code 4$"
    ):
        CommandRunner(journal).run(wrapper, display="exit 4 (in a box)")
    logs = [payload for command, payload in frames_of(journal_path) if command == Command.LOG]
    assert logs == [
        b"10:Command line: env WRAPPED=1 sh -c 'exit 4'",
        b"20:Running command: exit 4 (in a box)",
    ]


def test_timeout_kills_the_whole_process_group(journal, journal_path, tmp_path):
    pid_file = tmp_path / "child"
    groups: list[int | None] = []
    runner = CommandRunner(journal, on_start=groups.append)
    start = time.monotonic()
    with pytest.raises(CommandError, match=r"timed out after 0\.5 s$"):
        runner.run(
            ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; echo started; wait"], timeout=0.5
        )
    assert time.monotonic() - start < 5
    assert output_of(frames_of(journal_path)) == b"started\n"
    group, cleared = groups
    assert isinstance(group, int) and cleared is None
    assert runner.current_group is None
    assert not process_group_alive(group)
    assert not process_running(int(pid_file.read_text()))


def test_default_timeout_applies(journal):
    with pytest.raises(CommandError, match=r"timed out after 0\.3 s$"):
        CommandRunner(journal, default_timeout=0.3).run(["sleep", "30"])


def test_interrupted_stops_a_running_command(journal, journal_path):
    stop = threading.Event()
    groups: list[int | None] = []
    runner = CommandRunner(
        journal,
        interrupted=lambda: "canceled by bob" if stop.is_set() else None,
        on_start=groups.append,
    )
    threading.Timer(0.3, stop.set).start()
    start = time.monotonic()
    with pytest.raises(CommandError, match=r"^command sleep 30 interrupted: canceled by bob$"):
        runner.run(["sleep", "30"])
    assert time.monotonic() - start < 5
    assert groups[-1] is None and not process_group_alive(groups[0])


def test_a_command_that_never_stops_talking_can_be_interrupted(journal, journal_path):
    stop = threading.Event()
    runner = CommandRunner(journal, interrupted=lambda: "stop" if stop.is_set() else None)
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(CommandError, match="interrupted: stop"):
        runner.run(["sh", "-c", "while :; do echo talking; done"], timeout=20)
    assert output_of(frames_of(journal_path)).startswith(b"talking\n")


def test_a_background_child_holding_the_output_does_not_hang_the_task(journal, tmp_path):
    """The command exits but leaves a child that keeps its output open: after a grace
    period the child goes with the rest of the group and the command counts as done."""
    pid_file = tmp_path / "child"
    start = time.monotonic()
    CommandRunner(journal).run(["sh", "-c", f"sleep 60 & echo $! > {pid_file}"], timeout=20)
    assert time.monotonic() - start < 10
    assert not process_running(int(pid_file.read_text()))


def test_the_command_environment_holds_none_of_the_servers_secrets(
    journal, journal_path, monkeypatch
):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "very-secret-key-value")
    monkeypatch.setenv("DATABASE_URL", "postgres://fatbuildr:hunter2@db.example/fatbuildr")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-password@redis.example/0")
    CommandRunner(journal).run(["sh", "-c", "env"])
    output = output_of(frames_of(journal_path)).decode()
    for leaked in ("very-secret-key-value", "hunter2", "redis-password", "DJANGO_", "DATABASE_URL"):
        assert leaked not in output
    variables = dict(line.split("=", 1) for line in output.splitlines())
    assert variables["PATH"] == command_environment()["PATH"]
    assert variables["LC_ALL"] == "C.UTF-8"


def test_an_explicit_environment_is_used_as_given(journal, journal_path):
    CommandRunner(journal).run(["sh", "-c", "env"], env=command_environment({"FOO": "bar"}))
    output = output_of(frames_of(journal_path)).decode()
    assert "FOO=bar\n" in output and "PATH=" in output


@pytest.mark.parametrize(
    ("cmd", "cwd"),
    [(["/nonexistent/command", "arg"], None), (["true"], "/nonexistent/directory")],
    ids=["command", "cwd"],
)
def test_a_command_that_cannot_start_is_a_command_error(journal, journal_path, cmd, cwd):
    groups: list[int | None] = []
    with pytest.raises(CommandError, match=r"^unable to run .*: No such file or directory$"):
        CommandRunner(journal, on_start=groups.append).run(cmd, cwd=cwd)
    assert groups == []
    assert frames_of(journal_path) == [
        (Command.LOG, f"20:Running command: {' '.join(cmd)}".encode())
    ]


def test_a_failing_on_start_callback_does_not_leave_the_command_running(journal):
    groups: list[int] = []

    def on_start(pgid: int | None) -> None:
        if pgid is not None:
            groups.append(pgid)
            raise RuntimeError("database unreachable")

    try:
        with pytest.raises(RuntimeError):
            CommandRunner(journal, on_start=on_start).run(["sleep", "30"])
        assert not process_group_alive(groups[0])
    finally:
        if groups:
            kill_process_group(groups[0])


def test_a_command_that_closes_its_output_before_exiting_is_not_killed(journal, tmp_path):
    """Deterministic form of a race seen with `cat`, `ls`, `/bin/echo`, `env` run directly:
    5 to 80 % of runs end with "failed with exit code -9" on the test machine."""
    done = tmp_path / "done"
    CommandRunner(journal).run(
        ["sh", "-c", f"exec >&- 2>&-; sleep 0.3; touch {done}; exit 0"], timeout=20
    )
    assert done.exists()


# --- Process groups ------------------------------------------------------------------------


def test_kill_process_group_kills_every_member():
    process = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"], start_new_session=True)
    try:
        wait_until(lambda: len(members(process.pid)) >= 3)
        assert process_group_alive(process.pid)
        children = members(process.pid)
        assert kill_process_group(process.pid) is True
        assert not process_group_alive(process.pid)
        assert process.wait(timeout=5) == -signal.SIGKILL
        assert not any(process_running(pid) for pid in children)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_group_of_zombies_is_not_alive_and_a_gone_group_is_killed():
    process = subprocess.Popen(["true"], start_new_session=True)
    # Not reaped yet: the leader stays as a zombie.
    wait_until(lambda: not process_running(process.pid))
    assert Path(f"/proc/{process.pid}").exists()
    assert not process_group_alive(process.pid)
    assert kill_process_group(process.pid) is True
    process.wait()
    assert not process_group_alive(process.pid)
    assert kill_process_group(process.pid) is True


def members(pgid: int) -> list[int]:
    """Live processes of a process group."""
    return [pid for pid, state in process_group_members(pgid) if state != "Z"]


def test_a_failed_command_error_carries_the_end_of_its_output(journal):
    script = "yes a | head -c 5000; echo last words; exit 1"
    with pytest.raises(CommandError) as failure:
        CommandRunner(journal).run(["sh", "-c", script])
    assert failure.value.output_tail.endswith("a\nlast words\n")
    assert len(failure.value.output_tail) == 2048
