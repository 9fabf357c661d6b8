"""End-to-end speed of the main job: one 10 s video -> an mp4 with new sound (``scripts/generate.py``).

    python scripts/benchmark_generate.py                          # builds the model in /tmp/specvqgan-bench
    python scripts/benchmark_generate.py --precision int8 --video my.mp4 --workdir DIR
    python scripts/benchmark_generate.py --feature bninception --cli-on bundle --videos 1   # 212 RGB + flow features

The model is a paper-size release in the authors' layout (``<run>/checkpoints/epoch_39.ckpt`` without a
config + ``<run>/configs/<time>-project.yaml``): GPT 24 x 1024 (16 heads) over the VGGSound codebook (1024
codes), conditioned on 5 ResNet-50 features (the "5 feats ResNet50" row of the paper; ``--feature
bninception``: the "212 feats BN-Inception" row, RGB + TV-L1 flow), random weights (the speed does not depend
on them), written once into ``--workdir`` with random feature-network weights in the torchvision / TSN layout. ``--transformer`` / ``--feature-weights`` take real files instead. Its inference bundle
(``python -m specvqgan.export``, docs/export.md) is exported once into ``--workdir`` (``--no-bundle``: skip).
The video defaults to a real VGGSound clip of ``../shared/reference`` (a synthetic 10 s clip otherwise).

Timed, in this order:
  1. the CLI from a cold process (``python scripts/generate.py ... --samples 1``: imports, loading, features,
     sampling, vocoder, writing the wav/png/npy/mp4), wall time and peak RSS of the subprocess: on the
     bundle, then on the checkpoint; then, a fresh process each, ``from_checkpoints`` and one sampled token
     (ready to sample), imports included;
  2. in-process: ``VideoToSound.from_checkpoints`` of the checkpoint (loading + inference copy, then freed) and
     of the bundle, then ``generate`` ``--videos`` times on the bundle (the second is "each further video"),
     by stage;
  3. the bare sampler on the same inference copy: ``sample_tokens`` of the 265 tokens, conditioned on random
     features of the model's shape (sampling time does not depend on the values).

The last line is machine-readable (e2e: the bundle's cold CLI, the best path; the checkpoint's without one):
    e2e_seconds=<cold CLI> sampler_seconds=<bare sampling> ratio=<e2e / sampler>
"""
from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL_VIDEO = ROOT.parent / "shared" / "reference" / "data" / "vggsound" / "video" / "-1pRmoJIGQc_10000_20000.mp4"
# --feature -> (the authors' VGGSound run name, our configs): "5 feats ResNet50" and "212 feats BN-Inception"
RELEASES = {
    "resnet50": ("2021-07-30T21-34-25_vggsound_transformer",
                 ("vggsound_transformer.yaml", "transformer_variants/vggsound_resnet50.yaml",
                  "transformer_variants/feats5.yaml")),
    "bninception": ("2021-06-03T07-27-58_vggsound_transformer", ("vggsound_transformer.yaml",)),
}
CODEBOOK = "./logs/2021-05-19T22-16-54_vggsound_codebook/checkpoints/last.ckpt"   # as the release records it


def build_release(workdir: Path, feature: str = "resnet50") -> tuple[Path, Path]:
    """(transformer .ckpt, feature-network weights) of the ``feature`` release (:data:`RELEASES`) in
    ``workdir``, written once (random weights, seed 0)."""
    import torch
    from omegaconf import OmegaConf

    from feature_extraction.weights import load_bninception, load_resnet50
    from specvqgan.config import instantiate_from_config, load_config

    name, configs = RELEASES[feature]
    run = workdir / name
    ckpt, resnet = run / "checkpoints" / "epoch_39.ckpt", workdir / f"{feature}-random.pth"
    if not resnet.is_file():
        resnet.parent.mkdir(parents=True, exist_ok=True)
        net = load_resnet50(None, seed=0) if feature == "resnet50" else load_bninception(None, 3, seed=0)
        torch.save(net.state_dict(), resnet)
    if ckpt.is_file():
        return ckpt, resnet
    cfg = load_config([ROOT / "configs" / c for c in configs], ["model.params.first_stage_config.params.ckpt_path=null"])
    torch.manual_seed(0)
    model = instantiate_from_config(cfg.model)
    with torch.no_grad():
        model.transformer.pos_emb.normal_(0, 0.02)
    cfg.model.params.first_stage_config.params.ckpt_path = CODEBOOK
    (run / "configs").mkdir(parents=True, exist_ok=True)
    (run / "configs" / f"{name[:19]}-project.yaml").write_text(OmegaConf.to_yaml(cfg))
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    tmp = ckpt.with_suffix(".tmp")
    torch.save({"state_dict": model.state_dict(), "epoch": 39, "global_step": 0}, tmp)   # Lightning-style, no config
    tmp.replace(ckpt)
    n = sum(p.numel() for p in model.parameters())
    print(f"built {ckpt} ({n / 1e6:.0f} M parameters)", flush=True)
    return ckpt, resnet


