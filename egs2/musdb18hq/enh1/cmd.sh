# Job runners used by run.sh (sourced). Every *_cmd is called as
#   ${cmd} [--gpu N] [JOB=1:N] LOG COMMAND...
# utils/run_jobs.py runs the jobs on this machine, in parallel, one log file per job.
# For a cluster, replace them with a wrapper for your scheduler that takes the same arguments.
train_cmd="utils/run_jobs.py"
cuda_cmd="utils/run_jobs.py"
decode_cmd="utils/run_jobs.py"
