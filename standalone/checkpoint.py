"""Load separators from ESPnet experiments and published checkpoints, without ESPnet.

An ESPnet enhancement experiment directory holds ``config.yaml`` (with ``separator``,
``separator_conf``, ``encoder_conf``, ``model_conf``) and model files such as
``valid.loss.ave_5best.pth`` whose keys are ``separator.`` + the network's own keys (the
STFT encoder and decoder have no parameters).  ``load_separator`` rebuilds the standalone
network from the config and loads the weights strictly, explaining any mismatch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
import yaml

from .bslocoformer_separator import BSLocoformerSeparator
from .tflocoformer_separator import TFLocoformerSeparator

SEPARATORS = {"tflocoformer": TFLocoformerSeparator, "bslocoformer": BSLocoformerSeparator}
# separator_conf entries that configure the ESPnet adapter, not the network
ADAPTER_ONLY_KEYS = ("stem_names",)
PREFIX = "separator."
# model files in the order they are preferred when only a directory is given
CHECKPOINT_PATTERNS = (
    r"valid\..+\.ave\.pth",
    r"valid\..+\.ave_\d+best\.pth",
    r"valid\..+\.best\.pth",
    r".+\.ave_\d+best\.pth",
    r"latest\.pth",
    r"\d+epoch\.pth",
)


class CheckpointError(RuntimeError):
    """A config / checkpoint pair that cannot be loaded (the message names the file)."""


def find_checkpoint(model_dir: Path) -> Path:
    """The averaged best model of an experiment directory (see ``CHECKPOINT_PATTERNS``)."""
    names = sorted(p.name for p in model_dir.glob("*.pth"))
    for pattern in CHECKPOINT_PATTERNS:
        matches = [n for n in names if re.fullmatch(pattern, n)]
        if matches:
            # several "N epoch" files: take the newest epoch
            matches.sort(
                key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]
            )
            return model_dir / matches[-1]
    raise CheckpointError(f"{model_dir}: no model file (*.pth) found")


def read_config(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise CheckpointError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(config, dict) or "separator" not in config:
        raise CheckpointError(f"{path}: not an ESPnet enhancement config (no 'separator' entry)")
    return config


def remap_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ESPnet model state dict -> network state dict.

    Keys ``separator.X`` become ``X`` and other ESPnet modules' keys are dropped; a state
    dict without any ``separator.`` key is taken to be the network's own already.  An ESPnet
    training snapshot (``checkpoint.pth``, with a ``model`` entry) is unwrapped first.
    """
    if "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if any(k.startswith(PREFIX) for k in state):
        return {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    return dict(state)


def describe_mismatch(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """None when ``state`` fits ``model`` exactly, else a one-line description."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    parts = []
    for label, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("mis-shaped", misshaped),
    ):
        if items:
            shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
            parts.append(f"{len(items)} {label} key(s) [{shown}]")
    return "; ".join(parts) or None


def build_separator(name: str, conf: Mapping) -> torch.nn.Module:
    """Build the network named in an ESPnet config from its ``separator_conf``."""
    if name not in SEPARATORS:
        raise CheckpointError(f"separator {name!r} is not one of {sorted(SEPARATORS)}")
    kwargs = {k: v for k, v in conf.items() if k not in ADAPTER_ONLY_KEYS}
    try:
        return SEPARATORS[name](**kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot build {name} from separator_conf: {e}") from None


def load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file not found") from None
    except Exception as e:  # corrupt file, pickle with objects, ...
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: not a state dict (got {type(state).__name__})")
    return remap_state_dict(state)


def load_separator(
    model_dir: str | Path | None = None,
    config: str | Path | None = None,
    checkpoint: str | Path | Mapping[str, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained separator from an ESPnet experiment.

    Give ``model_dir`` (``config.yaml`` + the averaged best ``.pth`` inside), or ``config``
    and ``checkpoint`` (``checkpoint`` may also be an in-memory state dict, with or without
    the ``separator.`` prefix).  Returns ``(model, info)``, the model in eval mode on
    ``device``; ``info`` holds ``separator``, ``separator_conf``, ``n_fft``, ``hop_length``,
    ``win_length``, ``window``, ``fs``, ``stem_names``, ``num_channels``,
    ``normalize_variance``, ``normalize_variance_per_ch``, ``config_path`` and
    ``checkpoint_path``.  Raises ``CheckpointError`` with a one-line message otherwise.
    """
    if model_dir is not None:
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise CheckpointError(f"{model_dir}: model directory not found")
        config = Path(config) if config is not None else model_dir / "config.yaml"
        if checkpoint is None:
            checkpoint = find_checkpoint(model_dir)
    if config is None or checkpoint is None:
        raise CheckpointError("give a model directory, or both a config and a checkpoint")
    config_path = Path(config)
    conf = read_config(config_path)
    name = conf["separator"]
    sep_conf = dict(conf.get("separator_conf") or {})
    try:
        model = build_separator(name, sep_conf)
    except CheckpointError as e:
        raise CheckpointError(f"{config_path}: {e}") from None
    if isinstance(checkpoint, Mapping):
        ckpt_path, state = None, remap_state_dict(checkpoint)
    else:
        ckpt_path = Path(checkpoint)
        state = load_state(ckpt_path)
    problem = describe_mismatch(model, state)
    if problem:
        where = ckpt_path or "state dict"
        raise CheckpointError(f"{where} does not match {config_path}: {problem}")
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    info = describe_config(conf, model)
    info.update(config_path=config_path, checkpoint_path=ckpt_path)
    return model, info


def training_segment(conf: Mapping) -> tuple[int, str] | None:
    """Samples per training example and the config key that sets them: the preprocessor's
    crop (``preprocessor_conf.segment_length``), the chunk iterator's ``chunk_length`` (the
    longest of ``"N-M"`` or ``"N,M"`` forms) or ESPnet's ``speech_segment``; None if unset."""
    pre = conf.get("preprocessor_conf") or {}
    for source, value in (
        ("preprocessor_conf.segment_length", pre.get("segment_length")),
        ("chunk_length", conf.get("chunk_length")),
        ("speech_segment", conf.get("speech_segment")),
    ):
        if value is not None:
            lengths = str(value).replace(",", "-").split("-")
            try:
                return max(int(n) for n in lengths if n.strip()), source
            except ValueError:  # not a length (ESPnet would reject it too)
                return None
    return None


def describe_config(conf: Mapping, model: torch.nn.Module) -> dict:
    """The settings separation needs, read from an ESPnet config (see ``load_separator``)."""
    sep_conf = dict(conf.get("separator_conf") or {})
    enc = dict(conf.get("encoder_conf") or {})
    model_conf = dict(conf.get("model_conf") or {})
    n_fft = int(enc.get("n_fft", 512))
    if "sample_rate" in sep_conf:
        fs = int(sep_conf["sample_rate"])
    elif "default_fs" in enc:
        fs = int(enc["default_fs"])
    else:
        fs = None
    stems = sep_conf.get("stem_names") or [f"spk{i + 1}" for i in range(model.num_spk)]
    if len(stems) != model.num_spk:
        raise CheckpointError(f"stem_names {stems} does not have num_spk={model.num_spk} entries")
    return {
        "separator": conf["separator"],
        "separator_conf": sep_conf,
        "n_fft": n_fft,
        "hop_length": int(enc.get("hop_length", n_fft // 4)),
        "win_length": int(enc.get("win_length") or n_fft),
        "window": enc.get("window", "hann"),
        "fs": fs,
        "stem_names": list(stems),
        "num_channels": model.num_channels,
        "normalize_variance": bool(model_conf.get("normalize_variance", False)),
        "normalize_variance_per_ch": bool(model_conf.get("normalize_variance_per_ch", False)),
        "train_segment": (training_segment(conf) or (None,))[0],  # samples at fs
    }
