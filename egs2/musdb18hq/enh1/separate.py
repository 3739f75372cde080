#!/usr/bin/env python3
"""Split songs into stems with a model trained by this recipe (no ESPnet needed).

    ./separate.py --model_dir exp/enh_train_enh_bslocoformer_raw song.mp3 more_songs/
    ./separate.py --help

The code lives in the ``standalone`` package of the TF-Locoformer repository; inside an ESPnet
tree the same package is installed as ``espnet2.enh.separator.locoformer``.
"""

import importlib
import sys
from pathlib import Path


def load_cli():
    """The package's ``separate`` module, from this repository or an ESPnet installation."""
    repo_root = Path(__file__).resolve().parents[3]
    if (repo_root / "standalone" / "__init__.py").is_file():
        sys.path.insert(0, str(repo_root))
        return importlib.import_module("standalone.separate")
    return importlib.import_module("espnet2.enh.separator.locoformer.separate")


if __name__ == "__main__":
    sys.exit(load_cli().main())
