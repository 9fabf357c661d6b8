"""Sample every video of a split with a trained transformer, or reconstruct it with a codebook, as
``.npy`` mels that ``python evaluate.py`` scores (paper Sec. 5, Table 1).

    python scripts/sample_dataset.py --ckpt logs/<run>/checkpoints/last.ckpt --out samples/vas_val \\
        --split validation --samples-per-video 10 --top-k 64 --batch-size 32
    python scripts/sample_dataset.py --mode reconstructions --ckpt <codebook or transformer ckpt> --out rec/vas_val
    torchrun --nproc_per_node 4 scripts/sample_dataset.py --ckpt ... --out ...   # one shard per GPU

Writes ``<out>/<class>/<video_id>_sample_<k>.npy`` ((80, T) float32 in [0, 1]; flat ``<out>/<id>_...``
when split rows have no class) and ``<out>/sampling.json``. Sample k of a video is seeded by (--seed,
video id, k), existing files are skipped and files are written atomically: rerun the same command to
resume. The dataset is ``data.params.<split>`` of the checkpoint's training config (or of --config).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from specvqgan.checkpoint import add_trust_argument, trusted
from specvqgan.config import ConfigError
from specvqgan.dataset_sampling import MODES, SamplerOptions, sample_dataset


def parse_args(argv=None) -> tuple[SamplerOptions, bool]:
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda[:LOCAL_RANK] if available)")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                   help="GPT inference precision (int8: CPU only)")
    p.add_argument("--limit", type=int, default=None, help="only the first N videos of the split")
    p.add_argument("--shard", default=None, help="i/n: this process takes videos i, i+n, ... "
                   "(default: torchrun's RANK/WORLD_SIZE, else 0/1)")
    p.add_argument("--no-progress", action="store_true")
    add_trust_argument(p)
    p.add_argument("overrides", nargs="*", help="key=value overrides of the data config")
    a = p.parse_args(argv)
    opts = SamplerOptions(ckpt=a.ckpt, out=a.out, mode=a.mode, split=a.split, config=a.config,
                          overrides=tuple(a.overrides), samples_per_video=a.samples_per_video,
                          batch_size=a.batch_size, temperature=a.temperature, top_k=a.top_k, top_p=a.top_p,
                          seed=a.seed, device=a.device, precision=a.precision, limit=a.limit, shard=a.shard,
                          progress=not a.no_progress)
    return opts, a.trust_checkpoint


def main(argv=None) -> int:
    opts, trust = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        with trusted(opts.ckpt if trust else None):
            result = sample_dataset(opts)
    except (FileNotFoundError, ValueError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
