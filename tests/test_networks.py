"""The standalone networks: parity with the original implementation, shapes, options, numerics."""

import ast
import json

import pytest
import torch
from conftest import FIXTURES

from standalone import BSLocoformerSeparator, TFLocoformerSeparator, band_widths, chunked_separation

FIXTURE_NAMES = sorted(json.loads((FIXTURES / "index.json").read_text()))
CLASSES = {
    "TFLocoformerSeparator": TFLocoformerSeparator,
    "BSLocoformerSeparator": BSLocoformerSeparator,
}
TINY = dict(
    n_layers=1, emb_dim=16, attention_dim=16, n_heads=2, num_groups=4, ffn_hidden_dim=[24, 24]
)


def cplx(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g))


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_parity(name):
    fx = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
    model = CLASSES[fx["class"]](**fx["config"]).eval()
    state = {k.removeprefix("separator."): v for k, v in fx["state_dict"].items()}
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = model(fx["input"])
    assert out.shape == fx["output"].shape
    assert out.dtype == torch.complex64
    assert (out - fx["output"]).abs().max().item() < 1e-5


def published_settings():
    paths = sorted((FIXTURES / "merl_checkpoint_keys").glob("*.txt"))
    return [pytest.param(path, id=path.stem) for path in paths]


@pytest.mark.parametrize("path", published_settings())
def test_published_checkpoint_keys(path):
    lines = path.read_text().splitlines()
    conf = json.loads(lines[1].split("separator_conf:", 1)[1])
    expected, total = {}, None
    for line in lines[2:]:
        if line.startswith("# total elements:"):
            total = int(line.split(":")[1])
        elif line.strip():
            key, shape = line.split("\t")
            expected[key] = tuple(ast.literal_eval(shape))
    model = TFLocoformerSeparator(**conf)
    got = {f"separator.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    assert sum(v.numel() for v in model.state_dict().values()) == total


@pytest.mark.parametrize("num_spk", [1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 2])
def test_tf_shapes(num_spk, channels):
    model = TFLocoformerSeparator(num_spk=num_spk, num_channels=channels, **TINY).eval()
    x = cplx(2, channels, 7, 17) if channels > 1 else cplx(2, 7, 17)
    out = model(x)
    want = (2, num_spk, channels, 7, 17) if channels > 1 else (2, num_spk, 7, 17)
    assert out.shape == want and out.dtype == torch.complex64


@pytest.mark.parametrize("num_spk", [1, 2, 4])
@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("masking", [True, False])
def test_bs_shapes(num_spk, channels, masking):
    model = BSLocoformerSeparator(
        num_spk=num_spk, num_channels=channels, stft_size=256, masking=masking, **TINY
    ).eval()
    out = model(cplx(2, channels, 5, 129))
    want = (2, num_spk, channels, 5, 129) if channels > 1 else (2, num_spk, 5, 129)
    assert out.shape == want


def test_bs_masking_is_a_mask():
    model = BSLocoformerSeparator(num_spk=2, stereo=True, stft_size=256, **TINY).eval()
    x = cplx(1, 2, 6, 129)
    x[..., 40:50] = 0
    out = model(x)
    assert out[..., 40:50].abs().max() == 0  # a mask cannot create energy where the input has none
    assert out[..., :40].abs().max() > 0


def test_wrong_channel_count_is_explained():
    model = TFLocoformerSeparator(num_spk=2, num_channels=2, **TINY)
    with pytest.raises(ValueError, match="built for 2 audio channel"):
        model(cplx(1, 3, 4, 9))
    with pytest.raises(TypeError, match="complex"):
        model(torch.randn(1, 2, 4, 9))
    bs = BSLocoformerSeparator(num_spk=2, stft_size=256, **TINY)
    with pytest.raises(ValueError, match="129 frequency bins"):
        bs(cplx(1, 1, 4, 100))


@pytest.mark.parametrize(
    "options",
    [
        dict(pos_enc="nope"),
        dict(tf_order="tf"),
        dict(norm_type="layernorm"),
        dict(ffn_type=["conv1d"], ffn_hidden_dim=[20]),
        dict(ffn_type=["conv1d", "swiglu_conv1d"], ffn_hidden_dim=[20, 12]),
        dict(ffn_type="swiglu_conv1d", ffn_hidden_dim=20, conv1d_kernel=8, conv1d_shift=3),
        dict(ffn_type=["conv1d"], ffn_hidden_dim=[20], conv1d_kernel=4, conv1d_shift=1),
        dict(ffn_type=["conv1d"], ffn_hidden_dim=[20], conv1d_kernel=7, conv1d_shift=2),
        dict(attention_dim=32, n_heads=4),
    ],
    ids=repr,
)
@pytest.mark.parametrize("frames", [1, 2, 11])
def test_tf_options_and_odd_sizes(options, frames):
    conf = {**TINY, **options}
    model = TFLocoformerSeparator(num_spk=2, **conf).eval()
    for freqs in (1, 3, 10):
        out = model(cplx(1, frames, freqs))
        assert out.shape == (1, 2, frames, freqs)
        assert torch.isfinite(torch.view_as_real(out)).all()


def test_nope_has_no_rope_parameters_and_rope_has_frozen_ones():
    nope = TFLocoformerSeparator(pos_enc="nope", **TINY)
    assert not any("rope" in k for k in nope.state_dict())
    rope = TFLocoformerSeparator(**TINY)
    freqs = [p for n, p in rope.named_parameters() if n.endswith("rope.freqs")]
    assert len(freqs) == 2 and not any(p.requires_grad for p in freqs)
    assert torch.allclose(freqs[0], 10000 ** (-torch.arange(0, 8, 2) / 8))


def test_conv1d_ffn_large_kernel_is_centred():
    # a conv FFN with k - s >= 2 (which fails in the original) must see a centred context:
    # an impulse at the middle of the sequence influences outputs on both sides symmetrically
    from standalone.tflocoformer_separator import ConvDeconv1d

    ffn = ConvDeconv1d(1, 1, kernel=5, shift=1)
    with torch.no_grad():
        ffn.net[0].weight.fill_(1.0)
        ffn.net[0].bias.zero_()
        ffn.net[3].weight.fill_(1.0)
        ffn.net[3].bias.zero_()
    x = torch.zeros(1, 21, 1)
    x[0, 10, 0] = 1.0
    y = ffn(x)[0, :, 0]
    assert y.shape == (21,)
    assert torch.allclose(y, y.flip(0))
    assert y.argmax().item() == 10


@pytest.mark.parametrize("cls", ["tf", "bs"])
def test_backward_gives_finite_gradients_everywhere(cls):
    torch.manual_seed(0)
    if cls == "tf":
        model = TFLocoformerSeparator(num_spk=2, num_channels=2, **TINY)
        x = cplx(2, 2, 6, 17)
    else:
        model = BSLocoformerSeparator(num_spk=4, stereo=True, stft_size=256, **TINY)
        x = cplx(2, 2, 6, 129)
    model(x).abs().mean().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} unused"
            assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("scale", [0.0, 1e-8, 1e4])
