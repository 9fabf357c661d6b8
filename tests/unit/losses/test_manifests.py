"""State-dict keys, shapes, kinds and parameter counts equal the reference manifests (built on 'meta')."""
import json

import pytest
import torch
from omegaconf import OmegaConf

from specvqgan.config import instantiate_from_config
from specvqgan.losses.lpaps import LPAPS
from specvqgan.modules.classifiers.vggishish import VGG16_CONV_LAYERS, VGGishish, infer_conv_layers
from specvqgan.modules.discriminator import NLayerDiscriminator

# configs/{vas,vggsound}_codebook.yaml lossconfig of the reference, with perceptual_weight 0 because no
# VGGish-ish checkpoint is at hand (the keys do not depend on it).
PAPER_LOSS = {'target': 'specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator',
              'params': {'disc_conditional': False, 'disc_in_channels': 1, 'disc_start': 2001, 'disc_weight': 0.8,
                         'codebook_weight': 1.0, 'min_adapt_weight': 1.0, 'max_adapt_weight': 1.0,
                         'perceptual_weight': 0.0}}


def _manifest(reference_dir, name):
    return json.loads((reference_dir / 'manifests' / f'{name}.json').read_text())


def _assert_matches(module, entries, prefix=''):
    sd = module.state_dict()
    params = {n for n, _ in module.named_parameters()}
    ours = [prefix + k for k in sd]
    assert ours == list(entries), set(ours) ^ set(entries)
    for k, v in sd.items():
        ref = entries[prefix + k]
        assert list(v.shape) == ref['shape'], k
        assert str(v.dtype).replace('torch.', '') == ref['dtype'], k
        assert ('parameter' if k in params else 'buffer') == ref['kind'], k


@pytest.mark.parametrize('name', ['vas_codebook', 'vggsound_codebook'])
def test_vq_loss_keys_equal_codebook_manifest(reference_dir, name):
    man = _manifest(reference_dir, name)
    assert man['model_params']['lossconfig']['target'] == PAPER_LOSS['target']
    with torch.device('meta'):
        loss = instantiate_from_config(OmegaConf.create(PAPER_LOSS))
    entries = {k: v for k, v in man['state_dict'].items() if k.startswith('loss.')}
    _assert_matches(loss, entries, prefix='loss.')


def test_lpaps_matches_manifest(reference_dir):
    man = _manifest(reference_dir, 'lpaps')
    with torch.device('meta'):
        lpaps = LPAPS(**man['constructor_args'])
    _assert_matches(lpaps, man['state_dict'])
    assert sum(p.numel() for p in lpaps.parameters()) == man['num_parameters']
    assert sum(t.numel() for t in lpaps.state_dict().values()) == man['num_state_dict_elements']
    assert lpaps.chns == [64, 128, 256, 512, 512]


def test_vggishish_matches_manifest(reference_dir):
    man = _manifest(reference_dir, 'vggishish')
    with torch.device('meta'):
        model = VGGishish(**man['constructor_args'])
    _assert_matches(model, man['state_dict'])
    assert sum(p.numel() for p in model.parameters()) == man['num_parameters']
    shapes = {k: torch.empty(v['shape'], device='meta') for k, v in man['state_dict'].items()}
    assert infer_conv_layers(shapes) == (list(VGG16_CONV_LAYERS), False)


def test_discriminator_patch_logits_shape():
    disc = NLayerDiscriminator(input_nc=1, ndf=8, n_layers=3)
    assert disc(torch.zeros(2, 1, 80, 848)).shape == (2, 1, 8, 104)
    assert [k for k in disc.state_dict() if k.endswith('running_mean')] == [f'main.{i}.running_mean' for i in (3, 6, 9)]


def test_actnorm_variant_initialises_from_first_batch():
    torch.manual_seed(0)
    disc = NLayerDiscriminator(input_nc=1, ndf=4, n_layers=2, use_actnorm=True).train()
    norm = disc.main[3]
    assert set(norm.state_dict()) == {'loc', 'scale', 'initialized'} and disc.main[2].bias is not None
    x = torch.randn(3, 1, 32, 32) * 5 + 2
    h = disc.main[:3](x)
    out = norm(h)
    assert norm.initialized.item() == 1
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(8), atol=1e-5)
    assert torch.allclose(out.std((0, 2, 3)), torch.ones(8), atol=1e-3)
