"""Reading and writing audio files for separation (soundfile, with an ffmpeg fallback for mp3).

Every failure is raised as :class:`AudioError` whose message is one line that starts with the
file's path. Writes are atomic: the data goes to a hidden temporary file in the target folder,
which is renamed over the destination only once it is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

__all__ = [
    "AUDIO_EXTENSIONS",
    "CLIP_MODES",
    "SAMPLE_FORMATS",
    "AudioError",
    "clip_stems",
    "open_output",
    "read_audio",
    "write_audio",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
OUTPUT_EXTENSIONS = {".wav": "WAV", ".flac": "FLAC"}
SAMPLE_FORMATS = {"int16": "PCM_16", "int24": "PCM_24", "float32": "FLOAT"}
CLIP_MODES = ("rescale", "clamp", "none")


class AudioError(Exception):
    """A file could not be read or written; ``str(err)`` is one line naming the file."""


def _one_line(err: BaseException) -> str:
    text = getattr(err, "error_string", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def _sndfile_reads_mp3() -> bool:
    """libsndfile >= 1.1 decodes MPEG layer III itself."""
    return "MP3" in sf.available_formats()


def decode_to_wav(path: Path, wav_path: str) -> None:
    """Decode ``path`` (mp3) to a float32 wav file ``wav_path`` without holding it in memory:
    block by block with libsndfile when it reads mp3, else with ffmpeg."""
    if _sndfile_reads_mp3():
        try:
            with (
                sf.SoundFile(path) as src,
                sf.SoundFile(
                    wav_path, "w", src.samplerate, src.channels, subtype="FLOAT", format="RF64"
                ) as dst,
            ):
                for block in src.blocks(1 << 18, dtype="float32", always_2d=True):
                    dst.write(block)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
            raise AudioError(f"{path}: cannot read audio: {_one_line(err)}") from None
        return
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(
            f"{path}: cannot decode mp3: libsndfile {sf.__libsndfile_version__} has no mp3 "
            "support and ffmpeg is not on PATH (install ffmpeg or libsndfile >= 1.1)"
        )
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(path), "-c:a", "pcm_f32le"]
    proc = subprocess.run([*cmd, "-rf64", "auto", wav_path], capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.isfile(wav_path):
        reason = " ".join(proc.stderr.split()) or f"ffmpeg exit status {proc.returncode}"
        raise AudioError(f"{path}: cannot read audio: {reason}")


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Decode any ffmpeg-readable file to float32 ``[L, C]`` through a temporary wav file."""
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = os.path.join(tmp, "decoded.wav")
        decode_to_wav(path, wav_path)
        data, sample_rate = sf.read(wav_path, dtype="float32", always_2d=True)
    return data, sample_rate


def read_audio(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """Read a wav/flac/ogg/mp3 file.

    Returns:
        wav: float32 ``[C, L]`` in [-1, 1] for integer sources, ``L >= 1``.
        sample_rate: in Hz.

    Raises:
        AudioError: unknown extension, missing, unreadable or corrupt file, no samples, or
            non-finite samples.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in AUDIO_EXTENSIONS:
        raise AudioError(
            f"{path}: unsupported extension '{path.suffix}' (expected one of "
            f"{', '.join(AUDIO_EXTENSIONS)})"
        )
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if ext == ".mp3" and not _sndfile_reads_mp3():
        data, sample_rate = _decode_with_ffmpeg(path)
    else:
        try:
            data, sample_rate = sf.read(path, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
            raise AudioError(f"{path}: cannot read audio: {_one_line(err)}") from None
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"{path}: file is empty (0 samples)")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: file contains NaN or infinite samples")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(sample_rate)


def clip_stems(stems: dict[str, torch.Tensor], mode: str) -> dict[str, torch.Tensor]:
    """Keep stems within full scale before they are written.

    Args:
        stems: name -> ``[C, L]`` waveform.
        mode: ``rescale``: if any sample of any stem exceeds 1, divide every stem by the same
            peak (so the stems of a track still add up to a scaled mixture); ``clamp``: clip
            each sample to [-1, 1]; ``none``: unchanged (integer formats still saturate at full
            scale when written; float32 keeps the values).
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"unknown clip mode '{mode}' (expected one of {', '.join(CLIP_MODES)})")
    if mode == "clamp":
        return {name: wav.clamp(-1.0, 1.0) for name, wav in stems.items()}
    if mode == "rescale" and stems:
        peak = max(float(wav.abs().max()) for wav in stems.values())
        if peak > 1.0:
            return {name: wav / peak for name, wav in stems.items()}
    return dict(stems)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def open_output(
    path: str | os.PathLike, sample_rate: int, channels: int, sample_format: str = "int16"
) -> Iterator[sf.SoundFile]:
    """A ``soundfile.SoundFile`` to write ``path`` (wav or flac, by extension) atomically.

    The samples go to a hidden temporary file in the target folder, which replaces ``path``
    when the block ends without an error; on any error it is deleted, so neither a partial
    file nor a temporary one is left behind.

    Raises:
        AudioError: unsupported extension/format pair or any write failure.
    """
    path = Path(path)
    container = OUTPUT_EXTENSIONS.get(path.suffix.lower())
    if container is None:
        raise AudioError(
            f"{path}: cannot write '{path.suffix}' files (use {' or '.join(OUTPUT_EXTENSIONS)})"
        )
    if sample_format not in SAMPLE_FORMATS:
        raise AudioError(f"{path}: unknown sample format '{sample_format}'")
    subtype = SAMPLE_FORMATS[sample_format]
    if not sf.check_format(container, subtype):
        raise AudioError(f"{path}: {container} cannot store {sample_format} samples")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as err:
        raise AudioError(f"{path}: cannot write to {path.parent}: {_one_line(err)}") from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())
        with sf.SoundFile(
            tmp, "w", int(sample_rate), channels, subtype=subtype, format=container
        ) as out:
            yield out
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, (OSError, RuntimeError, ValueError)):
            raise AudioError(f"{path}: cannot write: {_one_line(err)}") from None
        raise


def write_audio(
    path: str | os.PathLike,
    wav: torch.Tensor,
    sample_rate: int,
    sample_format: str = "int16",
) -> None:
    """Write ``wav`` ``[C, L]`` atomically as wav or flac (chosen by the file's extension).

    Args:
        sample_format: ``int16``, ``int24`` or ``float32`` (float32 is wav only).

    Raises:
        AudioError: unsupported extension/format pair or any write failure; no file (final or
            temporary) is left behind in that case.
    """
    data = wav.detach().to("cpu", torch.float32).numpy().T  # [L, C]
    with open_output(path, sample_rate, data.shape[1], sample_format) as out:
        out.write(data)
