#!/usr/bin/env python
"""Train (or validate) any model of this codebase from YAML configs.

    python train.py --base configs/toy/codebook.yaml -t
    python train.py --base configs/vas_codebook.yaml -t lightning.trainer.devices=2 data.params.batch_size=4
    python train.py -r logs/2026-11-24T10-00-00_codebook          # resume (weights, optimizers, step)
    python train.py --base configs/vas_codebook.yaml -t True --gpus 0,   # the reference's form (docs/migration.md)

Trailing ``key=value`` arguments override the merged config (OmegaConf dotlist). See README.
"""
import argparse
import logging
import sys

from specvqgan.config import ConfigError


BOOLS = {"true": True, "t": True, "yes": True, "y": True, "1": True,
         "false": False, "f": False, "no": False, "n": False, "0": False}


def str2bool(value: str) -> bool:
    if str(value).lower() not in BOOLS:
        raise argparse.ArgumentTypeError(f"expected a boolean (True/False), got {value!r}")
    return BOOLS[str(value).lower()]


def _reference_forms(argv: list[str]) -> list[str]:
    """The reference's ``-t True`` / ``-t False`` (and a bare ``-t`` before key=value overrides) -> ``--train=<bool>``."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-t", "--train"):
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            if nxt.lower() in BOOLS:
                out.append(f"--train={nxt}")
                i += 2
                continue
            arg = "--train=true"
        out.append(arg)
        i += 1
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-b", "--base", nargs="*", default=[], metavar="base_config.yaml",
                        help="config files, merged left to right")
    parser.add_argument("-t", "--train", type=str2bool, nargs="?", const=True, default=False,
                        help="train (otherwise: validate only); the reference's -t True / -t False also work")
    parser.add_argument("-r", "--resume", default=None, help="a log directory or a checkpoint to resume from")
    parser.add_argument("-n", "--name", default=None, help="run name (default: the first config's stem)")
    parser.add_argument("-s", "--seed", type=int, default=23, help="global seed")
    parser.add_argument("-l", "--logdir", default="logs", help="root of the log directories")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="read the checkpoint to resume (-r) in full (weights_only=False); a checkpoint can "
                             "run code: only for files you trust (docs/checkpoints.md)")
    parser.add_argument("--gpus", default=None, help="Lightning-1.x form of the reference README: --gpus 0, "
                        "(GPU 0) or --gpus 0,1,2,3 -> lightning.trainer accelerator='gpu', devices=[...]")
    parser.add_argument("--no-test", type=str2bool, nargs="?", const=True, default=False,
                        help="accepted for the reference's command lines; train.py never runs a test loop")
    args, overrides = parser.parse_known_args(_reference_forms(sys.argv[1:] if argv is None else list(argv)))
    bad = [o for o in overrides if "=" not in o or o.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments {bad}: overrides must be key=value")
    return args, overrides


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    args, overrides = parse_args(argv)
    if args.gpus is not None:
        from specvqgan.reference import check_gpus, parse_gpus

        try:
            devices = parse_gpus(args.gpus)
            if devices is not None:
                check_gpus(devices, where=f"--gpus {args.gpus}")
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        overrides = [f"lightning.trainer.gpus={args.gpus}"] + overrides  # mapped by specvqgan.reference
    from specvqgan.checkpoint import CheckpointError
    from specvqgan.training import run  # heavy imports after argument parsing

    try:
        dirs = run(args.base, overrides, train=args.train, resume=args.resume, name=args.name,
                   seed=args.seed, logroot=args.logdir, trust_checkpoint=args.trust_checkpoint)
    except (ConfigError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from specvqgan.distributed import is_launch_rank_zero
    if is_launch_rank_zero():  # once per run, not per DDP process
        print(f"run directory: {dirs.logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
