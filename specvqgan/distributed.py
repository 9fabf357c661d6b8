"""Where a process stands in a multi-process launch, read from the launcher's environment.

Launchers and what they set (docs/distributed.md):

* Lightning's own spawn (``lightning.trainer.devices=N strategy=ddp``): the first process re-runs the
  command for local ranks 1..N-1 with ``LOCAL_RANK`` / ``NODE_RANK`` / ``WORLD_SIZE``;
* ``torchrun --nproc_per_node N``: ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` in every process;
* SLURM ``srun`` (one task per device): ``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS``.

Before the Trainer has initialised its process group, these variables are the only way to tell the
global rank 0 (the process that decides and creates the run folder) from the others.
"""
from __future__ import annotations

import os
import re
from typing import Sequence, TypeVar

T = TypeVar("T")

#: the run folder chosen by global rank 0; exported before Lightning spawns its other local ranks, and
#: settable by hand (e.g. ``SPECVQGAN_RUN_DIR=logs/${SLURM_JOB_ID}_codebook`` in a SLURM script)
RUN_DIR_ENV = "SPECVQGAN_RUN_DIR"

#: strategies whose DistributedDataParallel must look for unused parameters when the model optimizes
#: several parameter groups one after the other (manual optimization with several optimizers)
_FIND_UNUSED = {name: f"{name}_find_unused_parameters_true" for name in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")}


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else None


def launch_rank_and_world() -> tuple[int, int]:
    """``(global rank, world size)`` of an externally launched process group (torchrun, or SLURM with
    several tasks); ``(0, 1)`` for a single process. Lightning's own spawn is not covered (it sets no
    global rank): use :func:`is_launch_rank_zero` before the Trainer exists."""
    if _env_int("RANK") is not None and _env_int("WORLD_SIZE"):
        return _env_int("RANK"), _env_int("WORLD_SIZE")
    ntasks = _env_int("SLURM_NTASKS") or 1
    if ntasks > 1 and _env_int("SLURM_PROCID") is not None:
        return _env_int("SLURM_PROCID"), ntasks
    return 0, 1


def is_launch_rank_zero() -> bool:
    """Whether this process is (or will be) global rank 0, judged from the launch environment only."""
    if (_env_int("LOCAL_RANK") or 0) > 0:  # Lightning's spawned ranks, torchrun's non-first local ranks
        return False
    if _env_int("RANK") is not None:  # torchrun
        return _env_int("RANK") == 0
    if (_env_int("NODE_RANK") or _env_int("GROUP_RANK") or 0) > 0:  # another node of a Lightning launch
        return False
    return launch_rank_and_world()[0] == 0  # SLURM srun with several tasks


def parse_shard(shard: str | None = None) -> tuple[int, int]:
    """``'i/n'`` (0 <= i < n) -> ``(i, n)``; None -> the launcher's (rank, world size)
    (:func:`launch_rank_and_world`: torchrun, SLURM), else ``(0, 1)``. A ValueError names a bad value."""
    if shard is None:
        return launch_rank_and_world()
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(shard))
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"--shard {shard!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def shard_items(items: Sequence[T], index: int = 0, count: int = 1) -> list[T]:
    """Every ``count``-th item starting at ``index``: the ``count`` shards partition ``items`` and differ
    in size by at most one."""
    return list(items[index::count])


def ddp_strategy(strategy, model) -> object:
    """The Trainer strategy to use for ``model``: a plain DDP strategy name (``ddp``, ``ddp_spawn``, ...)
    becomes its ``*_find_unused_parameters_true`` form for models that set ``ddp_find_unused_parameters``.

    Those are the GAN stages (VQGAN codebook, MelGAN): manual optimization runs one backward per optimizer,
    each reaching only its own network, so DDP must mark the other network's parameters ready
    (the Lightning 1.x default the reference trained with). Every other model keeps the faster default.
    Other strategies (objects, ``auto``, explicit ``*_find_unused_parameters_*``) pass through unchanged.
    """
    if isinstance(strategy, str) and strategy in _FIND_UNUSED and getattr(model, "ddp_find_unused_parameters", False):
        return _FIND_UNUSED[strategy]
    return strategy
