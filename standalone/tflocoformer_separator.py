"""TF-Locoformer: a dual-path transformer over time and frequency with local-modelling FFNs.

Saijo, Wichern, Germain, Pan, Le Roux, "TF-Locoformer: Transformer with Local Modeling by
Convolution for Speech Separation and Enhancement", IWAENC 2024.

The network maps a complex STFT to the complex STFTs of ``num_spk`` sources (direct spectral
mapping, no mask).  Every block runs one Locoformer layer along frequency (one sequence per
frame) and one along time (one sequence per frequency bin).  A Locoformer layer is
pre-norm self-attention between two "Macaron" feed-forward networks whose linear layers are
replaced by 1-D convolutions along the sequence (conv-SwiGLU).

Only torch is needed.  Parameter names follow the published checkpoints exactly, so the
weights of the original implementation load with ``strict=True`` (see ``checkpoint.py``).

Shapes use: B batch, M audio channels, N sources, T frames, F frequency bins, C embedding
channels, L sequence length.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from . import perf

FFN_TYPES = ("swiglu_conv1d", "conv1d")
NORM_TYPES = ("rmsgroupnorm", "layernorm")
POS_ENCODINGS = ("rope", "nope")
TF_ORDERS = ("ft", "tf")
# positions (sequences x length) per slice of a Locoformer layer at inference
SLICE_POSITIONS = 8192


@contextlib.contextmanager
def full_precision(x: torch.Tensor):
    """Disable autocast for the enclosed ops (the norms, input/output convolutions and RoPE
    stay in fp32 under bf16/fp16 autocast, as in the original recipe)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


