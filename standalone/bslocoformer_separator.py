"""BS-Locoformer: TF-Locoformer blocks over time x frequency *bands* (band-split encoder/decoder).

The spectrum is cut into bands that are narrow at low frequencies and wide at high ones (the
BS-RoFormer layout).  Each band is normalised and projected to ``emb_dim`` channels by its own
1x1 convolution; the TF-Locoformer blocks (shared with ``tflocoformer_separator``) then model
time and the band axis; a per-band MLP decoder maps back to a complex mask (or spectrum) per
source and channel.  This keeps the band axis short (62 bands instead of 1025 bins at
44.1 kHz / 2048-point STFT), which is what makes full-band music separation affordable.

Bands of equal width that sit next to each other are processed together: their per-band
weights are stacked and applied with one batched product, so the 62 small products of a
per-band loop become 7 (``standalone.perf.plain_mode()`` runs the per-band loop instead).
Parameters are still stored per band, under the names of the published implementation.

Shapes: B batch, M audio channels, N sources, T frames, F bins, K bands, C channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import perf
from .tflocoformer_separator import build_blocks, check_input, full_precision, run_blocks

# (start Hz, end Hz, bins per band) of the BS-RoFormer band layout
BAND_RANGES = ((0, 1000, 2), (1000, 2000, 4), (2000, 4000, 12), (4000, 8000, 24), (8000, 16000, 48))


def band_widths(sample_rate: int, stft_size: int) -> list[int]:
    """Number of STFT bins in each band, low to high; they add up to ``stft_size // 2 + 1``.

    At 44.1 and 48 kHz this is exactly the published layout (62 bands at 44.1 kHz / 2048).
    Below 32 kHz that layout runs past Nyquist; here the ranges are then cut at Nyquist and
    the last band is shortened to fit, and a remainder too small to split becomes one band.
    """
    n_bins = stft_size // 2 + 1
    if sample_rate <= 0 or stft_size < 2:
        raise ValueError(f"invalid sample_rate={sample_rate} / stft_size={stft_size}")
    bin_hz = (sample_rate // 2) / n_bins
    nyquist = sample_rate / 2
    widths: list[int] = []
    for start, end, bins in BAND_RANGES:
        if start >= nyquist:
            break
        widths += [bins] * math.ceil((min(end, nyquist) - start) / (bins * bin_hz))
    fitted, total = [], 0
    for w in widths:
        w = min(w, n_bins - total)
        if w <= 0:
            break
        fitted.append(w)
        total += w
    rest = n_bins - total
    n_top = 4 if sample_rate == 48000 else 2
    if rest >= n_top and n_top == 4:
        fitted += [rest // 4] * 3 + [rest // 4 + rest % 4]
    elif rest >= n_top:
        fitted += [rest // 2, rest - rest // 2]
    elif rest > 0:
        fitted.append(rest)
    return fitted


def _runs(widths: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """Group consecutive bands of equal width: (first band, last band + 1, width, first bin)."""
    runs, band, first_bin = [], 0, 0
    while band < len(widths):
        end = band
        while end < len(widths) and widths[end] == widths[band]:
            end += 1
        runs.append((band, end, widths[band], first_bin))
        first_bin += widths[band] * (end - band)
        band = end
    return runs


def _group_norm_bands(x: torch.Tensor, eps: float) -> torch.Tensor:
    """GroupNorm(1, C) of each band over its channels and all frames.  x: [B, T, K, C]."""
    mean = x.mean(dim=(1, 3), keepdim=True)
    var = (x - mean).square().mean(dim=(1, 3), keepdim=True)
    return (x - mean) * torch.rsqrt(var + eps)


def _stacked_conv(convs: Sequence[nn.Conv1d]) -> tuple[torch.Tensor, torch.Tensor]:
    """1x1 Conv1d weights of several bands as ([K, C_in, C_out], [K, C_out])."""
    weight = torch.stack([c.weight.squeeze(-1).t() for c in convs])
    bias = torch.stack([c.bias for c in convs])
    return weight, bias


def _apply(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-band linear map.  x: [B, T, K, C_in] -> [B, T, K, C_out]."""
    return torch.einsum("btkc,kcd->btkd", x, weight) + bias


