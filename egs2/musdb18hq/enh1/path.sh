# Environment of the recipe (sourced by run.sh and local/data.sh). Activates nothing: run the
# recipe with the Python environment that has espnet (and this plugin) installed.
recipe_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PATH="${recipe_root}/utils:${PATH}"
# Parallel jobs and data-loader workers each get one BLAS/OpenMP thread unless told otherwise
# (run.sh gives training and separation more when they have the CPU to themselves).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-${OMP_NUM_THREADS}}"
# Byte-wise sorting of Kaldi-style files; UTF-8 text in Python.
export LC_ALL=C
export PYTHONIOENCODING=UTF-8
# ESPnet's text frontend (imported by enh_train) tries to download two nltk corpora at import
# time, which prints errors offline. An empty stand-in satisfies that check; the recipe never
# uses them (enhancement has no text).
case "${dumpdir:-dump}" in
    /*) NLTK_DATA="${dumpdir}/.nltk_stub" ;;
    *) NLTK_DATA="${recipe_root}/${dumpdir:-dump}/.nltk_stub" ;;
esac
export NLTK_DATA
"${python:-python3}" "${recipe_root}/utils/nltk_stub.py" "${NLTK_DATA}"
