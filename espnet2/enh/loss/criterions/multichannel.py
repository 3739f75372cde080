"""Time-domain and spectral losses that score every channel of a (stereo) estimate.

All criteria take ``ref`` and ``inf`` as ``[B, L]`` (mono) or ``[B, L, C]`` (multi-channel,
ESPnet's layout for ``speech_ref*`` and decoder outputs) and return a loss per batch item,
``[B]``: the per-channel value averaged over the ``C`` channels. Lower is better for all of
them, so they can be summed with weights through ESPnet's ``criterions:`` list.

They subclass ESPnet's ``TimeDomainLoss`` so that ``ESPnetEnhancementModel`` feeds them
waveforms. Their ``accepts_multichannel`` attribute tells the patched model (``model_conf:
all_channel_loss: true``, see docs/espnet_patch.md) to hand them ``[B, L, C]`` tensors as they
are; criteria without that attribute receive the channels folded into the batch instead.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from espnet2.enh.loss.criterions.time_domain import TimeDomainLoss


def _channels_to_batch(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``[B, L]`` -> (``[B, L]``, 1); ``[B, L, C]`` -> (``[B * C, L]``, C), item-major."""
    if x.dim() == 2:
        return x, 1
    if x.dim() == 3:
        return x.transpose(1, 2).reshape(-1, x.size(1)), x.size(2)
    raise ValueError(f"expected a [B, L] or [B, L, C] waveform, got shape {tuple(x.shape)}")


def _check_pair(ref: torch.Tensor, inf: torch.Tensor) -> None:
    if ref.shape != inf.shape:
        raise ValueError(
            f"reference and estimate shapes differ: {tuple(ref.shape)} vs {tuple(inf.shape)}"
        )


class _ChannelAwareLoss(TimeDomainLoss):
    """Base: per-signal loss on ``[N, L]`` rows, averaged over channels to ``[B]``."""

    accepts_multichannel = True
    default_name = ""  # the statistics key when the config gives no ``name``

    def __init__(
        self,
        name: str | None = None,
        only_for_test: bool = False,
        is_noise_loss: bool = False,
        is_dereverb_loss: bool = False,
    ):
        super().__init__(
            self.default_name if name is None else name,
            only_for_test=only_for_test,
            is_noise_loss=is_noise_loss,
            is_dereverb_loss=is_dereverb_loss,
        )

    def per_signal(self, ref: torch.Tensor, inf: torch.Tensor) -> torch.Tensor:
        """Loss of each row: ``ref``/``inf`` ``[N, L]`` -> ``[N]``."""
        raise NotImplementedError

    def forward(self, ref: torch.Tensor, inf: torch.Tensor) -> torch.Tensor:
        """``ref``/``inf`` ``[B, L]`` or ``[B, L, C]`` -> loss ``[B]`` (mean over channels)."""
        _check_pair(ref, inf)
        ref2, channels = _channels_to_batch(ref)
        inf2, _ = _channels_to_batch(inf)
        if ref2.dtype in (torch.float16, torch.bfloat16):
            ref2, inf2 = ref2.float(), inf2.float()
        loss = self.per_signal(ref2, inf2.to(ref2.dtype))
        return loss.view(-1, channels).mean(dim=1)


class MultiChannelSNRLoss(_ChannelAwareLoss):
    """Negative (scale-invariant) signal-to-noise ratio in dB, per channel, soft-capped.

    ``snr = 10 log10((|t|^2 + eps) / (|t - inf|^2 + tau |t|^2 + eps))`` with ``t = ref``
    (SNR) or ``t = a * ref``, ``a = <inf, ref> / (|ref|^2 + eps)`` (SI-SDR), and
    ``tau = 10 ** (-snr_max / 10)``. The ``tau`` term bounds the value near ``snr_max`` dB, so
    well-separated items stop dominating the gradient (the thresholded SNR of Wisdom et al.,
    "Unsupervised sound separation using mixture invariant training", 2020). The ``eps`` terms
    make a silent reference (a stem that is absent in a music segment) well defined: a silent
    estimate scores 0 dB, any leakage into it is penalised.
    """

    def __init__(
        self,
        scale_invariant: bool = False,
        zero_mean: bool = False,
        snr_max: float | None = None,
        eps: float = 1e-8,
        name: str | None = None,
        only_for_test: bool = False,
        is_noise_loss: bool = False,
        is_dereverb_loss: bool = False,
    ):
        if name is None:
            name = "mc_si_sdr_loss" if scale_invariant else "mc_snr_loss"
        super().__init__(
            name,
            only_for_test=only_for_test,
            is_noise_loss=is_noise_loss,
            is_dereverb_loss=is_dereverb_loss,
        )
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.scale_invariant = scale_invariant
        self.zero_mean = zero_mean
        self.tau = 0.0 if snr_max is None else 10.0 ** (-float(snr_max) / 10.0)
        self.eps = float(eps)

    def per_signal(self, ref: torch.Tensor, inf: torch.Tensor) -> torch.Tensor:
        if self.zero_mean:
            ref = ref - ref.mean(dim=1, keepdim=True)
            inf = inf - inf.mean(dim=1, keepdim=True)
        if self.scale_invariant:
            scale = (inf * ref).sum(dim=1, keepdim=True) / (
                ref.pow(2).sum(dim=1, keepdim=True) + self.eps
            )
            target = scale * ref
        else:
            target = ref
        t_pow = target.pow(2).sum(dim=1)
        e_pow = (inf - target).pow(2).sum(dim=1)
        snr = 10.0 * torch.log10((t_pow + self.eps) / (e_pow + self.tau * t_pow + self.eps))
        return -snr


