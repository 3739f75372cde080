#!/usr/bin/env python3
"""MUSDB18-HQ root -> Kaldi-style data directories ``{data}/{train,valid,test}``.

Each directory gets:
    wav.scp             uttid -> mixture.wav (absolute path; it may contain spaces)
    spk1.scp..spk4.scp  uttid -> stem wav, in the order of local/stems.py (vocals drums bass other)
    utt2spk, spk2utt    every track is its own "speaker"
    utt2dur             uttid -> duration in seconds
    stems               the stem names, line i naming spk{i}

Utterance ids are the track names with every run of characters outside [A-Za-z0-9.-] replaced by
one '_' ("Johnny Lokke - Promises & Lies" -> "Johnny_Lokke_-_Promises_Lies"), sorted.
ESPnet reads scp files by splitting each line at the first whitespace only, so the paths after
the id may contain spaces.

The 14 standard MUSDB validation tracks move from train to valid; ``--valid-list FILE`` (one
track name per line) replaces that list, e.g. for the synthetic set.

Every track is checked before anything is written: all five files exist, and each stem has the
mixture's length, channel count and sample rate (read from the headers only). The data
directories are written to a temporary folder first and moved into place at the end.

``--format stem_mp4`` reads the compressed MUSDB18 (``{root}/{train,test}/*.stem.mp4``) instead:
each track is decoded once with stempeg/ffmpeg into MUSDB18-HQ layout under ``--decode-dir``
(PCM 16-bit wav) and the data directories point at those files.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from stems import MIXTURE, SPLITS_ON_DISK, STEMS, VALIDATION_TRACKS, spk_name

# Stream order inside MUSDB18 .stem.mp4 files (musdb/configs/mus.yaml, `stem_ids`).
STEM_MP4_STREAMS = {MIXTURE: 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}
STEM_MP4_SUFFIX = ".stem.mp4"


class DataError(Exception):
    """A problem with the dataset or the options; printed as one line without a traceback."""


@dataclass
class Track:
    name: str  # folder name, e.g. "Actions - One Minute Smile"
    uttid: str
    folder: Path  # absolute
    num_frames: int
    sample_rate: int


def make_uttid(name: str) -> str:
    """Track name -> utterance id without whitespace or shell-special characters."""
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", name).strip("_")


def read_track_list(path: Path) -> list[str]:
    """Track names, one per line; blank lines and lines starting with '#' are ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"{path}: cannot read the validation list ({err.strerror})") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def audio_info(path: Path, track: str):
    if not path.is_file():
        raise DataError(f"track '{track}' has no {path.name} (expected {path})")
    try:
        return sf.info(str(path))
    except sf.LibsndfileError as err:
        raise DataError(f"{path}: cannot read the audio header ({err})") from None


def check_track(folder: Path) -> Track:
    """Check one track folder; returns its description (only headers are read)."""
    name = folder.name
    mix = audio_info(folder / f"{MIXTURE}.wav", name)
    mix_shape = (mix.frames, mix.channels)
    for stem in STEMS:
        info = audio_info(folder / f"{stem}.wav", name)
        if (info.frames, info.channels) != mix_shape:
            raise DataError(
                f"track '{name}': {stem}.wav has (frames, channels) = "
                f"{(info.frames, info.channels)} but {MIXTURE}.wav has {mix_shape}"
            )
        if info.samplerate != mix.samplerate:
            raise DataError(
                f"track '{name}': {stem}.wav is {info.samplerate} Hz but {MIXTURE}.wav is "
                f"{mix.samplerate} Hz"
            )
    return Track(name, make_uttid(name), folder.resolve(), mix.frames, mix.samplerate)


