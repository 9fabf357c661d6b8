#!/bin/bash
# Train on a SLURM cluster: one task per GPU, Lightning reads SLURM_PROCID / SLURM_NTASKS (docs/distributed.md).
#   sbatch --nodes 2 --ntasks-per-node 4 --gpus-per-node 4 scripts/slurm_train.sh configs/vggsound_codebook.yaml
#   sbatch ... scripts/slurm_train.sh configs/vggsound_codebook.yaml data.params.batch_size=4   # + overrides
#   sbatch ... scripts/slurm_train.sh -r logs/<run>                                             # resume
#SBATCH --job-name=specvqgan
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=48:00:00
#SBATCH --signal=SIGTERM@120
# (SIGTERM two minutes before the time limit: every rank stops at the same step, rank 0 writes last.ckpt)
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: sbatch [options] $0 <config.yaml | -r logs/<run>> [key=value ...]" >&2
    exit 2
fi
if [ "$1" = "-r" ]; then first=(-r "$2"); shift 2; else first=(--base "$1"); shift; fi
srun python train.py "${first[@]}" -t \
    lightning.trainer.accelerator=gpu \
    lightning.trainer.devices="${SLURM_NTASKS_PER_NODE%%(*}" \
    lightning.trainer.num_nodes="${SLURM_NNODES}" \
    lightning.trainer.strategy=ddp \
    "$@"
