"""Run a separator over a whole waveform: chunked overlap-add, STFT in and out, time shifts.

This is the model-facing core of separation. It works at the model's sample rate on a mixture
that is already normalised; file handling, resampling and channel mapping live in ``api.py``.
Only one batch of chunks is on the device at a time, so memory does not grow with the input's
length beyond the output buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .chunking import chunk_starts, overlap_add
from .stft import istft, stft

__all__ = ["StftConfig", "apply_model", "count_chunks", "separate_chunks"]


@dataclass(frozen=True)
class StftConfig:
    """The STFT the model was trained with (ESPnet ``encoder_conf``)."""

    n_fft: int
    hop_length: int
    win_length: int | None = None
    window: str | None = "hann"


def count_chunks(length: int, chunk_size: int | None, overlap: int) -> int:
    """How many chunks ``overlap_add`` cuts ``length`` samples into (for progress bars)."""
    if chunk_size is None:
        return 1
    return len(chunk_starts(length, chunk_size, overlap))


def separate_chunks(
    model: torch.nn.Module, chunks: torch.Tensor, cfg: StftConfig, device: torch.device
) -> torch.Tensor:
    """``[K, G, M, l]`` waveform chunks -> ``[K, G, N, M', l]`` separated chunks (on CPU).

    ``M'`` is the model's output channel count (1 when it returns ``[B, N, T, F]``).  Chunks
    shorter than ``n_fft`` (the end of a track) are zero-padded to it for the STFT.
    """
    k, g, m, length = chunks.shape
    with torch.inference_mode():
        wav = chunks.reshape(k * g, m, length).to(device)
        if length < cfg.n_fft:
            wav = torch.nn.functional.pad(wav, (0, cfg.n_fft - length))
        spec = stft(wav, cfg.n_fft, cfg.hop_length, cfg.win_length, cfg.window)  # [KG, M, T, F]
        est = model(spec)
        if est.ndim == 4:  # [KG, N, T, F]: single-channel output
            est = est.unsqueeze(2)
        out = istft(
            est, cfg.n_fft, cfg.hop_length, cfg.win_length, cfg.window, length=wav.shape[-1]
        )
        out = out[..., :length]
    out = out.reshape(k, g, *out.shape[1:]).to("cpu", torch.float32)
    # an inference tensor cannot be modified in place later: hand back an ordinary one
    return out.clone() if out.is_inference() else out


def apply_model(
    model: torch.nn.Module,
    mix: torch.Tensor,
    cfg: StftConfig,
    chunk_size: int | None,
    overlap: int,
    batch_size: int = 1,
    shifts: int = 0,
    max_shift: int = 0,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Separate a mixture at the model's sample rate.

    Args:
        model: separator mapping complex ``[B, M, T, F]`` to ``[B, N, T, F]`` or
            ``[B, N, M', T, F]``, already on ``device`` and in eval mode.
        mix: ``[G, M, L]`` float waveform on CPU; the ``G`` items are separated independently
            (e.g. the two channels of a stereo file given to a mono model).
        cfg: STFT settings of the model.
        chunk_size: samples per chunk, or None to process the whole input in one pass. Must
            exceed ``n_fft // 2`` (reflect padding of the centred STFT).
        overlap: samples shared by neighbouring chunks (crossfaded).
        batch_size: chunks per forward pass.
        shifts: number of random time shifts to average (0: one pass without shifting).
        max_shift: shifts are drawn uniformly from ``[0, max_shift)`` samples.
        generator: random source for the shifts (seed it for reproducible output).
        device: where the model runs; chunks move there and results come back to CPU.
        progress: called with the number of chunks finished after each forward pass.

    Returns:
        ``[G, N, M', L]`` float32 on CPU.
    """
    if mix.ndim != 3:
        raise ValueError(f"mix must be [G, M, L], got shape {tuple(mix.shape)}")
    length = mix.shape[-1]
    if chunk_size is not None and chunk_size <= cfg.n_fft // 2:
        raise ValueError(f"chunk_size {chunk_size} must exceed n_fft // 2 = {cfg.n_fft // 2}")
    if length <= cfg.n_fft // 2:
        raise ValueError(f"input of {length} samples is too short for n_fft={cfg.n_fft}")
    device = torch.device(device)

    def run(x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-1] if chunk_size is None else chunk_size
        return overlap_add(
            lambda chunks: separate_chunks(model, chunks, cfg, device),
            x,
            dim=-1,
            chunk_size=size,
            overlap=min(overlap, size - 1),
            batch_size=batch_size,
            progress=progress,
        )

    with torch.no_grad():  # the model itself runs under inference_mode, chunk by chunk
        if shifts <= 0 or max_shift <= 0:
            return run(mix)
        padded = torch.nn.functional.pad(mix, (max_shift, max_shift))
        total = None
        for _ in range(shifts):
            offset = int(torch.randint(0, max_shift, (1,), generator=generator))
            # the window starts `offset` samples into the padding, so the mixture sits at
            # position max_shift - offset inside it
            shifted = padded[..., offset : offset + length + max_shift]
            out = run(shifted)[..., max_shift - offset : max_shift - offset + length]
            total = out.clone() if total is None else total.add_(out)
            del out
        return total.div_(shifts)
