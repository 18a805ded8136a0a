"""What a person sees: run events turned into a status line, plain lines or nothing.

Quiet by default, like Ninja: on a terminal one `[done/total] rule outputs` line rewritten in
place; plain lines when not a terminal; colour only on a terminal without NO_COLOR. What a job
printed is shown when it ended, whole, under its `[done/total]` line (never mixed with another
job's; a long output by its last lines and its log's path). A failed job is shown whole: rule,
outputs, command, how it ended, its log's last lines. Failures go to stderr, progress to stdout.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import TextIO

from rulerun.joblog import printed, tail
from rulerun.plan.record import NOTHING_TO_DO  # the same words whether the record answered or not

TAIL_LINES = 20


def make_reporter(verbosity: int = 0, stream: TextIO | None = None, errors: TextIO | None = None,
                  touching: bool = False):
    """The reporter for this terminal: verbosity -1 (-q), 0, 1 (-v); `touching`: --touch, whose
    jobs are said as the files they touched."""
    stream = stream or sys.stdout
    errors = errors or sys.stderr
    tty = stream.isatty()
    colour = tty and not os.environ.get("NO_COLOR")
    reporter = Reporter(stream, errors, verbosity, status_line=tty and verbosity >= 0, colour=colour)
    reporter.touching = touching
    return reporter


class _Paint:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        if enabled:
            import colorama

            colorama.just_fix_windows_console()
            self._codes = {"red": colorama.Fore.RED + colorama.Style.BRIGHT, "green": colorama.Fore.GREEN,
                           "yellow": colorama.Fore.YELLOW, "dim": colorama.Style.DIM,
                           "bold": colorama.Style.BRIGHT, "reset": colorama.Style.RESET_ALL}

    def __call__(self, colour: str, text: str) -> str:
        if not self.enabled:
            return text
        return f"{self._codes[colour]}{text}{self._codes['reset']}"


class _MayBeGone:
    """A stream whose writes that fail are dropped: after a dropped ssh session the terminal
    answers EIO, and what is shown must never keep a run from stopping its jobs and recording
    them (SIGHUP stops a run just then)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> None:
        try:
            self._stream.write(text)
        except (OSError, ValueError):  # ValueError: the stream was closed
            pass

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class Reporter:
    def __init__(self, stream: TextIO, errors: TextIO, verbosity: int, status_line: bool, colour: bool):
        self.out = _MayBeGone(stream)
        self.err = _MayBeGone(errors)
        self.verbosity = verbosity
        self.status_line = status_line
        self.paint = _Paint(colour)
        self.total = 0
        self.done = 0
        self.started_at = time.monotonic()
        self.touching = False
        self.running = 0
        self._line_shown = False
        self._eta = _Estimate({}, 1)

    # ------------------------------------------------------------------ events

    def run_started(self, total: int) -> None:
        self.total = total
        self.started_at = time.monotonic()

    def total_grew(self, delta: int) -> None:
        self.total += delta

    def durations_known(self, seconds: dict[int, float], slots: int) -> None:
        """What earlier runs took for the jobs about to run (by job id), for the ETA."""
        self._eta = _Estimate(seconds, slots)

    def job_started(self, job, spec, reasons: list[str]) -> None:
        self.running += 1
        if self.verbosity > 0:
            why = f"  ({reasons[0]})" if reasons else ""
            self._line(self.paint("dim", f"[{job.name}]{why}"))
            self._line(spec.command if spec.kind == "shell" else f"python: {spec.label}")
        self._status(spec)

    def job_finished(self, job, spec, result, elapsed: float) -> None:
        self.done += 1
        self.running -= 1
        self._eta.ended(job.id)
        if self.verbosity < 0:
            return
        if self.touching:
            if spec.outputs:  # a task touches nothing
                self._line(f"touch {' '.join(spec.outputs)}")
        else:
            self._show_output(spec, result)
        self._status(spec)

    def _show_output(self, spec, result) -> None:
        """The job's `[done/total]` line (on a terminal only when it printed something: the
        status line says the rest) and what it printed, whole, the status line cleared first."""
        shown = printed(spec, result)
        if not self.status_line or shown:
            self._line(f"[{self.done}/{self.total}] {plain_label(spec)}")
        if shown:
            if shown.more():  # first: it reads as "what came before these lines"
                self.out.write(self.paint("dim", shown.more()) + "\n")
            self.out.write("".join(line + "\n" for line in shown.lines))
            self.out.flush()

    def job_failed(self, failure) -> None:
        self.done += 1
        self.running -= 1
        self._eta.ended(failure.job.id)
        self._clear()
        self.err.write(self._describe(failure) + "\n")
        self.err.flush()

    def job_interrupted(self, failure) -> None:
        self.running -= 1
        if failure.quarantined.moved and self.verbosity >= 0:
            self._line(f"interrupted: {plain_label(failure.spec)}; partial outputs moved to "
                       + ", ".join(failure.quarantined.moved))
        for note in failure.quarantined.notes:
            self.warning(f"interrupted: {plain_label(failure.spec)}: {note}")

    def interrupted(self, running: int) -> None:
        self._clear()
        self.err.write(self.paint("yellow", f"rulerun: interrupted; stopping {running} running job(s)") + "\n")
        self.err.flush()

    def warning(self, text: str) -> None:
        self._clear()
        self.err.write(self.paint("yellow", f"rulerun: warning: {text}") + "\n")
        self.err.flush()

    def note(self, text: str) -> None:
        if self.verbosity >= 0:
            self._line(text)

    def run_finished(self, outcome) -> None:
        elapsed = time.monotonic() - self.started_at
        self._clear()
        if outcome.failures:
            self.err.write(self._summary(outcome) + "\n")
            self.err.flush()
        elif outcome.interrupted:
            self.err.write(f"rulerun: interrupted after {outcome.ran} job(s)\n")
            self.err.flush()
        elif self.verbosity >= 0:
            if outcome.ran:
                self._line(self.paint("green", f"rulerun: {outcome.ran} job(s) done in {elapsed:.1f}s"))
            else:
                self._line(NOTHING_TO_DO)

    # ------------------------------------------------------------------ text

    def _describe(self, failure) -> str:
        spec, result = failure.spec, failure.result
        lines = [self.paint("red", f"FAILED: rule '{spec.rule}'") + (f" making {' '.join(spec.outputs)}"
                                                                     if spec.outputs else "")]
        if result.job_id:
            lines.append(f"  cluster job: {result.job_id}")
        lines.append(f"  {'command' if spec.kind == 'shell' else 'python action'}:")
        lines += [f"    {line}" for line in spec.command.rstrip("\n").splitlines()]
        lines.append(f"  {_reason(spec, result)}")
        if result.detail and spec.kind != "python":
            lines += [f"  {line}" for line in _new_lines(result.detail, spec.command)]
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if text:
                lines.append(f"  {name}:")
                lines += [f"    | {line}" for line in text.rstrip("\n").splitlines()[-TAIL_LINES:]]
        logged = tail(spec.log_path, TAIL_LINES)
        lines.append(f"  log: {spec.log_path}")
        # a Python action's log holds its traceback, beside a cluster job's stdout and stderr
        if logged and (spec.kind == "python" or not (result.stdout or result.stderr)):
            lines += [f"    | {line}" for line in logged.lines]
        if failure.quarantined.moved:
            lines.append("  outputs it left were moved to: " + ", ".join(failure.quarantined.moved))
        lines += [f"  {note}" for note in failure.quarantined.notes]
        return "\n".join(lines)

    def _summary(self, outcome) -> str:
        lines = [self.paint("red", f"rulerun: {len(outcome.failures)} job(s) failed") +
                 f" ({outcome.ran} succeeded" + (f", {len(outcome.skipped)} not run because they need a failed job"
                                                  if outcome.skipped else "") + "):"]
        for failure in outcome.failures:
            lines.append(f"  {plain_label(failure.spec)}: {_reason(failure.spec, failure.result)}  (log: {failure.spec.log_path})")
        if outcome.unmade:
            lines.append("  not made: " + ", ".join(outcome.unmade))
        return "\n".join(lines)

    # ------------------------------------------------------------------ output

    def _status(self, spec) -> None:
        if not self.status_line:
            return
        self.out.write("\r\x1b[K" + self._status_text(short_label(spec), _width(self.out) - 1))
        self.out.flush()
        self._line_shown = True

    def _status_text(self, label: str, width: int) -> str:
        """`[done/total] label  R running, Q queued, 12s, ETA 30s` in `width` columns: in a narrow
        terminal the counts go first, then the label loses its start, not its file name."""
        head = f"[{self.done}/{self.total}] "
        queued = max(0, self.total - self.done - self.running)
        elapsed = _duration(time.monotonic() - self.started_at)
        eta = self._eta.left(self.total - self.done)
        eta = f", ETA {_duration(eta)}" if eta is not None else ""
        for tail in (f"  {self.running} running, {queued} queued, {elapsed}{eta}", f"  {eta[2:]}" if eta else "", ""):
            if len(head) + len(label) + len(tail) <= width:
                return head + label + tail
        room = max(4, width - len(head))
        return head + ("…" + label[-(room - 1):] if len(label) > room else label)

    def _clear(self) -> None:
        if self._line_shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._line_shown = False

    def _line(self, text: str) -> None:
        self._clear()
        self.out.write(text + "\n")
        self.out.flush()


