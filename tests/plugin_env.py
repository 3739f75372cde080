"""Helpers for the tests of the ESPnet plugin (installer, losses, training, augmentation, DDP).

Tests that modify an ESPnet tree work on private copies (``pristine_espnet_copy``). Tests that
run ESPnet use the ``espnet2`` package on the path, which must have this checkout's plugin
installed: ``make test`` runs ``copy_files_to_espnet.sh`` into the venv first, or put an
installed copy first on ``PYTHONPATH``. ``require_plugin()`` checks that the installed files
are exactly what this checkout would install, so stale installs fail loudly.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import sysconfig
from functools import cache
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTALLER_PATH = REPO_ROOT / "tools" / "install_espnet_plugin.py"
STEMS = ["vocals", "drums", "bass", "other"]


@cache
def installer():
    """The installer module (tools/install_espnet_plugin.py)."""
    spec = importlib.util.spec_from_file_location("install_espnet_plugin", INSTALLER_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def run_installer(*args: str | Path) -> subprocess.CompletedProcess:
    """Run ``copy_files_to_espnet.sh`` with ``args``; returns the finished process."""
    return subprocess.run(
        ["bash", str(REPO_ROOT / "copy_files_to_espnet.sh"), *map(str, args)],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )


def pristine_espnet_copy(dst_root: Path) -> Path:
    """Copy the venv's ``espnet2`` package to ``dst_root/espnet2``, plugin removed if present."""
    src = Path(sysconfig.get_paths()["purelib"]) / "espnet2"
    shutil.copytree(
        src, dst_root / "espnet2", symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    if (dst_root / installer().MANIFEST).exists():
        proc = run_installer("--uninstall", dst_root)
        assert proc.returncode == 0, proc.stderr
    return dst_root


def snapshot(root: Path) -> dict[str, bytes]:
    """``{relative path: content}`` of every file/symlink under ``root`` (bytecode caches out)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = b"->" + str(Path(path.readlink())).encode()
        elif path.is_file():
            out[rel] = path.read_bytes()
        else:
            out[rel + "/"] = b""
    return out


@cache
def require_plugin() -> Path:
    """Root (dir holding ``espnet2/``) of the imported espnet2, checked to hold this plugin."""
    import espnet2

    root = Path(espnet2.__file__).resolve().parent.parent
    inst = installer()
    try:
        plan = inst.make_plan(root)
    except inst.InstallError as e:
        raise RuntimeError(f"cannot check the plugin in {root}: {e}") from None
    stale = [
        rel for rel, e in sorted(plan.entries.items()) if inst.sha256_of(root / rel) != e.digest()
    ]
    if stale:
        raise RuntimeError(
            f"the TF-Locoformer plugin in {root} is missing or out of date ({', '.join(stale)}):"
            f" run `make install-plugin` (bash copy_files_to_espnet.sh {root})"
        )
    return root


def build_args(config: dict | Path, *extra: str) -> argparse.Namespace:
    """ESPnet's parsed arguments for an enh config (a YAML file or a dict)."""
    from espnet2.tasks.enh import EnhancementTask

    parser = EnhancementTask.get_parser()
    if isinstance(config, dict):
        args = parser.parse_args(list(extra))
        for key, value in config.items():
            setattr(args, key, value)
        return args
    return parser.parse_args(["--config", str(config), *extra])


def build_model(config: dict | Path):
    """``EnhancementTask.build_model`` for a config (YAML path or dict)."""
    from espnet2.tasks.enh import EnhancementTask

    return EnhancementTask.build_model(build_args(config))


def tiny_music_config(
    separator: str = "tflocoformer",
    criterions: list[dict] | None = None,
    all_channel_loss: bool = True,
    normalize_variance: bool = True,
) -> dict:
    """A small stereo 4-stem config (dict) for CPU tests."""
    if separator == "tflocoformer":
        sep_conf = dict(
            num_spk=4,
            num_channels=2,
            n_layers=1,
            emb_dim=16,
            n_heads=2,
            attention_dim=16,
            ffn_hidden_dim=[16, 16],
            stem_names=STEMS,
        )
    else:
        sep_conf = dict(
            num_spk=4,
            sample_rate=8000,
            stft_size=64,
            stereo=True,
            n_layers=1,
            emb_dim=16,
            n_heads=2,
            attention_dim=16,
            ffn_hidden_dim=[16, 16],
            stem_names=STEMS,
        )
    if criterions is None:
        criterions = [
            dict(
                name="mc_l1",
                conf={},
                wrapper="stem_fixed_order",
                wrapper_conf=dict(weight=1.0, stem_names=STEMS),
            ),
        ]
    return dict(
        encoder="stft",
        encoder_conf=dict(n_fft=64, hop_length=16),
        decoder="stft",
        decoder_conf=dict(n_fft=64, hop_length=16),
        separator=separator,
        separator_conf=sep_conf,
        model_conf=dict(normalize_variance=normalize_variance, all_channel_loss=all_channel_loss),
        criterions=criterions,
    )


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
