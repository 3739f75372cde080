"""The ESPnet separator adapters are the standalone networks behind ESPnet's interface.

These tests import the adapters from the espnet2 package on the path, where
``copy_files_to_espnet.sh`` has installed them (``make test`` does that first).
"""

import filecmp
from pathlib import Path

import espnet2.enh.separator.abs_separator as espnet_separator
import pytest
import torch
from conftest import REPO_ROOT

from standalone import BSLocoformerSeparator, TFLocoformerSeparator

try:
    from espnet2.enh.separator.bslocoformer_separator import BSLocoformerSeparator as BSAdapter
    from espnet2.enh.separator.tflocoformer_separator import TFLocoformerSeparator as TFAdapter
except ImportError as e:  # pragma: no cover - a setup problem, reported as a failure
    raise RuntimeError(
        "the plugin is not installed in this espnet2: run `make install-plugin` "
        "(copy_files_to_espnet.sh) first"
    ) from e

TINY = dict(n_layers=1, emb_dim=16, attention_dim=16, n_heads=2, ffn_hidden_dim=[16, 16])


def test_installed_plugin_is_this_checkout():
    import espnet2.enh.separator as sep_pkg

    installed = Path(sep_pkg.__file__).parent
    for name in ("tflocoformer_separator.py", "bslocoformer_separator.py"):
        assert filecmp.cmp(
            installed / name, REPO_ROOT / "espnet2/enh/separator" / name, shallow=False
        )
    for src in (REPO_ROOT / "standalone").glob("*.py"):
        assert filecmp.cmp(installed / "locoformer" / src.name, src, shallow=False), src.name


def test_adapters_are_espnet_separators():
    assert issubclass(TFAdapter, espnet_separator.AbsSeparator)
    assert issubclass(BSAdapter, espnet_separator.AbsSeparator)


@pytest.mark.parametrize("channels", [1, 2])
def test_tf_adapter_equals_standalone(channels):
    torch.manual_seed(0)
    net = TFLocoformerSeparator(num_spk=3, num_channels=channels, **TINY).eval()
    adapter = TFAdapter(
        33, num_spk=3, num_channels=channels, stem_names=["a", "b", "c"], **TINY
    ).eval()
    assert list(adapter.state_dict()) == list(net.state_dict())
    adapter.load_state_dict(net.state_dict(), strict=True)
    ilens = torch.tensor([12, 9])
    if channels == 1:
        feats = torch.randn(2, 12, 33, dtype=torch.complex64)  # ESPnet [B, T, F]
        want = net(feats).unbind(1)
    else:
        feats = torch.randn(2, 12, channels, 33, dtype=torch.complex64)  # ESPnet [B, T, C, F]
        want = [s.transpose(1, 2) for s in net(feats.transpose(1, 2)).unbind(1)]
    est, lens, others = adapter(feats, ilens)
    assert adapter.num_spk == 3 and adapter.stem_names == ["a", "b", "c"]
    assert len(est) == 3 and torch.equal(lens, ilens) and len(others) == 0
    for got, ref in zip(est, want):
        assert got.shape == feats.shape
        assert torch.equal(got, ref)


def test_bs_adapter_equals_standalone():
    torch.manual_seed(0)
    conf = dict(num_spk=4, stereo=True, stft_size=256, sample_rate=44100, **TINY)
    net = BSLocoformerSeparator(**conf).eval()
    adapter = BSAdapter(129, **conf).eval()
    adapter.load_state_dict(net.state_dict(), strict=True)
    feats = torch.randn(1, 7, 2, 129, dtype=torch.complex64)
    est, _, _ = adapter(feats, torch.tensor([7]))
    ref = net(feats.transpose(1, 2))  # [B, N, M, T, F]
    assert len(est) == 4
    for n, got in enumerate(est):
        assert got.shape == (1, 7, 2, 129)
        assert torch.equal(got, ref[:, n].transpose(1, 2))


def test_adapter_errors():
    with pytest.raises(ValueError, match="encoder gives 100 frequency bins"):
        BSAdapter(100, stft_size=256, **TINY)
    with pytest.raises(ValueError, match="stem_names"):
        TFAdapter(33, num_spk=2, stem_names=["vocals"], **TINY)


def test_print_config_shows_network_options():
    from espnet2.utils.get_default_kwargs import get_default_kwargs

    defaults = get_default_kwargs(BSAdapter)
    assert defaults["stft_size"] == 2048 and defaults["masking"] is True
    assert defaults["stem_names"] is None and "input_dim" not in defaults
