"""Expectations whose cost a tenant controls, evaluated over a target's body away from the event loop.

A JSONPath with nested recursive descents, a regex that backtracks catastrophically, or one whose
compilation explodes can cost minutes of CPU on a few tens of KB of body. On a worker's event loop that
would stop `/healthz`, every other monitor and SIGTERM. So `bodyRegex` and `jsonPath` (JSON parsing
included) run in a few evaluator processes (`python -m spectra.probe.evaluator`), started on first use,
with one time budget per check: a process that has not answered when the budget is spent is killed and
replaced (a thread could not be stopped), and the check is DOWN with "<step> exceeded its 1s budget".
Checks without these expectations never start one.

Each process also caps itself, in case the worker cannot kill it (it was killed first): its address
space (MEMORY_LIMIT_BYTES, so a hostile document fails with MemoryError instead of swapping the node)
and its CPU time per request (RLIMIT_CPU: the kernel ends it a few seconds past the budget).

Protocol on the process's stdin/stdout: it writes `{"ready": true}` once started; each request is one
JSON line (`regex`, `jsonPaths` as [path, equals] pairs, `budgetS`, `textBytes`) followed by that many
bytes of body text in UTF-8; the answer is a `{"step": ...}` line as each step starts, so an overrun
names the step, then one `{"failure": reason or null}` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import resource
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from spectra.probe import assertions
from spectra.probe.fair_turns import FairTurns
from spectra.probe.lag import waiting_for

EVALUATOR_PROCESSES = 2  # evaluations at once per worker; more wait their turn, round-robin by tenant
MEMORY_LIMIT_BYTES = 256 * 1024 * 1024  # a 1 MiB body parses into a few tens of MB
START_TIMEOUT_S = 30.0  # starting Python takes seconds on a busy machine; not counted in the budget
CPU_SLACK_S = 2  # RLIMIT_CPU counts whole seconds: the kernel's stop comes this long after the worker's
_ANSWER_LIMIT = 1024 * 1024  # longest line read from an evaluator (answers are one short reason)

JsonScalar = str | int | float | bool | None


@dataclass(frozen=True)
class BodyExpectations:
    """The expectations of one check that need an evaluator."""

    regex: str | None = None
    json_paths: tuple[tuple[str, JsonScalar], ...] = ()


def evaluate_body(
    text: str, expectations: BodyExpectations, budget_s: float, announce: Callable[[str], None] = lambda step: None
) -> str | None:
    """The first failing expectation's reason, or None. What an evaluator process runs for a request."""
    if expectations.regex is not None:
        announce("regex search")
        failure = assertions.body_regex(text, expectations.regex, budget_s)
        if failure is not None:
            return failure
    if not expectations.json_paths:
        return None
    announce("JSON parsing")
    parsed = assertions.parse_json(text)
    if isinstance(parsed, str):
        return parsed
    for path, expected in expectations.json_paths:
        announce(f"JSONPath {path}")
        failure = assertions.json_path_equals(parsed.document, path, expected)
        if failure is not None:
            return failure
    return None


# --- the evaluator process ------------------------------------------------------------------------


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer requests until stdin closes."""

    def send(message: dict[str, Any]) -> None:
        stdout.write(json.dumps(message).encode() + b"\n")
        stdout.flush()

    send({"ready": True})
    while header := stdin.readline():
        request = json.loads(header)
        text = stdin.read(request["textBytes"]).decode("utf-8", "surrogatepass")
        budget_s = float(request["budgetS"])
        pairs = tuple((path, equals) for path, equals in request["jsonPaths"])
        expectations = BodyExpectations(request["regex"], pairs)
        _cap_cpu(budget_s)
        try:
            failure = evaluate_body(text, expectations, budget_s, lambda step: send({"step": step}))
        except MemoryError:
            failure = f"evaluating the body needed more than {MEMORY_LIMIT_BYTES // 2**20} MiB"
        except Exception as exc:  # whatever a target sends is a reason, never the end of the evaluator
            failure = f"evaluating the body failed: {type(exc).__name__}"
        send({"failure": failure})


def _cap_cpu(budget_s: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    limit = math.ceil(usage.ru_utime + usage.ru_stime + budget_s) + CPU_SLACK_S
    resource.setrlimit(resource.RLIMIT_CPU, (limit, resource.getrlimit(resource.RLIMIT_CPU)[1]))


def main() -> None:
    # Ctrl-C reaches the whole process group; the worker decides when its evaluators stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    with contextlib.suppress(BrokenPipeError):  # the worker went away
        serve(sys.stdin.buffer, sys.stdout.buffer)


# --- the worker's side ----------------------------------------------------------------------------


class _Overrun(Exception):
    """The budget was spent; the message is the check's reason."""


class _Ended(Exception):
    """The process ended (crashed, killed from outside) during `step`, or before its first one (None)."""

    def __init__(self, step: str | None) -> None:
        super().__init__(step)
        self.step = step


class _Unavailable(Exception):
    """No evaluator process could be started."""


class EvaluatorUnavailable(Exception):
    """The probe could not evaluate (no process would start or stay up): our failure, no verdict on the
    target; the checker reports it as STALLED, never as the target being down."""


