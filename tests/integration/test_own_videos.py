"""``scripts/demo.py --videos DIR``: training on your own videos in one command (fast mode). Eight videos made
with the bundled ffmpeg, of mixed durations (3-12 s), frame rates (15, 25, 30, 59.94), sizes / aspect ratios
and containers, in two class folders, plus a corrupt file, go through extraction at a 3 s clip length (every
size derived), the split, codebook, transformer, Melception, generation, sampling and the metrics table; the
corrupt file is reported, not fatal."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# (class, name, seconds, fps, width x height, container, tone Hz)
VIDEOS = [("beep", "a", 3.0, 15, "64x48", "mp4", 440), ("beep", "b", 12.0, 25, "48x64", "mkv", 470),
          ("beep", "c", 5.5, "60000/1001", "96x54", "mov", 500), ("beep", "d", 4.0, 30, "40x40", "mp4", 520),
          ("buzz", "e", 7.0, 30, "64x48", "mp4", 1500), ("buzz", "f", 3.5, 25, "96x54", "avi", 1600),
          ("buzz", "g", 9.0, 15, "48x64", "mkv", 1700), ("buzz", "h", 6.0, "60000/1001", "40x40", "mp4", 1800)]


def make_videos(root: Path) -> None:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    for cls, name, sec, fps, size, ext, hz in VIDEOS:
        colour = "red" if cls == "beep" else "blue"
        out = root / cls / f"{name}.{ext}"
        out.parent.mkdir(parents=True, exist_ok=True)
        vcodec = ["-c:v", "mpeg4"] if ext == "avi" else ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
        subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                        f"color=c={colour}:size={size}:rate={fps}:duration={sec},noise=alls=40:allf=t",
                        "-f", "lavfi", "-i", f"sine=frequency={hz}:duration={sec}:sample_rate=44100",
                        *vcodec, "-c:a", "aac" if ext != "avi" else "mp3", "-shortest", "-y", str(out)],
                       check=True, timeout=60)
    (root / "buzz" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)


@pytest.mark.slow
def test_own_videos_fast_run_ends_with_metrics_and_reports_the_corrupt_file(tmp_path):
    videos, out = tmp_path / "my_videos", tmp_path / "runs" / "mine"
    make_videos(videos)
    cmd = [sys.executable, "scripts/demo.py", "--videos", str(videos), "--out", str(out), "--duration", "3",
           "--fast", "--valid-fraction", "0.25"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "unusable: " in proc.stdout and "broken.mp4" in proc.stdout
    summary = (out / "summary.md").read_text()
    rows = re.findall(r"^\| (real|random) [^|]*\|([-\d.| ]+)\|$", summary, re.M)
    assert [r[0] for r in rows] == ["real", "random"] and all(len(r[1].split("|")) == 4 for r in rows)
    assert "broken.mp4" in summary and "1 video(s) could not be used" in summary
    data = out / "data"
    train, valid = ((data / f"toy_{s}.txt").read_text().split() for s in ("train", "valid"))
    assert len(train) == 6 and len(valid) == 2 and {v.split("/")[0] for v in valid} == {"beep", "buzz"}
    assert not set(train) & set(valid) and all("broken" not in c for c in train + valid)
    mel = next((data / "features" / "beep" / "melspec_3s_22050hz").glob("*_mel.npy"))
    import numpy as np
    assert np.load(mel).shape == (80, 257)  # 3 s -> round(3 * 22050) // 256 - 1 frames
    assert list((out / "generated").glob("*_sample_0.mp4"))
    # rerun: every stage is skipped
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("skipped (output exists)") == 8, again.stdout
