"""The benchmark (tools/benchmark.py) and the fast forms it measures against the plain ones."""

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO_ROOT

import standalone.tflocoformer_separator as tfl
from standalone import BSLocoformerSeparator, TFLocoformerSeparator
from standalone.perf import is_plain, plain_mode

sys.path.insert(0, str(REPO_ROOT / "tools"))
import benchmark  # noqa: E402
from bench_tasks import BenchConfig  # noqa: E402

TINY = dict(n_layers=2, emb_dim=16, attention_dim=16, n_heads=2, ffn_hidden_dim=[24, 24])
TINY_CONFIG = """\
batch_size: 2
preprocessor_conf:
    segment_length: 8000
encoder: stft
encoder_conf: {n_fft: 256, hop_length: 64}
decoder: stft
decoder_conf: {n_fft: 256, hop_length: 64}
separator: bslocoformer
separator_conf:
    num_spk: 4
    sample_rate: 16000
    stft_size: 256
    stereo: true
    n_layers: 1
    emb_dim: 16
    attention_dim: 16
    n_heads: 2
    ffn_hidden_dim: [24, 24]
    stem_names: [vocals, drums, bass, other]
model_conf: {normalize_variance: true}
"""


def cplx(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g))


def test_plain_mode_is_scoped():
    assert not is_plain()
    with plain_mode():
        assert is_plain()
        with plain_mode(False):
            assert not is_plain()
        assert is_plain()
    assert not is_plain()
    with pytest.raises(KeyError), plain_mode():
        raise KeyError("x")
    assert not is_plain()


@pytest.mark.parametrize("kernel,stride", [(4, 1), (1, 1), (8, 3), (7, 2), (3, 3)])
def test_channels_last_convolutions_equal_torch(kernel, stride):
    g = torch.Generator().manual_seed(kernel * 10 + stride)
    x = torch.randn(3, 11, 5, generator=g)  # [B, L, C_in]
    w = torch.randn(6, 5, kernel, generator=g)
    b = torch.randn(6, generator=g)
    want = F.conv1d(x.transpose(1, 2), w, b, stride=stride).transpose(1, 2)
    assert torch.allclose(tfl.conv1d_lc(x, w, b, stride), want, atol=1e-5)
    wt = torch.randn(5, 6, kernel, generator=g)
    want = F.conv_transpose1d(x.transpose(1, 2), wt, b, stride=stride).transpose(1, 2)
    got = tfl.conv_transpose1d_lc(x, wt, b, stride)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)


def _models():
    torch.manual_seed(0)
    tf_ffn = dict(ffn_type=["conv1d", "swiglu_conv1d"], conv1d_kernel=8, conv1d_shift=3)
    return [
        (BSLocoformerSeparator(num_spk=4, stereo=True, stft_size=256, **TINY), cplx(2, 2, 13, 129)),
        (TFLocoformerSeparator(num_spk=2, **{**TINY, **tf_ffn}), cplx(1, 9, 17)),
        (TFLocoformerSeparator(num_spk=2, pos_enc="nope", tf_order="tf", **TINY), cplx(2, 5, 6)),
    ]


@pytest.mark.parametrize("index", range(3))
def test_fast_forms_equal_plain_forms_at_inference(index, monkeypatch):
    model, x = _models()[index]
    model.eval()
    # small slices, so that several slices and a shorter last one are exercised
    monkeypatch.setattr(tfl, "SLICE_POSITIONS", 20)
    with torch.inference_mode():
        fast = model(x)
        with plain_mode():
            plain = model(x)
    assert fast.shape == plain.shape
    assert (fast - plain).abs().max() <= 1e-4 * max(1.0, plain.abs().max().item())
    assert not torch.equal(fast, torch.zeros_like(fast))


@pytest.mark.parametrize("index", range(3))
def test_fast_forms_give_the_plain_gradients(index):
    model, x = _models()[index]
    grads = []
    for plain in (False, True):
        model.zero_grad()
        with plain_mode(plain):
            model(x).abs().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, g in grads[0].items():
        assert torch.allclose(g, grads[1][name], atol=1e-5, rtol=1e-4), name


def _write_config(tmp_path, text=TINY_CONFIG, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "extra,segment,source",
    [
        ("", 8000, "preprocessor_conf.segment_length"),
        ("chunk_length: 4000-12000\n", 8000, "preprocessor_conf.segment_length"),
    ],
)
def test_config_reads_segment_and_batch(tmp_path, extra, segment, source):
    cfg = BenchConfig(_write_config(tmp_path, TINY_CONFIG + extra))
    assert (cfg.segment, cfg.segment_source, cfg.batch_size, cfg.fs) == (
        segment,
        source,
        2,
        16000,
    )


def test_config_segment_fallbacks(tmp_path):
    text = TINY_CONFIG.replace("preprocessor_conf:\n    segment_length: 8000\n", "")
    cfg = BenchConfig(_write_config(tmp_path, text + "chunk_length: 4000-12000\n"))
    assert (cfg.segment, cfg.segment_source) == (12000, "chunk_length")
    cfg = BenchConfig(_write_config(tmp_path, text + "speech_segment: 32000\n"))
    assert (cfg.segment, cfg.segment_source) == (32000, "speech_segment")
    cfg = BenchConfig(_write_config(tmp_path, text))
    assert (cfg.segment, cfg.segment_source) == (6 * 16000, "assumed")