def short_label(spec) -> str:
    """What the status line calls a job: as plain_label, with the first of many outputs and
    how many more."""
    outputs = list(spec.outputs)
    if not outputs:
        return spec.rule
    shown = outputs[0] + (f" (+{len(outputs) - 1})" if len(outputs) > 1 else "")
    return shown if _name_says_nothing(spec) else f"{spec.rule} {shown}"


def plain_label(spec) -> str:
    """What a line about a job calls it: its outputs alone when its rule's name is a pattern
    (`%.count a.count` says nothing `a.count` does not) or those very outputs, else the rule's
    name and its outputs."""
    return " ".join(spec.outputs) if spec.outputs and _name_says_nothing(spec) else spec.label


def _name_says_nothing(spec) -> bool:
    return any(c in spec.rule for c in "%{*?[") or spec.rule == " ".join(spec.outputs)


class _Estimate:
    """Time left, from what earlier runs took: the work of the jobs not yet ended over the
    slots they can use. Jobs never timed count as the mean of those that were; with none
    timed there is no estimate."""

    def __init__(self, seconds: dict[int, float], slots: int):
        self.seconds = seconds
        self.slots = max(1, slots)
        self.mean = sum(seconds.values()) / len(seconds) if seconds else 0.0
        self.left_known = sum(seconds.values())

    def ended(self, job_id: int) -> None:
        took = self.seconds.pop(job_id, None)
        if took is not None:
            self.left_known -= took

    def left(self, jobs_left: int) -> float | None:
        if not self.mean and not self.left_known:
            return None
        unknown = max(0, jobs_left - len(self.seconds))
        return (self.left_known + unknown * self.mean) / max(1, min(self.slots, jobs_left))


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _reason(spec, result) -> str:
    """The result's one-line reason without the "rule 'X'[, cluster job N]: " the report's
    header already says."""
    reason = result.reason or "failed"
    return re.sub(rf"^rule '{re.escape(spec.rule)}'(, cluster job [^:]+)?: ", "", reason)


def _new_lines(detail: str, command: str) -> list[str]:
    """`detail`'s lines, less a repeat of the command the report shows already."""
    shown = {line.strip() for line in command.splitlines()} | {"command:"}
    return [line for line in detail.rstrip("\n").splitlines() if line.strip() not in shown]


def _width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80  # 0: a terminal that never said
    except (OSError, ValueError, AttributeError):
        return 80
