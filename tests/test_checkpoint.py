"""Loading ESPnet experiments and published checkpoints into the standalone networks."""

import pytest
import torch
import yaml
from conftest import FIXTURES

from standalone import BSLocoformerSeparator, CheckpointError, load_separator, remap_state_dict
from standalone.checkpoint import find_checkpoint

BS_CONF = dict(
    num_spk=4,
    stereo=True,
    sample_rate=44100,
    stft_size=256,
    n_layers=1,
    emb_dim=16,
    attention_dim=16,
    n_heads=2,
    ffn_hidden_dim=[16, 16],
)


def write_experiment(root, conf=BS_CONF, name="valid.loss.ave_3best.pth", extra=None):
    """An ESPnet-style experiment directory with random weights; returns the network."""
    torch.manual_seed(0)
    net = BSLocoformerSeparator(**conf)
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "encoder": "stft",
        "encoder_conf": {"n_fft": conf["stft_size"], "hop_length": 64},
        "decoder": "stft",
        "decoder_conf": {"n_fft": conf["stft_size"], "hop_length": 64},
        "separator": "bslocoformer",
        "separator_conf": {**conf, "stem_names": ["vocals", "drums", "bass", "other"]},
        "model_conf": {"normalize_variance": True},
        **(extra or {}),
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save({f"separator.{k}": v for k, v in net.state_dict().items()}, root / name)
    return net


def test_experiment_dir_round_trip(tmp_path):
    net = write_experiment(tmp_path / "exp").eval()
    model, info = load_separator(tmp_path / "exp")
    x = torch.randn(1, 2, 5, 129, dtype=torch.complex64)
    assert torch.equal(model(x), net(x))
    assert not model.training
    assert info["separator"] == "bslocoformer"
    assert info["stem_names"] == ["vocals", "drums", "bass", "other"]
    assert (info["n_fft"], info["hop_length"], info["win_length"], info["window"]) == (
        256,
        64,
        256,
        "hann",
    )
    assert info["fs"] == 44100 and info["num_channels"] == 2
    assert info["normalize_variance"] and not info["normalize_variance_per_ch"]
    assert info["checkpoint_path"].name == "valid.loss.ave_3best.pth"


def test_espnet_fixture_loads_through_config_and_checkpoint(tmp_path):
    fx = torch.load(
        FIXTURES / "espnet_tflocoformer_mono_3spk_nope_tf_layernorm_conv1d.pt", weights_only=True
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "encoder": "stft",
                "encoder_conf": {"n_fft": 64, "hop_length": 16},
                "separator": "tflocoformer",
                "separator_conf": fx["config"],
            }
        )
    )
    ckpt = tmp_path / "model.pth"
    torch.save(fx["state_dict"], ckpt)
    model, info = load_separator(config=config, checkpoint=ckpt)
    with torch.no_grad():
        out = model(fx["input"])
    assert (out - fx["output"]).abs().max() < 1e-5
    assert info["stem_names"] == ["spk1", "spk2", "spk3"]
    assert info["fs"] is None


@pytest.mark.parametrize("form", ["bare file", "in memory", "training snapshot"])
def test_other_state_dict_forms(tmp_path, form):
    net = write_experiment(tmp_path).eval()
    bare = net.state_dict()
    if form == "bare file":
        torch.save(bare, tmp_path / "bare.pth")
        ckpt = tmp_path / "bare.pth"
    elif form == "in memory":
        ckpt = bare
    else:
        snapshot = {
            "model": {f"separator.{k}": v for k, v in bare.items()},
            "optimizers": [],
            "reporter": {},
        }
        torch.save(snapshot, tmp_path / "checkpoint.pth")
        ckpt = tmp_path / "checkpoint.pth"
    model, _ = load_separator(config=tmp_path / "config.yaml", checkpoint=ckpt)
    x = torch.randn(1, 2, 4, 129, dtype=torch.complex64)
    assert torch.equal(model(x), net(x))


