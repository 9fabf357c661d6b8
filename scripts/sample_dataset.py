"""Sample every video of a split with a trained transformer, or reconstruct it with a codebook, as
``.npy`` mels that ``python evaluate.py`` scores (paper Sec. 5, Table 1).

    python scripts/sample_dataset.py --ckpt logs/<run>/checkpoints/last.ckpt --out samples/vas_val \\
        --split validation --samples-per-video 10 --top-k 64 --batch-size 32
    python scripts/sample_dataset.py --mode reconstructions --ckpt <codebook or transformer ckpt> --out rec/vas_val
    torchrun --nproc_per_node 4 scripts/sample_dataset.py --ckpt ... --out ...   # one shard per GPU
    python scripts/sample_dataset.py sampler.model_logdir=logs/<run> sampler.splits="[validation, ]" \
        sampler.samples_per_video=10 sampler.batch_size=4 sampler.top_k=64 sampler.now=<time>   # reference form

    python scripts/sample_dataset.py --ckpt ... --out samples/mine --av-benchmark bench/mine \
        --videos runs/mine/data/videos [--vocoder MELGAN] [--audio-format flac]     # + av-benchmark folders

Writes ``<out>/<class>/<video_id>_sample_<k>.npy`` ((80, T) float32 in [0, 1]; flat ``<out>/<id>_...``
when split rows have no class) and ``<out>/sampling.json``. Sample k of a video is seeded by (--seed,
video id, k), existing files are skipped and files are written atomically: rerun the same command to
resume. The dataset is ``data.params.<split>`` of the checkpoint's training config (or of --config).
``--av-benchmark DIR`` then also writes the samples as waveforms (Griffin-Lim or ``--vocoder``) and, with
``--videos`` (the split's videos, ``<videos>/<class>/<id>.<ext>``), the videos muxed with them and their real
sound, in the folders av-benchmark pairs by name (:mod:`specvqgan.av_benchmark`, docs/own_data.md).
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import re
import sys
from pathlib import Path

from omegaconf import OmegaConf

from specvqgan.checkpoint import add_trust_argument, run_config_files, trusted
from specvqgan.config import ConfigError, load_config
from specvqgan.dataset_sampling import MODES, SamplerOptions, sample_dataset

SAMPLER_YAML = Path(__file__).resolve().parents[1] / "evaluation" / "configs" / "sampler.yaml"
SAMPLER_KEYS = {"model_logdir", "splits", "samples_per_video", "batch_size", "top_k", "now", "temperature",
                "config_sampler", "sampling_mode", "sample_next_tok_from_pred_dist", "num_workers"}


def reference_options(argv: list[str]) -> list[SamplerOptions]:
    """The reference's ``sampler.<key>=value`` form (evaluation/configs/sampler.yaml defaults): one run per
    split into ``<model_logdir>/samples_<now>/<VAS|VGGSound>_<split>``; other ``key=value`` (e.g.
    ``data.params.spec_dir_path=...``) override the run's data config."""
    cli = OmegaConf.from_dotlist(argv)
    given = cli.get("sampler") or {}
    s = OmegaConf.merge(OmegaConf.load(given.get("config_sampler") or SAMPLER_YAML).sampler, given)
    unknown = sorted(set(s) - SAMPLER_KEYS)
    if unknown:
        raise ConfigError(f"unknown sampler key(s) {unknown}; known: {sorted(SAMPLER_KEYS)}")
    if s.sampling_mode != "nopix":
        raise ConfigError(f"sampler.sampling_mode={s.sampling_mode!r}: only 'nopix' (no ground-truth prefix) is supported")
    logdir = Path(str(s.model_logdir))
    files = run_config_files(logdir) if logdir.is_dir() else []
    if not files:
        raise FileNotFoundError(f"sampler.model_logdir={logdir}: not a run folder with configs/*-project.yaml")
    cfg = load_config(files)
    ckpts = [logdir / "checkpoints" / "last.ckpt"] + sorted((logdir / "checkpoints").glob("*.ckpt"))[::-1]
    ckpt = next((c for c in ckpts if c.is_file()), None)
    if ckpt is None:
        raise FileNotFoundError(f"sampler.model_logdir={logdir}: no checkpoints/*.ckpt")
    splits = [str(x) for x in s.splits] if OmegaConf.is_list(s.splits) else [str(s.splits)]
    now = str(s.now) if s.get("now") else datetime.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    mode = "reconstructions" if str(cfg.model.target).split(".")[-1].startswith("VQModel") else "samples"
    overrides = tuple(a for a in argv if not a.startswith("sampler."))
    opts = []
    for split in splits:
        target = str(OmegaConf.select(cfg, f"data.params.{split}.target") or split).split(".")[-1]
        name = next((n for n in ("VGGSound", "VAS") if target.startswith(n)), None) or \
            (re.match(r"[A-Z][a-z]+", target) or [target])[0]
        opts.append(SamplerOptions(ckpt=str(ckpt), out=str(logdir / f"samples_{now}" / f"{name}_{split}"), mode=mode,
                                   split=split, config=[str(p) for p in files],
                                   overrides=overrides, samples_per_video=int(s.samples_per_video),
                                   batch_size=int(s.batch_size), temperature=float(s.temperature),
                                   top_k=int(s.top_k) if s.sample_next_tok_from_pred_dist else 1))
    return opts


