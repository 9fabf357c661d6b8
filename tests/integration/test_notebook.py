"""notebooks/generation_demo.ipynb runs top to bottom with nbclient (the ``python3`` kernel that ipykernel
installs with itself) on an untrained tiny toy transformer and a toy clip, shows what it generated and
writes the files; it is stored without outputs."""
import json

import av
import nbformat
import numpy as np
import pytest
import soundfile as sf
from nbclient import NotebookClient

pytestmark = pytest.mark.slow      # ~15-25 s: kernel start, imports, 5 generations with Griffin-Lim


def _notebook(repo_root):
    return repo_root / "notebooks" / "generation_demo.ipynb"


def test_stored_without_outputs(repo_root):
    nb = nbformat.read(_notebook(repo_root), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1   # papermill-style parameters


def test_notebook_runs_top_to_bottom(repo_root, tiny_transformer_ckpt, toy_video, tmp_path, monkeypatch):
    out = tmp_path / "out"
    for name, value in {"SPECVQGAN_TRANSFORMER": tiny_transformer_ckpt, "SPECVQGAN_VIDEO": toy_video,
                        "SPECVQGAN_VOCODER": "none", "SPECVQGAN_OUT": out, "OMP_NUM_THREADS": 1}.items():
        monkeypatch.setenv(name, str(value))
    nb = nbformat.read(_notebook(repo_root), as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=180,
                            resources={"metadata": {"path": str(repo_root / "notebooks")}})
    client.execute()      # raises CellExecutionError with the cell's traceback on any error

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o.data for o in outputs if o.output_type == "display_data"]
    html = " ".join(d.get("text/html", "") for d in shown)
    assert sum("image/png" in d for d in shown) == 3 + 1 + 1          # 3 samples, long, random-feature control
    assert html.count("<audio") == 5 and html.count("<video") == 1 + 3 + 1  # input, 3 samples, long

    stem = toy_video.stem
    for k in range(3):
        for suffix in (".wav", ".png", ".mp4", ".npy"):
            assert (out / f"{stem}_sample_{k}{suffix}").is_file()
    wav, sr = sf.read(out / f"{stem}_sample_0.wav")
    assert sr == 22050 and len(wav) == np.load(out / f"{stem}_sample_0.npy").shape[1] * 256
    assert len(wav) / sr == pytest.approx(2.0, abs=0.05)
    long_wav, _ = sf.read(out / "long" / f"{stem}_sample_0.wav")
    assert len(long_wav) == pytest.approx(3 * len(wav), abs=256)      # LONG_FACTOR = 3
    with av.open(str(out / "long" / f"{stem}_sample_0.mp4")) as c:
        assert c.streams.video and c.streams.audio
        assert float(c.duration / 1e6) == pytest.approx(len(long_wav) / sr, abs=0.15)
    assert (out / "random_features" / f"{stem}_sample_0.wav").is_file()
    assert json.loads(nbformat.writes(nb))  # the executed notebook still serialises
