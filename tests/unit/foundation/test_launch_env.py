"""Launch-environment rules (specvqgan.distributed) and the run folder decided once (specvqgan.training)."""
import pytest

from specvqgan.distributed import (RUN_DIR_ENV, ddp_strategy, is_launch_rank_zero, launch_rank_and_world,
                                   parse_shard, shard_items)
from specvqgan.training import RunDirs, _decide_run_dir, create_run_dir

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "SLURM_NTASKS", RUN_DIR_ENV)


@pytest.fixture
def env(monkeypatch):
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    return lambda **kw: [monkeypatch.setenv(k, str(v)) for k, v in kw.items()]


@pytest.mark.parametrize("launch, zero, rank_world", [
    ({}, True, (0, 1)),                                                   # one process
    ({"LOCAL_RANK": 1, "NODE_RANK": 0, "WORLD_SIZE": 2}, False, (0, 1)),  # Lightning's spawned rank
    ({"LOCAL_RANK": 0, "NODE_RANK": 1}, False, (0, 1)),                   # main process of node 1
    ({"RANK": 0, "LOCAL_RANK": 0, "WORLD_SIZE": 4}, True, (0, 4)),        # torchrun
    ({"RANK": 2, "LOCAL_RANK": 0, "WORLD_SIZE": 4}, False, (2, 4)),       # torchrun, second node
    ({"SLURM_PROCID": 3, "SLURM_NTASKS": 4}, False, (3, 4)),              # srun
    ({"SLURM_PROCID": 0, "SLURM_NTASKS": 1}, True, (0, 1)),               # a one-task allocation
])
def test_rank_from_the_launch_environment(env, launch, zero, rank_world):
    env(**launch)
    assert is_launch_rank_zero() is zero
    assert launch_rank_and_world() == rank_world
    assert parse_shard(None) == rank_world


def test_shards_partition_and_bad_values(env):
    items = list(range(11))
    parts = [shard_items(items, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == items and {len(p) for p in parts} == {3, 4}
    assert parse_shard(" 1 / 4 ") == (1, 4)
    for bad in ("4/4", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ValueError, match="expected i/n"):
            parse_shard(bad)


class GAN:
    ddp_find_unused_parameters = True


def test_strategy_looks_for_unused_parameters_only_for_the_gan_stages():
    assert ddp_strategy("ddp", GAN()) == "ddp_find_unused_parameters_true"
    assert ddp_strategy("ddp_spawn", GAN()) == "ddp_spawn_find_unused_parameters_true"
    assert ddp_strategy("ddp", object()) == "ddp"
    assert ddp_strategy("auto", GAN()) == "auto" and ddp_strategy("ddp_find_unused_parameters_false", GAN()) \
        == "ddp_find_unused_parameters_false"


def test_two_runs_in_the_same_second_get_two_folders(tmp_path):
    candidate = tmp_path / "logs" / "2026-01-01T00-00-00_codebook"
    first, second = create_run_dir(candidate), create_run_dir(candidate)
    assert first == candidate and second.name == "2026-01-01T00-00-00_codebook_1"
    assert first.is_dir() and second.is_dir()


def test_run_folder_from_rank_zero_env_and_never_over_a_finished_run(env, tmp_path):
    dirs = RunDirs(tmp_path / "logs" / "t_x", None, [])
    _decide_run_dir(dirs, rank_zero=False)  # another rank: nothing created, the name comes from rank 0 later
    assert not (tmp_path / "logs").exists()
    env(**{RUN_DIR_ENV: str(tmp_path / "chosen")})
    _decide_run_dir(dirs, rank_zero=False)
    assert dirs.logdir == tmp_path / "chosen"
    (tmp_path / "chosen" / "checkpoints").mkdir(parents=True)
    (tmp_path / "chosen" / "checkpoints" / "last.ckpt").write_bytes(b"")
    from specvqgan.config import ConfigError
    with pytest.raises(ConfigError, match="holds a run already"):
        _decide_run_dir(RunDirs(tmp_path / "logs" / "t_x", None, []), rank_zero=True)
