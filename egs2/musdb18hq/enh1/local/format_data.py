#!/usr/bin/env python3
"""Stages 3 and 4 of the MUSDB18-HQ recipe: format the data dirs for ESPnet, then filter them.

    local/format_data.py format --src data/train --dst dump/raw/org/train --fs 44.1k
                                [--audio_format wav|flac] [--ref_num 4] [--nj 2]
    local/format_data.py filter --src dump/raw/org/train --dst dump/raw/train --fs 44.1k
                                [--min_duration 0.1] [--max_duration SECONDS]
    local/format_data.py fs 44.1k     # prints 44100

``format`` keeps every track whole, at its original length and with all its channels. A file
already at ``--fs`` and already in ``--audio_format`` is referenced where it is (no copy of a
30 GB dataset); any other file is resampled (only when its rate differs from ``--fs``) and
written to ``{dst}/data/{uttid}/{name}.{wav|flac}`` (wav: 32-bit float, so the scale is kept
exactly; flac: 24-bit). The output dir holds wav.scp, spk1.scp..spk{ref_num}.scp, utt2spk,
spk2utt, utt2num_samples (frames per channel at ``--fs``), and copies of ``stems``/``utt2dur``.

``filter`` never drops a song because it is long: the training iterator cuts random segments
from whole songs. It only removes degenerate items (fewer samples than ``--min_duration``),
naming each. ``--max_duration`` exists for ESPnet option compatibility: songs above it are kept
and counted in a note. Every output dir is written to a temporary sibling and renamed, so an
error never leaves a half-written data dir.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}
COPIED_FILES = ("stems", "utt2dur")


class FormatError(Exception):
    """A problem with the input data; printed as one line without a traceback."""


@dataclass(frozen=True)
class AudioJob:
    """One file of one utterance to convert: its source and the (staged) output path."""

    uttid: str
    name: str  # "mixture" or "spk1".."spkN"
    src: str
    dst: str


def parse_fs(text: str) -> int:
    """'44.1k' / '16k' / '44100' -> Hz as int."""
    value = text.strip().lower()
    scale = 1000 if value.endswith("k") else 1
    try:
        hz = float(value[:-1] if scale == 1000 else value) * scale
    except ValueError:
        raise FormatError(f"bad sampling rate '{text}' (expected e.g. 44.1k or 44100)") from None
    if hz <= 0 or hz != round(hz):
        raise FormatError(f"bad sampling rate '{text}' (must be a positive whole number of Hz)")
    return int(round(hz))


def read_table(path: Path) -> dict[str, str]:
    """Kaldi-style 'key value...' file -> ordered dict; the value may contain spaces."""
    table: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise FormatError(f"{path}: line {number} has a key but no value")
        key, value = parts[0], parts[1].strip()
        if key in table:
            raise FormatError(f"{path}: line {number}: duplicate key {key}")
        table[key] = value
    return table


def write_table(path: Path, rows: dict[str, str] | list[tuple[str, str]]) -> None:
    items = rows.items() if isinstance(rows, dict) else rows
    path.write_text("".join(f"{k} {v}\n" for k, v in items), encoding="utf-8")


def resample(audio: np.ndarray, src_fs: int, dst_fs: int) -> np.ndarray:
    """Band-limited polyphase resampling of ``[L, C]`` audio; length ceil(L * dst / src)."""
    ratio = Fraction(dst_fs, src_fs)
    out = resample_poly(audio, ratio.numerator, ratio.denominator, axis=0)
    return out.astype(np.float32, copy=False)


def convert(job: AudioJob, fs: int, audio_format: str) -> tuple[str, int, int]:
    """Write ``job.src`` as ``job.dst`` at ``fs``; returns (path, frames, channels)."""
    try:
        audio, src_fs = sf.read(job.src, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise FormatError(f"{job.src}: cannot read audio ({err})") from None
    if src_fs != fs:
        audio = resample(audio, src_fs, fs)
    container, subtype = FORMATS[audio_format]
    if audio_format == "flac":
        audio = np.clip(audio, -1.0, 1.0 - 2.0**-23)
    dst = Path(job.dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, audio, fs, format=container, subtype=subtype)
    return job.dst, audio.shape[0], audio.shape[1]


def plan(src: Path, ref_num: int) -> tuple[list[str], dict[tuple[str, str], str]]:
    """Utterance ids (in wav.scp order) and (uttid, name) -> audio path for mixture + stems."""
    tables = {"mixture": read_table(src / "wav.scp")}
    for n in range(1, ref_num + 1):
        tables[f"spk{n}"] = read_table(src / f"spk{n}.scp")
    uttids = list(tables["mixture"])
    if not uttids:
        raise FormatError(f"{src / 'wav.scp'}: no utterances")
    for name, table in tables.items():
        missing = [u for u in uttids if u not in table]
        if missing:
            raise FormatError(f"{src}/{name}.scp has no entry for {missing[0]}")
    return uttids, {(u, name): table[u] for u in uttids for name, table in tables.items()}


def run_format(src: Path, dst: Path, fs: int, audio_format: str, ref_num: int, nj: int) -> str:
    """Build the formatted data dir ``dst`` from ``src``; returns a one-line summary."""
    uttids, sources = plan(src, ref_num)
    tmp = _make_tmp_dir(dst)
    try:
        results: dict[tuple[str, str], tuple[str, int, int]] = {}
        to_convert = []
        for (uttid, name), path in sources.items():
            info = _info(path)
            if info.samplerate == fs and info.format.lower() == audio_format:
                results[uttid, name] = (path, info.frames, info.channels)
            else:
                staged = str(tmp / "data" / uttid / f"{name}.{audio_format}")
                to_convert.append(AudioJob(uttid, name, path, staged))
        if to_convert:
            with ProcessPoolExecutor(max_workers=max(1, nj)) as pool:
                count = len(to_convert)
                done = pool.map(convert, to_convert, [fs] * count, [audio_format] * count)
                for job, (path, frames, channels) in zip(to_convert, done):
                    final = str(dst / Path(path).relative_to(tmp))
                    results[job.uttid, job.name] = (final, frames, channels)
        _check_consistent(uttids, results, ref_num)
        write_table(tmp / "wav.scp", [(u, results[u, "mixture"][0]) for u in uttids])
        for n in range(1, ref_num + 1):
            write_table(tmp / f"spk{n}.scp", [(u, results[u, f"spk{n}"][0]) for u in uttids])
        write_table(tmp / "utt2spk", [(u, u) for u in uttids])
        write_table(tmp / "spk2utt", [(u, u) for u in uttids])
        write_table(tmp / "utt2num_samples", [(u, str(results[u, "mixture"][1])) for u in uttids])
        for name in COPIED_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        _install(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    kept = len(sources) - len(to_convert)
    return (
        f"{dst}: {len(uttids)} tracks at {fs} Hz; {kept} files referenced in place, "
        f"{len(to_convert)} written as {audio_format}"
    )


def _info(path: str):
    try:
        return sf.info(path)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise FormatError(f"{path}: cannot read audio ({err})") from None


def _check_consistent(uttids, results, ref_num: int) -> None:
    """Every stem must have the mixture's length and channel count after formatting."""
    for u in uttids:
        _, frames, channels = results[u, "mixture"]
        for n in range(1, ref_num + 1):
            path, f, c = results[u, f"spk{n}"]
            if (f, c) != (frames, channels):
                raise FormatError(
                    f"{u}: {path} has {f} frames x {c} channels but the mixture has "
                    f"{frames} x {channels}"
                )