@pytest.mark.parametrize("cls", ["tf", "bs"])
def test_silent_and_loud_inputs_stay_finite(cls, scale):
    torch.manual_seed(0)
    if cls == "tf":
        model = TFLocoformerSeparator(num_spk=2, num_channels=2, **TINY)
        x = cplx(1, 2, 6, 17) * scale
    else:
        model = BSLocoformerSeparator(num_spk=2, stereo=True, stft_size=256, **TINY)
        x = cplx(1, 2, 6, 129) * scale
    out = model(x)
    assert torch.isfinite(torch.view_as_real(out)).all()
    out.abs().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_autocast_keeps_sensitive_parts_in_fp32():
    torch.manual_seed(0)
    model = BSLocoformerSeparator(num_spk=2, stereo=True, stft_size=256, **TINY).eval()
    tf_model = TFLocoformerSeparator(num_spk=2, **TINY).eval()
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.dtype)

        return hook

    tf_model.conv.register_forward_hook(record("tf input conv"))
    tf_model.deconv.register_forward_hook(record("tf output conv"))
    tf_model.blocks[0].freq_path.attn_norm.register_forward_hook(record("norm"))
    tf_model.blocks[0].freq_path.attn.qkv.register_forward_hook(record("qkv"))
    x_bs, x_tf = cplx(1, 2, 8, 129), cplx(1, 8, 17)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_bs = model(x_bs)
        out_tf = tf_model(x_tf)
    assert seen["tf input conv"] == torch.float32
    assert seen["tf output conv"] == torch.float32
    assert seen["qkv"] == torch.bfloat16  # the bulk of the work does run in bf16
    assert out_bs.dtype == out_tf.dtype == torch.complex64
    ref_bs, ref_tf = model(x_bs), tf_model(x_tf)
    assert (out_bs - ref_bs).abs().max() < 0.1 * ref_bs.abs().max()
    assert (out_tf - ref_tf).abs().max() < 0.1 * ref_tf.abs().max()


