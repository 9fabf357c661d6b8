"""VQModel against the reference outputs in golden/codebook_tiny.pt (tolerances: golden README)."""
import pytest
import torch
import yaml

from specvqgan.models.vqgan import VQModel


@pytest.fixture(scope="module")
def golden(reference_dir):
    return torch.load(reference_dir / "golden" / "codebook_tiny.pt")


@pytest.fixture(scope="module")
def tiny(reference_dir, golden):
    params = yaml.safe_load((reference_dir / "golden" / "codebook_tiny.yaml").read_text())["constructor_params"]
    params["lossconfig"] = None  # the golden weights carry no loss.* keys (DummyLoss)
    model = VQModel(**params).eval()
    model.load_state_dict(golden["state_dict"], strict=True)
    return model


@pytest.fixture(scope="module")
def outputs(tiny, golden):
    with torch.no_grad():
        enc = tiny.encoder(golden["input"])
        h = tiny.quant_conv(enc)
        quant, emb_loss, info = tiny.quantize(h)
        recon = tiny.decode(quant)
    return dict(enc=enc, h=h, quant=quant, emb_loss=emb_loss, info=info, recon=recon)


def test_encoder_and_quantizer_match_reference(outputs, golden):
    assert torch.allclose(outputs["enc"], golden["enc"], atol=1e-5, rtol=0)
    assert torch.allclose(outputs["h"], golden["h"], atol=1e-5, rtol=0)
    assert torch.allclose(outputs["quant"], golden["quant"], atol=1e-5, rtol=0)
    assert torch.equal(outputs["info"][2].view(2, 5, 53), golden["indices"])
    assert outputs["emb_loss"].item() == pytest.approx(golden["emb_loss"].item(), rel=1e-5)
    assert outputs["info"][0].item() == pytest.approx(golden["perplexity"].item(), rel=1e-5)


def test_reconstruction_matches_reference(outputs, golden):
    assert outputs["recon"].shape == (2, 1, 80, 848)
    assert torch.allclose(outputs["recon"], golden["recon"], atol=1e-4, rtol=0)


def test_indices_round_trip(tiny, golden):
    x = golden["input"]
    with torch.no_grad():
        indices = tiny.encode_to_indices(x)
        assert indices.shape == (2, 5, 53) and indices.dtype == torch.int64
        assert torch.equal(indices, golden["indices"])
        via_quant = tiny.decode(tiny.encode(x)[0])
        via_indices = tiny.decode_from_indices(indices)
    assert torch.allclose(via_quant, via_indices, atol=1e-4, rtol=0)
    assert torch.allclose(via_indices, golden["recon"], atol=1e-4, rtol=0)


def test_forward_and_get_input(tiny, golden):
    batch = {"image": golden["input"][:, 0]}  # datasets give (B, 80, T)
    x = tiny.get_input(batch, "image")
    assert x.shape == (2, 1, 80, 848) and x.is_contiguous()
    with torch.no_grad():
        rec, diff = tiny(x)
    assert torch.allclose(rec, golden["recon"], atol=1e-4, rtol=0)
    assert diff.item() == pytest.approx(golden["emb_loss"].item(), rel=1e-5)


def test_reference_yaml_instantiates_unchanged(reference_dir, golden):
    """The reference class path and constructor params (DummyLoss) build our model; weights load strictly."""
    from omegaconf import OmegaConf

    from specvqgan.config import instantiate_from_config

    ref = yaml.safe_load((reference_dir / "golden" / "codebook_tiny.yaml").read_text())
    model = instantiate_from_config(OmegaConf.create({"target": ref["reference_class"],
                                                      "params": ref["constructor_params"]}))
    assert type(model) is VQModel
    model.load_state_dict(golden["state_dict"], strict=True)
    with pytest.raises(RuntimeError, match="DummyLoss"):  # a frozen first stage cannot be trained
        model.loss(golden["emb_loss"], golden["input"], golden["input"], 0, 0)


def test_bad_ddconfig_names_the_key():
    dd = dict(double_z=False, z_channels=8, resolution=32, in_channels=1, out_ch=1, ch=32, ch_mult=[1, 2],
              num_res_blocks=1, attn_resolutions=[], dropout=0.0, num_res_block=2)
    with pytest.raises(ValueError, match="num_res_block"):
        VQModel(dd, None, n_embed=4, embed_dim=8)


def test_init_from_ckpt_drops_loss_keys_and_is_strict(reference_dir, golden, tmp_path):
    """A training checkpoint (with loss.* weights) initialises a loss-free first stage; a wrong key fails."""
    params = yaml.safe_load((reference_dir / "golden" / "codebook_tiny.yaml").read_text())["constructor_params"]
    params["lossconfig"] = None
    sd = dict(golden["state_dict"], **{"loss.discriminator.main.0.weight": torch.zeros(2)})
    torch.save({"state_dict": sd, "global_step": 3}, tmp_path / "train.ckpt")
    model = VQModel(**params, ckpt_path=str(tmp_path / "train.ckpt"))
    assert torch.equal(model.quantize.embedding.weight, golden["state_dict"]["quantize.embedding.weight"].float())
    del sd["quant_conv.bias"]
    torch.save({"state_dict": sd}, tmp_path / "broken.ckpt")
    with pytest.raises(RuntimeError, match="quant_conv.bias"):
        VQModel(**params, ckpt_path=str(tmp_path / "broken.ckpt"))
    model = VQModel(**params, ckpt_path=str(tmp_path / "broken.ckpt"), ignore_keys=["quant_conv"])  # keeps init
    assert torch.equal(model.decoder.conv_out.weight, golden["state_dict"]["decoder.conv_out.weight"].float())
