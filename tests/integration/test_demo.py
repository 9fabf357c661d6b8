"""The quickstart (``scripts/demo.py``, run by ``make demo``) end to end with tiny settings (``--fast``):
the stages chain, a rerun skips finished stages and resumes an interrupted training, the summary has
the real- and random-feature rows, and a failing stage names itself and its log."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["--fast", "--classes", "2", "--clips-per-class", "4", "--valid-per-class", "2"]
N_STAGES = 8


def run_demo(out: Path, toy: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(out), "--toy", str(toy),
                           *TINY, *extra], cwd=REPO, capture_output=True, text=True, timeout=900)


def stage_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(rf"\[\d/{N_STAGES}\] ", line)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    out, toy = root / "demo", root / "toy"
    first = run_demo(out, toy)
    return out, toy, first


@pytest.mark.slow
def test_demo_runs_every_stage_and_writes_the_summary(demo):
    out, toy, first = demo
    assert first.returncode == 0, first.stdout + first.stderr
    lines = stage_lines(first.stdout)
    assert len(lines) == N_STAGES and all(re.search(r"\d+\.\d s   log: logs/0\d_\w+\.log$", ln) for ln in lines)
    for name in ("codebook", "transformer", "melception"):
        assert (out / "models" / f"{name}.ckpt").stat().st_size > 0
    mp4s = sorted((out / "generated").glob("*_sample_0.mp4"))
    assert len(mp4s) == 1 and mp4s[0].stat().st_size > 0 and mp4s[0].with_suffix(".wav").is_file()
    n_valid = len((toy / "toy_valid.txt").read_text().split())
    for kind in ("real", "random"):
        assert len(list((out / "samples" / kind).rglob("*_sample_0.npy"))) == n_valid
    summary = (out / "summary.md").read_text()
    assert summary.strip() in first.stdout
    rows = {m.group(1): [float(v) for v in m.group(2).split("|")]
            for m in re.finditer(r"^\| (real|random) [^|]*\|([-\d.| ]+)\|$", summary, re.M)}
    assert set(rows) == {"real", "random"} and all(len(v) == 4 for v in rows.values())
    assert str(mp4s[0]) in summary and "| **total** |" in summary


@pytest.mark.slow
def test_demo_rerun_skips_done_stages_and_resumes_training(demo):
    out, toy, first = demo
    assert first.returncode == 0, first.stdout + first.stderr
    # as after Ctrl-C during the transformer: its run has a last.ckpt but the stage never finished
    (out / "models" / "transformer.ckpt").unlink()
    (out / "eval" / "random.json").unlink()
    again = run_demo(out, toy)
    assert again.returncode == 0, again.stdout + again.stderr
    lines = stage_lines(again.stdout)
    ran = [i for i, ln in enumerate(lines) if "skipped" not in ln]
    assert len(lines) == N_STAGES and ran == [2, 7], lines  # only the transformer and the evaluation
    assert "transformer" in lines[2] and "FID" in lines[7]
    log = (out / "logs" / "03_transformer.log").read_text()
    assert " -r " in log  # continued the existing run, not a new one
    assert len(list((out / "runs").glob("*_transformer"))) == 1
    assert (out / "models" / "transformer.ckpt").is_file() and (out / "eval" / "random.json").is_file()
    assert "| random" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_a_failing_stage_names_itself_and_its_log(demo, tmp_path):
    _, toy, first = demo
    assert first.returncode == 0, first.stdout + first.stderr
    bad = run_demo(tmp_path / "demo2", toy, "--set", "codebook:model.params.embed_dimm=8")
    assert bad.returncode == 1
    log = tmp_path / "demo2" / "logs" / "02_codebook.log"
    assert "stage 'codebook' failed" in bad.stderr and str(log) in bad.stderr
    assert "embed_dimm" in log.read_text()
    assert "skipped" in stage_lines(bad.stdout)[0]  # the toy data was already there
    assert not (tmp_path / "demo2" / "summary.md").exists()


def test_bad_set_option_is_refused(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(tmp_path),
                        "--set", "vocoder:x=1"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--set" in r.stderr and not any(tmp_path.iterdir())
