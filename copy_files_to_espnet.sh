#!/usr/bin/env bash
# Install the TF-Locoformer plugin into an ESPnet tree, or remove it again.
#   copy_files_to_espnet.sh [--uninstall] [--dry-run] ESPNET_ROOT
# ESPNET_ROOT: an ESPnet source checkout (espnet2/ + egs2/) or the site-packages directory of an
# installed espnet. The work is done by tools/install_espnet_plugin.py (standard library only).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "${PYTHON:-python3}" "${here}/tools/install_espnet_plugin.py" "$@"