class BandSplitModule(nn.Module):
    """Per-band encoder and decoder (parameter names of the published implementation).

    ``band_split_module[b]``: GroupNorm(1, 2M w_b) -> Conv1d(2M w_b, C, 1).
    ``bandwise_decoding_module[b]``: GroupNorm(1, C) -> Conv1d(C, 4C, 1) -> Tanh ->
    Conv1d(4C, 4C, 1) -> Conv1d(4C, 2 * 2NM w_b, 1) -> GLU.
    """

    def __init__(self, widths: Sequence[int], emb_dim: int, num_spk: int, num_channels: int, eps):
        super().__init__()
        self.widths = list(widths)
        self.runs = _runs(self.widths)
        self.num_spk, self.num_channels, self.eps = num_spk, num_channels, eps
        m2 = 2 * num_channels
        self.band_split_module = nn.ModuleList(
            nn.Sequential(nn.GroupNorm(1, w * m2, eps=eps), nn.Conv1d(w * m2, emb_dim, 1))
            for w in self.widths
        )
        self.bandwise_decoding_module = nn.ModuleList(
            nn.Sequential(
                nn.GroupNorm(1, emb_dim, eps=eps),
                nn.Conv1d(emb_dim, 4 * emb_dim, 1),
                nn.Tanh(),
                nn.Conv1d(4 * emb_dim, 4 * emb_dim, 1),
                nn.Conv1d(4 * emb_dim, w * num_spk * m2 * 2, 1),
                nn.GLU(dim=1),
            )
            for w in self.widths
        )

    def encode(self, feats: torch.Tensor) -> torch.Tensor:
        """feats: [B, T, F, 2M] (per bin: re of each channel, then im) -> [B, T, K, C]."""
        b, t, _, m2 = feats.shape
        if perf.is_plain():  # one band at a time, with the modules themselves
            out, bin0 = [], 0
            for width, module in zip(self.widths, self.band_split_module):
                x = feats[:, :, bin0 : bin0 + width].reshape(b, t, width * m2)
                out.append(module(x.transpose(1, 2)).transpose(1, 2))  # [B, T, C]
                bin0 += width
            return torch.stack(out, dim=2)
        out = []
        for first, last, width, bin0 in self.runs:
            mods = self.band_split_module[first:last]
            x = feats[:, :, bin0 : bin0 + width * (last - first)]
            x = x.reshape(b, t, last - first, width * m2)
            norm_w = torch.stack([m[0].weight for m in mods])  # [K, 2Mw]
            norm_b = torch.stack([m[0].bias for m in mods])
            x = _group_norm_bands(x, self.eps) * norm_w + norm_b
            out.append(_apply(x, *_stacked_conv([m[1] for m in mods])))
        return torch.cat(out, dim=2)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """h: [B, T, K, C] -> [B, N, M, T, F, 2] (real/imaginary parts last)."""
        b, t = h.shape[:2]
        n, m = self.num_spk, self.num_channels
        if perf.is_plain():  # one band at a time, with the modules themselves
            out = []
            for k, (width, module) in enumerate(zip(self.widths, self.bandwise_decoding_module)):
                x = module(h[:, :, k].transpose(1, 2))  # [B, 2 N M w, T]
                out.append(x.view(b, 2, n, m, width, t).permute(0, 2, 3, 5, 4, 1))
            return torch.cat(out, dim=4)
        out = []
        for first, last, width, _ in self.runs:
            mods = self.bandwise_decoding_module[first:last]
            x = h[:, :, first:last]
            norm_w = torch.stack([mod[0].weight for mod in mods])
            norm_b = torch.stack([mod[0].bias for mod in mods])
            x = _group_norm_bands(x, self.eps) * norm_w + norm_b
            x = torch.tanh(_apply(x, *_stacked_conv([mod[1] for mod in mods])))
            x = _apply(x, *_stacked_conv([mod[3] for mod in mods]))
            x = F.glu(_apply(x, *_stacked_conv([mod[4] for mod in mods])), dim=-1)
            # per band the GLU output is ordered (re/im, source, channel, bin)
            x = x.view(b, t, last - first, 2, n, m, width)
            out.append(x.permute(0, 4, 5, 1, 2, 6, 3).reshape(b, n, m, t, -1, 2))
        return torch.cat(out, dim=4)


