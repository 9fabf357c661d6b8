"""Classifier-free guidance on the toy data: FID / KID / IS / MKL per guidance scale (docs/guidance.md).

    python scripts/demo.py --out demo --toy data/toy --set transformer:model.params.p_uncond=0.15
    python scripts/guidance_study.py --demo demo --scales 1 1.5 2 3 5 --json docs/guidance.json \\
        --plot docs/guidance.png

For every scale the validation split is sampled (``specvqgan.dataset_sampling``, the demo's settings:
top-k 64, seed 0) with the real visual features and with uniform noise features (the control), and scored
by the demo's toy Melception against the real validation mels (``evaluation.evaluate``). Samples go to
``<demo>/guidance/<real|random>_s<scale>/`` and each setting's metrics to ``<demo>/guidance/*.json``;
existing ones are reused, so an interrupted run continues. Prints a Markdown table; ``--json`` / ``--plot``
also write the numbers and a PNG (metric against scale, one line per feature kind).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

RANDOM_FEATS = "data.params.validation.params.condition_dataset_cfg.replace_feats_with_random=true"
KINDS = ("real", "random")
METRICS = (("fid", "FID ↓"), ("kid_mean", "KID ↓"), ("isc_mean", "IS ↑"), ("mkl", "MKL ↓"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", required=True, help="a finished demo folder (models/, toy data) with a p_uncond model")
    p.add_argument("--toy", default=None, help="its toy data folder (default: <demo>/toy)")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0, 5.0])
    p.add_argument("--samples-per-video", type=int, default=5)
    p.add_argument("--top-k", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--json", default=None, help="write all numbers here")
    p.add_argument("--plot", default=None, help="write a PNG plot here")
    p.add_argument("--phase", choices=("all", "sample"), default="all",
                   help="sample: only write the samples (e.g. while the Melception still trains)")
    return p.parse_args(argv)


def sample_setting(demo: Path, kind: str, scale: float, a: argparse.Namespace) -> dict:
    """Write the samples of one (features, scale) setting once; returns its sampling seconds and count."""
    from specvqgan.dataset_sampling import SamplerOptions, sample_dataset
    name = f"{kind}_s{scale:g}"
    folder, done = demo / "guidance" / name, demo / "guidance" / f"{name}.sampling.json"
    if done.is_file():
        return json.loads(done.read_text())
    opts = SamplerOptions(ckpt=str(demo / "models" / "transformer.ckpt"), out=str(folder),
                          overrides=(RANDOM_FEATS,) if kind == "random" else (), samples_per_video=a.samples_per_video,
                          batch_size=64, top_k=a.top_k, seed=a.seed, guidance_scale=scale, device="cpu",
                          progress=False)
    t0 = time.perf_counter()
    info = sample_dataset(opts)
    out = dict(sampling_seconds=round(time.perf_counter() - t0, 1), written=info["written"])
    done.write_text(json.dumps(out))
    return out


def run_setting(demo: Path, toy: Path, kind: str, scale: float, a: argparse.Namespace) -> dict:
    """Sample + score one (features, scale) setting; returns the metrics, sampling seconds, counts."""
    from evaluation.evaluate import evaluate
    name = f"{kind}_s{scale:g}"
    folder, result = demo / "guidance" / name, demo / "guidance" / f"{name}.json"
    if result.is_file():
        return json.loads(result.read_text())
    info = sample_setting(demo, kind, scale, a)
    n_valid = len([r for r in (toy / "toy_valid.txt").read_text().split() if r])
    report = evaluate(folder, toy / "toy_valid.txt", demo / "models" / "melception.ckpt", device="cpu",
                      cache_dir=demo / "guidance" / ".melception_cache", kid_subset_size=min(50, n_valid),
                      isc_splits=10)
    out = dict(kind=kind, scale=scale, metrics=report["metrics"], **info)
    tmp = result.with_name(f".{result.name}.tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, result)
    return out


def table(rows: list[dict]) -> str:
    lines = ["| features | guidance scale | " + " | ".join(label for _, label in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for r in rows:
        m = r["metrics"]
        lines.append(f"| {r['kind']} | {r['scale']:g} | {m['fid']:.1f} | {m['kid_mean']:.3f} | "
                     f"{m['isc_mean']:.2f} | {m['mkl']:.2f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Four panels (FID, KID, IS, MKL against the scale), real features blue, noise features red (PIL)."""
    from PIL import Image, ImageDraw
    pw, ph, m = 320, 220, 40
    img = Image.new("RGB", (2 * pw, 2 * ph), "white")
    d = ImageDraw.Draw(img)
    scales = sorted({r["scale"] for r in rows})
    colors = {"real": (31, 119, 180), "random": (214, 39, 40)}
    for i, (key, label) in enumerate(METRICS):
        ox, oy = (i % 2) * pw, (i // 2) * ph
        vals = [r["metrics"][key] for r in rows]
        lo, hi = min(vals), max(vals)
        hi = hi if hi > lo else lo + 1
        x = lambda s: ox + m + (s - scales[0]) / max(scales[-1] - scales[0], 1e-9) * (pw - 2 * m)  # noqa: E731
        y = lambda v: oy + ph - m + (v - lo) / (hi - lo) * -(ph - 2 * m)  # noqa: E731
        d.rectangle([ox + m, oy + m, ox + pw - m, oy + ph - m], outline="black")
        name = label.replace(" ↓", " (lower is better)").replace(" ↑", " (higher is better)")  # PIL's font: ASCII
        d.text((ox + m, oy + 12), f"{name} vs guidance scale", fill="black")
        d.text((ox + 2, oy + m - 6), f"{hi:.3g}", fill="black")
        d.text((ox + 2, oy + ph - m - 6), f"{lo:.3g}", fill="black")
        for s in scales:
            d.text((x(s) - 6, oy + ph - m + 4), f"{s:g}", fill="black")
        for kind, col in colors.items():
            pts = [(x(r["scale"]), y(r["metrics"][key])) for r in rows if r["kind"] == kind]
            if len(pts) > 1:
                d.line(pts, fill=col, width=2)
            for px, py in pts:
                d.ellipse([px - 3, py - 3, px + 3, py + 3], fill=col)
    d.text((pw - 150, 2 * ph - 16), "blue: real features   red: noise features", fill="black")
    img.save(path)


def main(argv=None) -> int:
    a = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    demo = Path(a.demo)
    toy = Path(a.toy) if a.toy else demo / "toy"
    needs = (demo / "models" / "transformer.ckpt", toy / "toy_valid.txt")
    for need in needs + ((demo / "models" / "melception.ckpt",) if a.phase == "all" else ()):
        if not need.is_file():
            print(f"error: {need} is missing (run scripts/demo.py first)", file=sys.stderr)
            return 2
    if a.phase == "sample":
        for kind in a.kinds:
            for scale in a.scales:
                print(f"# {kind} features, scale {scale:g}: {sample_setting(demo, kind, scale, a)}", flush=True)
        return 0
    rows = []
    for kind in a.kinds:
        for scale in a.scales:
            rows.append(run_setting(demo, toy, kind, scale, a))
            print(f"# {kind} features, scale {scale:g}: MKL {rows[-1]['metrics']['mkl']:.3f} "
                  f"({rows[-1]['sampling_seconds']} s sampling)", flush=True)
    print(table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    if a.plot:
        plot(rows, Path(a.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
