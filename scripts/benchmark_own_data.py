"""Benchmark: the own-video training command's default run on the toy videos (target: under 15 minutes on
2 CPU cores). Makes the toy videos (``scripts/make_toy_dataset.py``, defaults), then times

    python scripts/demo.py --videos <out>/toy/videos --out <out>/run

(stage times from its ``timings.json``). A rerun of the benchmark starts the demo afresh (``<out>/run`` is
removed) and keeps the toy videos. The last line is JSON: ``{"own_data_seconds": ..., "target_s": 900, ...}``.

    python scripts/benchmark_own_data.py --out /tmp/own_bench [-- extra demo.py options, e.g. --fast]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 900


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/specvqgan_own_bench", help="work folder (toy videos + the run)")
    p.add_argument("demo_args", nargs="*", help="extra scripts/demo.py options (after --)")
    a = p.parse_args(argv)
    out = Path(a.out).resolve()
    toy, run = out / "toy", out / "run"
    if not (toy / "meta.json").is_file():
        subprocess.run([sys.executable, "scripts/make_toy_dataset.py", "--out", str(toy)], cwd=REPO, check=True)
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "scripts/demo.py", "--videos", str(toy / "videos"), "--out", str(run),
                           *a.demo_args], cwd=REPO)
    seconds = time.perf_counter() - t0
    stages = json.loads((run / "timings.json").read_text()) if (run / "timings.json").is_file() else {}
    for name, t in stages.items():
        print(f"{name:14s} {t:8.1f} s")
    print(f"{'total':14s} {seconds:8.1f} s (target {TARGET_S} s)")
    print(json.dumps({"own_data_seconds": round(seconds, 1), "target_s": TARGET_S, "ok": proc.returncode == 0
                      and seconds < TARGET_S, "returncode": proc.returncode, "stages": stages}))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
