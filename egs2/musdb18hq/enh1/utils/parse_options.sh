#!/usr/bin/env bash
# Command-line option parser for the recipe's shell scripts (Kaldi-style), sourced by the caller:
#
#   nj=4; use_gpu=false; help_message="Usage: $0 [options] <arg>"
#   . utils/parse_options.sh
#
# Every "--some-name VALUE" or "--some_name=VALUE" sets the caller's variable some_name, which must
# already be defined (its default). A variable whose default is true/false only takes true/false.
# Parsing stops at the first argument that is not an option or after "--"; the remaining
# arguments are left in "$@". "--help"/"-h" prints ${help_message} and exits 0. Errors exit 2.

while [ $# -gt 0 ]; do
    case "$1" in
        --help | -h)
            printf '%s\n' "${help_message:-Usage: $0 [options]}"
            exit 0
            ;;
        --)
            shift
            break
            ;;
        --*=*)
            _opt_name="${1%%=*}"
            _opt_value="${1#*=}"
            shift
            ;;
        --*)
            if [ $# -lt 2 ]; then
                echo "$0: option $1 needs a value" >&2
                exit 2
            fi
            _opt_name="$1"
            _opt_value="$2"
            shift 2
            ;;
        *)
            break
            ;;
    esac
    _opt_var="${_opt_name#--}"
    _opt_var="${_opt_var//-/_}"
    if ! [[ "${_opt_var}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || ! declare -p "${_opt_var}" > /dev/null 2>&1; then
        echo "$0: unknown option ${_opt_name} (see $0 --help)" >&2
        exit 2
    fi
    case "${!_opt_var}" in
        true | false)
            if [ "${_opt_value}" != true ] && [ "${_opt_value}" != false ]; then
                echo "$0: option ${_opt_name} takes true or false, got '${_opt_value}'" >&2
                exit 2
            fi
            ;;
    esac
    printf -v "${_opt_var}" '%s' "${_opt_value}"
done
unset _opt_name _opt_value _opt_var
