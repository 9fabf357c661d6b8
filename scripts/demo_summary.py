"""The summary of ``scripts/demo.py`` (``<out>/summary.md``): the generated videos, the real-vs-random
visual-features metrics table with its verdict, unusable videos, stage times and next steps.

Both functions take the ``Demo`` of ``scripts/demo.py`` (its options ``a``, folders and stage results).
"""
from __future__ import annotations

import json

from specvqgan.own_data import FAILED, read_failed


def summary(demo, stages) -> str:
    """The markdown summary: outputs, the real-vs-random metrics table, stage times, next steps."""
    out = demo.out
    lines = ["# specvqgan demo summary", "",
             f"Generated videos with new sound (Griffin-Lim; `.wav`, `.png`, `.npy` beside them) in `{out / 'generated'}`:"]
    lines += [f"- `{p}`" for p in demo.generated()]
    lines += metrics_lines(demo)
    failed = read_failed(demo.toy) if demo.a.videos else []
    if failed:
        lines += ["", f"{len(failed)} video(s) could not be used (also in `{demo.toy / FAILED}`):"]
        lines += [f"- {row.replace(chr(9), ': ', 1)}" for row in failed]
    lines += ["", "| stage | seconds |", "|---|---|"]
    for st in stages:
        t = demo.timings.get(st.name)
        lines.append(f"| {st.title} | {t if t is not None else '-'} |")
    total = sum(v for v in demo.timings.values() if v is not None)
    lines += [f"| **total** | **{total:.0f}** |", "",
              f"Samples: `{out / 'samples'}`; metrics JSON: `{out / 'eval'}`; models: `{out / 'models'}`; "
              f"logs: `{out / 'logs'}`, `{out / 'runs'}` (tensorboard --logdir {out / 'runs'}).", "",
              "Going further:",
              f"- sound for your videos: `python scripts/generate.py --video <file or folder> --transformer {out / 'models/transformer.ckpt'} --out out/`",
              "- train on your own videos: `python scripts/demo.py --videos <folder> --out runs/mine` (docs/own_data.md)",
              "- the paper's models: `configs/vas_codebook.yaml`, `configs/vas_transformer.yaml`, `configs/melception.yaml`, "
              "`configs/melgan_vggsound.yaml` (VAS / VGGSound features via `python -m feature_extraction --feature "
              "bninception|resnet50 --weights ...`), or the released checkpoints: `python -m specvqgan.download`.",
              ""]
    return "\n".join(lines)


def metrics_lines(demo) -> list[str]:
    """The real-vs-random metrics table and its verdict (or why there is none)."""
    if demo.melception() is None:
        return ["", "No metrics: the videos have no class folders, so no Melception could be trained; pass "
                "--melception <checkpoint> (e.g. a Melception trained on labelled clips) to score the samples."]
    reports = {k: json.loads((demo.out / "eval" / f"{k}.json").read_text())["metrics"] for k in ("real", "random")}
    lines = ["", f"Validation split ({demo.n_valid()} videos x {demo.a.samples_per_video} samples, top-k "
             f"{demo.a.top_k}) scored by the Melception `{demo.melception()}` against the real validation mels:", "",
             "| visual features | FID ↓ | KID ↓ | IS ↑ | MKL ↓ |", "|---|---|---|---|---|"]
    for kind, label in (("real", "real (the video's)"), ("random", "random (noise)")):
        m = reports[kind]
        lines.append(f"| {label} | {m['fid']:.2f} | {m['kid_mean']:.3f} | {m['isc_mean']:.2f} | {m['mkl']:.2f} |")
    real, rand = reports["real"]["mkl"], reports["random"]["mkl"]
    verdict = ("the visual features help: MKL real {:.2f} < random {:.2f}" if real < rand else
               "WARNING: the visual features do not help here: MKL real {:.2f} >= random {:.2f}").format(real, rand)
    return lines + ["", verdict]