def synthetic_video(path: Path, seconds: float = 10.0) -> Path:
    """A 10 s 25 fps 320 x 240 clip with a moving square and a tone (when no real clip is at hand)."""
    import numpy as np

    from feature_extraction.encode import write_mp4
    from specvqgan.audio import SR

    n = int(seconds * 25)
    frames = np.zeros((n, 240, 320, 3), np.uint8)
    for i in range(n):
        x = (i * 5) % 280
        frames[i, 100:140, x:x + 40] = (200, 80 + i % 100, 40)
    t = np.arange(int(seconds * SR)) / SR
    write_mp4(path, frames, 25, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    return path


def cli_args(args, ckpt: Path, resnet: Path, out: Path) -> list[str]:
    cmd = ["--video", str(args.video), "--transformer", str(ckpt), "--feature-weights", str(resnet),
           "--precision", args.precision, "--samples", "1", "--out", str(out)]
    return cmd + (["--vocoder", str(args.vocoder)] if args.vocoder else [])


def run_timed(cmd: list[str], log: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in GB, stdout) of ``cmd`` in a fresh process (PYTHONPATH = this checkout)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log, "w+") as out:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *cmd], env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {text.strip()[-2000:]}")
    return seconds, usage.ru_maxrss / 2 ** 20, text


def time_cli(args, ckpt: Path, resnet: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS GB) of ``python scripts/generate.py`` in a fresh process (median of
    ``--cli-repeats``)."""
    runs = []
    for _ in range(args.cli_repeats):
        seconds, rss, text = run_timed([str(ROOT / "scripts" / "generate.py"), *cli_args(args, ckpt, resnet, out)],
                                       out.parent / "cli.log")
        runs.append((seconds, rss))
        print(text.strip().splitlines()[-1], flush=True)
    return sorted(runs)[len(runs) // 2]


FRESH_LOAD = """import resource, sys, time
t0 = time.perf_counter()
import torch
torch.set_num_threads(int(sys.argv[4]))
from specvqgan.pipeline import VideoToSound
from specvqgan.sampling import sample_tokens
pipe = VideoToSound.from_checkpoints(sys.argv[1], precision=sys.argv[2], feature_weights=sys.argv[3])
t1 = time.perf_counter()
with torch.inference_mode():
    sample_tokens(pipe.gpt, torch.rand(1, pipe.spec.feat_depth, pipe.spec.n_feats), 1, seed=0)