def test_remap_drops_other_modules():
    state = {
        "separator.a": torch.ones(1),
        "encoder.b": torch.ones(1),
        "loss_wrappers.0.c": torch.ones(1),
    }
    assert list(remap_state_dict(state)) == ["a"]
    assert list(remap_state_dict({"a": torch.ones(1)})) == ["a"]


def test_default_checkpoint_is_the_averaged_best(tmp_path):
    for name in ("3epoch.pth", "10epoch.pth", "valid.loss.best.pth", "valid.loss.ave_5best.pth"):
        (tmp_path / name).write_bytes(b"")
    assert find_checkpoint(tmp_path).name == "valid.loss.ave_5best.pth"
    (tmp_path / "valid.loss.ave.pth").write_bytes(b"")
    assert find_checkpoint(tmp_path).name == "valid.loss.ave.pth"
    for name in ("valid.loss.ave.pth", "valid.loss.ave_5best.pth", "valid.loss.best.pth"):
        (tmp_path / name).unlink()
    assert find_checkpoint(tmp_path).name == "10epoch.pth"


def test_mismatch_lists_missing_unexpected_and_misshaped_keys(tmp_path):
    write_experiment(tmp_path)
    ckpt = tmp_path / "valid.loss.ave_3best.pth"
    state = torch.load(ckpt, weights_only=True)
    state.pop("separator.blocks.0.freq_path.attn.qkv.weight")
    state["separator.extra.weight"] = torch.zeros(3)
    state["separator.blocks.0.frame_path.attn_norm.gamma"] = torch.zeros(7)
    torch.save(state, ckpt)
    with pytest.raises(CheckpointError) as err:
        load_separator(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(ckpt) in msg and "config.yaml" in msg
    assert "1 missing key(s) [blocks.0.freq_path.attn.qkv.weight]" in msg
    assert "1 unexpected key(s) [extra.weight]" in msg
    assert "blocks.0.frame_path.attn_norm.gamma (7,) vs (16,)" in msg


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="model directory not found"):
        load_separator(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty: no model file"):
        load_separator(tmp_path / "empty")
    write_experiment(tmp_path / "exp")
    (tmp_path / "exp" / "valid.loss.ave_3best.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_separator(tmp_path / "exp")
    (tmp_path / "exp" / "config.yaml").write_text("encoder: stft\n")
    with pytest.raises(CheckpointError, match="not an ESPnet enhancement config"):
        load_separator(tmp_path / "exp")
    (tmp_path / "exp" / "config.yaml").write_text("separator: rnn\n")
    with pytest.raises(CheckpointError, match="'rnn' is not one of"):
        load_separator(tmp_path / "exp")
    (tmp_path / "exp" / "config.yaml").write_text(
        "separator: bslocoformer\nseparator_conf: {foo: 1}\n"
    )
    with pytest.raises(CheckpointError, match="unexpected keyword argument 'foo'"):
        load_separator(tmp_path / "exp")


class Evil:
    """An arbitrary object in a pickle: weights_only loading must refuse it."""


def test_pickled_objects_are_refused(tmp_path):
    write_experiment(tmp_path)
    torch.save({"separator.x": Evil()}, tmp_path / "valid.loss.ave_3best.pth")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_separator(tmp_path)


def test_training_segment_from_the_config():
    from standalone.checkpoint import training_segment

    assert training_segment({"chunk_length": 264600}) == (264600, "chunk_length")
    assert training_segment({"chunk_length": "16000-48000"}) == (48000, "chunk_length")
    crop = {"preprocessor_conf": {"segment_length": 8000}, "chunk_length": 4000}
    assert training_segment(crop) == (8000, "preprocessor_conf.segment_length")
    assert training_segment({"speech_segment": 32000}) == (32000, "speech_segment")
    assert training_segment({}) is None
    assert training_segment({"chunk_length": "six seconds"}) is None
