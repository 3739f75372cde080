"""Every enh config the project ships builds through ESPnet's EnhancementTask.

The speech configs must also reproduce the published TF-Locoformer checkpoints exactly: the
separator's parameter names and shapes are compared with tests/fixtures/merl_checkpoint_keys.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from plugin_env import REPO_ROOT, build_args, require_plugin

require_plugin()

from espnet2.tasks.enh import EnhancementTask  # noqa: E402

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "merl_checkpoint_keys"


def shipped_configs() -> list[Path]:
    """Training configs (those naming a separator) under egs2/*/enh1/conf/, symlinks skipped."""
    found = []
    for path in sorted(REPO_ROOT.glob("egs2/*/enh1/conf/**/*.yaml")):
        if path.is_symlink():
            continue
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, dict) and "separator" in data:
            found.append(path)
    return found


CONFIGS = shipped_configs()
# published checkpoint of egs2/<corpus>/enh1/conf/tuning/<name>.yaml: <corpus>__enh_<name>_raw
SPEECH = [
    "wsj0_2mix/enh1/conf/tuning/train_enh_tflocoformer.yaml",
    "librimix/enh1/conf/tuning/train_enh_tflocoformer.yaml",
    "whamr/enh1/conf/tuning/train_enh_tflocoformer.yaml",
    "whamr/enh1/conf/tuning/train_enh_tflocoformer_small.yaml",
    "dns_ins20/enh1/conf/tuning/train_enh_tflocoformer.yaml",
]


def test_all_speech_configs_are_shipped():
    shipped = {p.relative_to(REPO_ROOT / "egs2").as_posix() for p in CONFIGS}
    assert set(SPEECH) <= shipped


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_config_builds_through_enhancement_task(config: Path):
    args = build_args(config)
    model = EnhancementTask.build_model(args)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert type(model.separator).__name__ in ("TFLocoformerSeparator", "BSLocoformerSeparator")
    # the config's preprocessor (if any) must accept its preprocessor_conf
    EnhancementTask.build_preprocess_fn(args, train=False)


def _fixture_shapes(rel: str) -> dict[str, tuple[int, ...]]:
    corpus, name = rel.split("/")[0], Path(rel).stem
    shapes = {}
    for line in (FIXTURES / f"{corpus}__enh_{name}_raw.txt").read_text().splitlines():
        if line.startswith("separator."):
            key, shape = line.split("\t")
            shapes[key] = tuple(ast.literal_eval(shape))
    return shapes


@pytest.mark.parametrize("rel", SPEECH)
def test_speech_config_matches_the_published_checkpoint(rel: str):
    model = EnhancementTask.build_model(build_args(REPO_ROOT / "egs2" / rel))
    got = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("separator.")}
    assert got == _fixture_shapes(rel)
