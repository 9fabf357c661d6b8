"""The quickstart (``make demo``): from nothing to generated sound and a metrics table on the toy data.

    python scripts/demo.py                       # everything under demo/, the toy data under data/toy
    python scripts/demo.py --out /tmp/demo --toy /tmp/demo/toy --steps-scale 0.5
    python scripts/demo.py --fast --out /tmp/d --toy /tmp/d/toy --classes 2 --clips-per-class 4 --valid-per-class 2
    python scripts/demo.py --videos my_videos/ --out runs/mine [--duration 5]   # your videos: docs/own_data.md

Stages (each is skipped when its output exists, so a rerun after Ctrl-C or a failure continues; an
interrupted training resumes from its ``last.ckpt``):

 1. toy dataset (scripts/make_toy_dataset.py) and its features (python -m feature_extraction)
 2. toy codebook, 3. toy transformer on the real visual features, 4. toy Melception (train.py, each
    under ``<out>/runs/<time>_<stage>``; the chosen checkpoint is linked to ``<out>/models/<stage>.ckpt``)
 5. sound for a few validation videos with ``specvqgan.pipeline.VideoToSound`` (Griffin-Lim) ->
    ``<out>/generated/<video>_sample_<k>.{mp4,wav,png,npy}``
 6. / 7. the whole validation split sampled with the real visual features and with random ones
    (``specvqgan.dataset_sampling``, the same transformer) -> ``<out>/samples/{real,random}``
 8. FID / KID / IS / MKL of both against the validation mels (``evaluation.evaluate``) -> ``<out>/eval``
Then a summary (``scripts/demo_summary.py``) is printed and written to ``<out>/summary.md``. Each stage
logs to ``<out>/logs/``; the console shows one line per stage with its time.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from demo_summary import summary  # scripts/ (the folder of this file) is on sys.path
from specvqgan.own_data import add_cli_options

REPO = Path(__file__).resolve().parent.parent
RANDOM_FEATS = "data.params.validation.params.condition_dataset_cfg.replace_feats_with_random=true"
TRAINED = ("codebook", "transformer", "melception")


class StageError(RuntimeError):
    """A stage failed; the message says why (the stage's log has the details)."""


@dataclass
class Stage:
    name: str
    title: str
    done: Callable[[], bool]
    run: Callable[[Path], None]  # gets the stage's log file


# ----------------------------------------------------------------------------- options
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo", help="demo folder (models, samples, logs, summary.md)")
    p.add_argument("--toy", default=None, help="toy dataset folder (default: <out>/toy; make demo: data/toy)")
    p.add_argument("--classes", type=int, default=8, help="toy classes (make_toy_dataset.py --classes)")
    p.add_argument("--clips-per-class", type=int, default=40)
    p.add_argument("--valid-per-class", type=int, default=8)
    p.add_argument("--codebook-steps", type=int, default=128, help="codebook batches (2 optimizer steps each)")
    p.add_argument("--transformer-steps", type=int, default=800, help="transformer optimizer steps")
    p.add_argument("--melception-epochs", type=int, default=8)
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply the three training lengths")
    p.add_argument("--samples-per-video", type=int, default=5, help="validation samples per video and setting")
    p.add_argument("--gen-videos", type=int, default=4, help="validation videos given new sound (mp4)")
    p.add_argument("--gen-samples", type=int, default=1, help="samples per generated video")
    p.add_argument("--top-k", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="STAGE:key=value",
                   help="extra train.py override of a training stage (codebook, transformer, melception)")
    p.add_argument("--fast", action="store_true", help="tiny settings to check the chain (tests), not results")
    add_cli_options(p.add_argument_group("your own videos (docs/own_data.md)"))
    if p.parse_known_args(argv)[0].fast:  # tiny defaults; explicit options still win
        p.set_defaults(codebook_steps=2, transformer_steps=2, melception_epochs=1, samples_per_video=1,
                       gen_videos=1, gen_samples=1)
    a = p.parse_args(argv)
    for s in a.set:
        stage, _, kv = s.partition(":")
        if stage not in TRAINED or "=" not in kv:
            p.error(f"--set {s!r}: expected STAGE:key=value with STAGE one of {', '.join(TRAINED)}")
    a.out = Path(a.out).resolve()
    a.toy = Path(a.toy).resolve() if a.toy else a.out / ("data" if a.videos else "toy")
    if a.duration <= 0:
        p.error(f"--duration must be > 0, got {a.duration}")
    if not a.videos and (a.duration != 2.0 or a.feature != "color"):
        p.error("--duration / --feature apply to --videos (the toy data is 2 s colour clips)")
    return a


def scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))