# --------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------
class RMSGroupNorm(nn.Module):
    """RMS normalisation in contiguous channel groups, learnable scale, no bias.

    ``y = x / (sqrt(mean_group(x^2)) + eps) * gamma`` over the last axis ``[..., C]``.
    """

    def __init__(self, num_groups: int, dim: int, eps: float = 1e-5):
        super().__init__()
        if dim % num_groups != 0:
            raise ValueError(f"emb_dim={dim} is not divisible by num_groups={num_groups}")
        self.num_groups = num_groups
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., C] -> [..., C] (computed in fp32, returned in x's dtype)."""
        with full_precision(x):
            xf = x.float()
            groups = xf.unflatten(-1, (self.num_groups, -1))
            mean_sq = groups.square().mean(dim=-1, keepdim=True)
            # The clamp only matters for an all-zero group: it keeps the gradient of sqrt
            # finite (0 instead of NaN) without changing any output value.
            rms = mean_sq.clamp_min(torch.finfo(torch.float32).tiny).sqrt()
            y = (groups / (rms + self.eps)).flatten(-2) * self.gamma.float()
        return y.to(x.dtype)


class FP32LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` evaluated in fp32 under autocast.  x: [..., C] -> [..., C]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with full_precision(x):
            y = F.layer_norm(
                x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps
            )
        return y.to(x.dtype)


def make_norm(norm_type: str, dim: int, num_groups: int, eps: float) -> nn.Module:
    if norm_type == "rmsgroupnorm":
        return RMSGroupNorm(num_groups, dim, eps=eps)
    if norm_type == "layernorm":
        return FP32LayerNorm(dim, eps=eps)
    raise ValueError(f"norm_type must be one of {NORM_TYPES}, got {norm_type!r}")


# --------------------------------------------------------------------------------------
# Rotary position embedding
# --------------------------------------------------------------------------------------
class RotaryEmbedding(nn.Module):
    """Rotary position embedding over interleaved pairs (dims 2i, 2i+1).

    Inverse frequencies ``10000^(-2i/d)`` are stored as the frozen parameter ``freqs``
    (shape ``[d/2]``) because the published checkpoints carry them in their state dict.
    """

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        if dim % 2 != 0:
            raise ValueError(f"RoPE needs an even head dimension, got {dim}")
        inv_freq = theta ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)
        self.freqs = nn.Parameter(inv_freq, requires_grad=False)

    def angles(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin tables, each [L, d/2] in fp32, for positions 0..L-1."""
        pos = torch.arange(length, device=device, dtype=torch.float32)
        theta = pos[:, None] * self.freqs.float()[None, :]
        return theta.cos(), theta.sin()

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x: [..., L, d]; cos, sin: [L, d/2] -> rotated x, same shape and dtype."""
        with full_precision(x):
            pairs = x.float().unflatten(-1, (-1, 2))
            even, odd = pairs[..., 0], pairs[..., 1]
            out = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1)
        return out.flatten(-2).to(x.dtype)

    def rotate_along_dim1(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, L, ..., d], positions along dim 1 -> rotated x, same shape and dtype.

        The same rotation as ``rotate`` written as one complex product per pair
        ``(x_2i + i x_2i+1) * exp(i pos freq_i)``, on the ``qkv`` layout (no permuted copies).
        """
        length = x.shape[1]
        with full_precision(x):
            pos = torch.arange(length, device=x.device, dtype=torch.float32)
            theta = pos[:, None] * self.freqs.float()[None, :]  # [L, d/2]
            turn = torch.polar(torch.ones_like(theta), theta)
            turn = turn.view(length, *[1] * (x.ndim - 3), -1)
            pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
            out = torch.view_as_real(pairs * turn).flatten(-2)
        return out.to(x.dtype)


# --------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------
class MultiHeadSelfAttention(nn.Module):
    """Softmax self-attention over a sequence; ``qkv`` is packed as (q | k | v), heads
    contiguous inside each.  x: [B, L, C] -> [B, L, C]."""

    def __init__(
        self,
        emb_dim: int,
        attention_dim: int,
        n_heads: int,
        dropout: float = 0.0,
        pos_enc: str = "rope",
        flash_attention: bool = False,
    ):
        super().__init__()
        if attention_dim % n_heads != 0:
            raise ValueError(f"attention_dim={attention_dim} is not divisible by n_heads={n_heads}")
        if pos_enc not in POS_ENCODINGS:
            raise ValueError(f"pos_enc must be one of {POS_ENCODINGS}, got {pos_enc!r}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.flash_attention = flash_attention
        if pos_enc == "rope":
            self.rope = RotaryEmbedding(attention_dim // n_heads)
        else:
            self.rope = None
        self.qkv = nn.Linear(emb_dim, attention_dim * 3, bias=False)
        self.aggregate_heads = nn.Sequential(
            nn.Linear(attention_dim, emb_dim, bias=False), nn.Dropout(dropout)
        )

    def _sdpa_context(self, q: torch.Tensor, plain: bool):
        """On CUDA with half precision, ``flash_attention=True`` pins SDPA to the flash kernel
        (the original's switch); ``plain`` pins it to the math kernel; otherwise torch picks
        its fastest valid kernel (the fused CPU flash kernel for fp32 on CPU)."""
        if plain:
            return sdpa_kernel([SDPBackend.MATH])
        if self.flash_attention and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
            return sdpa_kernel([SDPBackend.FLASH_ATTENTION])
        return contextlib.nullcontext()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.n_heads, -1)
        plain = perf.is_plain()
        if self.rope is not None and not plain:
            qk = self.rope.rotate_along_dim1(qkv[:, :, :2]).to(qkv.dtype)
            q, k = qk.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, L, d]
            v = qkv[:, :, 2].transpose(1, 2)
        else:
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            if self.rope is not None:
                cos, sin = self.rope.angles(length, x.device)
                q = RotaryEmbedding.rotate(q, cos, sin).to(v.dtype)
                k = RotaryEmbedding.rotate(k, cos, sin).to(v.dtype)
        with self._sdpa_context(q, plain):
            out = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0
            )
        out = out.transpose(1, 2).reshape(batch, length, -1)
        return self.aggregate_heads(out)


# --------------------------------------------------------------------------------------
# Convolutional feed-forward networks
# --------------------------------------------------------------------------------------
def conv1d_lc(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int):
    """``F.conv1d`` on channels-last input as im2col + one matrix product.

    x: [B, P, C_in]; weight: [C_out, C_in, k] (``nn.Conv1d`` layout); returns
    [B, (P - k) // stride + 1, C_out], equal to ``conv1d(x.mT, weight, bias, stride).mT``.
    """
    b, _, c_in = x.shape
    c_out, _, k = weight.shape
    windows = x.unfold(1, k, stride).transpose(2, 3)  # [B, L_out, k, C_in] (a view)
    length = windows.shape[1]
    w = weight.transpose(1, 2).reshape(c_out, k * c_in)
    out = torch.addmm(bias, windows.reshape(b * length, k * c_in), w.t())
    return out.view(b, length, c_out)


def conv_transpose1d_lc(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int):
    """``F.conv_transpose1d`` on channels-last input as one matrix product + overlap-add.

    x: [B, L, C_in]; weight: [C_in, C_out, k] (``nn.ConvTranspose1d`` layout); returns
    [B, (L - 1) * stride + k, C_out], equal to ``conv_transpose1d(x.mT, weight, bias,
    stride).mT``.
    """
    b, length, c_in = x.shape
    _, c_out, k = weight.shape
    taps = torch.matmul(x, weight.transpose(1, 2).reshape(c_in, k * c_out))
    taps = taps.view(b, length, k, c_out)  # contribution of input step t to output t*s + j
    span = (length - 1) * stride + 1
    out = bias.to(taps.dtype).expand(b, span + k - 1, c_out).clone()
    for j in range(k):
        out[:, j : j + span : stride] += taps[:, :, j]
    return out


class SwiGLUConvDeconv1d(nn.Module):
    """conv-SwiGLU FFN: Conv1d(C, 2H, k, s) -> value * SiLU(gate) -> ConvTranspose1d(H, C, k, s).

    The sequence is padded by ``k - s`` on the left and enough on the right for the strided
    convolution to cover it; the output keeps samples ``[k - s, k - s + L)``.
    x: [B, L, C] -> [B, L, C].  Both convolutions run as matrix products on the channels-last
    layout unless ``standalone.perf.plain_mode()`` is on (then ``nn.Conv1d`` on ``[B, C, L]``).
    """

    def __init__(self, dim: int, hidden_dim: int, kernel: int, shift: int, dropout: float = 0.0):
        super().__init__()
        if not 1 <= shift <= kernel:
            raise ValueError(f"conv1d_shift must be in [1, conv1d_kernel], got {shift} > {kernel}")
        self.kernel, self.shift = kernel, shift
        self.conv1d = nn.Conv1d(dim, hidden_dim * 2, kernel, stride=shift)
        self.deconv1d = nn.ConvTranspose1d(hidden_dim, dim, kernel, stride=shift)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        k, s = self.kernel, self.shift
        left = k - s
        padded = math.ceil((length + 2 * left - k) / s) * s + k
        if perf.is_plain():
            h = F.pad(x.transpose(1, 2), (left, padded - length - left))
            value, gate = self.conv1d(h).chunk(2, dim=1)
            h = self.dropout(value * F.silu(gate))
            h = self.deconv1d(h)[..., left : left + length]
            return self.dropout(h).transpose(1, 2)
        h = F.pad(x, (0, 0, left, padded - length - left))
        value, gate = conv1d_lc(h, self.conv1d.weight, self.conv1d.bias, s).chunk(2, dim=-1)
        h = F.silu(gate)
        # in place where autograd does not need the SiLU output
        h = h.mul_(value) if not (h.requires_grad or value.requires_grad) else h * value
        h = self.dropout(h)
        h = conv_transpose1d_lc(h, self.deconv1d.weight, self.deconv1d.bias, s)
        return self.dropout(h[:, left : left + length])


class ConvDeconv1d(nn.Module):
    """Plain conv FFN of the ESPnet version: Conv1d -> SiLU -> ConvTranspose1d.

    The original pads nothing and crops ``[(k - s)//2, (k - s)//2 + L)``, which only has the
    right length when ``k - s <= 1``.  Here the input gets ``(k - s)//2`` zeros on the left
    and the fewest zeros on the right that make the output long enough, so any kernel and
    shift work; where the original works, both paddings are zero and the result is the same.
    x: [B, L, C] -> [B, L, C] (convolutions as in ``SwiGLUConvDeconv1d``).
    """

    def __init__(self, dim: int, hidden_dim: int, kernel: int, shift: int, dropout: float = 0.0):
        super().__init__()
        if not 1 <= shift <= kernel:
            raise ValueError(f"conv1d_shift must be in [1, conv1d_kernel], got {shift} > {kernel}")
        self.kernel, self.shift = kernel, shift
        self.net = nn.Sequential(
            nn.Conv1d(dim, hidden_dim, kernel, stride=shift),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.ConvTranspose1d(hidden_dim, dim, kernel, stride=shift),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        k, s = self.kernel, self.shift
        left = (k - s) // 2
        # output length of conv + transposed conv on n samples: floor((n - k) / s) * s + k
        needed = left + length
        n = max(length + left, k)
        while (n - k) // s * s + k < needed:
            n += 1
        if perf.is_plain():
            h = F.pad(x.transpose(1, 2), (left, n - length - left))
            h = self.net(h)[..., left : left + length]
            return h.transpose(1, 2)
        conv, _, dropout, deconv, _ = self.net
        h = F.pad(x, (0, 0, left, n - length - left))
        h = dropout(F.silu(conv1d_lc(h, conv.weight, conv.bias, s)))
        h = conv_transpose1d_lc(h, deconv.weight, deconv.bias, s)
        return dropout(h[:, left : left + length])


def make_ffn(ffn_type: str, dim: int, hidden_dim: int, kernel: int, shift: int, dropout: float):
    if ffn_type == "swiglu_conv1d":
        return SwiGLUConvDeconv1d(dim, hidden_dim, kernel, shift, dropout)
    if ffn_type == "conv1d":
        return ConvDeconv1d(dim, hidden_dim, kernel, shift, dropout)
    raise ValueError(f"ffn_type must be one of {FFN_TYPES}, got {ffn_type!r}")


# --------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------
class LocoformerBlock(nn.Module):
    """Pre-norm Locoformer layer over one sequence axis.  x: [B, L, C] -> [B, L, C].

    ``ffn_types`` / ``ffn_hidden_dims`` are given in execution order.  With two entries
    (Macaron): FFN, attention, FFN, each residual, no 0.5 factor.  With one: attention, FFN.
    The modules are stored in reverse execution order (``ffn.1`` runs first), which is the
    parameter layout of the published checkpoints.
    """

    def __init__(
        self,
        emb_dim: int,
        norm_type: str,
        num_groups: int,
        n_heads: int,
        attention_dim: int,
        pos_enc: str,
        flash_attention: bool,
        ffn_types: Sequence[str],
        ffn_hidden_dims: Sequence[int],
        conv1d_kernel: int,
        conv1d_shift: int,
        dropout: float,
        eps: float,
    ):
        super().__init__()
        if len(ffn_types) not in (1, 2) or len(ffn_types) != len(ffn_hidden_dims):
            raise ValueError(
                "ffn_type and ffn_hidden_dim must both have one entry, or two for the Macaron "
                f"layout; got {list(ffn_types)} and {list(ffn_hidden_dims)}"
            )
        stored = list(zip(ffn_types, ffn_hidden_dims))[::-1]
        self.ffn_norm = nn.ModuleList(
            make_norm(norm_type, emb_dim, num_groups, eps) for _ in stored
        )
        self.ffn = nn.ModuleList(
            make_ffn(t, emb_dim, h, conv1d_kernel, conv1d_shift, dropout) for t, h in stored
        )
        self.attn_norm = make_norm(norm_type, emb_dim, num_groups, eps)
        self.attn = MultiHeadSelfAttention(
            emb_dim, attention_dim, n_heads, dropout, pos_enc, flash_attention
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.ffn) == 2:
            x = x + self.ffn[1](self.ffn_norm[1](x))
        x = x + self.attn(self.attn_norm(x))
        x = x + self.ffn[0](self.ffn_norm[0](x))
        return x


class TFLocoformerBlock(nn.Module):
    """One Locoformer layer along frequency and one along time.

    x: [B, T, F, C] -> [B, T, F, C].  ``tf_order="ft"`` runs the frequency path first.
    """

    def __init__(self, tf_order: str = "ft", **block_kwargs):
        super().__init__()
        if tf_order not in TF_ORDERS:
            raise ValueError(f"tf_order must be one of {TF_ORDERS}, got {tf_order!r}")
        self.tf_order = tf_order
        self.freq_path = LocoformerBlock(**block_kwargs)
        self.frame_path = LocoformerBlock(**block_kwargs)

    def _along_freq(self, x: torch.Tensor) -> torch.Tensor:
        return self._along(self.freq_path, x, seq_dim=2)

    def _along_time(self, x: torch.Tensor) -> torch.Tensor:
        return self._along(self.frame_path, x, seq_dim=1)

    @staticmethod
    def _along(layer: nn.Module, x: torch.Tensor, seq_dim: int) -> torch.Tensor:
        """Run ``layer`` on every sequence of x: [B, T, F, C] along ``seq_dim`` (1: time,
        2: frequency) -> [B, T, F, C].

        Without autograd (and outside ``perf.plain_mode()``) the sequences go through the
        layer in slices of about ``SLICE_POSITIONS`` positions: the sequences are
        independent, so the result is the same, and the layer's temporaries stay small
        (less memory, no page faults from fresh large allocations, better cache use).
        """
        other = 3 - seq_dim
        b, length, c = x.shape[0], x.shape[seq_dim], x.shape[3]

        def run(part: torch.Tensor) -> torch.Tensor:
            n = part.shape[other]
            seqs = part.movedim(other, 1).reshape(b * n, length, c)
            return layer(seqs).view(b, n, length, c).movedim(1, other)

        if torch.is_grad_enabled() or perf.is_plain():
            return run(x)
        step = max(1, SLICE_POSITIONS // (b * length))
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        for start in range(0, x.shape[other], step):
            part = x.narrow(other, start, min(step, x.shape[other] - start))
            out.narrow(other, start, part.shape[other]).copy_(run(part))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_order == "ft":
            return self._along_time(self._along_freq(x))
        return self._along_freq(self._along_time(x))


def build_blocks(
    n_layers: int,
    emb_dim: int,
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
) -> nn.ModuleList:
    """The ``n_layers`` TF-Locoformer blocks shared by the full-band and band-split models
    (registered by each model as ``blocks``, giving the keys ``blocks.{i}.freq_path...``)."""
    ffn_types = [ffn_type] if isinstance(ffn_type, str) else list(ffn_type)
    ffn_hidden = [ffn_hidden_dim] if isinstance(ffn_hidden_dim, int) else list(ffn_hidden_dim)
    return nn.ModuleList(
        TFLocoformerBlock(
            tf_order=tf_order,
            emb_dim=emb_dim,
            norm_type=norm_type,
            num_groups=num_groups,
            n_heads=n_heads,
            attention_dim=attention_dim,
            pos_enc=pos_enc,
            flash_attention=flash_attention,
            ffn_types=ffn_types,
            ffn_hidden_dims=ffn_hidden,
            conv1d_kernel=conv1d_kernel,
            conv1d_shift=conv1d_shift,
            dropout=dropout,
            eps=eps,
        )
        for _ in range(n_layers)
    )


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, grad_ckpt: bool, training: bool):
    """Run the TF blocks on x: [B, T, F, C] -> [B, T, F, C]; with ``grad_ckpt`` (and
    gradients being recorded) each block is recomputed in the backward pass."""
    use_ckpt = grad_ckpt and training and torch.is_grad_enabled()
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False) if use_ckpt else block(x)
    return x


# --------------------------------------------------------------------------------------
# The full-band model
# --------------------------------------------------------------------------------------
class TFLocoformerSeparator(nn.Module):
    """TF-Locoformer separator: complex STFT in, complex STFTs of the sources out.

    Args:
        num_spk: number of sources N.
        num_channels: audio channels M (1 for speech, 2 for stereo music).
        n_layers, emb_dim, norm_type, num_groups, tf_order, n_heads, attention_dim, pos_enc,
        flash_attention, ffn_type, ffn_hidden_dim, conv1d_kernel, conv1d_shift, dropout, eps:
            as in the paper / the published configs (``attention_dim`` is 128 unless
            given, whatever ``emb_dim`` is, as in the original; ``pos_enc="nope"`` is the
            NoPE variant).
        gradient_checkpointing: recompute each block in the backward pass (training on long
            segments with less memory; same results).

    Input ``[B, T, F]`` (M = 1) or ``[B, M, T, F]`` complex; output ``[B, N, T, F]`` or
    ``[B, N, M, T, F]`` complex (same dtype as the input).
    """

    def __init__(
        self,
        num_spk: int = 2,
        num_channels: int = 1,
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
        if num_spk < 1 or num_channels < 1:
            raise ValueError(
                f"num_spk and num_channels must be >= 1, got {num_spk}, {num_channels}"
            )
        self._num_spk = num_spk
        self.num_channels = num_channels
        self.conv = nn.Sequential(
            nn.Conv2d(2 * num_channels, emb_dim, (3, 3), padding=(1, 1)),
            nn.GroupNorm(1, emb_dim, eps=eps),
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
        self.deconv = nn.ConvTranspose2d(
            emb_dim, 2 * num_spk * num_channels, (3, 3), padding=(1, 1)
        )

    @property
    def num_spk(self) -> int:
        """Number of sources N."""
        return self._num_spk

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        mono = spec.ndim == 3
        x = spec.unsqueeze(1) if mono else spec
        check_input(x, self.num_channels, "TFLocoformerSeparator")
        b, m, t, f = x.shape
        with full_precision(x):
            feats = torch.cat((x.real, x.imag), dim=1).float()  # [B, 2M, T, F]
            h = self.conv(feats)  # [B, C, T, F]
        h = run_blocks(
            self.blocks, h.permute(0, 2, 3, 1), self.gradient_checkpointing, self.training
        )
        with full_precision(h):
            out = self.deconv(h.permute(0, 3, 1, 2).float())  # [B, 2NM, T, F]
        out = out.view(b, self.num_spk, 2, m, t, f)
        est = torch.complex(out[:, :, 0], out[:, :, 1]).to(spec.dtype)  # [B, N, M, T, F]
        return est.squeeze(2) if mono else est


def check_input(x: torch.Tensor, num_channels: int, name: str) -> None:
    """Validate a complex [B, M, T, F] input."""
    if not torch.is_complex(x):
        raise TypeError(f"{name} expects a complex STFT, got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} expects [B, T, F] or [B, M, T, F], got shape {tuple(x.shape)}")
    if x.shape[1] != num_channels:
        raise ValueError(
            f"{name} was built for {num_channels} audio channel(s), got {x.shape[1]} "
            f"(input shape {tuple(x.shape)})"
        )
