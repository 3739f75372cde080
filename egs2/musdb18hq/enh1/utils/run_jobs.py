#!/usr/bin/env python3
"""Run a command as one job or as an array of parallel jobs on this machine, one log per job.

    utils/run_jobs.py [options] [JOB=1:N] LOG COMMAND [ARG ...]

With ``JOB=1:N`` (any upper-case name works, e.g. ``TASK=1:4``) the command runs N times; every
occurrence of the name in LOG and in the arguments is replaced by the job number 1..N. The command
is executed directly, not through a shell (wrap pipelines in ``bash -c '...'``); its stdout and
stderr go to the job's log, which begins with the command line and ends with the exit status and
the elapsed time. Exit status is 0 when every job succeeded; otherwise a one-line message names
the number of failed jobs and a log to read, and the status is 1.

Options kept for compatibility with cluster back-ends (cmd.sh): ``--gpu N``, ``--mem SIZE``,
``--num_threads N`` are accepted; on a local machine they do not reserve anything.
``--max_jobs_run N`` limits how many jobs run at the same time (default: all at once).
"""

from __future__ import annotations

import argparse
import datetime
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

JOB_RANGE = re.compile(r"^([A-Z][A-Z0-9_]*)=(\d+):(\d+)$")


@dataclass
class Job:
    """One job of the array: its number, log path and command line after substitution."""

    index: int
    log: Path
    argv: list[str]
    process: subprocess.Popen | None = None
    handle: object = None
    start: float = 0.0


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split the runner's options from ``[JOB=a:b] LOG COMMAND...``."""
    parser = argparse.ArgumentParser(
        prog="run_jobs.py",
        usage="run_jobs.py [options] [JOB=1:N] LOG COMMAND [ARG ...]",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--mem", default=None)
    parser.add_argument("--num_threads", "--num-threads", type=int, default=1)
    parser.add_argument("--max_jobs_run", "--max-jobs-run", type=int, default=0)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.max_jobs_run < 0:
        parser.error("--max_jobs_run must be >= 0 (0 means no limit)")
    return args, args.rest


def expand_jobs(rest: list[str]) -> list[Job]:
    """Turn ``[NAME=a:b] LOG CMD...`` into the list of jobs to run."""
    name, first, last = None, 1, 1
    if rest and (match := JOB_RANGE.match(rest[0])):
        name, first, last = match.group(1), int(match.group(2)), int(match.group(3))
        rest = rest[1:]
        if last < first:
            raise ValueError(f"empty job range {name}={first}:{last}")
    elif rest and re.match(r"^[A-Za-z][A-Za-z0-9_]*=", rest[0]):
        raise ValueError(f"bad job range '{rest[0]}' (expected e.g. JOB=1:4)")
    if len(rest) < 2:
        raise ValueError("expected a log file and a command")
    log, command = rest[0], rest[1:]
    if name is not None and name not in log and last > first:
        raise ValueError(f"log file '{log}' must contain {name} when running several jobs")

    def fill(text: str, index: int) -> str:
        return text if name is None else text.replace(name, str(index))

    return [
        Job(i, Path(fill(log, i)), [fill(a, i) for a in command]) for i in range(first, last + 1)
    ]


def now() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def start(job: Job) -> None:
    """Open the job's log, write its header and launch it."""
    job.log.parent.mkdir(parents=True, exist_ok=True)
    job.handle = open(job.log, "w", encoding="utf-8")
    job.handle.write(f"# {shlex.join(job.argv)}\n# Started at {now()}\n")
    job.handle.flush()
    job.start = time.monotonic()
    try:
        job.process = subprocess.Popen(
            job.argv, stdout=job.handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    except OSError as err:
        job.handle.write(f"run_jobs.py: cannot start {job.argv[0]}: {err.strerror}\n")
        job.process = None


def finish(job: Job, code: int) -> None:
    """Write the footer of a finished job and close its log."""
    elapsed = time.monotonic() - job.start
    job.handle.write(f"# Ended (code {code}) at {now()}, elapsed time {elapsed:.0f} seconds\n")
    job.handle.close()


def run(jobs: list[Job], max_parallel: int) -> list[Job]:
    """Run the jobs, at most ``max_parallel`` at a time (0: all); return the failed ones."""
    pending, running, failed = list(jobs), [], []
    limit = max_parallel or len(jobs)
    try:
        while pending or running:
            while pending and len(running) < limit:
                job = pending.pop(0)
                start(job)
                if job.process is None:
                    finish(job, 127)
                    failed.append(job)
                else:
                    running.append(job)
            for job in list(running):
                code = job.process.poll()
                if code is not None:
                    running.remove(job)
                    finish(job, code)
                    if code != 0:
                        failed.append(job)
            if running:
                time.sleep(0.05)
    except KeyboardInterrupt:
        for job in running:
            job.process.terminate()
        raise
    return sorted(failed, key=lambda j: j.index)


def main(argv: list[str] | None = None) -> int:
    args, rest = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        jobs = expand_jobs(rest)
    except ValueError as err:
        print(f"run_jobs.py: {err}", file=sys.stderr)
        return 2
    failed = run(jobs, args.max_jobs_run)
    if failed:
        what = f"{len(failed)} / {len(jobs)} failed" if len(jobs) > 1 else "failed"
        print(f"run_jobs.py: {what}, log is in {failed[0].log}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
