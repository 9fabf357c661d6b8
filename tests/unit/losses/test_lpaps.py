"""LPAPS: a distance, strict local loading in every accepted layout, frozen unless asked otherwise."""
import numpy as np
import pytest
import torch

from specvqgan.losses.lpaps import LPAPS, read_lpaps_weights


def test_distance_zero_on_equal_positive_otherwise(classifier_ckpt, make_mels):
    path, _ = classifier_ckpt
    lpaps = LPAPS(ckpt_path=str(path))
    x, y = make_mels(seed=0), make_mels(seed=1)
    d_xx, d_xy, d_yx = lpaps(x, x), lpaps(x, y), lpaps(y, x)
    assert d_xx.shape == (2, 1, 1, 1)
    assert torch.equal(d_xx, torch.zeros_like(d_xx))
    assert (d_xy > 1e-3).all()
    torch.testing.assert_close(d_xy, d_yx)
    # a small perturbation is closer than an unrelated mel
    assert (lpaps(x, x + 0.01 * (y - x)) < d_xy).all()


def test_known_value_with_unit_heads(classifier_ckpt, make_mels):
    """With heads of ones LPAPS = sum over blocks of the mean squared distance of unit feature vectors."""
    path, clf = classifier_ckpt
    lpaps = LPAPS(ckpt_path=str(path))
    x, y = make_mels(seed=2), make_mels(seed=3)
    feats = clf.model.features
    ends = [i for i, m in enumerate(feats) if isinstance(m, torch.nn.ReLU)]
    ends = [i for j, i in enumerate(ends) if j + 1 == len(ends) or isinstance(feats[i + 1], torch.nn.MaxPool2d)]
    expected = 0
    hx = clf.standardize(x[:, 0]).unsqueeze(1)
    hy = clf.standardize(y[:, 0]).unsqueeze(1)
    start = 0
    for end in ends:
        hx, hy = feats[start:end + 1](hx), feats[start:end + 1](hy)
        nx = hx / (hx.norm(dim=1, keepdim=True) + 1e-10)
        ny = hy / (hy.norm(dim=1, keepdim=True) + 1e-10)
        expected = expected + ((nx - ny) ** 2).sum(1).mean((1, 2))
        start = end + 1
    torch.testing.assert_close(lpaps(x, y).flatten(), expected, rtol=1e-5, atol=1e-6)


def test_scaling_layer_uses_checkpoint_stats(classifier_ckpt):
    path, clf = classifier_ckpt
    lpaps = LPAPS(ckpt_path=str(path))
    x = torch.rand(1, 1, 80, 8) * 2 - 1
    torch.testing.assert_close(lpaps.scaling_layer(x)[:, 0], clf.standardize(x[:, 0]))


def test_frozen_gradient_reaches_input_only(classifier_ckpt, make_mels):
    path, _ = classifier_ckpt
    lpaps = LPAPS(ckpt_path=str(path))
    x = make_mels(seed=0).requires_grad_(True)
    lpaps(x, make_mels(seed=1)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in lpaps.parameters())
    assert all(p.grad is None for p in lpaps.parameters())


def test_train_lin_gives_gradients_to_heads_only(classifier_ckpt, make_mels):
    path, _ = classifier_ckpt
    lpaps = LPAPS(ckpt_path=str(path), train_lin=True)
    lpaps(make_mels(seed=0), make_mels(seed=1)).sum().backward()
    for name, p in lpaps.named_parameters():
        if name.startswith('lin'):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None and not p.requires_grad, name


def test_stays_in_eval_mode_when_frozen(classifier_ckpt, make_mels):
    path, _ = classifier_ckpt
    lpaps = LPAPS(ckpt_path=str(path)).train()
    assert not lpaps.training and not lpaps.lin0.model[0].training
    x, y = make_mels(seed=0), make_mels(seed=1)
    assert torch.equal(lpaps(x, y), lpaps(x, y))  # no dropout
    ref = LPAPS(ckpt_path=str(path), dropout_in_train=True).train()
    assert ref.lin0.model[0].training


