#!/usr/bin/env python3
"""Stage 7 of the MUSDB18-HQ recipe: separate whole tracks listed in a wav.scp with a trained model.

    local/separate_dir.py separate --model_dir exp/enh_x --wav_scp data/test/wav.scp \\
        --out_dir exp/enh_x/enhanced_test [--checkpoint exp/enh_x/valid.loss.ave.pth] \\
        [--scp_dir DIR] [--segment auto] [--overlap 0.25] [--batch_size 1] [--shifts 0] \\
        [--device cpu]
    local/separate_dir.py merge --out_dir exp/enh_x/enhanced_test [--ref_num 4] DIR [DIR ...]

``separate`` writes ``{out_dir}/wavs/{uttid}/{stem}.wav`` (32-bit float, so nothing is clipped:
the stems keep the input's scale, rate, length and channels) and ``spk1.scp`` ..
``spk4.scp`` (uttid -> stem file, stems in the order of local/stems.py) into ``--scp_dir``
(default ``--out_dir``). Tracks are processed one at a time in overlapping chunks of
``--segment`` seconds (standalone.api.Separator), so memory does not grow with the number of
tracks and stays bounded per track. ``merge`` joins the scp files of parallel jobs into
``{out_dir}/spk*.scp``, sorted by uttid.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import soundfile as sf
import torch
from stems import STEMS, spk_name
from textio import write_text_atomic


class SeparationError(Exception):
    """A problem with the inputs; printed as one line without a traceback."""


def standalone_package():
    """The standalone package: this repository's copy, else the one installed in ESPnet."""
    repo_root = Path(__file__).resolve().parents[4]
    if (repo_root / "standalone" / "__init__.py").is_file():
        if str(repo_root) not in sys.path:
            sys.path.insert(0, str(repo_root))
        return importlib.import_module("standalone")
    return importlib.import_module("espnet2.enh.separator.locoformer")


def read_scp(path: Path) -> list[tuple[str, str]]:
    """Kaldi-style 'uttid path' lines (the path may contain spaces) in file order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SeparationError(f"{path}: file not found") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise SeparationError(f"{path}: line {number} has a key but no path")
        rows.append((parts[0], parts[1].strip()))
    return rows


def stem_order(model_stems: list[str]) -> list[str]:
    """Check that the model separates the recipe's stems; returns them in STEMS order."""
    if sorted(model_stems) != sorted(STEMS):
        raise SeparationError(
            f"the model's stems {model_stems} are not the recipe's {list(STEMS)}; "
            "set separator_conf.stem_names in the training config"
        )
    return list(STEMS)


def separate(args: argparse.Namespace) -> int:
    package = standalone_package()
    api = importlib.import_module(f"{package.__name__}.api")
    audio_io = importlib.import_module(f"{package.__name__}.audio_io")
    try:
        segment = api.parse_segment(args.segment)
    except ValueError as err:
        print(f"error: --segment: {err}", file=sys.stderr)
        return 2
    try:
        separator = api.Separator.from_pretrained(
            model_dir=args.model_dir,
            checkpoint=args.checkpoint,
            device=args.device,
            segment=segment,
            overlap=args.overlap,
            shifts=args.shifts,
            batch_size=args.batch_size,
            seed=0,
        )
    except package.CheckpointError as err:
        raise SeparationError(str(err)) from None
    stems = stem_order(separator.stem_names)
    tracks = read_scp(args.wav_scp)
    scp_rows: dict[str, list[str]] = {stem: [] for stem in stems}
    print(f"Separating {len(tracks)} track(s) from {args.wav_scp} into {args.out_dir}/wavs")
    for uttid, path in tracks:
        start = time.monotonic()
        try:
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise SeparationError(f"{path}: cannot read audio ({err})") from None
        if audio.shape[0] == 0:
            raise SeparationError(f"{path}: empty audio file")
        with torch.inference_mode():
            result = separator(torch.from_numpy(audio.T.copy()), rate)
        for stem in stems:
            out = args.out_dir / "wavs" / uttid / f"{stem}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                audio_io.write_audio(out, result[stem], rate, "float32")
            except audio_io.AudioError as err:
                raise SeparationError(str(err)) from None
            scp_rows[stem].append(f"{uttid} {out}\n")
        seconds = audio.shape[0] / rate
        print(f"{uttid}: {seconds:.1f} s of audio in {time.monotonic() - start:.1f} s")
    scp_dir = args.scp_dir or args.out_dir
    for index, stem in enumerate(stems):
        write_text_atomic(scp_dir / f"{spk_name(index)}.scp", "".join(scp_rows[stem]))
    return 0


def merge(args: argparse.Namespace) -> int:
    for n in range(args.ref_num):
        rows: dict[str, str] = {}
        for folder in args.dirs:
            for uttid, path in read_scp(folder / f"{spk_name(n)}.scp"):
                if uttid in rows:
                    raise SeparationError(f"{uttid} was separated by more than one job")
                rows[uttid] = path
        text = "".join(f"{uttid} {rows[uttid]}\n" for uttid in sorted(rows))
        write_text_atomic(args.out_dir / f"{spk_name(n)}.scp", text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sep = sub.add_parser("separate", help="separate the tracks of a wav.scp")
    sep.add_argument("--model_dir", type=Path, required=True, help="ESPnet experiment dir")
    sep.add_argument("--checkpoint", type=Path, default=None, help="default: the best average")
    sep.add_argument("--wav_scp", type=Path, required=True)
    sep.add_argument("--out_dir", type=Path, required=True)
    sep.add_argument("--scp_dir", type=Path, default=None, help="default: --out_dir")
    sep.add_argument(
        "--segment",
        default="auto",
        help="chunk length in seconds; auto: the training segment of the model; 0: whole track",
    )
    sep.add_argument("--overlap", type=float, default=0.25, help="fraction of a chunk")
    sep.add_argument("--batch_size", type=int, default=1, help="chunks per forward pass")
    sep.add_argument("--shifts", type=int, default=0, help="random time shifts to average")
    sep.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    mrg = sub.add_parser("merge", help="join the spk*.scp files of parallel jobs")
    mrg.add_argument("--out_dir", type=Path, required=True)
    mrg.add_argument("--ref_num", type=int, default=len(STEMS))
    mrg.add_argument("dirs", type=Path, nargs="+", help="scp dirs of the jobs")
    args = parser.parse_args(argv)
    try:
        return separate(args) if args.command == "separate" else merge(args)
    except (SeparationError, ValueError) as err:
        print(f"separate_dir.py: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
