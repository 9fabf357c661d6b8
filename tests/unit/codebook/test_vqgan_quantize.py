"""VectorQuantizer: nearest code, losses, straight-through gradient, lookups (paper Sec. 3.1)."""
import pytest
import torch

from specvqgan.modules.vqgan.quantize import VectorQuantizer, VectorQuantizer1d


def _quantizer(legacy=False):
    torch.manual_seed(0)
    q = VectorQuantizer(n_e=8, e_dim=4, beta=0.25, legacy=legacy)
    with torch.no_grad():
        q.embedding.weight.copy_(torch.randn(8, 4) * 3)
    return q


def test_picks_nearest_code_row_major():
    q = _quantizer()
    codes = torch.tensor([[3, 1, 7], [0, 0, 5]])  # (B=1, H=2, W=3)
    z = q.embedding.weight[codes].permute(2, 0, 1)[None] + 0.01 * torch.randn(1, 4, 2, 3)
    z_q, loss, (perplexity, one_hot, idx) = q(z)
    assert idx.shape == (6, 1) and idx.dtype == torch.int64
    assert idx.view(2, 3).tolist() == codes.tolist()
    assert torch.allclose(z_q, q.embedding.weight[codes].permute(2, 0, 1)[None], atol=1e-6)
    assert one_hot.shape == (6, 8) and one_hot.sum(1).eq(1).all()
    # 4 distinct codes used with frequencies (2, 1, 1, 1, 1)/6
    p = torch.tensor([2, 1, 1, 1, 1]) / 6.0
    assert perplexity.item() == pytest.approx(torch.exp(-(p * p.log()).sum()).item(), rel=1e-5)
    assert loss.item() == pytest.approx(1.25 * ((z_q - z) ** 2).mean().item(), rel=1e-4)


def test_straight_through_gradient_reaches_input_unchanged():
    q = _quantizer()
    z = torch.randn(2, 4, 3, 5, requires_grad=True)
    w = torch.randn(2, 4, 3, 5)
    z_q, _, _ = q(z)
    (z_q * w).sum().backward()
    assert torch.equal(z.grad, w)  # identity Jacobian through the argmin
    assert q.embedding.weight.grad is None or q.embedding.weight.grad.abs().sum() == 0


@pytest.mark.parametrize("legacy", [False, True])
def test_codebook_and_commitment_gradients(legacy):
    q = _quantizer(legacy)
    z = torch.randn(1, 4, 2, 2, requires_grad=True)
    z_q, loss, _ = q(z)
    loss.backward()
    zq = z_q.detach()
    n = z.numel()
    enc_w, code_w = (1.0, 0.25) if legacy else (0.25, 1.0)  # paper: beta on the commitment term
    assert torch.allclose(z.grad, enc_w * 2 * (z - zq).detach() / n, atol=1e-6)
    # codebook entries move towards the encoder outputs assigned to them
    idx = q(z.detach())[2][2].view(-1)
    zf = z.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    expected = torch.zeros_like(q.embedding.weight)
    expected.index_add_(0, idx, code_w * 2 * (q.embedding.weight[idx].detach() - zf) / n)
    assert torch.allclose(q.embedding.weight.grad, expected, atol=1e-6)


def test_get_codebook_entry_and_embed_code():
    q = _quantizer()
    idx = torch.tensor([[[1, 2, 3], [4, 5, 6]]])  # (1, 2, 3)
    out = q.get_codebook_entry(idx.reshape(-1), (1, 2, 3, 4))
    assert out.shape == (1, 4, 2, 3)
    assert torch.equal(out[0, :, 1, 2], q.embedding.weight[6].detach())
    assert torch.equal(q.embed_code(idx), out)
    assert q.get_codebook_entry(idx.reshape(-1)).shape == (6, 4)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        q.get_codebook_entry(torch.tensor([8]))


def test_wrong_channel_count_is_reported():
    with pytest.raises(ValueError, match="expects 4 channels"):
        _quantizer()(torch.randn(1, 3, 2, 2))


def test_1d_quantizer_sequences():
    q = VectorQuantizer1d(8, 4)
    z_q, _, info = q(torch.randn(2, 4, 7))
    assert z_q.shape == (2, 4, 7) and info[2].shape == (14, 1)
    assert torch.allclose(q.embed_code(info[2].view(2, 7)), z_q, atol=1e-6)


def test_1d_model_shapes_and_gradients():
    """VQModel1d (reference 1D variant): mel bins as channels, time down-sampled 2**(levels-1)."""
    from specvqgan.models.vqgan import VQModel1d

    dd = dict(double_z=False, z_channels=32, resolution=32, in_channels=80, out_ch=80, ch=32, ch_mult=[1, 2],
              num_res_blocks=1, attn_resolutions=[16], dropout=0.0)
    model = VQModel1d(dd, None, n_embed=16, embed_dim=32, image_key="image")
    x = model.get_input({"image": torch.rand(2, 80, 32) * 2 - 1}, "image")
    assert x.shape == (2, 1, 80, 32)
    rec, diff = model(x)
    assert rec.shape == (2, 1, 80, 32)
    (rec.abs().mean() + diff).backward()
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0  # gradient reached the encoder (straight-through)
    assert model.encode_to_indices(x).shape == (2, 16)
    assert len(model.encoder.down[1].attn) == 1 and "encoder.down.1.attn.0.q.weight" in model.state_dict()
