"""FID / KID / IS / MKL: golden reference values and known cases."""
import numpy as np
import pytest
import torch

from evaluation.metrics import fid, inception_score, kid, mkl, video_id
from evaluation.metrics.fid import _trace_sqrt_product, _trace_sqrt_product_lowrank


def _f(golden, key):
    return golden[key].float()  # stored as fp16; the reference ran on these float32 values


def test_fid_golden(golden_metrics):
    r = golden_metrics["results"]
    assert fid(_f(golden_metrics, "feats_32_1"), _f(golden_metrics, "feats_32_2")) == pytest.approx(
        r["fid_32"], rel=1e-6)
    assert fid(_f(golden_metrics, "feats_2048_1"), _f(golden_metrics, "feats_2048_2")) == pytest.approx(
        r["fid_2048"], rel=1e-5)


def test_kid_golden(golden_metrics):
    r, cfg = golden_metrics["results"], golden_metrics["kid_cfg"]
    for d in ("32", "2048"):
        mean, std = kid(_f(golden_metrics, f"feats_{d}_1"), _f(golden_metrics, f"feats_{d}_2"),
                        subsets=cfg["subsets"], subset_size=cfg["subset_size"], degree=cfg["degree"],
                        gamma=None, coef0=cfg["coef0"], seed=cfg["rng_seed"])
        assert mean == pytest.approx(r[f"kid_{d}_mean"], rel=1e-6)
        assert std == pytest.approx(r[f"kid_{d}_std"], rel=1e-6)


def test_isc_golden(golden_metrics):
    r = golden_metrics["results"]
    mean, std = inception_score(_f(golden_metrics, "logits_unbiased_1"), splits=10, shuffle=True, seed=2020)
    assert mean == pytest.approx(r["is_mean"], rel=1e-6)
    assert std == pytest.approx(r["is_std"], rel=1e-6)


def test_mkl_golden(golden_metrics):
    g = golden_metrics
    value = mkl(_f(g, "logits_1"), [video_id(p) for p in g["file_paths_1"]],
                _f(g, "logits_2"), [video_id(p) for p in g["file_paths_2"]])
    assert value == pytest.approx(g["results"]["mkl"], rel=1e-6)


def test_video_id_pairing_rule():
    assert video_id("a/cls_3/-1pRmoJIGQc_10000_20000_sample_7.npy") == "-1pRmoJIGQc_10000_20000"
    assert video_id("data/vggsound/melspec_10s_22050hz/-1pRmoJIGQc_10000_20000_mel.npy") == "-1pRmoJIGQc_10000_20000"
    assert video_id("features/dog/melspec_10s_22050hz/video_02754_mel.npy") == "video_02754"


def test_fid_known_cases():
    rng = np.random.default_rng(0)
    few = rng.normal(size=(40, 64))      # N < D: the low-rank path
    many = rng.normal(size=(300, 8))     # N > D: the eigenvalue path
    assert abs(fid(few, few)) < 1e-8
    assert abs(fid(many, many)) < 1e-8
    shift = np.full(8, 0.5)
    assert fid(many + shift, many) == pytest.approx(8 * 0.25, rel=1e-9)  # same covariance: |mu diff|^2
    # both trace formulas agree when both apply
    a, b = rng.normal(size=(30, 20)), rng.normal(size=(25, 20)) * 2
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    assert _trace_sqrt_product_lowrank(a, b) == pytest.approx(_trace_sqrt_product(sa, sb), rel=1e-6)
    # 1-D Gaussians: FID = (m1 - m2)^2 + (s1 - s2)^2
    x = rng.normal(size=(5000, 1))
    m, sd = x.mean(), x.std(ddof=1)
    assert fid(3 * x + 1, x) == pytest.approx((2 * m + 1) ** 2 + (2 * sd) ** 2, rel=1e-9)


def test_kid_known_cases():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    near, _ = kid(x, x + 0.01, subsets=5, subset_size=100)  # unbiased: ~0 up to subset noise
    far, _ = kid(x, x + 1.0, subsets=5, subset_size=100)
    assert abs(near) < 0.02 * far
    assert kid(x, x, subsets=3, subset_size=50) == kid(x, x, subsets=3, subset_size=50)  # seeded


def test_isc_known_cases():
    same = torch.randn(1, 12).repeat(40, 1)
    assert inception_score(same, splits=4) == pytest.approx((1.0, 0.0), abs=1e-9)
    confident = torch.eye(10).repeat(4, 1) * 100  # every split: 10 distinct, certain classes
    mean, std = inception_score(confident, splits=4, shuffle=False)
    assert mean == pytest.approx(10.0, rel=1e-6) and std < 1e-6


def test_mkl_known_cases():
    logits = torch.randn(6, 9)
    ids = [f"v{i}" for i in range(6)]
    assert mkl(logits, ids, logits, ids) == pytest.approx(0.0, abs=1e-4)  # KL(p, p) = 0 (up to the 1e-6 eps)
    p, q = torch.tensor([[9 / 25, 12 / 25, 4 / 25]]), torch.tensor([[1 / 3, 1 / 3, 1 / 3]])
    # KL(p || q) = 0.0853 (the reference's own check), real = p, fake = q
    assert mkl(q.log(), ["a"], p.log(), ["a"]) == pytest.approx(0.0852996, abs=1e-5)
    # two samples of one video, an orphan sample (ignored) and a video without samples
    fake = torch.cat([logits[:1], logits[:1], torch.randn(1, 9)])
    assert mkl(fake, ["v0", "v0", "orphan"], logits, ids) == pytest.approx(0.0, abs=1e-4)


def test_metric_input_errors():
    with pytest.raises(ValueError, match="feature sizes differ"):
        fid(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="2-D"):
        kid(np.zeros(5), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="splits"):
        inception_score(torch.randn(3, 4), splits=10)
    with pytest.raises(ValueError, match="twice"):
        mkl(torch.randn(2, 3), ["a", "a"], torch.randn(2, 3), ["a", "a"])
    with pytest.raises(ValueError, match="no generated sample"):
        mkl(torch.randn(2, 3), ["a", "b"], torch.randn(1, 3), ["c"])
