"""Overlap-add over chunks of a long input, so memory does not grow with its length.

``overlap_add`` cuts a tensor into overlapping chunks along one axis, runs a function on
batches of chunks, and blends the results with a raised-cosine crossfade in the overlaps
(the weights are normalised, so a function that is the identity gives the input back
exactly).  It serves both the frame-domain inference of the networks
(``chunked_separation``) and the waveform-domain inference of ``separate.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def crossfade_window(chunk_size: int, overlap: int, device=None) -> torch.Tensor:
    """[chunk_size] weights: raised-cosine ramps of ``overlap`` samples at both ends, 1 inside.

    The ramps never reach zero, so the normalisation by the summed weights stays defined at
    the very first and last samples of the input.
    """
    w = torch.ones(chunk_size, device=device)
    if overlap > 0:
        t = (torch.arange(overlap, device=device, dtype=torch.float32) + 0.5) / overlap
        # sin^2 rather than (1 - cos) / 2: the same curve, but its first value stays > 0 in
        # float32 even for long ramps (1 - cos rounds to exactly 0 there)
        ramp = torch.sin(0.5 * torch.pi * t).square()
        w[:overlap] = ramp
        w[chunk_size - overlap :] = ramp.flip(0)
    return w


def chunk_starts(length: int, chunk_size: int, overlap: int) -> list[int]:
    """Start offsets of the chunks ``overlap_add`` cuts ``length`` samples into."""
    if length <= chunk_size:
        return [0]
    return list(range(0, length - overlap, chunk_size - overlap))


def overlap_add(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    dim: int,
    chunk_size: int,
    overlap: int,
    batch_size: int = 1,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Apply ``fn`` chunk-wise along ``dim`` of ``x`` and crossfade the results.

    Args:
        fn: maps a batch of chunks ``[K, *x.shape]`` with ``dim`` of size ``chunk_size`` to
            outputs whose axis ``dim - x.ndim`` (counted from the end) has the same size;
            it may add leading axes after the batch axis (e.g. a source axis).
        x: input; chunks are stacked along a new leading batch axis before calling ``fn``.
        dim: the axis to chunk (a negative index is safest).
        chunk_size: chunk length along ``dim``; an input not longer than this is passed
            whole (one call, no padding), so short inputs give the one-pass result exactly.
        overlap: samples shared by neighbouring chunks, ``0 <= overlap < chunk_size``.
        batch_size: chunks per call of ``fn``.
        progress: called with the number of chunks finished after each call.

    Returns the concatenated output, the size of ``x`` along ``dim``.
    """
    length = x.shape[dim]
    if chunk_size <= 0 or not 0 <= overlap < chunk_size:
        raise ValueError(f"need 0 <= overlap < chunk_size, got {overlap} and {chunk_size}")
    if length <= chunk_size:
        out = fn(x.unsqueeze(0))[0]
        if progress is not None:
            progress(1)
        return out
    dim_from_end = dim - x.ndim if dim >= 0 else dim
    starts = chunk_starts(length, chunk_size, overlap)
    window = crossfade_window(chunk_size, overlap, device=x.device)
    out = weight = None
    for i in range(0, len(starts), batch_size):
        group = starts[i : i + batch_size]
        chunks = []
        for s in group:
            piece = x.narrow(dim, s, min(chunk_size, length - s))
            pad = chunk_size - piece.shape[dim]
            if pad:
                # zero-pad the last chunk along `dim`
                pad_spec = [0, 0] * (-dim_from_end - 1) + [0, pad]
                piece = torch.nn.functional.pad(piece, pad_spec)
            chunks.append(piece)
        result = fn(torch.stack(chunks))
        if out is None:
            shape = list(result.shape[1:])
            shape[dim_from_end] = length + chunk_size
            out = result.new_zeros(shape)
            weight = torch.zeros(length + chunk_size, device=x.device)
        view = [1] * (result.ndim - 1)
        view[dim_from_end] = chunk_size
        for piece, s in zip(result, group):
            out.narrow(dim_from_end, s, chunk_size).add_(piece * window.view(view))
            weight[s : s + chunk_size] += window
        if progress is not None:
            progress(len(group))
    view = [1] * out.ndim
    view[dim_from_end] = length
    return out.narrow(dim_from_end, 0, length).div_(weight[:length].view(view))


def chunked_separation(
    model: torch.nn.Module,
    spec: torch.Tensor,
    chunk_frames: int = 256,
    overlap_frames: int = 64,
    batch_size: int = 1,
) -> torch.Tensor:
    """Run a separator on a long spectrogram in overlapping chunks of frames.

    spec: ``[B, T, F]`` or ``[B, M, T, F]`` complex -> the model's output layout
    (``[B, N, T, F]`` or ``[B, N, M, T, F]``).  Equal to ``model(spec)`` when
    ``T <= chunk_frames``; otherwise each chunk sees only its own frames (attention over
    time and the band encoder's statistics are local), blended by crossfades.
    """

    def run(chunks: torch.Tensor) -> torch.Tensor:  # [K, B, (M,) t, F] -> [K, B, N, (M,) t, F]
        k, b = chunks.shape[:2]
        out = model(chunks.flatten(0, 1))
        return out.unflatten(0, (k, b))

    with torch.inference_mode():
        return overlap_add(run, spec, -2, chunk_frames, overlap_frames, batch_size)