def scan_root(root: Path) -> dict[str, list[Track]]:
    """Check every track under ``root/{train,test}``; returns tracks per split, sorted by id."""
    if not root.is_dir():
        raise DataError(
            f"MUSDB18-HQ root not found: {root} "
            "(set MUSDB18HQ=/path/to/musdb18hq in db.sh or pass --musdb_root)"
        )
    out = {}
    for split in SPLITS_ON_DISK:
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(
                f"{root}: no '{split}' folder; is this the MUSDB18-HQ root? (MUSDB18HQ= in db.sh)"
            )
        folders = sorted(
            p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if not folders:
            raise DataError(f"{split_dir}: no track folders")
        tracks = sorted((check_track(f) for f in folders), key=lambda t: t.uttid)
        out[split] = tracks
    seen: dict[str, Track] = {}
    for track in out["train"] + out["test"]:
        if not track.uttid:
            raise DataError(f"{track.folder}: the track name gives an empty utterance id")
        if track.uttid in seen:
            raise DataError(
                f"tracks '{seen[track.uttid].folder}' and '{track.folder}' map to the same "
                f"utterance id '{track.uttid}'"
            )
        seen[track.uttid] = track
    return out


def split_validation(
    tracks: dict[str, list[Track]], valid_names: list[str], list_source: str
) -> dict[str, list[Track]]:
    """Move the tracks named in ``valid_names`` from train to valid (order stays sorted)."""
    train_names = {t.name for t in tracks["train"]}
    missing = [name for name in valid_names if name not in train_names]
    if missing:
        raise DataError(
            f"{list_source}: {len(missing)} validation track(s) not among the training tracks: "
            + "; ".join(missing)
            + " (pass --valid_list FILE to use another list)"
        )
    wanted = set(valid_names)
    return {
        "train": [t for t in tracks["train"] if t.name not in wanted],
        "valid": [t for t in tracks["train"] if t.name in wanted],
        "test": tracks["test"],
    }


def write_data_dir(out: Path, tracks: list[Track]) -> None:
    """Write the Kaldi-style files of one split into the new folder ``out``."""
    out.mkdir(parents=True)

    def write(filename: str, rows: list[tuple[str, str]]) -> None:
        text = "".join(f"{key} {value}\n" for key, value in rows)
        (out / filename).write_text(text, encoding="utf-8")

    write("wav.scp", [(t.uttid, str(t.folder / f"{MIXTURE}.wav")) for t in tracks])
    for i, stem in enumerate(STEMS):
        write(f"{spk_name(i)}.scp", [(t.uttid, str(t.folder / f"{stem}.wav")) for t in tracks])
    write("utt2spk", [(t.uttid, t.uttid) for t in tracks])
    write("spk2utt", [(t.uttid, t.uttid) for t in tracks])
    write("utt2dur", [(t.uttid, f"{t.num_frames / t.sample_rate:.4f}") for t in tracks])
    (out / "stems").write_text("".join(f"{s}\n" for s in STEMS), encoding="utf-8")


def install_data_dirs(data_dir: Path, splits: dict[str, list[Track]]) -> None:
    """Write all splits to a temporary folder inside ``data_dir``, then swap them in."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".prepare_musdb-", dir=data_dir))
    try:
        for split, tracks in splits.items():
            write_data_dir(tmp / "new" / split, tracks)
        (tmp / "old").mkdir()
        for split in splits:
            target = data_dir / split
            if target.exists():
                os.replace(target, tmp / "old" / split)
            os.replace(tmp / "new" / split, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def decode_stem_mp4(root: Path, decode_dir: Path) -> Path:
    """Decode ``root/{train,test}/*.stem.mp4`` to MUSDB18-HQ layout under ``decode_dir``.

    Tracks already decoded (their folder exists) are skipped; each track is written to a
    temporary folder and renamed when complete. Returns ``decode_dir``.
    """
    if not root.is_dir():
        raise DataError(
            f"MUSDB18 root not found: {root} "
            "(set MUSDB18HQ=/path/to/musdb18 in db.sh or pass --musdb_root)"
        )
    try:
        import stempeg
    except ImportError:
        raise DataError(
            "--format stem_mp4 needs the stempeg package (pip install stempeg) and ffmpeg on PATH"
        ) from None
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise DataError("--format stem_mp4 needs ffmpeg and ffprobe on PATH")
    for split in SPLITS_ON_DISK:
        files = sorted((root / split).glob(f"*{STEM_MP4_SUFFIX}"))
        if not files:
            raise DataError(f"{root / split}: no *{STEM_MP4_SUFFIX} files")
        (decode_dir / split).mkdir(parents=True, exist_ok=True)
        for path in files:
            target = decode_dir / split / path.name[: -len(STEM_MP4_SUFFIX)]
            if target.is_dir():
                continue
            try:
                audio, rate = stempeg.read_stems(str(path), dtype=np.float32)
            except Exception as err:  # stempeg raises various ffmpeg/probe errors
                raise DataError(f"{path}: cannot decode ({err})") from None
            if audio.ndim != 3 or audio.shape[0] != len(STEM_MP4_STREAMS):
                raise DataError(
                    f"{path}: expected {len(STEM_MP4_STREAMS)} stereo streams, "
                    f"got array of shape {audio.shape}"
                )
            tmp = Path(tempfile.mkdtemp(prefix=".decode-", dir=decode_dir / split))
            try:
                for stem, index in STEM_MP4_STREAMS.items():
                    sf.write(
                        tmp / f"{stem}.wav",
                        np.clip(audio[index], -1.0, 1.0),
                        int(rate),
                        subtype="PCM_16",
                    )
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(f"decoded {path.name}", file=sys.stderr)
    return decode_dir


def prepare(
    musdb_root: Path,
    data_dir: Path,
    valid_list: Path | None = None,
    audio_format: str = "wav",
    decode_dir: Path | None = None,
) -> dict[str, list[Track]]:
    """Check the dataset and write ``data_dir/{train,valid,test}``; returns the tracks per split."""
    root = Path(musdb_root)
    if audio_format == "stem_mp4":
        if decode_dir is None:
            raise DataError("--format stem_mp4 needs --decode_dir (where the wav files go)")
        root = decode_stem_mp4(root, Path(decode_dir))
    elif audio_format != "wav":
        raise DataError(f"--format must be 'wav' or 'stem_mp4', got '{audio_format}'")
    tracks = scan_root(root)
    if valid_list is None:
        splits = split_validation(tracks, list(VALIDATION_TRACKS), "standard MUSDB validation set")
    else:
        splits = split_validation(tracks, read_track_list(valid_list), str(valid_list))
    install_data_dirs(Path(data_dir), splits)
    return splits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="MUSDB18-HQ -> data/{train,valid,test} (Kaldi-style, stems: "
        + " ".join(f"{spk_name(i)}={s}" for i, s in enumerate(STEMS))
        + ")"
    )
    parser.add_argument(
        "--musdb-root",
        "--musdb_root",
        required=True,
        type=Path,
        help="folder holding train/ and test/",
    )
    parser.add_argument(
        "--data-dir",
        "--data_dir",
        default=Path("data"),
        type=Path,
        help="where train/, valid/ and test/ are written (default: data)",
    )
    parser.add_argument(
        "--valid-list",
        "--valid_list",
        type=Path,
        default=None,
        help="file with one training track name per line to use for validation "
        "(default: the 14 standard MUSDB validation tracks)",
    )
    parser.add_argument(
        "--format",
        dest="audio_format",
        default="wav",
        choices=("wav", "stem_mp4"),
        help="wav: MUSDB18-HQ; stem_mp4: compressed MUSDB18, decoded first",
    )
    parser.add_argument(
        "--decode-dir",
        "--decode_dir",
        type=Path,
        default=None,
        help="with --format stem_mp4: output folder for the decoded wav files",
    )
    args = parser.parse_args(argv)
    try:
        splits = prepare(
            args.musdb_root, args.data_dir, args.valid_list, args.audio_format, args.decode_dir
        )
    except DataError as err:
        print(f"prepare_musdb.py: error: {err}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{split}: {len(tracks)}" for split, tracks in splits.items())
    print(f"Wrote {args.data_dir}/{{train,valid,test}} ({counts} tracks; stems {' '.join(STEMS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
