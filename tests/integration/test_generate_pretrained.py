"""``scripts/generate.py --model <alias>``: a released model by name. A local HTTP server plays the authors'
hosts with a fake release in their layout (``<name>/configs/*-project.yaml`` + ``checkpoints/last.ckpt``
without a config), a MelGAN folder (``best_netG.pt`` + ``args.yml``) and fake ResNet-50 ImageNet weights.
Without ``--download`` nothing is fetched and the exact download command is printed (exit 2); with it the
three releases are fetched (md5 / sha256 checked) and an mp4 comes out; afterwards no network is needed."""
import functools
import hashlib
import importlib.util
import io
import tarfile
import threading
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf

import specvqgan.releases as releases
from feature_extraction.encode import write_mp4
from feature_extraction.media import probe
from specvqgan.modules.visual.resnet50 import ResNet50
from specvqgan.audio import SR
from specvqgan.config import instantiate_from_config
from specvqgan.pretrained import resolve_model
from vocoder.modules import Generator

NAME = releases.DEMO_TRANSFORMER  # alias "vggsound": 5 ResNet-50 features, VGGSound MelGAN


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        self.server.requests.append(self.path)


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    srv.requests = []
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}", srv.requests
    srv.shutdown()
    srv.server_close()


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _fake_release(root, base_cfg, monkeypatch) -> None:
    """Write the three releases under ``root`` (the hosts' paths) and point the registry's checksums at them.
    The transformer is the shared tiny toy one taking 2048-d ResNet-50 features, for 1 s clips (a CPU
    ResNet-50 over 21 frames instead of 43)."""
    cond = "data.params.{}.params.condition_dataset_cfg"
    cfg = base_cfg
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([
        "model.params.transformer_config.params.feat_embedding_config.params.in_channels=2048",
        "model.params.first_stage_config.params.ddconfig.resolution=80", "model.params.cond_stage_config.params.n_feats=20",
        *(f"data.params.{s}.params.duration=1" for s in ("train", "validation")),
        *(f"{cond.format(s)}.feat_name=resnet50" for s in ("train", "validation")),
        *(f"{cond.format(s)}.feat_depth=2048" for s in ("train", "validation"))]))
    torch.manual_seed(0)
    model = instantiate_from_config(cfg.model)
    run = root / "build" / NAME  # the authors' run layout, packed as their .tar.gz
    (run / "checkpoints").mkdir(parents=True)
    (run / "configs").mkdir()
    torch.save({"state_dict": model.state_dict(), "epoch": 1, "global_step": 2},  # no config inside
               run / "checkpoints/last.ckpt")
    (run / "configs/2021-07-30T21-34-25-project.yaml").write_text(OmegaConf.to_yaml(cfg))
    (root / "models").mkdir()
    with tarfile.open(root / f"models/{NAME}.tar.gz", "w:gz") as tar:
        tar.add(run, arcname=NAME)
    archive = (root / f"models/{NAME}.tar.gz").read_bytes()
    melgan = root / "vocoder/logs/vggsound"
    melgan.mkdir(parents=True)
    torch.save(Generator(80, ngf=4, n_residual_layers=1).state_dict(), melgan / "best_netG.pt")
    (melgan / "args.yml").write_text(yaml.safe_dump({"n_mel_channels": 80, "ngf": 4, "n_residual_layers": 1}))
    weights = io.BytesIO()
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in ResNet50(seed=0).state_dict().items()},
               weights)  # half precision: a smaller fake, loaded (and cast) like the real file
    (root / "resnet50-19c8e357.pth").write_bytes(weights.getvalue())
    sha = hashlib.sha256(weights.getvalue()).hexdigest()

    def patch(rel):
        if rel.name == NAME:
            return replace(rel, files=(replace(rel.files[0], md5=hashlib.md5(archive).hexdigest()),))
        if rel.name == "melgan_vggsound":  # pinned by git blob hashes: pin the fakes
            return replace(rel, files=tuple(replace(f, git_sha1=_git_sha1((root / f.path).read_bytes()))
                                            for f in rel.files))
        if rel.name == "resnet50_imagenet":
            return replace(rel, files=(replace(rel.files[0], sha256_prefix=sha[:8]),))
        return rel
    monkeypatch.setattr(releases, "RELEASES", tuple(patch(r) for r in releases.RELEASES))


@pytest.mark.slow
def test_model_by_name_downloads_only_when_asked(www, tmp_path, repo_root, tiny_transformer_config, monkeypatch,
                                                 capsys):
    root, url, requests = www
    _fake_release(root, tiny_transformer_config(), monkeypatch)
    video = tmp_path / "v.mp4"
    frames = np.repeat(np.arange(50, dtype=np.uint8)[:, None, None, None] * 5, 32, 1).repeat(32, 2).repeat(3, 3)
    write_mp4(video, frames[:25], 25, (0.2 * np.sin(np.arange(SR) / 20)).astype(np.float32), SR)
    spec = importlib.util.spec_from_file_location("generate_cli", repo_root / "scripts" / "generate.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cache, out = tmp_path / "cache", tmp_path / "out"
    args = ["--model", "vggsound", "--video", str(video), "--out", str(out), "--samples", "1", "--top-k", "4",
            "--cache-dir", str(cache), "--base-url", url, "--allow-http", "--av-benchmark", str(tmp_path / "bench")]

    assert cli.main(args) == 2  # not cached, no --download: the command, no network
    err = capsys.readouterr().err
    command = (f"python -m specvqgan.download {NAME} melgan_vggsound resnet50_imagenet --cache-dir {cache}")
    assert command in err and requests == [] and not cache.exists()

    assert cli.main([*args, "--download"]) == 0, capsys.readouterr().err
    assert sorted(requests) == sorted([f"/models/{NAME}.tar.gz", "/resnet50-19c8e357.pth",
                                       "/vocoder/logs/vggsound/best_netG.pt", "/vocoder/logs/vggsound/args.yml"])
    mp4 = out / "v_sample_0.mp4"
    info = probe(mp4)
    assert info.has_video and info.has_audio and abs(info.audio_duration - 1.0) < 0.1
    assert (cache / "features/resnet50-19c8e357.pth").is_file()
    bench = tmp_path / "bench"  # av-benchmark folders pair by name
    assert {p.relative_to(bench).as_posix() for p in bench.rglob("*.*")} == {
        "gt_audio/v.flac", "pred_audio/sample_0/v.flac", "video/sample_0/v.mp4"}

    n = len(requests)  # cached now: resolved without --download and without the network
    found = resolve_model("vggsound", cache)
    assert found.transformer == cache / NAME / "checkpoints/last.ckpt" and len(requests) == n
    assert found.vocoder == cache / "melgan/vggsound" and found.feature_weights.name == "resnet50-19c8e357.pth"
