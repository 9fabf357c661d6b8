"""BN-Inception: TSN/pretrainedmodels key layout, TSN-file conversion, flow first conv, pooled features."""
import pytest
import torch

from feature_extraction.weights import flow_first_conv, load_bninception
from specvqgan.modules.visual.bn_inception import BNInception
from specvqgan.modules.visual.resnet50 import ResNet50

# Convolutions of tsn-pytorch's bn_inception.yaml, in order: name, out, in, kernel (each has a bias and a
# `<name>_bn` BatchNorm). Modules: 1x1 | 3x3_reduce, 3x3 | double_3x3_reduce, _1, _2 | pool_proj.
YAML_CONVS = [("conv1_7x7_s2", 64, 3, 7), ("conv2_3x3_reduce", 64, 64, 1), ("conv2_3x3", 192, 64, 3)]
for name, cin, c1, r3, c3, rd, d1, d2, proj in [
        ("3a", 192, 64, 64, 64, 64, 96, 96, 32), ("3b", 256, 64, 64, 96, 64, 96, 96, 64),
        ("3c", 320, 0, 128, 160, 64, 96, 96, 0), ("4a", 576, 224, 64, 96, 96, 128, 128, 128),
        ("4b", 576, 192, 96, 128, 96, 128, 128, 128), ("4c", 576, 160, 128, 160, 128, 160, 160, 128),
        ("4d", 608, 96, 128, 192, 160, 192, 192, 128), ("4e", 608, 0, 128, 192, 192, 256, 256, 0),
        ("5a", 1056, 352, 192, 320, 160, 224, 224, 128), ("5b", 1024, 352, 192, 320, 192, 224, 224, 128)]:
    p = f"inception_{name}_"
    YAML_CONVS += ([(p + "1x1", c1, cin, 1)] if c1 else []) + [
        (p + "3x3_reduce", r3, cin, 1), (p + "3x3", c3, r3, 3), (p + "double_3x3_reduce", rd, cin, 1),
        (p + "double_3x3_1", d1, rd, 3), (p + "double_3x3_2", d2, d1, 3)] + (
        [(p + "pool_proj", proj, cin, 1)] if proj else [])


def expected_keys(in_channels=3):
    keys = {}
    for name, cout, cin, k in YAML_CONVS:
        cin = in_channels if name == "conv1_7x7_s2" else cin
        keys.update({f"{name}.weight": (cout, cin, k, k), f"{name}.bias": (cout,)})
        keys.update({f"{name}_bn.{t}": (cout,) for t in ("weight", "bias", "running_mean", "running_var")})
        keys[f"{name}_bn.num_batches_tracked"] = ()
    keys.update({"last_linear.weight": (1000, 1024), "last_linear.bias": (1000,)})
    return keys


def test_state_dict_matches_the_yaml_layout():
    assert len(YAML_CONVS) == 69
    for c in (3, 2):
        sd = BNInception(in_channels=c).state_dict()
        assert {k: tuple(v.shape) for k, v in sd.items()} == expected_keys(c)
    n_params = sum(co * ci * k * k + co + 2 * co for _, co, ci, k in YAML_CONVS) + 1024 * 1000 + 1000
    assert sum(p.numel() for p in BNInception().parameters()) == n_params == 11_295_240


def _tsn_file(model, path, prefix=""):
    """Write ``model`` the way tsn-pytorch's bn_inception-9f5701afb96c8044.pth stores it: BN tensors
    (1, C), classifier named fc, no num_batches_tracked."""
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        if "_bn." in k:
            v = v.unsqueeze(0)
        sd[prefix + k.replace("last_linear.", "fc.")] = v
    torch.save(sd, path)


def test_tsn_and_cadene_files_load_strictly(tmp_path):
    src = BNInception(seed=5).eval()
    with torch.no_grad():                                   # non-trivial BN statistics
        for m in src.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 2.0)
    _tsn_file(src, tmp_path / "bn_inception-9f5701afb96c8044.pth")
    _tsn_file(src, tmp_path / "tsn_ckpt.pth", prefix="module.base_model.")
    torch.save(src.state_dict(), tmp_path / "cadene.pth")
    x = torch.randn(2, 3, 224, 224) * 50
    with torch.no_grad():
        ref = src.features(x)
        for name in ("bn_inception-9f5701afb96c8044.pth", "tsn_ckpt.pth", "cadene.pth"):
            m = load_bninception(tmp_path / name)
            torch.testing.assert_close(m.features(x), ref, rtol=0, atol=0)
            torch.testing.assert_close(m(x), src(x), rtol=0, atol=0)


def test_flow_stream_averages_the_first_conv(tmp_path):
    src = BNInception(seed=7).eval()
    _tsn_file(src, tmp_path / "imagenet.pth")
    flow = load_bninception(tmp_path / "imagenet.pth", in_channels=2)
    w = src.conv1_7x7_s2.weight
    assert flow.conv1_7x7_s2.weight.shape == (64, 2, 7, 7)
    torch.testing.assert_close(flow.conv1_7x7_s2.weight[:, 0], w.mean(1))
    torch.testing.assert_close(flow.conv1_7x7_s2.weight[:, 1], w.mean(1))
    torch.testing.assert_close(flow.inception_5b_1x1.weight, src.inception_5b_1x1.weight)
    # Known case: the averaged kernel on (u, u) equals the RGB kernel on (2u/3, 2u/3, 2u/3).
    u = torch.randn(1, 1, 224, 224) * 40
    with torch.no_grad():
        torch.testing.assert_close(flow.features(u.expand(-1, 2, -1, -1)),
                                   src.features((2 * u / 3).expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)
    assert flow_first_conv(torch.ones(4, 3, 7, 7), 2).shape == (4, 2, 7, 7)
    # a file that already has a 2-channel first conv (a flow-trained TSN) is used as is
    torch.save(flow.state_dict(), tmp_path / "flow_trained.pth")
    again = load_bninception(tmp_path / "flow_trained.pth", in_channels=2)
    torch.testing.assert_close(again.conv1_7x7_s2.weight, flow.conv1_7x7_s2.weight, rtol=0, atol=0)


def test_feature_map_shapes_and_pooling():
    m = load_bninception(seed=0)
    x = torch.randn(2, 3, 224, 224) * 50
    with torch.no_grad():
        fmap = m.feature_map(x)
        assert fmap.shape == (2, 1024, 7, 7)
        f = m.features(x)
        assert f.shape == (2, 1024) and f.min() >= 0
        torch.testing.assert_close(f, torch.nn.functional.avg_pool2d(fmap, 7).flatten(1))  # yaml global_pool
        torch.testing.assert_close(m(x), m.last_linear(f))
    r1, r2 = load_bninception(seed=0), load_bninception(seed=1)
    assert torch.equal(r1.conv1_7x7_s2.weight, m.conv1_7x7_s2.weight)
    assert not torch.equal(r2.conv1_7x7_s2.weight, m.conv1_7x7_s2.weight)


def test_wrong_file_is_reported(tmp_path):
    torch.save(ResNet50().state_dict(), tmp_path / "resnet50.pth")
    with pytest.raises(ValueError, match=r"resnet50\.pth: not a BN-Inception .*missing keys"):
        load_bninception(tmp_path / "resnet50.pth")
