#!/usr/bin/env bash
# MUSDB18-HQ music source separation (vocals, drums, bass, other) with BS-/TF-Locoformer in ESPnet.
# Stages follow ESPnet's enh1 numbering; see README.md. Quick start: ./run.sh --demo true
set -euo pipefail

log() {
    echo "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}:${BASH_LINENO[0]}) $*"
}
min() {
    local a="$1"
    shift
    for b in "$@"; do
        [ "${b}" -lt "${a}" ] && a="${b}"
    done
    echo "${a}"
}

# General
stage=1                 # first stage to run
stop_stage=8            # last stage to run
ngpu=1                  # GPUs for training (0: CPU; >1: ESPnet's multiprocessing DDP)
nj=4                    # parallel jobs for data formatting and statistics
inference_nj=1          # parallel separation jobs in stage 7
gpu_inference=false     # separate on the GPU in stage 7
nthreads=""             # CPU threads per process (default: cores / parallel jobs)
python=python3
demo=false              # true: synthetic data + CPU demo config, all stages in ~10 minutes

# Data
local_data_opts=""      # options of local/data.sh, e.g. "--synthetic true" or "--musdb_root DIR"
fs=44.1k                # sampling rate of the dumped training data (resampled only if different)
ref_num=4               # stems per track (spk1..spk4 = vocals drums bass other)
audio_format=wav        # format of files that stage 3 has to write (wav: float32, flac: 24 bit)
min_wav_duration=0.1    # stage 4 drops train/valid items shorter than this (seconds)
max_wav_duration=""     # accepted for ESPnet compatibility; whole songs are never dropped
train_set=train
valid_set=valid
test_sets="valid test"  # sets separated in stage 7 and scored in stage 8
datadir=data
dumpdir=dump
expdir=exp

# Training
enh_config=conf/train_enh_bslocoformer.yaml
enh_tag=""              # experiment name (default: from the config file name)
enh_exp=""              # experiment dir (default: ${expdir}/enh_${enh_tag})
enh_stats_dir=""        # statistics dir (default: ${expdir}/enh_stats_${fs})
enh_args=""             # extra options for espnet2.bin.enh_train, e.g. "--max_epoch 10"

# Inference and scoring
inference_model=valid.loss.ave.pth  # checkpoint in ${enh_exp} used for separation
inference_args=""       # options of local/separate_dir.py, e.g. "--segment 10 --overlap 0.25"
score_opts=""           # options of local/score_musdb.py, e.g. "--no-csdr" or "--nj 4"

