#!/usr/bin/env python
"""Train (or validate) any model of this codebase from YAML configs.

    python train.py --base configs/toy/codebook.yaml -t
    python train.py --base configs/vas_codebook.yaml -t lightning.trainer.devices=2 data.params.batch_size=4
    python train.py -r logs/2026-11-24T10-00-00_codebook          # resume (weights, optimizers, step)

Trailing ``key=value`` arguments override the merged config (OmegaConf dotlist). See README.
"""
import argparse
import logging
import sys

from specvqgan.config import ConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-b", "--base", nargs="*", default=[], metavar="base_config.yaml",
                        help="config files, merged left to right")
    parser.add_argument("-t", "--train", action="store_true", help="train (otherwise: validate only)")
    parser.add_argument("-r", "--resume", default=None, help="a log directory or a checkpoint to resume from")
    parser.add_argument("-n", "--name", default=None, help="run name (default: the first config's stem)")
    parser.add_argument("-s", "--seed", type=int, default=23, help="global seed")
    parser.add_argument("-l", "--logdir", default="logs", help="root of the log directories")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="read the checkpoint to resume (-r) in full (weights_only=False); a checkpoint can "
                             "run code: only for files you trust (docs/checkpoints.md)")
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if "=" not in o or o.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments {bad}: overrides must be key=value")
    return args, overrides


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args, overrides = parse_args(argv)
    from specvqgan.checkpoint import CheckpointError
    from specvqgan.training import run  # heavy imports after argument parsing

    try:
        dirs = run(args.base, overrides, train=args.train, resume=args.resume, name=args.name,
                   seed=args.seed, logroot=args.logdir, trust_checkpoint=args.trust_checkpoint)
    except (ConfigError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run directory: {dirs.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
