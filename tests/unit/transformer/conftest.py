"""Tiny GPTs with random weights for the transformer tests (scaled up so greedy choices are robust)."""
import pytest
import torch

from specvqgan.modules.transformer.mingpt import GPT, GPTClass, GPTFeats, GPTFeatsClass

H, W, N_FEATS, D_FEAT, VOCAB = 2, 6, 4, 12, 16


def _gpt_cfg(block_size, **kw):
    return dict(vocab_size=VOCAB, block_size=block_size, n_layer=2, n_head=2, n_embd=16, **kw)


def _scaled(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


def make_gpt(kind: str = 'feats', block_size: int | None = None, n_feats: int = N_FEATS, p_uncond: float = 0.):
    """(gpt, condition) for one of: feats, class, feats_class, plain; condition batch 2. ``p_uncond > 0``:
    with a (random) null condition for guidance."""
    torch.manual_seed(0)
    conv = {'target': 'torch.nn.Conv1d', 'params': {'in_channels': D_FEAT, 'out_channels': 16, 'kernel_size': 1}}
    emb = {'target': 'torch.nn.Embedding', 'params': {'num_embeddings': 3, 'embedding_dim': 16}}
    feats = torch.randn(2, D_FEAT, n_feats)
    cls = torch.tensor([[1], [2]])
    if kind == 'feats':
        gpt, c = GPTFeats(conv, _gpt_cfg(block_size or n_feats + H * W, p_uncond=p_uncond)), feats
    elif kind == 'class':
        gpt, c = GPTClass(emb, _gpt_cfg(block_size or 1 + H * W, p_uncond=p_uncond)), cls
    elif kind == 'feats_class':
        gpt, c = GPTFeatsClass(conv, emb, _gpt_cfg(block_size or n_feats + 1 + H * W, p_uncond=p_uncond)), \
            {'feature': feats, 'target': cls}
    elif kind == 'plain':
        gpt, c = GPT(**_gpt_cfg(block_size or 3 + H * W, p_uncond=p_uncond)), torch.randint(0, VOCAB, (2, 3))
    else:
        raise ValueError(kind)
    return _scaled(gpt), c


@pytest.fixture(params=['feats', 'class', 'feats_class', 'plain'])
def any_gpt(request):
    return make_gpt(request.param)


@pytest.fixture
def gpt_factory():
    return make_gpt