def test_bad_configs_are_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="nothere.yaml: cannot read config"):
        BenchConfig(tmp_path / "nothere.yaml")
    bad = _write_config(tmp_path, "batch_size: 2\n", "bad.yaml")
    with pytest.raises(SystemExit, match="bad.yaml: not an ESPnet enhancement config"):
        BenchConfig(bad)
    with pytest.raises(SystemExit, match="config not found: .*missing.yaml"):
        benchmark.select_configs([tmp_path / "missing.yaml"])


def test_stems_difference_handles_non_finite_samples():
    from bench_tasks import stems_difference

    a = {"x": torch.tensor([0.0, 1.0, float("nan"), float("inf")])}
    b = {"x": torch.tensor([0.5, 1.0, float("nan"), float("inf")])}
    assert stems_difference(a, b) == 0.5
    assert stems_difference(a, {"x": torch.tensor([0.0, 1.0, 2.0, float("inf")])}) == float("inf")
    assert stems_difference(a, {"x": torch.tensor([0.0, 1.0, float("nan"), -float("inf")])}) == (
        float("inf")
    )


def test_goals_are_judged_from_the_measurements():
    report = {
        "inference": [
            {
                "config": benchmark.DEFAULT_CONFIG,
                "rtf": 0.7,
                "max_abs_diff": 2e-5,
                "nonfinite_samples": 0,
            },
            {"config": "other", "rtf": 2.0, "max_abs_diff": 3e-4, "nonfinite_samples": 18},
        ],
        "memory": {
            "runs": [{"peak_rss_gib": 1.0}, {"peak_rss_gib": 1.2}, {"peak_rss_gib": 3.5}],
            "ratio_longest_to_shortest": 3.5,
        },
    }
    goals = benchmark.check_goals(report)
    assert goals["default_rtf"]["met"] is True and goals["default_rtf"]["value"] == 0.7
    assert goals["fast_equals_plain"]["met"] is False
    assert goals["fast_equals_plain"]["value"] == 3e-4
    assert goals["stems_finite"]["met"] is False and goals["stems_finite"]["value"] == 18
    assert goals["longest_track_peak_gib"]["met"] is False
    assert goals["longest_to_shortest_peak"]["met"] is False
    assert all(g["met"] is None for g in benchmark.check_goals({}).values())


@pytest.mark.slow
def test_quick_run_prints_the_tables_and_writes_the_json(tmp_path, capsys):
    config = _write_config(tmp_path)
    out = tmp_path / "results" / "bench.json"
    argv = ["--configs", str(config), "--quick", "--minutes", "0.02", "0.05", "--out", str(out)]
    assert benchmark.main(argv) == 0
    table = capsys.readouterr().out
    for heading in ("| config | params (M)", "| track (min) | peak RSS", "| config | segment (s)"):
        assert heading in table
    assert "| tiny | 0.4 |" in table

    report = json.loads(out.read_text())
    assert [p.name for p in out.parent.iterdir()] == ["bench.json"]  # no temporary left
    machine = report["machine"]
    assert machine["torch"] == torch.__version__ and machine["usable_cpus"] >= 1
    assert machine["cpu"] and machine["device"] == "cpu"
    (inf,) = report["inference"]
    assert inf["config"] == "tiny" and inf["n_layers"] == 1 and inf["seconds"] == 2.0
    assert inf["rtf"] > 0 and inf["rtf_plain"] > 0 and inf["speedup"] > 0
    assert 0 <= inf["max_abs_diff"] <= 1e-4
    runs = report["memory"]["runs"]
    assert [r["minutes"] for r in runs] == [0.02, 0.05]
    for r in runs:
        assert r["peak_rss_gib"] >= r["rss_before_gib"] > 0.05
        assert r["seconds"] == pytest.approx(r["minutes"] * 60)
    (train,) = report["train"]
    assert train["steps_per_s"] > 0 and train["loss_finite"]
    assert train["segment_s"] == 0.5 and train["batch_size"] == 1
    assert train["peak_rss_gib"] > 0.05
    assert set(report["goals"]) == {
        "default_rtf",
        "fast_equals_plain",
        "stems_finite",
        "longest_track_peak_gib",
        "longest_to_shortest_peak",
    }
    assert report["goals"]["default_rtf"]["met"] is None  # no default config in the run
    assert report["goals"]["fast_equals_plain"]["met"] is True


def test_memory_cap_can_be_raised_again_by_worker_processes():
    # the benchmark caps itself, then its workers set their own (larger) caps
    code = (
        "import resource, sys; sys.path.insert(0, 'tools'); from bench_tasks import limit_memory;"
        "assert limit_memory(0.5) == 0.5; limit_memory(4.0);"
        "soft, hard = resource.getrlimit(resource.RLIMIT_AS);"
        "assert hard == resource.RLIM_INFINITY and soft > 3 * 2**30, (soft, hard)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