# ----------------------------------------------------------------------------- helpers
def run_cmd(cmd: list[str], log: Path) -> None:
    """Run ``cmd`` from the repository root, stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(map(str, cmd))}\n")
        f.flush()
        proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the child too: let train.py save its last.ckpt
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    if rc != 0:
        raise StageError(f"`{' '.join(map(str, cmd[:4]))} ...` exited with status {rc}")


@contextlib.contextmanager
def logging_to(log: Path):
    """In-process stages: logging records, stdout and stderr go to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with open(log, "a") as f:
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
                yield
        except Exception:
            logging.getLogger("demo").exception("stage failed")
            raise
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)


def read_split(path: Path) -> list[str]:
    """Rows of a toy split list ([] while the toy data is not made yet)."""
    from specvqgan.data.clips import read_split as read_rows
    return read_rows(path) if path.is_file() else []


# ----------------------------------------------------------------------------- the demo
class Demo:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a, self.out, self.toy = a, a.out, a.toy
        self.models = self.out / "models"
        self.timings_path = self.out / "timings.json"
        self.timings = json.loads(self.timings_path.read_text()) if self.timings_path.is_file() else {}

    # -- data
    def toy_clips(self) -> list[str]:
        return read_split(self.toy / "toy_train.txt") + read_split(self.toy / "toy_valid.txt")

    def toy_ready(self) -> bool:
        clips = self.toy_clips()
        feats = self.toy / "features"
        return bool(clips) and all(
            (feats / c.split("/")[0] / f"melspec_{self.a.duration:g}s_22050hz" / f"{c.split('/')[1]}_mel.npy")
            .is_file() for c in clips)

    def make_data(self, log: Path) -> None:
        if self.a.videos:
            return self.make_own_data(log)
        if not (self.toy / "meta.json").is_file():
            run_cmd([sys.executable, "scripts/make_toy_dataset.py", "--out", self.toy, "--duration", 2,
                     "--classes", self.a.classes, "--clips-per-class", self.a.clips_per_class,
                     "--valid-per-class", self.a.valid_per_class], log)
        run_cmd([sys.executable, "-m", "feature_extraction", "--videos", self.toy / "videos", "--out",
                 self.toy / "features", "--duration", 2, "--no-progress", "--strict"], log)
        if not self.toy_ready():
            raise StageError(f"features missing under {self.toy / 'features'} after extraction")

    def make_own_data(self, log: Path) -> None:  # specvqgan.own_data: staging, extraction, split lists
        from specvqgan.own_data import prepare
        a = self.a
        with logging_to(log):
            got = prepare(a.videos, self.toy, duration=a.duration, feature=a.feature, weights=a.feature_weights,
                          valid_fraction=a.valid_fraction, seed=a.seed, train_list=a.train_list, valid_list=a.valid_list)
        print("".join(f"\n  unusable: {video}: {reason}" for video, reason in got.failed), end="")

    def n_classes(self) -> int:
        from specvqgan.data.toy import toy_classes
        return len(toy_classes(str(self.toy)) or [])

    # -- training
    def train_overrides(self, stage: str) -> list[str]:
        a, root = self.a, f"{self.toy}"
        o = [f"data.params.train.params.data_root={root}", f"data.params.validation.params.data_root={root}",
             "lightning.trainer.enable_progress_bar=false"]
        if stage == "codebook":
            o.append(f"lightning.trainer.max_steps={2 * scaled(a.codebook_steps, a.steps_scale)}")
        elif stage == "transformer":
            o += [f"lightning.trainer.max_steps={scaled(a.transformer_steps, a.steps_scale)}",
                  f"model.params.first_stage_config.params.ckpt_path={self.models / 'codebook.ckpt'}",
                  "model.params.log_media=false", "lightning.trainer.check_val_every_n_epoch=5"]
        else:
            o.append(f"lightning.trainer.max_epochs={scaled(a.melception_epochs, a.steps_scale)}")
        if a.videos:  # sizes for the chosen clip length / feature; batches no larger than the training split
            from specvqgan.own_data import OwnShapes, overrides
            from specvqgan.data.toy import toy_feat_depth
            depth = toy_feat_depth(root, a.feature)
            o += overrides(stage, OwnShapes(a.duration, depth), a.feature, self.n_classes())
            n_train = len(read_split(self.toy / "toy_train.txt"))
            o.append(f"data.params.batch_size={min(n_train, {'codebook': 8}.get(stage, 16))}")
        if a.fast:  # a handful of clips: small batches, validate every epoch
            bs = {"codebook": 2, "transformer": 2, "melception": 2}[stage]
            o += [f"data.params.batch_size={bs}", "lightning.trainer.check_val_every_n_epoch=1",
                  "lightning.trainer.limit_val_batches=2"]
        return o + [s.partition(":")[2] for s in a.set if s.partition(":")[0] == stage]

    def train(self, stage: str, log: Path) -> None:
        runs = self.out / "runs"
        configs = [REPO / "configs" / "toy" / f"{stage}.yaml", *self.init_codebook(stage)]
        started = sorted(p for p in runs.glob(f"*_{stage}") if (p / "checkpoints" / "last.ckpt").is_file())
        if started:  # an interrupted run: continue it (weights, optimizers, step)
            cmd = ["-r", started[-1], "-t"]
        else:
            cmd = ["--base", *configs, "-t", "-n", stage, "-l", runs]
        run_cmd([sys.executable, "train.py", *cmd, "-s", 23 + self.a.seed, *self.train_overrides(stage)], log)
        run = sorted(p for p in runs.glob(f"*_{stage}") if (p / "checkpoints" / "last.ckpt").is_file())
        if not run:
            raise StageError(f"train.py wrote no {runs}/*_{stage}/checkpoints/last.ckpt")
        best = sorted((run[-1] / "checkpoints").glob("best-*.ckpt"))
        from specvqgan.files import link_atomic
        link_atomic(best[-1] if best else run[-1] / "checkpoints" / "last.ckpt", self.models / f"{stage}.ckpt")

    def init_codebook(self, stage: str) -> list[Path]:
        """--init-codebook: the YAMLs that swap the toy codebook for the given one (specvqgan.own_data)."""
        if not self.a.init_codebook or stage == "melception":
            return []
        from specvqgan.own_data import OwnShapes, init_codebook_configs
        paths = init_codebook_configs(self.a.init_codebook, self.out / "configs", OwnShapes(self.a.duration, 0),
                                      self.models)
        return [paths[stage == "transformer"]]

    # -- generation with the pipeline API
    def gen_videos(self) -> list[Path]:
        """The first validation video of each class, then the second ones, ... (``--gen-videos`` of them)."""
        by_class: dict[str, list[str]] = {}
        for clip in read_split(self.toy / "toy_valid.txt"):
            by_class.setdefault(clip.split("/")[0], []).append(clip)
        order = [c for i in range(max(map(len, by_class.values()), default=0))
                 for c in [v[i] for v in by_class.values() if i < len(v)]]
        return [next(iter(sorted((self.toy / "videos").glob(f"{c}.*"))), self.toy / "videos" / f"{c}.mp4")
                for c in order[:self.a.gen_videos]]

    def generated(self) -> list[Path]:
        return [self.out / "generated" / f"{v.stem}_sample_{k}.mp4"
                for v in self.gen_videos() for k in range(self.a.gen_samples)]

    def generate(self, log: Path) -> None:
        with logging_to(log):
            from specvqgan.pipeline import VideoToSound
            pipe = VideoToSound.from_checkpoints(transformer=self.models / "transformer.ckpt", vocoder=None,
                                                 device="cpu")
            for video in self.gen_videos():
                res = pipe.generate(video, out_dir=self.out / "generated", samples=self.a.gen_samples,
                                    top_k=self.a.top_k, seed=self.a.seed, duration=self.a.duration if self.a.fast else None)
                logging.getLogger("demo").info("%s -> %s", video, [str(p) for p in res.mp4_paths])

    # -- dataset sampling and evaluation
    def n_valid(self) -> int:
        return len(read_split(self.toy / "toy_valid.txt"))

    def sampled(self, kind: str) -> bool:
        folder = self.out / "samples" / kind
        return (folder / "sampling.json").is_file() and \
            len(list(folder.rglob("*_sample_*.npy"))) >= self.n_valid() * self.a.samples_per_video

    def sample(self, kind: str, log: Path) -> None:
        with logging_to(log):
            from specvqgan.dataset_sampling import SamplerOptions, sample_dataset
            opts = SamplerOptions(ckpt=str(self.models / "transformer.ckpt"), out=str(self.out / "samples" / kind),
                                  overrides=(RANDOM_FEATS,) if kind == "random" else (),
                                  samples_per_video=self.a.samples_per_video, batch_size=64, top_k=self.a.top_k,
                                  seed=self.a.seed, device="cpu", progress=False)
            logging.getLogger("demo").info("%s", sample_dataset(opts))

    def evaluate(self, log: Path) -> None:
        with logging_to(log):
            from evaluation.evaluate import evaluate, format_table
            for kind in ("real", "random"):
                out = self.out / "eval" / f"{kind}.json"
                if out.is_file():
                    continue
                report = evaluate(self.out / "samples" / kind, self.toy / "toy_valid.txt",
                                  self.melception(), device="cpu",
                                  cache_dir=self.out / "eval" / ".melception_cache",
                                  kid_subset_size=min(50, self.n_valid()), isc_splits=10)
                print(f"{kind} visual features\n{format_table(report)}")
                tmp = out.with_name(f".{out.name}.tmp")
                tmp.write_text(json.dumps(report, indent=1))
                os.replace(tmp, out)

    def melception(self) -> Path | None:
        """The Melception that scores: --melception, else the trained one (None: one class, nothing to train)."""
        if self.a.melception:
            return Path(self.a.melception)
        return None if self.a.videos and self.toy_ready() and self.n_classes() < 2 else self.models / "melception.ckpt"

    # -- the chain
    def stages(self) -> list[Stage]:
        m = self.models
        what = "your videos" if self.a.videos else "toy dataset"
        return [
            Stage("data", f"{what} + features", self.toy_ready, self.make_data),
            Stage("codebook", "train the toy codebook", (m / "codebook.ckpt").is_file,
                  lambda log: self.train("codebook", log)),
            Stage("transformer", "train the toy transformer", (m / "transformer.ckpt").is_file,
                  lambda log: self.train("transformer", log)),
            Stage("melception", "train the toy Melception",
                  lambda: self.melception() != m / "melception.ckpt" or (m / "melception.ckpt").is_file(),
                  lambda log: self.train("melception", log)),
            Stage("generate", "sound for validation videos (mp4)",
                  lambda: all(p.is_file() for p in self.generated()), self.generate),
            Stage("sample_real", "sample validation, real features", lambda: self.sampled("real"),
                  lambda log: self.sample("real", log)),
            Stage("sample_random", "sample validation, random features", lambda: self.sampled("random"),
                  lambda log: self.sample("random", log)),
            Stage("evaluate", "FID / KID / IS / MKL", lambda: self.melception() is None or all(
                (self.out / "eval" / f"{k}.json").is_file() for k in ("real", "random")), self.evaluate),
        ]

    def run(self) -> int:
        stages = self.stages()
        print(f"demo in {self.out} (toy data: {self.toy}); logs in {self.out / 'logs'}")
        for i, st in enumerate(stages, 1):
            log = self.out / "logs" / f"{i:02d}_{st.name}.log"
            head = f"[{i}/{len(stages)}] {st.title:<36}"
            if st.done():
                print(f"{head} skipped (output exists)", flush=True)
                continue
            print(f"{head} ...", end="", flush=True)
            t0 = time.perf_counter()
            try:
                st.run(log)
            except KeyboardInterrupt:
                print(f"\ninterrupted in stage '{st.name}' (log: {log}); run the same command again to continue")
                return 130
            except Exception as err:  # noqa: BLE001 - reported with the stage and its log
                print(f"\nerror: stage '{st.name}' failed: {err}\n  log: {log}", file=sys.stderr)
                return 1
            self.timings[st.name] = round(time.perf_counter() - t0, 1)
            self.out.mkdir(parents=True, exist_ok=True)
            self.timings_path.write_text(json.dumps(self.timings, indent=1))
            print(f" {self.timings[st.name]:7.1f} s   log: {log.relative_to(self.out)}", flush=True)
        text = summary(self, stages)
        print("\n" + text)
        tmp = self.out / ".summary.md.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.out / "summary.md")
        return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: wait for train.py to save, then stop cleanly
    return Demo(args).run()


if __name__ == "__main__":
    sys.exit(main())
