"""ResNet-50: torchvision's exact state-dict layout, strict loading by path, pooled features."""
import pytest
import torch

from feature_extraction.weights import load_resnet50
from specvqgan.modules.visual.resnet50 import ResNet50


def torchvision_resnet50_keys() -> dict[str, tuple]:
    """Keys/shapes of torchvision's resnet50 written from its known structure (layers [3, 4, 6, 3],
    bottleneck widths 64..512, expansion 4, downsample.0/.1 on the first block of every layer)."""
    def bn(prefix, c):
        return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}

    keys = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    cin = 64
    for li, (n, w) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512]), start=1):
        for b in range(n):
            p = f"layer{li}.{b}"
            keys.update({f"{p}.conv1.weight": (w, cin, 1, 1), **bn(f"{p}.bn1", w),
                         f"{p}.conv2.weight": (w, w, 3, 3), **bn(f"{p}.bn2", w),
                         f"{p}.conv3.weight": (4 * w, w, 1, 1), **bn(f"{p}.bn3", 4 * w)})
            if b == 0:
                keys.update({f"{p}.downsample.0.weight": (4 * w, cin, 1, 1), **bn(f"{p}.downsample.1", 4 * w)})
            cin = 4 * w
    keys.update({"fc.weight": (1000, 2048), "fc.bias": (1000,)})
    return keys


def test_state_dict_equals_torchvision_layout():
    expected = torchvision_resnet50_keys()
    sd = ResNet50().state_dict()
    assert len(expected) == 320
    assert list(sd) == list(expected)                       # same keys, same order
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert sum(p.numel() for p in ResNet50().parameters()) == 25_557_032


def test_seeded_init_is_reproducible_and_leaves_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = ResNet50(seed=0), ResNet50(seed=0), ResNet50(seed=1)
    assert torch.rand(1) == before
    assert torch.equal(a.conv1.weight, b.conv1.weight) and torch.equal(a.fc.weight, b.fc.weight)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_official_file_layout_loads_strictly(tmp_path):
    src = ResNet50(seed=3).eval()
    torch.save(src.state_dict(), tmp_path / "resnet50-19c8e357.pth")
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, tmp_path / "wrapped.ckpt")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = src.features(x)
        for name in ("resnet50-19c8e357.pth", "wrapped.ckpt"):
            m = load_resnet50(tmp_path / name)
            assert not m.training
            torch.testing.assert_close(m.features(x), ref, rtol=0, atol=0)


def test_bad_weight_files_name_the_file(tmp_path):
    sd = ResNet50().state_dict()
    del sd["layer4.2.bn3.running_var"]
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"partial\.pth.*missing keys \['layer4\.2\.bn3\.running_var'\]"):
        load_resnet50(tmp_path / "partial.pth")
    sd = ResNet50(num_classes=10).state_dict()
    torch.save(sd, tmp_path / "tenway.pth")
    with pytest.raises(ValueError, match=r"tenway\.pth.*fc\.weight"):
        load_resnet50(tmp_path / "tenway.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pth: cannot read"):
        load_resnet50(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_resnet50(tmp_path / "missing.pth")


def test_features_are_the_pooled_input_of_fc():
    m = load_resnet50(seed=0)
    x = torch.randn(3, 3, 96, 128)
    with torch.no_grad():
        f = m.features(x)
        assert f.shape == (3, 2048) and f.min() >= 0
        torch.testing.assert_close(m(x), m.fc(f))
        # batch independence in eval mode: one frame alone gives its row of the batch
        torch.testing.assert_close(m.features(x[1:2]), f[1:2], rtol=1e-4, atol=1e-4)
        # the pooled vector is the spatial mean of layer4's output
        h = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        h = m.layer4(m.layer3(m.layer2(m.layer1(h))))
        torch.testing.assert_close(f, h.mean(dim=(2, 3)))
