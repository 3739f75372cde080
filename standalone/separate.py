"""Command line: split songs (or speech mixtures) into stems with a trained separator.

    python separate.py --model_dir exp/enh_train_enh_bslocoformer_raw song.mp3 albums/
    python separate.py --config conf.yaml --checkpoint model.pth --two-stems vocals --flac in.wav

Inputs are files and folders (searched recursively for wav, flac, ogg and mp3). A file given
directly is written to ``{output_dir}/{name}/{stem}.wav``; files found in a folder keep their
path below that folder as the track name (``album/01 song/vocals.wav``), so MUSDB-style
``{track}/mixture.wav`` inputs do not collide. Exit status: 0 when every file was separated
(or its outputs already existed), 1 when any file failed (the others are still processed),
2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from .api import (
    DEFAULT_FILENAME,
    DEFAULT_OVERLAP,
    DEFAULT_SEGMENT,
    FALLBACK_SEGMENT,
    Separator,
    check_template,
    output_stem_names,
    parse_segment,
)
from .audio_io import AUDIO_EXTENSIONS, CLIP_MODES, AudioError
from .checkpoint import CheckpointError

__all__ = ["build_parser", "collect_inputs", "main"]

DEFAULT_OUTPUT_DIR = "separated"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="separate.py",
        description="Separate audio files into stems with a TF-Locoformer / BS-Locoformer model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Stems keep the input's sample rate, length and channel count: a mono file given "
        "to a stereo model fills both model channels and the result is averaged back to mono; "
        "a stereo file given to a mono model is separated one channel at a time; files with "
        "more channels than that need --downmix (stems then have the model's channel count). "
        "Exit status: 0 all files done, 1 some failed, 2 usage error.",
    )
    p.add_argument("inputs", nargs="+", type=Path, help="audio files and/or folders")
    model = p.add_argument_group("model")
    model.add_argument(
        "-n",
        "--model_dir",
        "--model-dir",
        type=Path,
        help="ESPnet experiment folder (config.yaml + the averaged best .pth)",
    )
    model.add_argument("--config", type=Path, help="config.yaml (with --checkpoint)")
    model.add_argument("--checkpoint", type=Path, help="model .pth (with --config)")
    model.add_argument(
        "--sample_rate",
        "--sample-rate",
        type=int,
        help="the model's sample rate in Hz, for configs that do not record it",
    )
    model.add_argument(
        "-d",
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu, cuda or cuda:N",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output_dir",
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help="output folder (created if missing)",
    )
    out.add_argument(
        "--filename",
        default=DEFAULT_FILENAME,
        help="output path below the output folder; keys {track} {trackext} {stem} {ext}",
    )
    which = out.add_mutually_exclusive_group()
    which.add_argument("--stems", help="comma-separated stems to write, e.g. vocals,drums")
    which.add_argument(
        "--two-stems",
        "--two_stems",
        dest="two_stems",
        metavar="STEM",
        help="write STEM and no_STEM (the sum of all other stems)",
    )
    out.add_argument("--flac", action="store_true", help="write flac instead of wav")
    bits = out.add_mutually_exclusive_group()
    bits.add_argument("--int24", action="store_true", help="24-bit integer samples")
    bits.add_argument("--float32", action="store_true", help="32-bit float samples (wav only)")
    out.add_argument(
        "--clip-mode",
        "--clip_mode",
        dest="clip_mode",
        choices=CLIP_MODES,
        default="rescale",
        help="rescale: divide all stems of a track by their peak when it exceeds 1; "
        "clamp: clip samples; none: leave as is",
    )
    out.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    run = p.add_argument_group("separation")
    run.add_argument(
        "--segment",
        type=_segment_arg,
        default=DEFAULT_SEGMENT,
        help="chunk length in seconds; auto: the model's training segment (else "
        f"{FALLBACK_SEGMENT:g} s); 0: whole track at once",
    )
    run.add_argument(
        "--overlap", type=float, default=DEFAULT_OVERLAP, help="fraction of a chunk crossfaded"
    )
    run.add_argument("--shifts", type=int, default=0, help="random time shifts to average")
    run.add_argument("--seed", type=int, help="seed for --shifts")
    run.add_argument(
        "-b",
        "--batch-size",
        "--batch_size",
        dest="batch_size",
        type=int,
        default=1,
        help="chunks per forward pass",
    )
    run.add_argument(
        "--downmix",
        action="store_true",
        help="average channels down to the model's count (needed for files with >2 channels)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only print errors")
    return p


def _segment_arg(text: str) -> float | str | None:
    try:
        return parse_segment(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors (exit status 2) that argparse cannot express."""
    if args.model_dir is None and (args.config is None or args.checkpoint is None):
        parser.error("give --model_dir, or both --config and --checkpoint")
    if args.flac and args.float32:
        parser.error("--flac cannot store --float32 samples (use --int24)")
    if not 0 <= args.overlap < 1:
        parser.error(f"--overlap must be in [0, 1), got {args.overlap}")
    if args.shifts < 0:
        parser.error(f"--shifts must be >= 0, got {args.shifts}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.sample_rate is not None and args.sample_rate <= 0:
        parser.error(f"--sample_rate must be positive, got {args.sample_rate}")
    try:
        check_template(args.filename)
        device = torch.device(args.device)
    except (ValueError, RuntimeError) as err:
        parser.error(str(err))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"device {args.device}: CUDA is not available")


