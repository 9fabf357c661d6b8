"""Resuming from a checkpoint other than last.ckpt branches into a new run folder: the run's later
last.ckpt and checkpoints are never overwritten (the folder is claimed atomically, one per resume)."""
from pathlib import Path

from specvqgan.training import build_callbacks, resolve_run
from omegaconf import OmegaConf


def _run(tmp_path) -> Path:
    run = tmp_path / "logs" / "2026-01-01T00-00-00_toy"
    (run / "checkpoints").mkdir(parents=True)
    (run / "configs").mkdir()
    (run / "configs" / "2026-01-01T00-00-00-project.yaml").write_text("model: {}\n")
    for name in ("last.ckpt", "epoch=003.ckpt"):
        (run / "checkpoints" / name).write_bytes(name.encode())
    return run


def test_resume_from_last_continues_in_place(tmp_path):
    run = _run(tmp_path)
    for resume in (run, run / "checkpoints" / "last.ckpt"):
        dirs = resolve_run([], str(resume), None, "logs", "2026-01-02T00-00-00")
        assert dirs.logdir == run and dirs.ckpt_to_resume == run / "checkpoints" / "last.ckpt"


def test_resume_from_earlier_checkpoint_branches_into_new_folders(tmp_path):
    run = _run(tmp_path)
    early = run / "checkpoints" / "epoch=003.ckpt"
    a = resolve_run([], str(early), None, "logs", "2026-01-02T00-00-00")
    b = resolve_run([], str(early), None, "logs", "2026-01-02T00-00-00")       # same second: another folder
    assert a.logdir == run.parent / "2026-01-01T00-00-00_toy_from_epoch=003_2026-01-02T00-00-00"
    assert b.logdir == Path(f"{a.logdir}-2") and a.logdir.is_dir() and b.logdir.is_dir()
    assert a.ckpt_to_resume == early and a.base_configs == sorted((run / "configs").glob("*.yaml"))
    cfg = OmegaConf.create({"lightning": {"modelcheckpoint": {"params": {"monitor": "val/loss"}}}})
    dirpaths = {getattr(cb, "dirpath", None) or getattr(cb, "path", None) for cb in build_callbacks(cfg, a)}
    assert str(a.ckptdir) in map(str, dirpaths) and a.ckptdir / "last.ckpt" in dirpaths
    assert not any(str(p).startswith(str(run / "checkpoints")) for p in dirpaths if p)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"last.ckpt"