class MultiChannelSISDRLoss(MultiChannelSNRLoss):
    """Negative SI-SDR in dB per channel (``MultiChannelSNRLoss`` with ``scale_invariant``)."""

    def __init__(
        self,
        zero_mean: bool = True,
        snr_max: float | None = None,
        eps: float = 1e-8,
        name: str | None = None,
        only_for_test: bool = False,
        is_noise_loss: bool = False,
        is_dereverb_loss: bool = False,
    ):
        super().__init__(
            scale_invariant=True,
            zero_mean=zero_mean,
            snr_max=snr_max,
            eps=eps,
            name=name,
            only_for_test=only_for_test,
            is_noise_loss=is_noise_loss,
            is_dereverb_loss=is_dereverb_loss,
        )


class MultiChannelL1Loss(_ChannelAwareLoss):
    """Mean absolute waveform error over samples and channels."""

    default_name = "mc_l1_loss"

    def per_signal(self, ref: torch.Tensor, inf: torch.Tensor) -> torch.Tensor:
        return (inf - ref).abs().mean(dim=1)


class MultiChannelL2Loss(_ChannelAwareLoss):
    """Mean squared waveform error over samples and channels."""

    default_name = "mc_l2_loss"

    def per_signal(self, ref: torch.Tensor, inf: torch.Tensor) -> torch.Tensor:
        return (inf - ref).pow(2).mean(dim=1)


class MultiResolutionSTFTLoss(_ChannelAwareLoss):
    """Multi-resolution STFT magnitude loss, per channel.

    For each resolution ``(n_fft, hop)`` with a Hann window of ``n_fft`` samples (centred,
    reflect-padded frames): ``mag_weight * mean|(|S| - |S_hat|)| + sc_weight *
    ||(|S| - |S_hat|)||_F / ||S||_F`` (magnitude L1 and spectral convergence, Yamamoto et al.,
    "Parallel WaveGAN", 2020). The resolutions are averaged. Several window sizes trade time
    against frequency resolution, so no single STFT's artefacts are rewarded.

    Args:
        n_ffts: FFT sizes, one per resolution.
        hop_lengths: hops, one per resolution (default ``n_fft // 4``).
        mag_weight: weight of the magnitude L1 term.
        sc_weight: weight of the spectral-convergence term.
        eps: floor inside the magnitude square root (finite gradients at 0) and the SC ratio.
    """

    default_name = "mc_mrstft_loss"

    def __init__(
        self,
        n_ffts: Sequence[int] = (512, 1024, 2048),
        hop_lengths: Sequence[int] | None = None,
        mag_weight: float = 1.0,
        sc_weight: float = 0.0,
        eps: float = 1e-7,
        name: str | None = None,
        only_for_test: bool = False,
        is_noise_loss: bool = False,
        is_dereverb_loss: bool = False,
    ):
        super().__init__(
            name,
            only_for_test=only_for_test,
            is_noise_loss=is_noise_loss,
            is_dereverb_loss=is_dereverb_loss,
        )
        self.n_ffts = [int(n) for n in n_ffts]
        if not self.n_ffts or any(n < 2 for n in self.n_ffts):
            raise ValueError(f"n_ffts must be a non-empty list of sizes >= 2, got {n_ffts}")
        if hop_lengths is None:
            self.hop_lengths = [max(1, n // 4) for n in self.n_ffts]
        else:
            self.hop_lengths = [int(h) for h in hop_lengths]
            if len(self.hop_lengths) != len(self.n_ffts):
                raise ValueError(
                    f"hop_lengths {list(hop_lengths)} must have one entry per n_fft {self.n_ffts}"
                )
        if mag_weight < 0 or sc_weight < 0 or mag_weight + sc_weight == 0:
            raise ValueError("mag_weight and sc_weight must be >= 0 and not both 0")
        self.mag_weight = float(mag_weight)
        self.sc_weight = float(sc_weight)
        self.eps = float(eps)

    def _magnitude(self, x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
        """``[N, L]`` -> magnitude ``[N, F, T]``."""
        spec = torch.stft(
            x,
            n_fft=n_fft,
            hop_length=hop,
            window=torch.hann_window(n_fft, device=x.device, dtype=x.dtype),
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return (spec.real.pow(2) + spec.imag.pow(2) + self.eps).sqrt()

    @torch.amp.autocast("cuda", enabled=False)
    def per_signal(self, ref: torch.Tensor, inf: torch.Tensor) -> torch.Tensor:
        length = ref.size(1)
        total = ref.new_zeros(ref.size(0))
        for n_fft, hop in zip(self.n_ffts, self.hop_lengths):
            if length <= n_fft // 2:
                raise ValueError(
                    f"signal of {length} samples is too short for the n_fft={n_fft} resolution "
                    "(reflect padding needs more than n_fft // 2 samples)"
                )
            mag_ref = self._magnitude(ref, n_fft, hop)
            mag_inf = self._magnitude(inf, n_fft, hop)
            diff = mag_inf - mag_ref
            loss = self.mag_weight * diff.abs().mean(dim=(1, 2))
            if self.sc_weight:
                sc = diff.pow(2).sum(dim=(1, 2)).sqrt() / (
                    mag_ref.pow(2).sum(dim=(1, 2)).sqrt() + math.sqrt(self.eps)
                )
                loss = loss + self.sc_weight * sc
            total = total + loss
        return total / len(self.n_ffts)
