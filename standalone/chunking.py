"""Overlap-add over chunks of a long input, so memory does not grow with its length.

``overlap_add`` cuts a tensor into overlapping chunks along one axis, runs a function on
batches of chunks, and blends the results with a raised-cosine crossfade in the overlaps
(the weights are normalised, so a function that is the identity gives the input back
exactly).  It serves both the frame-domain inference of the networks
(``chunked_separation``) and the waveform-domain inference of ``separate.py``.

``OverlapAddStream`` is the same blending for inputs that are never held whole (a file read
chunk by chunk): results go in as they are computed, and every sample that no later chunk
touches comes out finished, so only about one batch of chunks is in memory at a time.
Both give the same numbers: ``overlap_add`` is built on it.

The last chunk is not padded to full length: it covers only what is left of the input, and
is computed in a call of its own, so the output does not depend on the batch size and no
time is spent on padding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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


def chunk_batches(
    length: int, chunk_size: int, overlap: int, batch_size: int
) -> Iterator[list[tuple[int, int]]]:
    """Groups of ``(start, size)`` chunks computed together: up to ``batch_size`` full chunks
    per group, and a shorter last chunk alone in the last group."""
    if chunk_size <= 0 or not 0 <= overlap < chunk_size:
        raise ValueError(f"need 0 <= overlap < chunk_size, got {overlap} and {chunk_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chunks = [(s, min(chunk_size, length - s)) for s in chunk_starts(length, chunk_size, overlap)]
    tail = [chunks.pop()] if chunks[-1][1] < chunk_size and len(chunks) > 1 else []
    for i in range(0, len(chunks), batch_size):
        yield chunks[i : i + batch_size]
    if tail:
        yield tail


class OverlapAddStream:
    """Crossfade chunk results of a ``length``-sample input as they arrive.

    ``add(start, piece)`` blends the result of the chunk starting at ``start`` (its axis
    ``dim`` is the chunk's size); ``pop(until)`` returns the finished samples from where the
    previous ``pop`` stopped up to ``until`` (exclusive): call it with the start of the next
    chunk still to come, or with ``length`` at the end.  Memory: the samples between the
    last ``pop`` and the end of the last chunk added.

    ``dim`` counts from the end (``-1``: the last axis); the other axes of the pieces must
    agree.
    """

    def __init__(self, length: int, chunk_size: int, overlap: int, dim: int = -1):
        if dim >= 0:
            raise ValueError(f"dim must count from the end (negative), got {dim}")
        self.length, self.chunk_size, self.overlap, self.dim = length, chunk_size, overlap, dim
        # one chunk covers everything: weights of 1, so its result comes back unchanged
        single = length <= chunk_size
        self.window = torch.ones(chunk_size) if single else crossfade_window(chunk_size, overlap)
        self._done = 0  # samples handed out so far
        self._sum: torch.Tensor | None = None  # weighted sum of samples [done, done + n)
        self._weight = torch.zeros(0)

    def _grow(self, end: int, like: torch.Tensor) -> None:
        """Make the buffers reach sample ``end``."""
        have = 0 if self._sum is None else self._sum.shape[self.dim]
        need = end - self._done
        if need <= have:
            return
        shape = list(like.shape)
        shape[self.dim] = need - have
        zeros = like.new_zeros(shape)
        self._sum = zeros if self._sum is None else torch.cat((self._sum, zeros), dim=self.dim)
        extra = torch.zeros(need - have, device=self._weight.device)
        self._weight = torch.cat((self._weight, extra))

    def add(self, start: int, piece: torch.Tensor) -> None:
        """Blend ``piece`` (size ``n <= chunk_size`` along ``dim``) in at ``start``."""
        n = piece.shape[self.dim]
        if start < self._done:
            raise ValueError(f"chunk at {start} overlaps samples already popped ({self._done})")
        if self._weight.device != piece.device:
            self.window = self.window.to(piece.device)
            self._weight = self._weight.to(piece.device)
        self._grow(start + n, piece)
        view = [1] * (piece.ndim - 1 - (-self.dim - 1)) + [n] + [1] * (-self.dim - 1)
        window = self.window[:n]
        offset = start - self._done
        self._sum.narrow(self.dim, offset, n).add_(piece * window.view(view))
        self._weight[offset : offset + n] += window

    @property
    def done(self) -> int:
        """Samples handed out by ``pop`` so far."""
        return self._done

    def finished_after(self, start: int, size: int) -> int:
        """Where the finished samples end once the chunk ``[start, start + size)`` is in:
        the start of the next chunk, or ``length`` after the last one."""
        if start + size >= self.length:
            return self.length
        return start + self.chunk_size - self.overlap

    def pop(self, until: int) -> torch.Tensor | None:
        """The finished samples ``[previous until, until)``, normalised; None if there are
        none."""
        until = min(until, self.length)
        n = until - self._done
        if n <= 0 or self._sum is None:
            return None
        if n > self._sum.shape[self.dim]:
            raise ValueError(f"samples up to {until} were not computed yet")
        view = [1] * self._sum.ndim
        view[self.dim] = n
        out = self._sum.narrow(self.dim, 0, n) / self._weight[:n].view(view)
        self._sum = self._sum.narrow(self.dim, n, self._sum.shape[self.dim] - n)
        self._weight = self._weight[n:]
        self._done = until
        return out


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
        fn: maps a batch of chunks ``[K, *x.shape]`` (size at most ``chunk_size`` along
            ``dim``; the last chunk of the input may be shorter) to outputs whose axis
            ``dim - x.ndim`` (counted from the end) has the same size; it may add leading
            axes after the batch axis (e.g. a source axis).
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
    dim_from_end = dim - x.ndim if dim >= 0 else dim
    stream = OverlapAddStream(length, chunk_size, overlap, dim_from_end)
    out = None
    for group in chunk_batches(length, chunk_size, overlap, batch_size):
        result = fn(torch.stack([x.narrow(dim, s, n) for s, n in group]))
        for piece, (s, _) in zip(result, group):
            stream.add(s, piece)
        if out is None:  # allocated once the output's shape is known
            shape = list(result.shape[1:])
            shape[dim_from_end] = length
            out = result.new_empty(shape)
        done = stream.done
        block = stream.pop(stream.finished_after(*group[-1]))
        if block is not None:
            out.narrow(dim_from_end, done, block.shape[dim_from_end]).copy_(block)
        if progress is not None:
            progress(len(group))
    return out


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
