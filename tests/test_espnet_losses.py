"""Multi-channel losses, the stem fixed-order wrapper, and ESPnet's model scoring all channels."""

from __future__ import annotations

import math

import pytest
import torch
from plugin_env import STEMS, build_model, require_plugin, tiny_music_config

require_plugin()

from espnet2.enh.loss.criterions.multichannel import (  # noqa: E402
    MultiChannelL1Loss,
    MultiChannelL2Loss,
    MultiChannelSISDRLoss,
    MultiChannelSNRLoss,
    MultiResolutionSTFTLoss,
)
from espnet2.enh.loss.criterions.time_domain import SISNRLoss  # noqa: E402
from espnet2.enh.loss.wrappers.stem_fixed_order import StemFixedOrderSolver  # noqa: E402


def _pair(b=2, length=800, channels=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(b, length, channels, generator=g)
    est = ref + 0.3 * torch.randn(b, length, channels, generator=g)
    return ref, est


def test_snr_matches_hand_computation_per_channel():
    ref, est = _pair()
    loss = MultiChannelSNRLoss(eps=1e-12)(ref, est)
    want = torch.stack(
        [
            torch.stack(
                [
                    -10
                    * torch.log10(
                        ref[b, :, c].pow(2).sum() / (est[b, :, c] - ref[b, :, c]).pow(2).sum()
                    )
                    for c in range(2)
                ]
            ).mean()
            for b in range(2)
        ]
    )
    assert loss.shape == (2,)
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-5)


def test_stereo_loss_is_the_mean_of_the_channel_losses():
    ref, est = _pair()
    for crit in (
        MultiChannelSNRLoss(),
        MultiChannelSISDRLoss(),
        MultiChannelL1Loss(),
        MultiChannelL2Loss(),
        MultiResolutionSTFTLoss(n_ffts=[64, 128], sc_weight=1.0),
    ):
        left, right = crit(ref[..., 0], est[..., 0]), crit(ref[..., 1], est[..., 1])
        torch.testing.assert_close(crit(ref, est), (left + right) / 2, msg=crit.name)


