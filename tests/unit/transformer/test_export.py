"""Inference bundle (``python -m specvqgan.export``): samples the checkpoint's tokens at the same precision and
seed, holds only what inference uses, loads strictly (missing/extra keys, edited tensors, another version:
one-line errors naming the file), runs no pickled payload, and loads without importing Lightning."""
import os
import subprocess
import sys

import pytest
import torch

from specvqgan.checkpoint import CheckpointError
from specvqgan.export import FORMAT, export_bundle, main, read_bundle
from specvqgan.pipeline import GenerationError, VideoToSound

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bundles(tiny_transformer_ckpt, tmp_path_factory):
    d = tmp_path_factory.mktemp("bundles")
    return {p: export_bundle(tiny_transformer_ckpt, d / f"tiny-{p}.pt", precision=p) for p in ("fp32", "int8")}


def _tokens_and_mel(pipe, feats):
    cond = pipe.model.get_input(pipe.model.cond_stage_key, {"feature": feats})
    return pipe.model.generate(cond, num_samples=2, top_k=8, seed=5, gpt=pipe.gpt)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_bundle_samples_the_checkpoint_tokens(tiny_transformer_ckpt, bundles, precision):
    ckpt = VideoToSound.from_checkpoints(tiny_transformer_ckpt, precision=precision)
    bundle = VideoToSound.from_checkpoints(bundles[precision])
    assert bundle.precision == precision and bundle.spec == ckpt.spec
    feats = torch.rand(1, 40, 48, generator=torch.Generator().manual_seed(0))        # toy: 40 x 48-d colours
    want_tokens, want_mel = _tokens_and_mel(ckpt, feats)
    tokens, mel = _tokens_and_mel(bundle, feats)
    assert torch.equal(tokens, want_tokens) and torch.equal(mel, want_mel)
    # only what inference uses: no codebook encoder, quant_conv, loss or discriminator
    keys = bundle.model.state_dict().keys()
    assert not [k for k in keys if k.startswith(("first_stage_model.encoder", "first_stage_model.quant_conv",
                                                 "first_stage_model.loss"))]
    assert any(k.startswith("first_stage_model.decoder.") for k in keys)


def test_bundle_precision_is_its_own(bundles):
    with pytest.raises(GenerationError, match="int8.*--precision fp32"):
        VideoToSound.from_checkpoints(bundles["int8"], precision="fp32")


def _edited(path, tmp_path, edit):
    b = torch.load(path, weights_only=True)
    edit(b)
    out = tmp_path / "edited.pt"
    torch.save(b, out)
    return out


def _fp32_weight(b):
    return next(k for k, v in b["gpt"].items() if v.is_floating_point() and v.numel() > 1)


@pytest.mark.parametrize("edit, message", [
    (lambda b: b["weights"].pop(next(iter(b["weights"]))), "missing"),
    (lambda b: b["gpt"].update(extra=torch.zeros(1)), "unexpected"),
    (lambda b: b["gpt"][_fp32_weight(b)].mul_(1.01), "CRC-32"),
    (lambda b: b.update(version=99), "version 99"),
    (lambda b: b["model"].pop("codebook"), "missing keys \\['codebook'\\]"),
])
def test_bundle_loads_strictly(bundles, tmp_path, edit, message):
    path = _edited(bundles["fp32"], tmp_path, edit)
    with pytest.raises(CheckpointError, match=message) as err:
        read_bundle(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(GenerationError, match=message):   # the pipeline says the same
        VideoToSound.from_checkpoints(path)


def test_int8_state_must_match_the_gpt(bundles, tmp_path):
    def shrink(b):  # a qint8 weight of the wrong shape, its CRC updated: the shape check still refuses it
        from specvqgan.export import tensor_crc32
        key = next(k for k, v in b["gpt"].items() if v.is_quantized)
        b["gpt"][key] = b["gpt"][key][:-1]
        b["crc32"][f"gpt.{key}"] = tensor_crc32(b["gpt"][key])
    path = _edited(bundles["int8"], tmp_path, shrink)
    with pytest.raises(CheckpointError, match="do not match the GPT"):
        read_bundle(path)


def test_truncated_bundle(bundles, tmp_path):
    path = tmp_path / "cut.pt"
    path.write_bytes(bundles["int8"].read_bytes()[:-5000])
    with pytest.raises(GenerationError, match=str(path)):
        VideoToSound.from_checkpoints(path)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_bundle_payload_does_not_run(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "version": 1, "payload": _Payload(marker)}, path)
    for load in (read_bundle, VideoToSound.from_checkpoints):
        with pytest.raises(ValueError, match="refusing to load") as err:
            load(path)
        assert str(path) in str(err.value)
    assert not marker.exists()


def test_bundle_loads_without_lightning(bundles):
    """A fresh process: loading the bundle and sampling imports neither Lightning nor torch._dynamo / sympy
    (which torch's Python decompositions import when modules are built or initialised on the meta device)."""
    code = ("import sys, torch\nfrom specvqgan.pipeline import VideoToSound\n"
            f"p = VideoToSound.from_checkpoints({str(bundles['int8'])!r})\n"
            "c = p.model.get_input('feature', {'feature': torch.rand(1, 40, 48)})\n"
            "p.model.generate(c, seed=0, gpt=p.gpt)\n"
            "heavy = ('pytorch_lightning', 'lightning_fabric', 'torch._dynamo', 'sympy', 'matplotlib')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_export_cli(tiny_transformer_ckpt, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "--precision" in capsys.readouterr().out
    assert main([str(tiny_transformer_ckpt), str(tmp_path / "b.pt"), "--precision", "bf16"]) == 0
    assert read_bundle(tmp_path / "b.pt")[0].precision == "bf16"
    assert main([str(tmp_path / "missing.ckpt"), str(tmp_path / "c.pt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.ckpt" in err
    assert main([str(tiny_transformer_ckpt), str(tiny_transformer_ckpt)]) == 2       # never overwrites its input
    assert not (tmp_path / "c.pt").exists()