class BSLocoformerSeparator(nn.Module):
    """Band-split TF-Locoformer separator.

    Args:
        num_spk: number of sources N (4 stems for music).
        sample_rate, stft_size: define the band layout (see ``band_widths``).
        stereo: two audio channels (the published option); ``num_channels`` sets any M and
            takes precedence.
        masking: estimate a complex mask applied to the mixture (default) rather than the
            source spectra directly.
        other arguments: those of ``TFLocoformerSeparator`` (the blocks are the same).

    Input ``[B, M, T, F]`` complex (``[B, T, F]`` is accepted when M = 1); output
    ``[B, N, T, F]`` when M = 1, else ``[B, N, M, T, F]``.
    """

    def __init__(
        self,
        num_spk: int = 4,
        sample_rate: int = 44100,
        stft_size: int = 2048,
        stereo: bool = False,
        num_channels: int | None = None,
        masking: bool = True,
        n_layers: int = 6,
        emb_dim: int = 128,
        norm_type: str = "rmsgroupnorm",
        num_groups: int = 4,
        tf_order: str = "ft",
        n_heads: int = 4,
        attention_dim: int = 128,
        pos_enc: str = "rope",
        flash_attention: bool = False,
        ffn_type: str | Sequence[str] = ("swiglu_conv1d", "swiglu_conv1d"),
        ffn_hidden_dim: int | Sequence[int] = (384, 384),
        conv1d_kernel: int = 4,
        conv1d_shift: int = 1,
        dropout: float = 0.0,
        eps: float = 1e-5,
        gradient_checkpointing: bool = False,
    ):
        super().__init__()
        self._num_spk = num_spk
        self.num_channels = num_channels if num_channels is not None else (2 if stereo else 1)
        if num_spk < 1 or self.num_channels < 1:
            raise ValueError(
                f"num_spk and num_channels must be >= 1, got {num_spk}, {num_channels}"
            )
        self.masking = masking
        self.n_freqs = stft_size // 2 + 1
        self.band_split_module = BandSplitModule(
            band_widths(sample_rate, stft_size), emb_dim, num_spk, self.num_channels, eps
        )
        self.blocks = build_blocks(
            n_layers,
            emb_dim,
            norm_type=norm_type,
            num_groups=num_groups,
            tf_order=tf_order,
            n_heads=n_heads,
            attention_dim=attention_dim,
            pos_enc=pos_enc,
            flash_attention=flash_attention,
            ffn_type=ffn_type,
            ffn_hidden_dim=ffn_hidden_dim,
            conv1d_kernel=conv1d_kernel,
            conv1d_shift=conv1d_shift,
            dropout=dropout,
            eps=eps,
        )
        self.gradient_checkpointing = gradient_checkpointing

    @property
    def band_widths(self) -> list[int]:
        return list(self.band_split_module.widths)

    @property
    def num_spk(self) -> int:
        """Number of sources N."""
        return self._num_spk

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec.unsqueeze(1) if spec.ndim == 3 else spec
        check_input(x, self.num_channels, "BSLocoformerSeparator")
        b, m, t, f = x.shape
        if f != self.n_freqs:
            raise ValueError(
                f"BSLocoformerSeparator was built for {self.n_freqs} frequency bins "
                f"(stft_size={2 * (self.n_freqs - 1)}), got {f}"
            )
        with full_precision(x):
            feats = torch.view_as_real(x.to(torch.complex64))  # [B, M, T, F, 2]
            feats = feats.permute(0, 2, 3, 4, 1).reshape(b, t, f, 2 * m)
            h = self.band_split_module.encode(feats)  # [B, T, K, C]
        h = run_blocks(self.blocks, h, self.gradient_checkpointing, self.training)
        with full_precision(h):
            out = self.band_split_module.decode(h.float())  # [B, N, M, T, F, 2]
            est = torch.view_as_complex(out.contiguous())
            if self.masking:
                est = est * x.unsqueeze(1).to(torch.complex64)
        est = est.to(spec.dtype)
        return est.squeeze(2) if m == 1 else est
