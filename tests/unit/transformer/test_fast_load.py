"""Fast start: a transformer checkpoint is built on the meta device and takes the (memory-mapped) checkpoint
tensors themselves; the result equals the plain instantiate + load_state_dict (weights, dtypes, frozen
codebook, sampled tokens), fp16 checkpoints included."""
import torch
from omegaconf import OmegaConf

from specvqgan.checkpoint import export, instantiate_loaded
from specvqgan.config import instantiate_from_config
from specvqgan.models.cond_transformer import Net2NetTransformer
from specvqgan.sampling import sample_tokens


def test_from_checkpoint_equals_the_plain_load(tmp_path, tiny_transformer_config):
    cfg = OmegaConf.to_container(tiny_transformer_config(tmp_path / "toy"), resolve=True)["model"]
    torch.manual_seed(0)
    model = instantiate_from_config(OmegaConf.create(cfg)).eval()
    path = export(model, cfg, tmp_path / "t.pt")
    loaded = Net2NetTransformer.from_checkpoint(str(path))
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    assert not any(t.is_meta for t in loaded.parameters()) and not any(t.is_meta for t in loaded.buffers())
    assert [p.requires_grad for p in loaded.parameters()] == [p.requires_grad for p in model.parameters()]
    cond = model.get_input(model.cond_stage_key, {"feature": torch.rand(1, 40, 48)})     # toy: 40 x 48-d
    a = sample_tokens(model.transformer, cond, 20, top_k=5, seed=3)
    b = sample_tokens(loaded.transformer, cond, 20, top_k=5, seed=3)
    assert torch.equal(a, b)


def test_fp16_weights_are_cast_to_the_model_dtype(tmp_path, tiny_transformer_config):
    cfg = OmegaConf.to_container(tiny_transformer_config(tmp_path / "toy"), resolve=True)["model"]
    cfg["params"]["first_stage_config"]["params"]["ckpt_path"] = None
    model = instantiate_from_config(OmegaConf.create(cfg)).eval()
    sd = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    fast = instantiate_loaded(cfg, sd, "x.pt")
    plain = instantiate_from_config(OmegaConf.create(cfg))
    plain.load_state_dict(sd)
    for (k, a), b in zip(fast.state_dict().items(), plain.state_dict().values()):
        assert a.dtype == b.dtype and torch.equal(a, b), k


def test_int8_linear_equals_quantize_dynamic():
    """The one-pass per-channel quantization gives the same GEMM as torch's quantize_dynamic round trip."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from specvqgan.modules.transformer.int8_linear import linear_from_module
    torch.manual_seed(0)
    for bias in (True, False):
        lin = torch.nn.Linear(64, 96, bias=bias)
        with torch.no_grad():
            lin.weight[3] = 0                    # an all-zero channel (eps scale)
            lin.weight[5].clamp_(min=0)          # a channel without negative weights
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear: per_channel_dynamic_qconfig},
                                   dtype=torch.qint8)[0]
        x = torch.randn(7, 64) * 3
        for native in (True, False):              # the C++ kernel where it builds, and fbgemm
            assert torch.equal(linear_from_module(lin, native)(x), ref(x))
