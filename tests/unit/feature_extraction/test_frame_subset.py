"""Only what the model reads is computed: frames decoded at chosen indices equal the full decode's, features
of chosen rows (ResNet-50, BN-Inception RGB + flow) equal the full extraction's rows, and the pipeline embeds
only the rows a 5-feature model reads (one window and the sliding windows of a longer video) while its
condition equals the one made from the full extraction."""
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from feature_extraction import extract
from feature_extraction.extract import ExtractConfig, extract_visual
from feature_extraction.encode import write_mp4
from feature_extraction.media import read_frames
from feature_extraction.visual import BNInceptionFeatures, ResNet50Features
from specvqgan.config import instantiate_from_config, load_config
from specvqgan.shapes import resample_indices
from specvqgan.video_condition import condition_spec, used_rows, window_features


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 3 s, 25 fps, 96 x 128 clip whose every frame differs (a moving gradient)."""
    n, (h, w) = 75, (96, 128)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(xx * 2 + 7 * i) % 256, (yy * 2 + 3 * i) % 256, (xx + yy + 11 * i) % 256], -1)
                       for i in range(n)]).astype(np.uint8)
    path = tmp_path_factory.mktemp("subset") / "clip.mp4"
    write_mp4(path, frames, 25, None, 22050)
    return path


def test_read_frames_at_indices_equal_the_full_decode(clip):
    full = read_frames(clip, 5.0, 21.5, (48, 64), loop=True)                 # looped past the 3 s end
    idx = np.array([0, 1, 35, 64, 65, 106])
    np.testing.assert_array_equal(read_frames(clip, 5.0, 21.5, (48, 64), loop=True, indices=idx), full[idx])
    with pytest.raises(ValueError, match="sorted, unique"):
        read_frames(clip, 5.0, 21.5, (48, 64), loop=True, indices=[3, 2])
    with pytest.raises(ValueError, match="in \\[0, 108\\)"):
        read_frames(clip, 5.0, 21.5, (48, 64), loop=True, indices=[108])


@pytest.mark.slow
@pytest.mark.parametrize("make", [
    lambda: ResNet50Features(resize=64, crop=56),
    lambda: BNInceptionFeatures(flow_method="farneback", size=64),
], ids=["resnet50", "bninception"])
def test_feature_rows_equal_the_full_extraction(clip, make, monkeypatch):
    ex = make()
    monkeypatch.setattr(extract, "_build_extractor", lambda *a: ex)
    cfg = ExtractConfig(duration=1.2, feature="resnet50" if isinstance(ex, ResNet50Features) else "bninception",
                        random_weights=True)
    full = extract_visual(clip, cfg)
    rows = np.array([0, 5, 12, 25])                             # row 0: the flow row that repeats row 1
    part = extract_visual(clip, cfg, rows=rows[::-1])           # any order: sorted inside
    assert part.keys() == full.keys()
    for key, f in full.items():
        assert part[key].shape == (len(rows), f.shape[1])
        # oneDNN may pick another kernel for 4 frames than for 26 (it does with 1 thread): equal up to
        # float rounding, ~1e-6 of the features' scale (random ResNet-50 features reach ~50)
        np.testing.assert_allclose(part[key], f[rows], rtol=1e-5, atol=1e-5 * np.abs(f).max())


class Probe:
    """A cheap 2048-d "resnet50" (pixel values per frame) that records how many frames it embedded."""

    outputs = (("resnet50", 2048),)

    def __init__(self):
        self.frames = 0

    def frame_size_for(self, width, height):
        return 32, 64

    def __call__(self, frames):
        self.frames += len(frames)
        return frames.reshape(len(frames), -1)[:, :2048].astype(np.float32)


def test_pipeline_embeds_only_the_rows_a_five_feature_model_reads(clip, repo_root, monkeypatch):
    from specvqgan.pipeline import VideoToSound
    from vocoder.inference import GriffinLimVocoder

    tiny = [f"model.params.transformer_config.params.GPT_config.{k}" for k in ("n_layer=1", "n_head=2", "n_embd=16")]
    tiny += [f"model.params.first_stage_config.params.{k}" for k in (
        "ckpt_path=null", "embed_dim=8", "ddconfig.ch=32", "ddconfig.z_channels=8", "ddconfig.num_res_blocks=1",
        "ddconfig.attn_resolutions=[]")]
    cfg = load_config([repo_root / "configs" / c for c in ("vggsound_transformer.yaml",
                       "transformer_variants/vggsound_resnet50.yaml", "transformer_variants/feats5.yaml")], tiny)
    model = instantiate_from_config(cfg.model)
    spec = condition_spec(model, OmegaConf.to_container(cfg, resolve=True))
    pipe = VideoToSound(model, GriffinLimVocoder(), spec, random_feature_weights=True)
    probe = Probe()
    monkeypatch.setattr(extract, "_build_extractor", lambda *a: probe)
    np.testing.assert_array_equal(used_rows(spec, 53, 53, 215), 1 + resample_indices(5, 212))

    for seconds, starts in ((10.0, [0]), (12.0, [0, 1, 7, 12])):         # 12 s: 65 columns, 13 windows
        probe.frames = 0
        plan = pipe.prepare(clip, duration=seconds)
        n_rows = plan.feats.shape[0]
        used = used_rows(spec, plan.total_cols, pipe.W, n_rows)
        assert probe.frames == len(used) < n_rows                       # 5 of 215; 5 x 13 windows (some shared)
        full = extract_visual(clip, ExtractConfig(duration=n_rows / 21.5, feature="resnet50", random_weights=True))
        full = full["feature_resnet50"]
        for s in starts:
            want = model.get_input("feature", {"feature": torch.from_numpy(window_features(full, spec, s))[None]})
            np.testing.assert_array_equal(pipe.condition(plan, s).numpy(), want.numpy())
