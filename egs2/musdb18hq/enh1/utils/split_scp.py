#!/usr/bin/env python3
"""Split a Kaldi-style list file (scp, utt2spk, ...) into N contiguous, near-equal parts.

    utils/split_scp.py data/test/wav.scp 'exp/x/logdir/keys.JOB.scp' --num-parts 4

writes keys.1.scp .. keys.4.scp (JOB replaced by 1..N). Line order is kept, so part 1 holds the
first lines; part sizes differ by at most one line. Fewer lines than parts is an error (callers
cap the number of jobs first, as ESPnet recipes do).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def split_lines(lines: list[str], num_parts: int) -> list[list[str]]:
    """Cut ``lines`` into ``num_parts`` contiguous chunks whose sizes differ by at most one."""
    if num_parts < 1:
        raise ValueError(f"number of parts must be >= 1, got {num_parts}")
    if len(lines) < num_parts:
        raise ValueError(f"cannot split {len(lines)} lines into {num_parts} non-empty parts")
    base, extra = divmod(len(lines), num_parts)
    parts, start = [], 0
    for index in range(num_parts):
        size = base + (1 if index < extra else 0)
        parts.append(lines[start : start + size])
        start += size
    return parts


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="list file to split")
    parser.add_argument("pattern", help="output path containing JOB, e.g. logdir/keys.JOB.scp")
    parser.add_argument("--num-parts", "--num_parts", type=int, required=True)
    args = parser.parse_args(argv)

    if "JOB" not in args.pattern:
        parser.error(f"output pattern must contain JOB: {args.pattern}")
    try:
        lines = [ln for ln in args.input.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as err:
        print(f"split_scp.py: cannot read {args.input}: {err.strerror}", file=sys.stderr)
        return 1
    try:
        parts = split_lines(lines, args.num_parts)
    except ValueError as err:
        print(f"split_scp.py: {args.input}: {err}", file=sys.stderr)
        return 1
    for index, part in enumerate(parts, start=1):
        write_atomic(
            Path(args.pattern.replace("JOB", str(index))), "".join(f"{ln}\n" for ln in part)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
