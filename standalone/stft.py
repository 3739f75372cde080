"""STFT and inverse STFT with the conventions of ESPnet's ``stft`` encoder and decoder.

Centred frames (reflect padding), a periodic window of ``win_length`` samples, no
normalisation, one-sided spectrum.  Used by ``separate.py`` so that a model trained in
ESPnet sees exactly the features it was trained on, without ESPnet installed.
"""

from __future__ import annotations

import torch

WINDOWS = ("hann", "hamming", "blackman", "bartlett", "kaiser")


def _window(name: str | None, win_length: int, device, dtype) -> torch.Tensor | None:
    if name is None:
        return None
    if name not in WINDOWS:
        raise ValueError(f"unknown STFT window {name!r}; expected one of {WINDOWS} or None")
    return getattr(torch, f"{name}_window")(win_length, device=device, dtype=dtype)


def stft(
    wav: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    window: str | None = "hann",
) -> torch.Tensor:
    """wav: [..., L] real -> complex [..., T, F], T = L // hop + 1, F = n_fft // 2 + 1."""
    win_length = win_length or n_fft
    lead = wav.shape[:-1]
    flat = wav.reshape(-1, wav.shape[-1]).float()
    spec = torch.stft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=_window(window, win_length, wav.device, torch.float32),
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )  # [X, F, T]
    return spec.transpose(-1, -2).reshape(*lead, spec.shape[-1], spec.shape[-2])


def istft(
    spec: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int | None = None,
    window: str | None = "hann",
    length: int | None = None,
) -> torch.Tensor:
    """spec: complex [..., T, F] -> wav [..., length] (float32)."""
    win_length = win_length or n_fft
    lead = spec.shape[:-2]
    flat = spec.reshape(-1, *spec.shape[-2:]).transpose(-1, -2).to(torch.complex64)
    wav = torch.istft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=_window(window, win_length, spec.device, torch.float32),
        center=True,
        normalized=False,
        onesided=True,
        length=length,
        return_complex=False,
    )
    return wav.reshape(*lead, wav.shape[-1])
