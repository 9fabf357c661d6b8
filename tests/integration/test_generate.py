"""Video -> sound end to end (``specvqgan.pipeline`` and ``scripts/generate.py``) on a tiny random-weight
toy transformer and synthetic videos: the condition equals what the toy dataset gives the model, output
files and lengths (2 s, 6 s, a short silent video), mp4 streams, seeded determinism, bad inputs, and the
CLI going on past a corrupt file."""
import importlib.util
import os
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from feature_extraction.encode import write_mp4
from feature_extraction.media import MediaError, probe
from specvqgan.audio import HOP, SR
from specvqgan.config import instantiate_from_config
from specvqgan.checkpoint import export as export_checkpoint
from specvqgan.outputs import write_sound
from specvqgan.pipeline import GenerationError, VideoToSound
from specvqgan.video_condition import window_features
from vocoder.modules import Generator

FPS = 25
def _frames(seconds: float, seed: int = 0) -> np.ndarray:
    """(T, 32, 32, 3) uint8: a colour that changes every 0.2 s (the colour features follow it)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * FPS))
    colours = rng.integers(0, 256, size=(n // 5 + 1, 3), dtype=np.uint8)
    return np.repeat(colours, 5, axis=0)[:n, None, None, :].repeat(32, 1).repeat(32, 2)


def _tone(seconds: float) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_transformer_config):
    """Videos, a train.py-style checkpoint (with the data config), its export (model only) and a codebook."""
    d = tmp_path_factory.mktemp("gen")
    videos = {"v2": (2.0, True), "v6": (6.0, True), "short_silent": (1.5, False), "tiny": (0.5, True)}
    for name, (sec, sound) in videos.items():
        write_mp4(d / f"{name}.mp4", _frames(sec, len(name)), FPS, _tone(sec) if sound else None, SR)
    write_mp4(d / "audio_only.mp4", None, FPS, _tone(2.0), SR)
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    cfg = OmegaConf.to_container(tiny_transformer_config(d / "toy"), resolve=True)
    torch.manual_seed(0)
    model = instantiate_from_config(OmegaConf.create(cfg["model"]))
    with torch.no_grad():  # larger weights: token choices depend clearly on the condition
        for p in model.transformer.parameters():
            p.normal_(0, 0.5)
    torch.save({"state_dict": model.state_dict(), "config": cfg}, d / "run.ckpt")
    export_checkpoint(model, cfg["model"], d / "exported.pt")
    export_checkpoint(model.first_stage_model, cfg["model"]["params"]["first_stage_config"], d / "codebook.pt")
    torch.save({"state_dict": {f"generator.{k}": v for k, v in Generator(80, ngf=4, n_residual_layers=1)
                               .state_dict().items()},
                "config": {"params": {"ngf": 4, "n_residual_layers": 1}}}, d / "melgan.pt")  # tiny, fast
    return d, VideoToSound.from_checkpoints(d / "run.ckpt", vocoder=d / "melgan.pt")


def _streams(path):
    """{'video'|'audio': duration in seconds} of an mp4 (PyAV)."""
    with av.open(str(path)) as c:
        return {s.type: float(s.duration * s.time_base) for s in c.streams}


def test_condition_equals_toy_dataset_item(setup, tiny_transformer_config):
    """Features through the pipeline == the toy dataset's item for the same clip extracted by
    ``python -m feature_extraction`` (2 s, 43 rows, centre crop 40)."""
    from feature_extraction.extract import ExtractConfig, extract_folder
    from specvqgan.data.datamodule import build_split

    d, pipe = setup
    toy = d / "toy"
    (toy / "videos" / "cls").mkdir(parents=True, exist_ok=True)
    (toy / "videos" / "cls" / "clip.mp4").write_bytes((d / "v2.mp4").read_bytes())
    (toy / "toy_valid.txt").write_text("cls/clip\n")
    results = extract_folder(toy / "videos", toy / "features", ExtractConfig(duration=2.0), progress=False)
    assert [r.status for r in results] == ["done"]
    item = build_split(tiny_transformer_config(toy), "validation")[0]
    plan = pipe.prepare(toy / "videos" / "cls" / "clip.mp4")
    cond = pipe.condition(plan, 0)
    assert pipe.spec.feature == "color" and pipe.spec.duration == 2.0 and pipe.spec.n_feats == 40
    assert cond.shape == (1, 48, 40)
    np.testing.assert_array_equal(cond[0].numpy(), item["feature"].T)
    # the exported file (no data config) derives the same recipe from the model alone
    assert VideoToSound.from_checkpoints(d / "exported.pt").spec == pipe.spec


def test_two_second_video_outputs_and_seeds(setup, tmp_path):
    d, pipe = setup
    res = pipe.generate(d / "v2.mp4", tmp_path / "a", samples=2, seed=3)
    n_frames = int(2.0 * SR) // HOP
    assert res.duration == pytest.approx(n_frames * HOP / SR) and abs(res.duration - 2.0) < HOP / SR
    assert [p.name for p in res.mp4_paths] == ["v2_sample_0.mp4", "v2_sample_1.mp4"]
    for k in range(2):
        mel, wav = res.mels[k], res.wavs[k]
        assert mel.shape == (80, n_frames) and mel.dtype == np.float32 and 0 <= mel.min() and mel.max() <= 1
        assert wav.shape == (n_frames * HOP,)
        np.testing.assert_array_equal(np.load(res.mel_paths[k]), mel)
        audio, sr = sf.read(res.wav_paths[k])
        assert sr == SR and len(audio) == n_frames * HOP
        png = cv2.imread(str(res.png_paths[k]))
        assert png is not None and png.shape[1] == n_frames and png.shape[2] == 3
        streams = _streams(res.mp4_paths[k])
        assert streams["video"] == pytest.approx(2.0, abs=0.05)
        assert streams["audio"] == pytest.approx(res.duration, abs=0.03)
    assert not np.array_equal(res.mels[0], res.mels[1])
    assert not list((tmp_path / "a").glob(".*"))                     # no temporary files left
    again = pipe.generate(d / "v2.mp4", tmp_path / "b", samples=2, seed=3, write_mp4=False)
    other = pipe.generate(d / "v2.mp4", tmp_path / "c", samples=1, seed=4, write_mp4=False)
    noise = pipe.generate(d / "v2.mp4", tmp_path / "d", samples=1, seed=3, write_mp4=False, random_features=True)
    np.testing.assert_array_equal(again.mels[0], res.mels[0])
    np.testing.assert_array_equal(again.mels[1], res.mels[1])
    assert not np.array_equal(other.mels[0], res.mels[0])
    assert not np.array_equal(noise.mels[0], res.mels[0])
    assert again.mp4_paths == [] and not (tmp_path / "b" / "v2_sample_0.mp4").exists()


def test_compute_returns_the_sound_and_writes_nothing(setup, tmp_path, monkeypatch):
    """``compute`` gives the documented arrays and touches no file; ``write_sound`` then writes what
    ``generate`` writes (the same names and the same wav / npy / png bytes)."""
    d, pipe = setup
    monkeypatch.chdir(tmp_path)
    inputs = sorted(p.name for p in d.iterdir())
    sound = pipe.compute(d / "v2.mp4", samples=2, seed=3)
    assert not list(tmp_path.iterdir()) and sorted(p.name for p in d.iterdir()) == inputs
    n_frames = int(2.0 * SR) // HOP
    assert sound.mels.shape == (2, 80, n_frames) and sound.mels.dtype == np.float32
    assert 0 <= sound.mels.min() and sound.mels.max() <= 1
    assert sound.wavs.shape == (2, n_frames * HOP) and sound.wavs.dtype == np.float32
    cols = -(-n_frames // 16)           # 11 > W = 10: the sliding window's last column
    assert sound.total_cols == cols and sound.tokens.shape == (2, pipe.H * cols)
    assert sound.tokens.dtype == np.int64 and sound.sample_rate == SR
    assert sound.duration == pytest.approx(n_frames * HOP / SR) and sound.video == d / "v2.mp4"
    assert sound.video_seconds == pytest.approx(2.0, abs=0.05) and not sound.loop_video
    assert sound.features.shape == (max(43, pipe.spec.rows_needed(cols, pipe.W)), pipe.spec.feat_depth)
    assert sound.class_id is None and not sound.random_features
    np.testing.assert_array_equal(pipe.condition(pipe.prepare(d / "v2.mp4"), 0)[0].numpy(),
                                  window_features(sound.features, pipe.spec, 0).T)  # the condition used
    assert list(sound.seconds) == ["features", "tokens", "decoder", "vocoder"]
    e_dim = pipe.model.first_stage_model.quantize.embedding.weight.shape[1]
    with torch.inference_mode():    # the tokens are the ones behind the mels
        mel = pipe.model.decode_to_img(torch.from_numpy(sound.tokens), (2, e_dim, pipe.H, cols))
    np.testing.assert_allclose(((mel[:, 0, :, :n_frames] + 1) / 2).clamp(0, 1).numpy(), sound.mels, atol=1e-6)

    res = write_sound(sound, tmp_path / "w")
    ref = pipe.generate(d / "v2.mp4", tmp_path / "g", samples=2, seed=3)
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == sorted(p.name for p in (tmp_path / "g").iterdir())
    assert [p.name for p in res.mp4_paths] == ["v2_sample_0.mp4", "v2_sample_1.mp4"]
    for mine, theirs in zip(res.wav_paths + res.mel_paths + res.png_paths, ref.wav_paths + ref.mel_paths + ref.png_paths):
        assert mine.parent == tmp_path / "w" and mine.name == theirs.name
        assert mine.read_bytes() == theirs.read_bytes()
    assert _streams(res.mp4_paths[1]) == pytest.approx(_streams(ref.mp4_paths[1]))
    assert list(res.seconds) == ["features", "tokens", "decoder", "vocoder", "writing"] and res.sound is sound
    np.testing.assert_array_equal(res.wavs[1], sound.wavs[1])


def test_bf16_decoder_stays_close_to_fp32(setup):
    """The codebook decoder in bf16 (channels-last autocast) gives the fp32 mel within bf16 rounding; same
    tokens (the GPT is untouched); "auto" keeps fp32 for an fp32 GPT; a bad value is one clear error."""
    d, pipe = setup
    other = VideoToSound.from_checkpoints(d / "exported.pt")
    assert other.decoder_precision == "fp32"                       # auto with an fp32 GPT
    ref = other.compute(d / "v2.mp4", samples=1, seed=5)
    other.decoder_precision = "bf16"
    low = other.compute(d / "v2.mp4", samples=1, seed=5)
    np.testing.assert_array_equal(low.tokens, ref.tokens)
    err = np.abs(low.mels - ref.mels)
    assert 0 < err.max() < 0.15 and err.mean() < 0.01, (err.max(), err.mean())   # random weights: worst case
    with pytest.raises(GenerationError, match="decoder precision must be"):
        other.decoder_precision = "int8"


def test_long_and_short_videos(setup, tmp_path):
    d, pipe = setup
    plan = pipe.prepare(d / "v6.mp4")
    n_frames = int(6.0 * SR) // HOP
    assert plan.n_frames == n_frames and plan.total_cols == -(-n_frames // 16) > pipe.W
    # each window is conditioned on the features under it
    assert not torch.equal(pipe.condition(plan, 0), pipe.condition(plan, plan.total_cols - pipe.W))
    res = pipe.generate(d / "v6.mp4", tmp_path, samples=1, seed=0)
    assert res.wavs[0].shape == (n_frames * HOP,) and abs(res.duration - 6.0) < HOP / SR
    assert _streams(res.mp4_paths[0])["audio"] == pytest.approx(res.duration, abs=0.03)

    # shorter than the trained 2 s and without sound: looped for the features, trimmed to its length
    seconds = probe(d / "short_silent.mp4").duration
    res = pipe.generate(d / "short_silent.mp4", tmp_path, samples=1, seed=0)
    assert res.wavs[0].shape == ((int(round(seconds * SR)) // HOP) * HOP,) and seconds < pipe.spec.duration
    streams = _streams(res.mp4_paths[0])
    assert streams["video"] == pytest.approx(1.5, abs=0.05) and streams["audio"] == pytest.approx(1.5, abs=0.03)

    # an explicit duration past the video's end loops the video in the mp4
    res = pipe.generate(d / "v2.mp4", tmp_path / "longer", samples=1, seed=0, duration=3.0)
    streams = _streams(res.mp4_paths[0])
    assert streams["video"] == pytest.approx(3.0, abs=0.1) and streams["audio"] == pytest.approx(3.0, abs=0.03)


def test_bad_inputs_name_the_file(setup, tmp_path):
    d, pipe = setup
    for name, words in (("corrupt.mp4", "cannot open"), ("audio_only.mp4", "no video stream"),
                        ("tiny.mp4", "too short"), ("missing.mp4", "not found")):
        with pytest.raises(MediaError, match=words) as err:
            pipe.generate(d / name, tmp_path, samples=1)
        assert name in str(err.value)
    assert not list(tmp_path.iterdir())
    with pytest.raises(GenerationError, match="not a transformer") as err:
        VideoToSound.from_checkpoints(d / "codebook.pt")
    assert "codebook.pt" in str(err.value)
    with pytest.raises(FileNotFoundError, match="nothere.ckpt"):
        VideoToSound.from_checkpoints(d / "nothere.ckpt")


@pytest.mark.slow
def test_cli_reports_a_corrupt_video_and_goes_on(setup, repo_root, tmp_path, capsys):
    d, _ = setup
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "scripts/generate.py", "--video", str(d / "corrupt.mp4"), str(d / "v2.mp4"),
                           "--transformer", str(d / "exported.pt"), "--out", str(out), "--samples", "1",
                           "--top-k", "8", "--seed", "1"],
                          cwd=repo_root, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    failed = [line for line in proc.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "corrupt.mp4" in failed[0]
    written = [line for line in proc.stdout.splitlines() if not line.startswith("#")]
    assert sorted(os.path.basename(p) for p in written) == [f"v2_sample_0.{e}" for e in ("mp4", "npy", "png", "wav")]
    assert all(os.path.isfile(p) for p in written)
    # in process: a codebook passed as the transformer -> exit code 2 and one line naming the file
    spec = importlib.util.spec_from_file_location("generate_cli", repo_root / "scripts" / "generate.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--video", str(d / "v2.mp4"), "--transformer", str(d / "codebook.pt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "codebook.pt" in err[0] and "not a transformer" in err[0]
    # resume: the finished video is skipped, its files untouched
    before = {p: os.path.getmtime(p) for p in written}
    same = ["--video", str(d / "v2.mp4"), "--transformer", str(d / "exported.pt"), "--out", str(out),
            "--samples", "1", "--top-k", "8", "--seed", "1", "--skip-existing"]
    assert cli.main(same) == 0
    assert "skipped" in capsys.readouterr().out and before == {p: os.path.getmtime(p) for p in written}
    # ... but only when they were made the same way (<out>/_provenance.json): other options are refused
    assert cli.main([*same[:-2], "2", "--skip-existing"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed: 1 there, 2 now" in err and "run without --skip-existing" in err
    assert before == {p: os.path.getmtime(p) for p in written}


def test_non_finite_generation_is_an_error_naming_the_video(setup, tmp_path, monkeypatch):
    d, pipe = setup
    monkeypatch.setattr(pipe.vocoder, "vocode",
                        lambda mels: np.full((len(mels), mels.shape[-1] * HOP), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"v2.mp4: vocoder waveform samples contain \d+ NaN"):
        pipe.generate(d / "v2.mp4", tmp_path, samples=1, write_mp4=False)
    assert not list(tmp_path.iterdir())


def test_cli_refuses_videos_over_max_seconds(setup, repo_root, tmp_path, capsys):
    d, _ = setup
    spec = importlib.util.spec_from_file_location("generate_cli", repo_root / "scripts" / "generate.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    common = ["--transformer", str(d / "exported.pt"), "--out", str(tmp_path), "--samples", "1"]
    assert cli.main(["--video", str(d / "v6.mp4"), "--max-seconds", "3", *common]) == 2
    err = capsys.readouterr().err
    assert "v6.mp4: the video is 6.0 s, over --max-seconds 3; pass --duration" in err and "Traceback" not in err
    assert cli.main(["--video", str(d / "v2.mp4"), "--duration", "700", *common]) == 2
    assert "v2.mp4: --duration 700 s is over --max-seconds 600" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["_provenance.json"]        # no outputs


@pytest.mark.slow
def test_guidance_scale(setup, tiny_transformer_config, repo_root, tmp_path, capsys):
    """A model trained with p_uncond: guided sound differs from unguided, reproducibly; a model without a
    null condition refuses a guidance scale in one line (API and CLI)."""
    d, pipe = setup
    cfg = OmegaConf.to_container(tiny_transformer_config(d / "toy"), resolve=True)
    cfg["model"]["params"]["p_uncond"] = 0.2
    torch.manual_seed(0)
    model = instantiate_from_config(OmegaConf.create(cfg["model"]))
    with torch.no_grad():
        for p in model.transformer.parameters():
            p.normal_(0, 0.5)
    export_checkpoint(model, cfg["model"], tmp_path / "cfg.pt")
    guided = VideoToSound.from_checkpoints(tmp_path / "cfg.pt")
    kw = dict(samples=1, seed=3, write_mp4=False)
    plain = guided.generate(d / "v2.mp4", tmp_path / "s1", **kw)
    a = guided.generate(d / "v2.mp4", tmp_path / "s3", guidance_scale=3.0, **kw)
    b = guided.generate(d / "v2.mp4", tmp_path / "s3b", guidance_scale=3.0, **kw)
    np.testing.assert_array_equal(a.mels[0], b.mels[0])
    assert not np.array_equal(a.mels[0], plain.mels[0])
    with pytest.raises(GenerationError, match="run.ckpt: guidance_scale=2.0 needs a model trained with p_uncond"):
        pipe.generate(d / "v2.mp4", tmp_path / "x", guidance_scale=2.0, **kw)
    spec = importlib.util.spec_from_file_location("generate_cli", repo_root / "scripts" / "generate.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["--video", str(d / "v2.mp4"), "--transformer", str(d / "exported.pt"), "--out",
                     str(tmp_path / "cli"), "--samples", "1", "--guidance-scale", "2", "--no-mp4"]) == 2
    err = capsys.readouterr().err
    assert "needs a model trained with p_uncond" in err and "Traceback" not in err


def test_cli_takes_an_inference_bundle(setup, repo_root, tmp_path, capsys):
    """``--transformer <bundle>`` (python -m specvqgan.export) writes the checkpoint's mel at the same precision
    and seed; another --precision is one error line naming the bundle."""
    from specvqgan.export import export_bundle

    d, _ = setup
    bundle = export_bundle(d / "run.ckpt", tmp_path / "run-int8.pt", precision="int8")
    spec = importlib.util.spec_from_file_location("generate_cli", repo_root / "scripts" / "generate.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    common = ["--video", str(d / "v2.mp4"), "--samples", "1", "--seed", "2", "--top-k", "8", "--no-mp4"]
    assert cli.main([*common, "--transformer", str(bundle), "--out", str(tmp_path / "b")]) == 0
    assert cli.main([*common, "--transformer", str(d / "run.ckpt"), "--precision", "int8",
                     "--out", str(tmp_path / "c")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "v2_sample_0.npy"),
                                  np.load(tmp_path / "c" / "v2_sample_0.npy"))
    capsys.readouterr()
    assert cli.main([*common, "--transformer", str(bundle), "--precision", "fp32", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bundle) in err and "prepared for int8" in err


def test_cli_folder_and_list_with_one_model_load(setup, repo_root, tmp_path, monkeypatch, capsys):
    """``--video <folder> <list.txt>``: every video gets its outputs, the models are loaded once; a list naming a
    missing video is one error line naming the list and the line."""
    import shutil

    from specvqgan.pipeline import VideoToSound

    d, _ = setup
    (tmp_path / "in" / "sub").mkdir(parents=True)
    shutil.copy(d / "v2.mp4", tmp_path / "in" / "a.mp4")
    shutil.copy(d / "v2.mp4", tmp_path / "in" / "sub" / "b.mp4")
    shutil.copy(d / "v2.mp4", tmp_path / "c.mp4")
    (tmp_path / "todo.txt").write_text("# one more\nc.mp4\n\n")
    loads = []
    real = VideoToSound.from_checkpoints.__func__
    monkeypatch.setattr(VideoToSound, "from_checkpoints",
                        classmethod(lambda cls, *a, **k: loads.append(a) or real(cls, *a, **k)))
    spec = importlib.util.spec_from_file_location("generate_cli", repo_root / "scripts" / "generate.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    out = tmp_path / "out"
    common = ["--transformer", str(d / "exported.pt"), "--samples", "1", "--top-k", "8", "--no-mp4"]
    assert cli.main(["--video", str(tmp_path / "in"), str(tmp_path / "todo.txt"), "--out", str(out), *common]) == 0
    assert len(loads) == 1
    for wav in (out / "a_sample_0.wav", out / "sub" / "b_sample_0.wav", out / "c_sample_0.wav"):
        assert wav.is_file(), wav
    capsys.readouterr()
    (tmp_path / "bad.txt").write_text("c.mp4\nnothere.mp4\n")
    assert cli.main(["--video", str(tmp_path / "bad.txt"), "--out", str(tmp_path / "o2"), *common]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.txt, line 2" in err and "nothere.mp4" in err