def test_si_sdr_is_scale_invariant_and_agrees_with_espnet():
    ref, est = _pair(channels=1)
    ref, est = ref[..., 0], est[..., 0]
    crit = MultiChannelSISDRLoss(eps=1e-12)
    torch.testing.assert_close(crit(ref, 3.0 * est), crit(ref, est), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(crit(ref, est), SISNRLoss()(ref, est), rtol=1e-3, atol=1e-3)
    # plain SNR is not scale invariant
    snr = MultiChannelSNRLoss()
    assert (snr(ref, 3.0 * est) - snr(ref, est)).abs().min() > 1.0


def test_snr_max_caps_a_perfect_estimate_and_silence_is_defined():
    ref, _ = _pair()
    capped = MultiChannelSNRLoss(snr_max=30.0)(ref, ref)
    torch.testing.assert_close(capped, torch.full((2,), -30.0), rtol=1e-4, atol=1e-4)
    silent = torch.zeros_like(ref)
    for crit in (MultiChannelSNRLoss(), MultiChannelSISDRLoss()):
        assert torch.equal(crit(silent, silent), torch.zeros(2))  # silent stem, silent estimate
        assert (crit(silent, 0.01 * ref) > 50).all()  # leakage into a silent stem is punished


def test_l1_l2_values_and_mrstft_zero_only_for_a_perfect_estimate():
    ref, est = _pair()
    torch.testing.assert_close(MultiChannelL1Loss()(ref, est), (est - ref).abs().mean((1, 2)))
    torch.testing.assert_close(MultiChannelL2Loss()(ref, est), (est - ref).pow(2).mean((1, 2)))
    mr = MultiResolutionSTFTLoss(n_ffts=[64, 128, 256])
    assert torch.allclose(mr(ref, ref), torch.zeros(2), atol=1e-6)
    assert (mr(ref, est) > 0.05).all()
    # gradients stay finite on exact silence (eps inside the magnitude)
    est0 = torch.zeros_like(ref, requires_grad=True)
    mr(torch.zeros_like(ref), est0).sum().backward()
    assert torch.isfinite(est0.grad).all()


def test_loss_errors_are_clear():
    ref, est = _pair()
    with pytest.raises(ValueError, match=r"shapes differ: \(2, 800, 2\) vs \(2, 800, 1\)"):
        MultiChannelL1Loss()(ref, est[..., :1])
    with pytest.raises(ValueError, match="too short for the n_fft=2048"):
        MultiResolutionSTFTLoss(n_ffts=[2048])(ref, est)
    with pytest.raises(ValueError, match="one entry per n_fft"):
        MultiResolutionSTFTLoss(n_ffts=[64, 128], hop_lengths=[16])


def test_stem_fixed_order_reports_stems_and_never_permutes():
    ref = [torch.randn(2, 400, 2) for _ in STEMS]
    est = [r + 0.1 * torch.randn_like(r) for r in ref]
    solver = StemFixedOrderSolver(MultiChannelL1Loss(), stem_names=STEMS)
    loss, stats, others = solver(ref, est)
    assert set(stats) == {"mc_l1_loss"} | {f"mc_l1_loss_{s}" for s in STEMS}
    torch.testing.assert_close(loss, sum(stats[f"mc_l1_loss_{s}"] for s in STEMS) / 4)
    assert others["perm"].tolist() == [[0, 1, 2, 3]] * 2
    swapped, _, _ = solver(ref, [est[1], est[0], est[2], est[3]])
    assert swapped > 3 * loss  # a PIT wrapper would have found the swap; this one must not

    weighted = StemFixedOrderSolver(
        MultiChannelL1Loss(), stem_names=STEMS, stem_weights=[3, 1, 0, 0]
    )
    w_loss, w_stats, _ = weighted(ref, est)
    torch.testing.assert_close(
        w_loss, 0.75 * w_stats["mc_l1_loss_vocals"] + 0.25 * w_stats["mc_l1_loss_drums"]
    )
    with pytest.raises(ValueError, match="stem_names lists 4 stems but the model gives 3"):
        solver(ref[:3], est[:3])


# --------------------------------------------------------------------------- through ESPnet
ALL_CRITERIA = [
    ("mc_snr", {"snr_max": 40}),
    ("mc_si_sdr", {}),
    ("mc_l1", {}),
    ("mc_l2", {}),
    ("mc_mrstft", {"n_ffts": [64, 128]}),
    ("si_snr", {}),  # ESPnet's own (B, T) criterion: channels are folded into the batch
    ("snr", {}),
    ("mr_l1_tfd", {"window_sz": [64, 128]}),
]


def _loss_with_right_channel_noise(model, batch, corrupt: bool) -> float:
    """Model loss; with ``corrupt``, noise is added to the right channel of every estimate."""

    def hook(_module, _inputs, output):
        wav, lens = output
        if corrupt and wav.dim() == 3:
            wav = wav.clone()
            wav[..., 1] += 0.5 * torch.randn_like(wav[..., 1])
        return wav, lens

    handle = model.decoder.register_forward_hook(hook)
    try:
        torch.manual_seed(1)
        with torch.no_grad():
            loss, _, _ = model(**batch)
    finally:
        handle.remove()
    return float(loss)


def _stereo_batch(b=2, length=1200, seed=0):
    g = torch.Generator().manual_seed(seed)
    refs = {f"speech_ref{i + 1}": 0.1 * torch.randn(b, length, 2, generator=g) for i in range(4)}
    return dict(speech_mix=sum(refs.values()), speech_mix_lengths=torch.full((b,), length), **refs)


@pytest.mark.parametrize(("name", "conf"), ALL_CRITERIA)
def test_every_loss_sees_the_right_channel_only_with_all_channel_loss(name, conf):
    crit = [dict(name=name, conf=conf, wrapper="stem_fixed_order", wrapper_conf={})]
    batch = _stereo_batch()
    torch.manual_seed(0)
    model = build_model(tiny_music_config(criterions=crit, all_channel_loss=True)).eval()
    clean = _loss_with_right_channel_noise(model, batch, corrupt=False)
    noisy = _loss_with_right_channel_noise(model, batch, corrupt=True)
    assert math.isfinite(clean) and math.isfinite(noisy)
    assert abs(noisy - clean) > 1e-3 * max(1.0, abs(clean)), (clean, noisy)

    # ESPnet's behaviour is kept when the flag is off: only the reference channel (left) counts
    model.all_channel_loss = False
    clean = _loss_with_right_channel_noise(model, batch, corrupt=False)
    noisy = _loss_with_right_channel_noise(model, batch, corrupt=True)
    assert noisy == pytest.approx(clean, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("separator", ["tflocoformer", "bslocoformer"])
def test_normalized_stereo_batches_scale_per_item(separator):
    """normalize_variance with stereo batches > 1: each item is de-normalised by its own std.

    L1 is 1-homogeneous, so scaling item 0 (mixture and references) by 5 must scale its loss
    by exactly 5 and leave item 1 alone; batch loss = mean of the item losses.
    """
    model = build_model(tiny_music_config(separator=separator)).eval()
    batch = _stereo_batch(b=2)

    def item_losses(b):
        with torch.no_grad():
            return torch.stack(
                [
                    model(
                        **{
                            k: v[i : i + 1] if k != "speech_mix_lengths" else v[:1]
                            for k, v in b.items()
                        }
                    )[0].squeeze()
                    for i in range(2)
                ]
            )

    with torch.no_grad():
        batch_loss = model(**batch)[0]
    single = item_losses(batch)
    torch.testing.assert_close(batch_loss.squeeze(), single.mean(), rtol=1e-4, atol=1e-6)

    scaled = {k: v.clone() for k, v in batch.items()}
    for k in scaled:
        if k.startswith("speech_ref") or k == "speech_mix":
            scaled[k][0] *= 5.0
    with torch.no_grad():
        scaled_loss = model(**scaled)[0]
    want = (5.0 * single[0] + single[1]) / 2
    torch.testing.assert_close(scaled_loss.squeeze(), want, rtol=1e-4, atol=1e-6)
