# Dataset locations (sourced by run.sh and local/data.sh).
# MUSDB18-HQ (https://zenodo.org/records/3338373): the folder holding train/ and test/ with one
# folder per track (mixture.wav, vocals.wav, drums.wav, bass.wav, other.wav). Empty by default:
# set it here or pass --local_data_opts "--musdb_root /path/to/musdb18hq".
MUSDB18HQ=
# Where `--local_data_opts "--synthetic true"` (and --demo true) writes the synthetic dataset.
SYNTHETIC_MUSDB=synthetic_musdb
