"""Melception inputs and feature extraction: standardization, checkpoint layouts, unreadable files, cache."""
import numpy as np
import pytest
import torch

from evaluation import features as F
from specvqgan.modules.classifiers.melception import Melception
from specvqgan.data.transforms import crop_start

CLIPS = ("-1pRmoJIGQc_10000_20000", "3HgbEKrbA9s_54000_64000")


def test_standardized_input_matches_golden(golden_melception, reference_dir):
    """VGGSound mel -> center crop 848 -> [0, 1] -> (x - mean) / std == the golden Melception input."""
    stats = F.load_stats()
    assert np.array_equal(stats, golden_melception["train_means_stds"].numpy())
    mels = []
    for clip in CLIPS:
        mel = F.read_mel01(str(reference_dir / "data" / "vggsound" / "melspec_10s_22050hz" / f"{clip}_mel.npy"))
        start = crop_start(mel.shape[1], 848)
        assert start == 6
        mels.append(mel[:, start:start + 848])
    x = F.standardize(torch.from_numpy(np.stack(mels)), torch.from_numpy(stats))
    assert x.dtype == torch.float32
    torch.testing.assert_close(x, golden_melception["mel"], atol=1e-6, rtol=0)


def _tiny(recipe, num_classes=5):
    net = Melception(num_classes=num_classes, width=0.0625, init_weights=False)
    net.load_state_dict(recipe(net))
    return net.eval()


def test_checkpoint_layouts(recipe, tmp_path):
    net = _tiny(recipe)
    stats = np.stack([np.linspace(0.3, 0.6, 80), np.linspace(0.1, 0.2, 80)], 1)
    # the authors' layout, without stats -> default VGGSound stats
    F.export_reference_checkpoint(net, None, tmp_path / "ref.pt")
    scorer = F.load_melception(tmp_path / "ref.pt")
    assert np.array_equal(scorer.stats.numpy(), F.load_stats())
    # with stats
    F.export_reference_checkpoint(net, stats, tmp_path / "ref_stats.pt")
    assert np.allclose(F.load_melception(tmp_path / "ref_stats.pt").stats.numpy(), stats)
    # a Lightning checkpoint of MelceptionClassifier: model.* keys plus the stats buffers
    sd = {f"model.{k}": v for k, v in net.state_dict().items()}
    sd.update(train_means=torch.from_numpy(stats[:, 0]), train_stds=torch.from_numpy(stats[:, 1]))
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "last.ckpt")
    scorer = F.load_melception(tmp_path / "last.ckpt")
    assert np.allclose(scorer.stats.numpy(), stats)
    x = torch.rand(2, 80, 96)
    out = scorer(x)
    with torch.no_grad():
        want = net.features(F.standardize(x, torch.from_numpy(stats)))
    for k in F.FEATURE_KEYS:
        torch.testing.assert_close(out[k], want[k])
    # an explicit stats file overrides the stored stats
    np.savetxt(tmp_path / "s.txt", stats[::-1], fmt="%0.8f")
    assert np.allclose(F.load_melception(tmp_path / "last.ckpt", stats_path=tmp_path / "s.txt").stats.numpy(),
                       stats[::-1])


def test_extract_features_unreadable_batching_and_cache(recipe, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mels"
    folder.mkdir()
    for i in range(5):
        np.save(folder / f"v{i}_sample_0.npy", rng.random((80, 100), dtype=np.float32))
    np.save(folder / "short_sample_0.npy", rng.random((80, 40), dtype=np.float32))
    np.save(folder / "wide_sample_0.npy", rng.random((64, 100), dtype=np.float32))
    (folder / "corrupt_sample_0.npy").write_bytes(b"not a numpy file")
    scorer = F.MelceptionScorer(_tiny(recipe), F.load_stats())
    source = F.MelSource.from_folder(folder)
    assert len(source.paths) == 8
    feats = F.extract_features(scorer, source, crop=96, batch_size=2, cache_dir=tmp_path / "cache",
                               checkpoint="tiny")
    assert len(feats.paths) == 5 and feats.pool.shape == (5, scorer.net.pool_dim)
    assert sorted(p.split("/")[-1] for p, _ in feats.unreadable) == [
        "corrupt_sample_0.npy", "short_sample_0.npy", "wide_sample_0.npy"]
    one_by_one = F.extract_features(scorer, source, crop=96, batch_size=1)
    torch.testing.assert_close(one_by_one.logits, feats.logits, atol=1e-5, rtol=1e-5)
    # the second call is served from the cache, without running the network
    monkeypatch.setattr(F.MelceptionScorer, "forward", lambda *a: pytest.fail("cache not used"))
    cached = F.extract_features(scorer, source, crop=96, batch_size=2, cache_dir=tmp_path / "cache",
                                checkpoint="tiny")
    assert cached.paths == feats.paths and torch.equal(cached.pool, feats.pool)
    # a changed file invalidates it
    np.save(folder / "v0_sample_0.npy", rng.random((80, 101), dtype=np.float32))
    with pytest.raises(pytest.fail.Exception, match="cache not used"):
        F.extract_features(scorer, source, crop=96, cache_dir=tmp_path / "cache", checkpoint="tiny")


def test_cache_is_npz_and_a_bad_cache_is_recomputed(recipe, tmp_path):
    """The cache holds no pickles: a truncated file or a pickle payload under its name is recomputed
    (the payload never runs) and replaced by a good file."""
    import os

    folder = tmp_path / "mels"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        np.save(folder / f"v{i}_sample_0.npy", rng.random((80, 100), dtype=np.float32))
    scorer = F.MelceptionScorer(_tiny(recipe), F.load_stats())
    source = F.MelSource.from_folder(folder)
    first = F.extract_features(scorer, source, crop=96, cache_dir=tmp_path / "cache", checkpoint="tiny")
    (cache,) = (tmp_path / "cache").iterdir()
    assert cache.suffix == ".npz" and not F.Features.load(cache).unreadable
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    good = cache.read_bytes()
    for bad in (good[: len(good) // 2], b"", "payload"):
        if bad == "payload":
            torch.save({"paths": Payload()}, cache)
        else:
            cache.write_bytes(bad)
        again = F.extract_features(scorer, source, crop=96, cache_dir=tmp_path / "cache", checkpoint="tiny")
        assert again.paths == first.paths and torch.allclose(again.pool, first.pool)
        assert torch.equal(F.Features.load(cache).pool, again.pool)   # rewritten whole
    assert not marker.exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache.name]  # no temporary files left