t2 = time.perf_counter()
print(f"fresh_load {t1 - t0:.2f} {t2 - t0:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.2f}")
"""


def fresh_load(args, path: Path, resnet: Path, workdir: Path) -> tuple[float, float, float]:
    """A fresh process: (seconds to ``from_checkpoints`` returning, imports included; seconds until one token is
    sampled, i.e. ready to sample; peak RSS GB)."""
    _, _, text = run_timed(["-c", FRESH_LOAD, str(path), args.precision, str(resnet), str(args.threads)],
                           workdir / "fresh_load.log")
    load, ready, rss = (float(x) for x in text.strip().splitlines()[-1].split()[1:])
    return load, ready, rss


def bundle_of(args, ckpt: Path, workdir: Path) -> Path:
    """The inference bundle of ``ckpt`` at ``--precision`` in ``workdir`` (exported once; again when the
    checkpoint is newer)."""
    path = workdir / f"{ckpt.parent.parent.name}-{ckpt.stem}-{args.precision}.bundle.pt"
    if not path.is_file() or path.stat().st_mtime < ckpt.stat().st_mtime:
        seconds, rss, _ = run_timed(["-m", "specvqgan.export", str(ckpt), str(path), "--precision", args.precision],
                                    workdir / "export.log")
        print(f"exported {path} ({path.stat().st_size / 1e9:.2f} GB) in {seconds:.1f} s, peak RSS {rss:.1f} GB",
              flush=True)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "specvqgan-bench"),
                   help="where the paper-size model is built (once) and outputs go")
    p.add_argument("--transformer", default=None, help="a real transformer checkpoint instead of the built one")
    p.add_argument("--feature-weights", default=None, help="feature-network weights for --transformer")
    p.add_argument("--feature", default="resnet50", choices=tuple(RELEASES),
                   help="the built release: 5 ResNet-50 features, or 212 BN-Inception RGB + TV-L1 flow features")
    p.add_argument("--cli-on", default="both", choices=("bundle", "checkpoint", "both"),
                   help="which files the cold CLI runs on")
    p.add_argument("--videos", type=int, default=2, help="in-process generate calls (1: no 'each further video')")
    p.add_argument("--vocoder", default=None, help="MelGAN checkpoint (default: Griffin-Lim)")
    p.add_argument("--video", default=str(REAL_VIDEO), help="input video (default: a VGGSound clip)")
    p.add_argument("--precision", default="int8", choices=("fp32", "bf16", "int8"))
    p.add_argument("--cli-repeats", type=int, default=1, help="cold CLI runs (median)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-cli", action="store_true", help="in-process timings only")
    p.add_argument("--no-bundle", action="store_true", help="time the checkpoint only (no inference bundle)")
    p.add_argument("--omp-wait-policy", default="default", choices=("default", "passive", "active"),
                   help="OpenMP idle threads for both parts (passive on a CPU shared with busy processes)")
    args = p.parse_args()
    if args.omp_wait_policy != "default":   # before torch starts OpenMP; the CLI subprocess inherits it
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()

    import torch
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if not Path(args.video).is_file():
        args.video = str(synthetic_video(workdir / "synthetic_10s.mp4"))
    if args.transformer:
        ckpt, resnet = Path(args.transformer), Path(args.feature_weights)
    else:
        ckpt, resnet = build_release(workdir, args.feature)
    gc.collect()
    out = workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    print(f"CPU, {args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
          f"{args.precision}; video {args.video}; model {ckpt}", flush=True)
    bundle = None if args.no_bundle else bundle_of(args, ckpt, workdir)
    rows, rss = [], []
    for name, path in (("bundle", bundle), ("checkpoint", ckpt)):
        if path is not None and not args.skip_cli and args.cli_on in (name, "both"):
            seconds, peak = time_cli(args, path, resnet, out)
            rows.append((f"cold CLI on the {name}, one 10 s video -> mp4 (1 sample)", seconds))
            rss.append(f"CLI on the {name} {peak:.1f} GB")
    e2e = rows[0][1] if rows else float("nan")      # the bundle's when there is one
    for name, path in (("bundle", bundle), ("checkpoint", ckpt)):
        if path is not None:
            load, ready, peak = fresh_load(args, path, resnet, workdir)
            rows += [(f"fresh process, {name}: from_checkpoints (imports included)", load),
                     (f"fresh process, {name}: ready to sample (+ one token)", ready)]
            rss.append(f"fresh process on the {name} {peak:.2f} GB")

    from specvqgan.pipeline import VideoToSound
    from specvqgan.sampling import sample_tokens

    load = dict(vocoder=args.vocoder, precision=args.precision, feature_weights=resnet)
    if bundle is not None:
        t = time.perf_counter()
        VideoToSound.from_checkpoints(ckpt, **load)
        rows.append(("in-process: checkpoint load + inference copy", time.perf_counter() - t))
        gc.collect()
    t = time.perf_counter()
    pipe = VideoToSound.from_checkpoints(bundle or ckpt, **load)
    rows.append((f"in-process: {'bundle' if bundle else 'checkpoint'} load (+ inference copy)",
                 time.perf_counter() - t))
    for k in range(args.videos):
        t = time.perf_counter()
        res = pipe.generate(args.video, out, samples=1, seed=k)
        total = time.perf_counter() - t
        label = "first video" if k == 0 else "each further video"
        rows.append((f"in-process: {label}", total))
        rows += [(f"  {stage}", s) for stage, s in res.seconds.items()]
    with torch.inference_mode():
        plan = pipe.prepare(args.video, random_features=True)    # the speed does not depend on the values
        cond = pipe.condition(plan)
        steps = pipe.H * pipe.W
        best = float("inf")
        for r in range(2):
            t = time.perf_counter()
            sample_tokens(pipe.gpt, cond, steps, num_samples=1, seed=r)
            best = min(best, time.perf_counter() - t)
    rows.append((f"bare sampler ({steps} tokens, same model and condition)", best))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"\n{'stage':62} {'seconds':>8}")
    for name, s in rows:
        print(f"{name:62} {s:8.2f}")
    print(f"(peak RSS: {', '.join(rss + [f'in-process part {peak:.1f} GB'])})")
    print(f"e2e_seconds={e2e:.2f} sampler_seconds={best:.2f} ratio={e2e / best:.2f}")


if __name__ == "__main__":
    main()