class _Process:
    """One evaluator process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> _Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_ANSWER_LIMIT,
        )
        started = cls(process)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                ready = await started._read()
        except BaseException:
            await started.stop()
            raise
        if ready != {"ready": True}:
            await (started.reap() if ready is None else started.stop())
            raise RuntimeError(f"it said {ready!r}, exit code {process.returncode}")
        return started

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def evaluate(self, text: str, expectations: BodyExpectations, budget_s: float) -> str | None:
        assert self.process.stdin is not None
        body = text.encode("utf-8", "surrogatepass")  # a target's charset (unicode_escape) can make lone surrogates
        header = {
            "regex": expectations.regex,
            "jsonPaths": expectations.json_paths,
            "budgetS": budget_s,
            "textBytes": len(body),
        }
        step: str | None = None
        try:
            async with asyncio.timeout(budget_s):
                try:
                    self.process.stdin.write(json.dumps(header).encode() + b"\n")
                    self.process.stdin.write(body)
                    await self.process.stdin.drain()
                except OSError:  # BrokenPipeError, ConnectionResetError: it had ended already
                    raise _Ended(step) from None
                while True:
                    message = await self._read()
                    if message is None:
                        raise _Ended(step)
                    if "step" not in message:
                        failure: str | None = message["failure"]
                        return failure
                    step = message["step"]
        except TimeoutError:
            raise _Overrun(f"{step or 'evaluation'} exceeded its {budget_s:g}s budget") from None

    async def _read(self) -> dict[str, Any] | None:
        """The next message; None when the process has ended."""
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            return None
        message: dict[str, Any] = json.loads(line)
        return message

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()

    async def reap(self) -> None:
        """Wait for a process whose output ended. Killing it at once would lose its exit status: asyncio's
        kill() reaps an exited child before the child watcher can (which then reports 255)."""
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await self.process.wait()
        except TimeoutError:  # it closed its output but lingers
            await self.stop()


class Evaluators:
    """A worker's evaluator processes, started on first use; `CheckContext.aclose()` stops them."""

    def __init__(self, budget_s: float, processes: int = EVALUATOR_PROCESSES) -> None:
        self.budget_s = budget_s
        self.processes = processes
        self._turns = FairTurns(processes)
        self._idle: list[_Process] = []
        self._busy: set[_Process] = set()
        self._stopping: set[asyncio.Task[None]] = set()

    async def evaluate(self, text: str, expectations: BodyExpectations, *, tenant: str = "") -> str | None:
        """The first failing expectation's reason, or None; an overrun or a crash is a reason too.

        ``tenant`` (the monitor's namespace): while every process is busy, waiting evaluations are served
        round-robin by tenant, so one tenant's costly monitors cannot make everyone else's wait behind all
        of its work; the wait counts as the probe's (spectra.probe.lag.waiting_for), not the target's."""
        with waiting_for(f"one of the {self.processes} evaluator processes (all busy)"):
            await self._turns.acquire(tenant)
        try:
            # A process that ended while idle (killed from outside) fails before it reads the request:
            # that request is safe to give to a fresh one.
            for _ in range(2):
                try:
                    process = await self._take()
                except _Unavailable as unavailable:
                    raise EvaluatorUnavailable(str(unavailable)) from None
                try:
                    failure = await process.evaluate(text, expectations, self.budget_s)
                except _Overrun as overrun:
                    self._retire(process)
                    return str(overrun)
                except _Ended as ended:
                    await asyncio.shield(self._retire(process, ended=True))  # its exit status says what ended it
                    if ended.step is None:
                        continue
                    return f"{ended.step} ended the evaluator process ({_exit(process.process.returncode)})"
                except BaseException:  # cancelled (the check's timeout): its answer would arrive out of turn
                    self._retire(process)
                    raise
                self._busy.discard(process)
                self._idle.append(process)
                return failure
            raise EvaluatorUnavailable("the evaluator process ended before its first step, twice")
        finally:
            self._turns.release()

    async def _take(self) -> _Process:
        while self._idle:
            process = self._idle.pop()
            if process.running:
                self._busy.add(process)
                return process
            self._retire(process, ended=True)
        try:
            process = await _Process.start()
        except (OSError, RuntimeError, TimeoutError) as exc:  # ours, not the target's; said as such
            raise _Unavailable(f"the expression evaluator could not start: {type(exc).__name__} {exc}") from None
        self._busy.add(process)
        return process

    def _retire(self, process: _Process, *, ended: bool = False) -> asyncio.Task[None]:
        self._busy.discard(process)
        task = asyncio.ensure_future(process.reap() if ended else process.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        return task

    @property
    def waiting(self) -> int:
        """Evaluations waiting for a turn."""
        return self._turns.waiting

    @property
    def pids(self) -> list[int]:
        """The running processes' ids (tests kill them)."""
        return [process.process.pid for process in [*self._idle, *self._busy] if process.running]

    async def aclose(self) -> None:
        for process in [*self._idle, *self._busy]:
            self._retire(process)
        self._idle.clear()
        await asyncio.gather(*self._stopping, return_exceptions=True)


def _exit(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


if __name__ == "__main__":
    main()
