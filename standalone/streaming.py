"""Pieces for separating a file chunk by chunk, without the track or its stems in memory.

``Separator.separate_file`` takes this path when it can (a seekable wav/flac/ogg file, or the
float32 copy ``audio_io.decode_to_wav`` makes of an mp3 file, at the model's sample rate, no
random shifts) and makes three passes over the data:

1. statistics: ``MixtureStats`` collects the mixture's mean, variance and peak block by block
   (for the variance normalisation the model was trained with);
2. separation: chunks are read with ``read_span``, separated and crossfaded
   (``chunking.OverlapAddStream``); finished samples go to ``StemScratch``, float32 scratch
   files that also track the stems' peak;
3. output: ``StemScratch.finish`` converts each scratch file to the requested format,
   rescaled or clamped by ``clip_mode``, and renames it into place atomically.

Memory then depends on the chunk size and the model, not on the track's length.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .audio_io import AudioError, _one_line, open_output

__all__ = ["MixtureStats", "StemScratch", "open_seekable", "read_blocks", "read_span"]

BLOCK_FRAMES = 1 << 18  # frames per read in the statistics and output passes
STREAMABLE_EXTENSIONS = (".wav", ".flac", ".ogg")  # mp3 seeking is not sample-exact everywhere


class MixtureStats:
    """Running statistics of ``[G, M, n]`` blocks along their last axis.

    ``count`` samples per row, per-row ``mean`` and ``m2`` (sum of squared deviations) in
    float64, merged block by block (Chan, Golub & LeVeque), and the absolute ``peak``.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None  # [G, M]
        self.m2: torch.Tensor | None = None  # [G, M]
        self.peak = 0.0

    def update(self, x: torch.Tensor) -> None:
        """Add a block ``[G, M, n]``."""
        n = x.shape[-1]
        if n == 0:
            return
        x64 = x.double()
        mean = x64.mean(dim=-1)
        m2 = (x64 - mean[..., None]).square().sum(dim=-1)
        if self.mean is None:
            self.mean, self.m2 = mean, m2
        else:
            total = self.count + n
            delta = mean - self.mean
            self.mean = self.mean + delta * (n / total)
            self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.count += n
        self.peak = max(self.peak, float(x.abs().max()))

    def std(self, per_channel: bool) -> torch.Tensor:
        """Unbiased standard deviation, float32: ``[G, M, 1]`` per channel, else ``[G, 1, 1]``
        over all channels of a row group.  NaN when there is a single sample."""
        if self.mean is None:
            raise ValueError("no samples were added")
        if per_channel:
            var = self.m2 / (self.count - 1) if self.count > 1 else self.m2 * float("nan")
            return var.sqrt().float()[..., None]
        channels = self.mean.shape[1]
        pooled_mean = self.mean.mean(dim=1, keepdim=True)
        m2 = self.m2.sum(dim=1) + (self.mean - pooled_mean).square().sum(dim=1) * self.count
        n = self.count * channels
        var = m2 / (n - 1) if n > 1 else m2 * float("nan")
        return var.sqrt().float()[:, None, None]


def open_seekable(path: Path) -> sf.SoundFile | None:
    """``path`` opened for reading if it can be streamed (a seekable wav/flac/ogg), else None
    (the caller then reads it whole, which also reports any error)."""
    if path.suffix.lower() not in STREAMABLE_EXTENSIONS:
        return None
    try:
        source = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError):
        return None
    if not source.seekable() or source.frames <= 0:
        source.close()
        return None
    return source


def read_blocks(source: sf.SoundFile, path: Path) -> Iterator[torch.Tensor]:
    """The whole file as float32 ``[C, n]`` blocks; raises AudioError on a decoding error or a
    non-finite sample."""
    source.seek(0)
    while True:
        block = read_span(source, path, None, BLOCK_FRAMES, exact=False)
        if block.shape[-1] == 0:
            return
        if not torch.isfinite(block).all():
            raise AudioError(f"{path}: file contains NaN or infinite samples")
        yield block


def read_span(
    source: sf.SoundFile, path: Path, start: int | None, frames: int, exact: bool = True
) -> torch.Tensor:
    """``frames`` samples from ``start`` (None: where the last read stopped) as float32
    ``[C, n]``; with ``exact``, fewer samples than asked is an error (a truncated file)."""
    try:
        if start is not None:
            source.seek(start)
        data = source.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        raise AudioError(f"{path}: cannot read audio: {_one_line(err)}") from None
    if exact and data.shape[0] != frames:
        raise AudioError(
            f"{path}: cannot read audio: file ends after {source.tell()} of {source.frames} samples"
        )
    return torch.from_numpy(np.ascontiguousarray(data.T))


class StemScratch:
    """Float32 scratch files of separated stems, written block by block.

    They live in a hidden temporary folder inside ``folder`` (the output folder, so there is
    room where the outputs go) that is removed on ``close``, whatever happened.  ``finish``
    writes the final files.  Use as a context manager.
    """

    def __init__(
        self, folder: Path, names: Sequence[str], sample_rate: int, channels: int, source: Path
    ):
        self.names = list(names)
        self.sample_rate, self.channels, self.source = sample_rate, channels, source
        self.peak = 0.0
        self._files: dict[str, sf.SoundFile] = {}
        try:
            self._dir = tempfile.TemporaryDirectory(prefix=".separate-", dir=folder)
            for i, name in enumerate(self.names):
                self._files[name] = sf.SoundFile(
                    os.path.join(self._dir.name, f"stem{i}.rf64"),
                    "w",
                    sample_rate,
                    channels,
                    subtype="FLOAT",
                    format="RF64",
                )
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            self.close()
            raise AudioError(
                f"{source}: cannot write stems to {folder}: {_one_line(err)}"
            ) from None
        self.folder = folder

    def __enter__(self) -> StemScratch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}
        if getattr(self, "_dir", None) is not None:
            self._dir.cleanup()
            self._dir = None

    def write(self, stems: dict[str, torch.Tensor]) -> None:
        """Append a block of every stem (name -> ``[C, n]``)."""
        try:
            for name in self.names:
                block = stems[name]
                self.peak = max(self.peak, float(block.abs().max()))
                self._files[name].write(block.numpy().T)
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            raise AudioError(
                f"{self.source}: cannot write stems to {self.folder}: {_one_line(err)}"
            ) from None

    def finish(
        self,
        targets: dict[str, Path],
        sample_format: str,
        clip_mode: str,
    ) -> None:
        """Write ``targets`` (name -> path) from the scratch files, each atomically, in order.
        ``clip_mode`` as in ``audio_io.clip_stems``:
        ``rescale`` divides all stems by their common peak when it exceeds 1."""
        scale = self.peak if clip_mode == "rescale" and self.peak > 1.0 else None
        for name, target in targets.items():
            scratch = self._files[name]
            scratch.close()
            with (
                sf.SoundFile(scratch.name) as f,
                open_output(target, self.sample_rate, self.channels, sample_format) as out,
            ):
                for block in f.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
                    wav = torch.from_numpy(block)
                    if scale is not None:
                        wav = wav / scale
                    elif clip_mode == "clamp":
                        wav = wav.clamp(-1.0, 1.0)
                    out.write(wav.numpy())
