"""scripts/guidance_study.py: the table and the PNG plot from per-setting metrics (no training here; the
sampling and scoring it calls are tested with sample_dataset / evaluate)."""
import importlib.util
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[3]


def _study():
    spec = importlib.util.spec_from_file_location("guidance_study", REPO / "scripts" / "guidance_study.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_table_and_plot(tmp_path):
    study = _study()
    rows = [dict(kind=k, scale=s, metrics=dict(fid=10 * s + (k == "random"), kid_mean=0.1 * s, isc_mean=2.0,
                                                mkl=3 - 0.2 * s + (k == "random")))
            for k in ("real", "random") for s in (1.0, 1.5, 3.0)]
    lines = study.table(rows).splitlines()
    assert len(lines) == 2 + 6 and lines[2] == "| real | 1 | 10.0 | 0.100 | 2.00 | 2.80 |"
    study.plot(rows, tmp_path / "g.png")
    img = cv2.imread(str(tmp_path / "g.png"))
    assert img.shape == (440, 640, 3)
    assert ((img[..., 0] < 100) & (img[..., 2] > 150)).sum() > 50   # red (BGR) line: noise features
    assert ((img[..., 0] > 150) & (img[..., 2] < 100)).sum() > 50   # blue line: real features
    assert study.main(["--demo", str(tmp_path / "none")]) == 2        # missing models: one line, exit 2