def test_rmsgroupnorm_matches_definition():
    from standalone.tflocoformer_separator import RMSGroupNorm

    norm = RMSGroupNorm(num_groups=2, dim=6, eps=1e-5)
    with torch.no_grad():
        norm.gamma.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(3, 6)
    groups = x.view(3, 2, 3)
    want = groups / (groups.pow(2).mean(-1, keepdim=True).sqrt() + 1e-5)
    assert torch.allclose(norm(x), want.view(3, 6) * torch.arange(1.0, 7.0), atol=1e-6)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = TFLocoformerSeparator(num_spk=2, **TINY)
    ckpt = TFLocoformerSeparator(num_spk=2, gradient_checkpointing=True, **TINY)
    ckpt.load_state_dict(plain.state_dict())
    x = cplx(2, 6, 9)
    for m in (plain, ckpt):
        m(x).abs().pow(2).mean().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-6), name


@pytest.mark.parametrize(
    "fs,n_fft",
    [
        (8000, 256),
        (16000, 512),
        (22050, 1024),
        (32000, 2048),
        (44100, 128),
        (44100, 2048),
        (48000, 2048),
    ],
)
def test_band_layout_covers_every_bin_once(fs, n_fft):
    widths = band_widths(fs, n_fft)
    assert sum(widths) == n_fft // 2 + 1
    assert min(widths) >= 1
    model = BSLocoformerSeparator(num_spk=2, sample_rate=fs, stft_size=n_fft, **TINY).eval()
    assert model(cplx(1, 1, 3, n_fft // 2 + 1)).shape == (1, 2, 3, n_fft // 2 + 1)


def test_band_layout_matches_bs_roformer_at_44k():
    widths = band_widths(44100, 2048)
    assert len(widths) == 62
    assert widths[:24] == [2] * 24 and widths[24:36] == [4] * 12
    assert widths[36:44] == [12] * 8 and widths[44:52] == [24] * 8 and widths[52:60] == [48] * 8
    assert widths[60:] == [128, 129]
    assert band_widths(48000, 256)[-4:] == [7, 7, 7, 10]


def test_chunked_inference_equals_whole_when_it_fits_and_is_close_otherwise():
    torch.manual_seed(0)
    model = TFLocoformerSeparator(num_spk=2, pos_enc="nope", **TINY).eval()
    x = cplx(1, 40, 9)
    with torch.no_grad():
        whole = model(x)
    assert torch.equal(chunked_separation(model, x, chunk_frames=64, overlap_frames=16), whole)
    chunked = chunked_separation(model, x, chunk_frames=24, overlap_frames=8)
    assert chunked.shape == whole.shape
    assert torch.isfinite(torch.view_as_real(chunked)).all()
    # frames far from any chunk boundary see nearly the same context
    rel = (chunked - whole).abs().mean() / whole.abs().mean()
    assert rel < 0.5


def test_chunked_inference_reconstructs_a_framewise_model_exactly():
    # a model without context across frames must be unaffected by the chunking
    class Framewise(torch.nn.Module):
        def forward(self, spec):  # [B, M, T, F] -> [B, 2, M, T, F]
            return torch.stack((spec * 2, spec * (1 - 1j)), dim=1)

    x = cplx(1, 2, 1000, 5)
    out = chunked_separation(Framewise(), x, chunk_frames=96, overlap_frames=32, batch_size=3)
    assert torch.allclose(out, torch.stack((x * 2, x * (1 - 1j)), 1), atol=1e-5)


@pytest.mark.parametrize("overlap", [1, 32, 8000, 44100])
def test_overlap_add_weights_never_vanish(overlap):
    # long crossfades (seconds of audio) must not produce 0/0 at the first or last sample
    from standalone.chunking import crossfade_window, overlap_add

    chunk = 2 * overlap + 10
    window = crossfade_window(chunk, overlap)
    assert window.min() > 0
    # fade-in of one chunk + fade-out of the previous one = 1 across the overlap
    assert torch.allclose(window[:overlap] + window[chunk - overlap :], torch.ones(overlap))
    x = torch.randn(2, 3 * chunk + 7)
    out = overlap_add(lambda c: c * 3, x, -1, chunk, overlap, batch_size=2)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, 3 * x, atol=1e-4)
