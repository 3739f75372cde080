#!/usr/bin/env python3
"""Create empty stand-ins for the nltk corpora that ESPnet's text frontend looks for at import.

    utils/nltk_stub.py DIR      # then: export NLTK_DATA=DIR

``g2p_en`` (imported by espnet2.bin.enh_train through ESPnet's text preprocessing) calls
``nltk.download`` when ``corpora/cmudict.zip`` or ``taggers/averaged_perceptron_tagger_eng.zip``
is missing, which prints a download error on machines without internet. Speech enhancement and
music separation never use them, so valid but empty zip archives are enough. Existing files are
left alone.
"""

import sys
import zipfile
from pathlib import Path

RESOURCES = ("corpora/cmudict.zip", "taggers/averaged_perceptron_tagger_eng.zip")


def make_stub(root: Path) -> list[Path]:
    """Write the missing empty archives under ``root``; returns the files created."""
    created = []
    for name in RESOURCES:
        path = root / name
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        zipfile.ZipFile(tmp, "w").close()
        tmp.replace(path)
        created.append(path)
    return created


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: nltk_stub.py DIR")
    make_stub(Path(sys.argv[1]))