def _inside(path: Path, folder: Path) -> bool:
    return folder == path or folder in path.parents


def collect_inputs(
    paths: Sequence[Path], output_dir: Path
) -> tuple[list[tuple[Path, str]], list[str]]:
    """Expand files and folders into ``(file, track name)`` pairs.

    Folders are searched recursively for audio files (hidden entries and anything inside
    ``output_dir`` are ignored); their track name is the path below the folder without the
    extension. Returns the pairs (each file once, in order) and one error line per input
    that is missing or a folder without audio.
    """
    out_root = output_dir.resolve()
    found: list[tuple[Path, str]] = []
    errors: list[str] = []
    seen: set[Path] = set()

    def add(file: Path, track: str) -> None:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            found.append((file, track))

    for path in paths:
        if path.is_dir():
            files = sorted(
                f
                for f in path.rglob("*")
                if f.suffix.lower() in AUDIO_EXTENSIONS
                and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
                and not _inside(f.resolve(), out_root)
            )
            if not files:
                errors.append(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
            for f in files:
                add(f, f.relative_to(path).with_suffix("").as_posix())
        elif path.exists():
            add(path, path.stem)
        else:
            errors.append(f"{path}: no such file or folder")
    return found, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)

    def info(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    def error(msg: str) -> None:
        print(f"error: {msg}", file=sys.stderr, flush=True)

    try:
        sep = Separator.from_pretrained(
            model_dir=args.model_dir,
            device=args.device,
            checkpoint=args.checkpoint,
            config=args.config,
            segment=args.segment,
            overlap=args.overlap,
            shifts=args.shifts,
            batch_size=args.batch_size,
            seed=args.seed,
            sample_rate=args.sample_rate,
            progress=not args.quiet,
        )
    except CheckpointError as err:
        error(str(err))
        return 1
    stems = [s.strip() for s in args.stems.split(",") if s.strip()] if args.stems else None
    try:
        names = output_stem_names(sep.stem_names, stems, args.two_stems)
    except ValueError as err:
        parser.print_usage(sys.stderr)
        error(str(err))
        return 2
    ext = "flac" if args.flac else "wav"
    sample_format = "int24" if args.int24 else "float32" if args.float32 else "int16"
    rate = f"{sep.sample_rate} Hz" if sep.sample_rate else "the input's rate"
    info(f"model: {sep.info['separator']}, stems {', '.join(sep.stem_names)}, runs at {rate}")

    inputs, failures = collect_inputs(args.inputs, args.output_dir)
    for msg in failures:
        error(msg)
    protected = [f for f, _ in inputs]
    claimed: dict[Path, Path] = {}  # output path -> input that writes it
    done = skipped_tracks = 0
    for i, (path, track) in enumerate(inputs, 1):
        try:
            targets = sep.output_paths(path, args.output_dir, args.filename, names, ext, track)
            for target in targets.values():
                other = claimed.get(target.resolve())
                if other is not None:
                    raise AudioError(
                        f"{path}: output {target} is already written for {other} (give the "
                        "inputs distinct names or use {trackext} in --filename)"
                    )
            claimed.update({t.resolve(): path for t in targets.values()})
            info(f"[{i}/{len(inputs)}] {path}")
            result = sep.separate_file(
                path,
                args.output_dir,
                filename=args.filename,
                stems=stems,
                two_stems=args.two_stems,
                audio_format=ext,
                sample_format=sample_format,
                clip_mode=args.clip_mode,
                overwrite=args.overwrite,
                downmix=args.downmix,
                track=track,
                protected=protected,
            )
        except (AudioError, ValueError) as err:
            error(str(err) if str(err).startswith(str(path)) else f"{path}: {err}")
            failures.append(str(path))
            continue
        except Exception as err:  # noqa: BLE001 -- one bad file must not stop the others
            error(f"{path}: {type(err).__name__}: {' '.join(str(err).split())}")
            failures.append(str(path))
            continue
        for target in result.skipped:
            info(f"  kept existing {target} (use --overwrite to replace it)")
        if result.written:
            done += 1
            info(f"  wrote {len(result.written)} file(s) to {result.written[0].parent}")
        else:
            skipped_tracks += 1
    info(f"done: {done} separated, {skipped_tracks} already done, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