def parse_args(argv=None) -> tuple[SamplerOptions, bool, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="transformer checkpoint (train.py .ckpt or export); "
                   "for --mode reconstructions also a codebook checkpoint")
    p.add_argument("--out", required=True, help="output folder (created; existing samples are kept)")
    p.add_argument("--mode", choices=MODES, default="samples")
    p.add_argument("--split", default="validation", help="data.params.<split> of the config (validation, test)")
    p.add_argument("--config", nargs="+", default=None,
                   help="training YAML(s) with the data block (default: the config stored in the checkpoint)")
    p.add_argument("--samples-per-video", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32, help="samples per forward pass")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--guidance-scale", type=float, default=1.0,
                   help="classifier-free guidance scale (1: off; > 1 needs a model trained with p_uncond > 0; "
                        "docs/guidance.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda[:LOCAL_RANK] if available)")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                   help="GPT inference precision (int8: CPU only)")
    p.add_argument("--limit", type=int, default=None, help="only the first N videos of the split")
    p.add_argument("--shard", default=None, help="i/n: this process takes videos i, i+n, ... "
                   "(default: torchrun's RANK/WORLD_SIZE, else 0/1)")
    p.add_argument("--no-progress", action="store_true")
    add_trust_argument(p)
    p.add_argument("--av-benchmark", default=None, metavar="DIR", help="also write av-benchmark folders: DIR/"
                   "{gt_audio,pred_audio/sample_<k>,video/sample_<k>}")
    p.add_argument("--videos", default=None, help="with --av-benchmark: the split's video folder (muxed videos, "
                   "real sound)")
    p.add_argument("--vocoder", default=None, help="with --av-benchmark: MelGAN checkpoint (default: Griffin-Lim)")
    p.add_argument("--audio-format", choices=("wav", "flac"), default="flac", help="with --av-benchmark")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the data config")
    a = p.parse_args(argv)
    if (a.videos or a.vocoder) and not a.av_benchmark:
        p.error("--videos / --vocoder are for --av-benchmark")
    bench = argparse.Namespace(dir=a.av_benchmark, videos=a.videos, vocoder=a.vocoder, fmt=a.audio_format)
    opts = SamplerOptions(ckpt=a.ckpt, out=a.out, mode=a.mode, split=a.split, config=a.config,
                          overrides=tuple(a.overrides), samples_per_video=a.samples_per_video,
                          batch_size=a.batch_size, temperature=a.temperature, top_k=a.top_k, top_p=a.top_p,
                          guidance_scale=a.guidance_scale, seed=a.seed, device=a.device, precision=a.precision,
                          limit=a.limit, shard=a.shard,
                          progress=not a.no_progress)
    return opts, a.trust_checkpoint, bench


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        bench = None
        if argv and any(a.startswith("sampler.") for a in argv) and all("=" in a and not a.startswith("-") for a in argv):
            trust = bool(OmegaConf.from_dotlist(argv).get("trust_checkpoint", False))
            runs = reference_options([a for a in argv if not a.startswith("trust_checkpoint=")])
        else:
            opts, trust, bench = parse_args(argv)
            runs = [opts]
        results = []
        for opts in runs:
            with trusted(opts.ckpt if trust else None):
                results.append(sample_dataset(opts))
        if bench is not None and bench.dir:
            from specvqgan.av_benchmark import export_samples
            from vocoder.inference import load_vocoder

            voc = load_vocoder(bench.vocoder) if bench.vocoder else None
            results[0]["av_benchmark"] = {"dir": bench.dir, "written": export_samples(
                opts.out, bench.dir, videos_dir=bench.videos, vocoder=voc, fmt=bench.fmt, progress=opts.progress)}
        result = results[0] if len(results) == 1 else results
    except (FileNotFoundError, ValueError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