def _make_tmp_dir(dst: Path) -> Path:
    """A temporary sibling of ``dst`` with ordinary directory permissions."""
    tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}."))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def _install(tmp: Path, dst: Path) -> None:
    """Replace ``dst`` by the finished ``tmp`` directory."""
    if dst.exists():
        old = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.old."))
        os.replace(dst, old / dst.name)
        os.replace(tmp, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dst)


def run_filter(src: Path, dst: Path, fs: int, min_duration: float, max_duration: float | None):
    """Copy ``src`` to ``dst`` without items shorter than ``min_duration`` seconds."""
    num_samples = {k: int(v) for k, v in read_table(src / "utt2num_samples").items()}
    min_samples = math.ceil(min_duration * fs)
    dropped = [u for u, n in num_samples.items() if n < min_samples]
    kept = [u for u in num_samples if u not in dropped]
    messages = [
        f"{src}: removed {u} ({num_samples[u] / fs:.2f} s < --min_duration {min_duration} s)"
        for u in dropped
    ]
    if not kept:
        raise FormatError(f"{src}: every item is shorter than --min_duration {min_duration} s")
    if max_duration is not None:
        longer = sum(1 for u in kept if num_samples[u] > max_duration * fs)
        if longer:
            messages.append(
                f"{src}: {longer} track(s) longer than --max_duration {max_duration} s are kept "
                "whole (training cuts random segments from them)"
            )
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _make_tmp_dir(dst)
    try:
        keep = set(kept)
        for path in sorted(src.iterdir()):
            if not path.is_file():
                continue
            if path.name == "stems":
                shutil.copyfile(path, tmp / path.name)
                continue
            rows = read_table(path)
            write_table(tmp / path.name, [(k, v) for k, v in rows.items() if k in keep])
        _install(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    messages.append(f"{dst}: {len(kept)} of {len(num_samples)} items")
    return messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rate = sub.add_parser("fs", help="print a sampling rate such as 44.1k in Hz")
    rate.add_argument("rate")
    fmt = sub.add_parser("format", help="stage 3: data/<set> -> dump/raw/.../<set>")
    flt = sub.add_parser("filter", help="stage 4: drop degenerate items only")
    for p in (fmt, flt):
        p.add_argument("--src", required=True, type=Path)
        p.add_argument("--dst", required=True, type=Path)
        p.add_argument("--fs", required=True, help="sampling rate, e.g. 44.1k or 44100")
    fmt.add_argument("--audio_format", "--audio-format", default="wav", choices=sorted(FORMATS))
    fmt.add_argument("--ref_num", "--ref-num", type=int, default=4)
    fmt.add_argument("--nj", type=int, default=1, help="parallel processes for conversion")
    flt.add_argument("--min_duration", "--min-duration", type=float, default=0.1)
    flt.add_argument(
        "--max_duration",
        "--max-duration",
        default="",
        help="accepted for ESPnet compatibility; never drops a song",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "fs":
            print(parse_fs(args.rate))
            return 0
        fs = parse_fs(args.fs)
        if not args.src.is_dir():
            raise FormatError(f"{args.src}: data directory not found (run the earlier stages)")
        args.dst.parent.mkdir(parents=True, exist_ok=True)
        if args.command == "format":
            print(run_format(args.src, args.dst, fs, args.audio_format, args.ref_num, args.nj))
        else:
            max_duration = float(args.max_duration) if args.max_duration.strip() else None
            for line in run_filter(args.src, args.dst, fs, args.min_duration, max_duration):
                print(line)
    except FormatError as err:
        print(f"format_data.py: error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"format_data.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