def test_reference_vggishish_layout_needs_stats_file(classifier_ckpt, tmp_path, reference_dir, make_mels):
    """`{'model': VGGishish state dict}` (the reference vggishish16.pt) + the 80x2 stats text file."""
    _, clf = classifier_ckpt
    ref_file = tmp_path / 'vggishish16.pt'
    torch.save({'model': clf.model.state_dict(), 'epoch': 3}, ref_file)
    with pytest.raises(ValueError, match='stats_path'):
        LPAPS(ckpt_path=str(ref_file))
    stats = torch.load(reference_dir / 'golden' / 'melception.pt', weights_only=True)['train_means_stds']
    stats_file = tmp_path / 'train_means_stds_melspec_10s_22050hz.txt'
    np.savetxt(stats_file, np.asarray(stats), fmt='%0.8f')
    lpaps = LPAPS(ckpt_path=str(ref_file), stats_path=str(stats_file))
    means, stds = np.asarray(stats, dtype=np.float32).T
    torch.testing.assert_close(lpaps.scaling_layer.shift.flatten(), torch.from_numpy(2 * means - 1))
    torch.testing.assert_close(lpaps.scaling_layer.scale.flatten(), torch.from_numpy(2 * stds))
    x = make_mels()
    assert lpaps(x, x).abs().max() == 0


def test_full_lpaps_and_codebook_layouts_round_trip(classifier_ckpt, tmp_path, make_mels):
    path, _ = classifier_ckpt
    src = LPAPS(ckpt_path=str(path))
    with torch.no_grad():
        for k, lin in enumerate(src.lins):  # "trained" heads must come back too
            lin.model[-1].weight.uniform_(0.1, 1.0, generator=torch.Generator().manual_seed(k))
    bare, codebook = tmp_path / 'lpaps.pt', tmp_path / 'codebook.ckpt'
    torch.save(src.state_dict(), bare)
    torch.save({'state_dict': {**{f'loss.perceptual_loss.{k}': v for k, v in src.state_dict().items()},
                               'encoder.conv_in.weight': torch.zeros(1)}}, codebook)
    x, y = make_mels(seed=0), make_mels(seed=1)
    for f in (bare, codebook):
        lpaps = LPAPS(ckpt_path=str(f))
        assert lpaps.net.chns == src.net.chns
        for k, v in src.state_dict().items():
            assert torch.equal(lpaps.state_dict()[k], v), k
        torch.testing.assert_close(lpaps(x, y), src(x, y))


def test_strict_load_names_missing_and_unexpected_keys(classifier_ckpt, tmp_path):
    path, clf = classifier_ckpt
    sd = dict(torch.load(path, weights_only=True)['state_dict'])
    lpaps_sd = LPAPS(ckpt_path=str(path)).state_dict()
    del lpaps_sd['net.slice3.6.bias']
    lpaps_sd['net.slice3.99.weight'] = torch.zeros(1)
    bad = tmp_path / 'bad_lpaps.pt'
    torch.save(lpaps_sd, bad)
    with pytest.raises(RuntimeError, match=r"bad_lpaps\.pt.*missing keys: \['net\.slice3\.6\.bias'\].*"
                                           r"unexpected keys: \['net\.slice3\.99\.weight'\]"):
        LPAPS(ckpt_path=str(bad))
    sd.pop('train_means')
    no_stats = tmp_path / 'no_stats.ckpt'
    torch.save({'state_dict': sd}, no_stats)
    with pytest.raises(ValueError, match="no_stats.ckpt.*train_means"):
        LPAPS(ckpt_path=str(no_stats))


def test_wrong_conv_layers_and_unknown_files_are_clear_errors(classifier_ckpt, tmp_path):
    path, _ = classifier_ckpt
    with pytest.raises(ValueError, match='conv_layers'):
        LPAPS(ckpt_path=str(path), conv_layers=[64, 'MP', 128])
    other = tmp_path / 'other.pt'
    torch.save({'weight': torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="other.pt: not a VGGish-ish or LPAPS checkpoint"):
        read_lpaps_weights(other)
    with pytest.raises(FileNotFoundError, match='nope.ckpt'):
        LPAPS(ckpt_path=str(tmp_path / 'nope.ckpt'))


def test_uncomputed_stats_are_rejected(tiny_classifier, tmp_path):
    clf = tiny_classifier()
    clf.train_means.fill_(float('nan'))
    f = tmp_path / 'nan.ckpt'
    torch.save({'state_dict': clf.state_dict()}, f)
    with pytest.raises(ValueError, match='never computed'):
        LPAPS(ckpt_path=str(f))


def test_without_checkpoint_is_a_random_placeholder():
    lpaps = LPAPS()
    assert not lpaps.pretrained and lpaps.chns == [64, 128, 256, 512, 512]
    assert LPAPS(ckpt_path=None, lin_init='random').lin0.model[1].weight.min() < 0  # the reference's heads