help_message=$(cat << EOF
Usage: $0 [options]
  Runs the MUSDB18-HQ recipe: 1 data, 2 (speed perturbation: not used), 3 format, 4 filter,
  5 statistics, 6 training, 7 separation of ${test_sets// /+}, 8 scoring -> \${enh_exp}/RESULTS.md

Options (--name value or --name=value; current defaults in brackets):
  --stage N [${stage}] --stop_stage N [${stop_stage}]
  --demo true|false [${demo}]   synthetic data, CPU demo config, all stages in about 10 minutes
  --ngpu N [${ngpu}]  --nj N [${nj}]  --inference_nj N [${inference_nj}]
  --gpu_inference true|false [${gpu_inference}]  --nthreads N [cores / jobs]  --python [${python}]
  --local_data_opts "..." [${local_data_opts}]   e.g. "--musdb_root /data/musdb18hq" or
                                                 "--synthetic true"; without it db.sh's MUSDB18HQ
  --fs RATE [${fs}]  --ref_num N [${ref_num}]  --audio_format wav|flac [${audio_format}]
  --min_wav_duration S [${min_wav_duration}]  --max_wav_duration S [none; never drops songs]
  --train_set [${train_set}] --valid_set [${valid_set}] --test_sets "..." [${test_sets}]
  --datadir [${datadir}] --dumpdir [${dumpdir}] --expdir [${expdir}]
  --enh_config YAML [${enh_config}]  --enh_tag TAG  --enh_exp DIR  --enh_stats_dir DIR
  --enh_args "..."          extra espnet2.bin.enh_train options (override the config)
  --inference_model NAME [${inference_model}]
  --inference_args "..."    local/separate_dir.py options (--segment --overlap --batch_size ...)
  --score_opts "..."        local/score_musdb.py options (--no-csdr, --nj N, ...)
EOF
)

# --demo true sets its own defaults first; options given explicitly still win.
orig_args=("$@")
. utils/parse_options.sh
if [ "${demo}" = true ]; then
    ngpu=0
    nj=2
    fs=22.05k
    enh_config=conf/tuning/train_enh_bslocoformer_demo_cpu.yaml
    local_data_opts="--synthetic true --num_train 18 --num_valid 2 --num_test 2 --min_duration 8 --max_duration 10"
    inference_args="--segment 10"
    score_opts="--nj 2"
    set -- "${orig_args[@]}"
    . utils/parse_options.sh
fi
if [ $# -gt 0 ]; then
    echo "$0: unexpected argument '$1' (see $0 --help)" >&2
    exit 2
fi

. ./path.sh
. ./cmd.sh

if [ ! -f "${enh_config}" ] && [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 5 ]; then
    echo "$0: --enh_config ${enh_config}: file not found" >&2
    exit 1
fi
fs_hz=$(${python} local/format_data.py fs "${fs}")
if [ -z "${enh_tag}" ]; then
    enh_tag="$(basename "${enh_config}" .yaml)_raw"
    if [ "${fs}" != 44.1k ]; then
        enh_tag+="_${fs}"
    fi
fi
enh_exp=${enh_exp:-${expdir}/enh_${enh_tag}}
enh_stats_dir=${enh_stats_dir:-${expdir}/enh_stats_${fs}}
data_feats=${dumpdir}/raw
if [ -z "${nthreads}" ]; then
    nthreads=$(nproc 2> /dev/null || echo 1)
fi
# shellcheck disable=SC2206  # the sets are a space-separated list
test_set_list=(${test_sets})

# ------------------------------------------------------------------------------------------------
if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
    log "Stage 1: data preparation -> ${datadir}/{${train_set},${valid_set},test}"
    # shellcheck disable=SC2086  # local_data_opts is a list of options
    local/data.sh --data_dir "${datadir}" ${local_data_opts}
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
    log "Stage 2: speed perturbation is not used for music (pitch would change); skipped"
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
    # Test sets are not formatted: stage 7 separates the original files (any rate) and stage 8
    # scores against them, so results stay comparable with published MUSDB18-HQ numbers.
    log "Stage 3: format ${datadir} -> ${data_feats}/org at ${fs_hz} Hz (whole tracks, all channels)"
    for dset in "${train_set}" "${valid_set}"; do
        ${python} local/format_data.py format --src "${datadir}/${dset}" \
            --dst "${data_feats}/org/${dset}" --fs "${fs}" --audio_format "${audio_format}" \
            --ref_num "${ref_num}" --nj "${nj}"
    done
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
    log "Stage 4: remove degenerate items (< ${min_wav_duration} s) from ${train_set} and ${valid_set}"
    for dset in "${train_set}" "${valid_set}"; do
        ${python} local/format_data.py filter --src "${data_feats}/org/${dset}" \
            --dst "${data_feats}/${dset}" --fs "${fs}" \
            --min_duration "${min_wav_duration}" --max_duration "${max_wav_duration}"
    done
fi

# Data options shared by stages 5 and 6: mixture and the ref_num stems of train and valid.
data_opts=()
for part in train valid; do
    if [ "${part}" = train ]; then _dir="${data_feats}/${train_set}"; else _dir="${data_feats}/${valid_set}"; fi
    data_opts+=(--${part}_data_path_and_name_and_type "${_dir}/wav.scp,speech_mix,sound")
    for spk in $(seq "${ref_num}"); do
        data_opts+=(--${part}_data_path_and_name_and_type "${_dir}/spk${spk}.scp,speech_ref${spk},sound")
    done
done

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
    log "Stage 5: collect shapes and statistics -> ${enh_stats_dir}"
    _logdir="${enh_stats_dir}/logdir"
    mkdir -p "${_logdir}"
    _nj=$(min "${nj}" "$(wc -l < "${data_feats}/${train_set}/wav.scp")" \
        "$(wc -l < "${data_feats}/${valid_set}/wav.scp")")
    ${python} utils/split_scp.py "${data_feats}/${train_set}/wav.scp" "${_logdir}/train.JOB.scp" --num-parts "${_nj}"
    ${python} utils/split_scp.py "${data_feats}/${valid_set}/wav.scp" "${_logdir}/valid.JOB.scp" --num-parts "${_nj}"
    # whole songs one at a time (--batch_size 1) to bound memory
    # shellcheck disable=SC2086  # enh_args is a list of options
    OMP_NUM_THREADS=1 ${train_cmd} JOB=1:"${_nj}" "${_logdir}/stats.JOB.log" \
        ${python} -m espnet2.bin.enh_train --collect_stats true \
        --config "${enh_config}" "${data_opts[@]}" \
        --train_shape_file "${_logdir}/train.JOB.scp" --valid_shape_file "${_logdir}/valid.JOB.scp" \
        --output_dir "${_logdir}/stats.JOB" ${enh_args} --batch_size 1 --ngpu 0 --num_workers 0 \
        || { tail -n 20 "${_logdir}/stats.1.log" >&2; exit 1; }
    stats_dirs=()
    for n in $(seq "${_nj}"); do stats_dirs+=(--input_dir "${_logdir}/stats.${n}"); done
    ${train_cmd} "${_logdir}/aggregate.log" ${python} -m espnet2.bin.aggregate_stats_dirs \
        --skip_sum_stats "${stats_dirs[@]}" --output_dir "${enh_stats_dir}" \
        || { tail -n 20 "${_logdir}/aggregate.log" >&2; exit 1; }
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
    log "Stage 6: train ${enh_config} -> ${enh_exp} (follow: tail -f ${enh_exp}/train.log)"
    mkdir -p "${enh_exp}"
    train_opts=(--config "${enh_config}" --resume true
        --ngpu "${ngpu}" --output_dir "${enh_exp}" "${data_opts[@]}"
        --train_shape_file "${enh_stats_dir}/train/speech_mix_shape"
        --valid_shape_file "${enh_stats_dir}/valid/speech_mix_shape")
    if [ "${ngpu}" -gt 1 ]; then
        train_opts+=(--multiprocessing_distributed true)
    fi
    _threads=${nthreads}
    if [ "${ngpu}" -gt 0 ]; then _threads=1; fi
    # shellcheck disable=SC2086  # enh_args is a list of options
    OMP_NUM_THREADS=${_threads} ${cuda_cmd} --gpu "${ngpu}" "${enh_exp}/train.log" \
        ${python} -m espnet2.bin.enh_train "${train_opts[@]}" ${enh_args} \
        || { tail -n 30 "${enh_exp}/train.log" >&2; exit 1; }
    grep "epoch results:" "${enh_exp}/train.log" | tail -n 1 | sed 's/^.*INFO: //' || true
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
    log "Stage 7: separate ${test_sets} with ${enh_exp}/${inference_model}"
    if [ ! -e "${enh_exp}/${inference_model}" ]; then
        echo "$0: ${enh_exp}/${inference_model} not found (train first, or set --inference_model)" >&2
        exit 1
    fi
    _device=cpu
    if [ "${gpu_inference}" = true ]; then _device=cuda; fi
    for dset in "${test_set_list[@]}"; do
        _out="${enh_exp}/enhanced_${dset}"
        _logdir="${_out}/logdir"
        mkdir -p "${_logdir}"
        _nj=$(min "${inference_nj}" "$(wc -l < "${datadir}/${dset}/wav.scp")")
        _threads=$(( nthreads / _nj > 0 ? nthreads / _nj : 1 ))
        ${python} utils/split_scp.py "${datadir}/${dset}/wav.scp" "${_logdir}/keys.JOB.scp" --num-parts "${_nj}"
        # shellcheck disable=SC2086  # inference_args is a list of options
        OMP_NUM_THREADS=${_threads} ${decode_cmd} JOB=1:"${_nj}" "${_logdir}/separate.JOB.log" \
            ${python} local/separate_dir.py separate --model_dir "${enh_exp}" \
            --checkpoint "${enh_exp}/${inference_model}" --wav_scp "${_logdir}/keys.JOB.scp" \
            --out_dir "${_out}" --scp_dir "${_logdir}/output.JOB" --device "${_device}" \
            ${inference_args} || { tail -n 20 "${_logdir}/separate.1.log" >&2; exit 1; }
        ${python} local/separate_dir.py merge --out_dir "${_out}" --ref_num "${ref_num}" \
            "${_logdir}"/output.*
        log "Separated ${dset}: ${_out}/wavs/<track>/<stem>.wav"
    done
fi

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ]; then
    log "Stage 8: score ${test_sets} against ${datadir}"
    score_dirs=()
    for dset in "${test_set_list[@]}"; do
        _out="${enh_exp}/enhanced_${dset}"
        # shellcheck disable=SC2086  # score_opts is a list of options
        ${python} local/score_musdb.py --ref-dir "${datadir}/${dset}" --est-scp-dir "${_out}" \
            --out-dir "${_out}/scoring" --name "${dset}" ${score_opts}
        score_dirs+=("${_out}/scoring")
    done
    ${python} local/collect_results.py --exp_dir "${enh_exp}" --config "${enh_config}" \
        --inference_model "${inference_model}" "${score_dirs[@]}"
    cat "${enh_exp}/RESULTS.md"
    for dset in "${test_set_list[@]}"; do
        log "Separated ${dset} stems: ${enh_exp}/enhanced_${dset}/wavs/<track>/<stem>.wav"
    done
    log "Results: ${enh_exp}/RESULTS.md"
fi

log "Successfully finished."
