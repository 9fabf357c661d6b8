"""Evaluate generated mel spectrograms with Melception: FID, KID, IS, MKL (paper section 5).

    python evaluate.py --generated SAMPLES_DIR --reference REAL_DIR|CONFIG.yaml|SPLIT.txt \
        --melception CKPT [--metrics fid,kid,isc,mkl] [--out results.json]

    python evaluate.py config=evaluation/configs/eval_melception_vas.yaml input1.params.root=SAMPLES_DIR \
        input2.path_to_exp=RUN_DIR patch.spec_dir_path=... patch.specs_dir=...     # the reference's form

Prints a table and the pairing counts, and writes a JSON report (default ``<generated>/evaluation.json``).
Features are cached under ``<generated>/.melception_cache`` (``--no-cache`` to disable).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from evaluation.evaluate import METRICS, evaluate, format_table
from evaluation.reference_config import evaluate_kwargs, is_reference_form, load_reference_config
from specvqgan.checkpoint import add_trust_argument, trusted_by


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generated", required=True, help="folder of generated <video_id>_sample_<k>.npy mels in [0, 1]")
    p.add_argument("--reference", required=True,
                   help="real mels: a folder of <video_id>_mel.npy, a training config (.yaml) or a split list (.txt)")
    p.add_argument("--melception", required=True,
                   help="Melception checkpoint: the authors' release, an exported one, or a train.py .ckpt")
    p.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset of fid,kid,isc,mkl")
    p.add_argument("--split", default="validation", help="dataset of a config reference: data.params.<split>")
    p.add_argument("--root", default=None, help="where a split list's mels live (default: the list's folder)")
    p.add_argument("--crop", type=int, default=None,
                   help="mel frames fed to Melception (default: largest multiple of 16 <= the shortest mel)")
    p.add_argument("--stats", default=None, help="per-mel-bin 'mean std' text file overriding the checkpoint's")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--cache-dir", default=None, help="feature cache (default: <generated>/.melception_cache)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write cached features")
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--kid-subset-size", type=int, default=1000)
    p.add_argument("--out", default=None, help="JSON report (default: <generated>/evaluation.json)")
    add_trust_argument(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if is_reference_form(argv):  # config=<eval yaml> key=value ... (docs/migration.md)
            cfg = load_reference_config(argv)
            kwargs, out = evaluate_kwargs(cfg), cfg.get("out")
            no_cache = bool(cfg.get("no_cache", False))
            args = argparse.Namespace(trust_checkpoint=bool(cfg.get("trust_checkpoint", False)))
        else:
            args = parse_args(argv)
            kwargs = dict(generated=args.generated, reference=args.reference, melception=args.melception,
                          metrics=[m.strip() for m in args.metrics.split(",") if m.strip()], split=args.split,
                          root=args.root, crop=args.crop, batch_size=args.batch_size, device=args.device,
                          stats_path=args.stats, kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size)
            out, no_cache = args.out, args.no_cache
            if args.cache_dir and not args.no_cache:
                kwargs["cache_dir"] = args.cache_dir
        kwargs.setdefault("cache_dir", None if no_cache else Path(kwargs["generated"]) / ".melception_cache")
        with trusted_by(args, kwargs["melception"]):
            report = evaluate(**kwargs)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(report))
    out = Path(out) if out else Path(kwargs["generated"]) / "evaluation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"report written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
