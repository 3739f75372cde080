#!/usr/bin/env bash
# Stage 1 of the MUSDB18-HQ recipe: dataset -> data/{train,valid,test} (run from the recipe dir).
#
#   local/data.sh [--musdb_root PATH] [--valid_list FILE] [--format wav|stem_mp4]
#                 [--decode_dir DIR] [--synthetic true|false] [--synthetic_opts "..."]
#                 [--num_train N] [--num_test N] [--num_valid N] [--min_duration S]
#                 [--max_duration S] [--seed N] [--data_dir DIR]
#
# Without --musdb_root the dataset path is MUSDB18HQ from db.sh. With --synthetic true a small
# synthetic dataset is generated into ${SYNTHETIC_MUSDB:-synthetic_musdb} (kept if it already
# exists with the same options; --synthetic_opts go to local/make_synthetic_musdb.py, and so do
# --num_train .. --seed, which need no nested quoting inside run.sh's --local_data_opts) and
# its own valid_tracks.txt selects the validation tracks. --format stem_mp4 reads the compressed
# MUSDB18 (*.stem.mp4) and decodes it once to wav files under --decode_dir
# (default downloads/musdb18_wav).
set -euo pipefail

log() {
    echo "$(date '+%Y-%m-%dT%H:%M:%S') (data.sh) $*"
}
usage() {
    sed -n '4,7p' "$0" | sed 's/^# *//'
}

local_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
recipe_dir=$(dirname "${local_dir}")

synthetic=false
synthetic_opts=""
synthetic_args=()
musdb_root=""
valid_list=""
format=wav
decode_dir=""
data_dir=data

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --synthetic|--synthetic_opts|--musdb_root|--valid_list|--format|--decode_dir|--data_dir)
            if [ $# -lt 2 ]; then
                echo "data.sh: error: option $1 needs a value" >&2
                exit 1
            fi
            name=${1#--}
            printf -v "${name}" '%s' "$2"
            shift 2
            ;;
        --num_train|--num_test|--num_valid|--min_duration|--max_duration|--seed)
            if [ $# -lt 2 ]; then
                echo "data.sh: error: option $1 needs a value" >&2
                exit 1
            fi
            synthetic_args+=("$1" "$2")
            shift 2
            ;;
        *)
            echo "data.sh: error: unknown option '$1'" >&2
            usage >&2
            exit 1
            ;;
    esac
done

# db.sh defines MUSDB18HQ= and SYNTHETIC_MUSDB=; path.sh sets up the Python environment.
set +u
[ -f "${recipe_dir}/db.sh" ] && . "${recipe_dir}/db.sh"
[ -f "${recipe_dir}/path.sh" ] && . "${recipe_dir}/path.sh"
set -u

case "${synthetic}" in
    true)
        root=${SYNTHETIC_MUSDB:-synthetic_musdb}
        log "Synthetic MUSDB18-HQ set in ${root}"
        # shellcheck disable=SC2086  # synthetic_opts is a list of options
        python3 "${local_dir}/make_synthetic_musdb.py" --out "${root}" ${synthetic_opts} \
            ${synthetic_args[@]+"${synthetic_args[@]}"}
        valid_list=${valid_list:-${root}/valid_tracks.txt}
        ;;
    false)
        root=${musdb_root:-${MUSDB18HQ:-}}
        if [ -z "${root}" ]; then
            echo "data.sh: error: MUSDB18HQ is not set: put MUSDB18HQ=/path/to/musdb18hq in" \
                "db.sh or pass --musdb_root (or use --synthetic true)" >&2
            exit 1
        fi
        ;;
    *)
        echo "data.sh: error: --synthetic must be true or false, got '${synthetic}'" >&2
        exit 1
        ;;
esac

args=(--musdb-root "${root}" --data-dir "${data_dir}" --format "${format}")
[ -n "${valid_list}" ] && args+=(--valid-list "${valid_list}")
if [ "${format}" = stem_mp4 ]; then
    args+=(--decode-dir "${decode_dir:-downloads/musdb18_wav}")
fi
log "Preparing ${data_dir}/{train,valid,test} from ${root}"
python3 "${local_dir}/prepare_musdb.py" "${args[@]}"
log "Done"
