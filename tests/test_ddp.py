"""Multi-process DDP (ESPnet's --ngpu N) needs every parameter to receive a gradient."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_env import REPO_ROOT, STEMS, require_plugin, tiny_music_config, write_yaml

ESPNET_ROOT = require_plugin()


@pytest.mark.slow
def test_two_process_gloo_ddp_step_uses_every_parameter(tmp_path: Path):
    criterions = [
        dict(name="mc_snr", conf=dict(snr_max=30), wrapper="stem_fixed_order",
             wrapper_conf=dict(weight=1.0, stem_names=STEMS)),
        dict(name="mc_mrstft", conf=dict(n_ffts=[64, 128]), wrapper="stem_fixed_order",
             wrapper_conf=dict(weight=0.5)),
    ]  # fmt: skip
    configs = {
        sep: write_yaml(tmp_path / f"{sep}.yaml", tiny_music_config(sep, criterions=criterions))
        for sep in ("tflocoformer", "bslocoformer")
    }
    out = tmp_path / "ddp.json"
    env = {**os.environ, "PYTHONPATH": str(ESPNET_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "ddp_check.py"), str(out),
         *map(str, configs.values())],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    for sep, path in configs.items():
        ranks = results[str(path)]
        r0, r1 = ranks["rank0"], ranks["rank1"]
        assert r0["num_params"] > 10, sep
        assert r0["without_grad"] == [] and r1["without_grad"] == [], sep
        assert r0["loss"] != r1["loss"], sep  # the ranks saw different batches ...
        assert r0["grad_checksum"] == pytest.approx(r1["grad_checksum"], rel=1e-9), sep
        assert r0["grad_checksum"] > 0  # ... and share all-reduced, non-zero gradients
