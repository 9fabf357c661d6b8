"""scripts/sample_dataset.py end to end on a tiny random-weight codebook + transformer and the 2 s toy
layout of the ``toy_root`` fixture: file naming and shapes, seeded determinism independent of the
batch, resume, shards, reconstructions, and pairing with evaluate.py's rule."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from evaluation.metrics import video_id
from specvqgan.config import instantiate_from_config
from specvqgan.dataset_sampling import SamplerOptions, sample_dataset, sample_seed
from specvqgan.sampling import sample_tokens

VOCAB = 16


def tiny_config(data_root, random_feats=False) -> dict:
    """A run config (model + data) small enough to build and sample in well under a second."""
    feats = {"replace_feats_with_random": random_feats}
    return {
        "model": {"base_learning_rate": 1e-4, "target": "specvqgan.models.cond_transformer.Net2NetTransformer",
                  "params": {
                      "cond_stage_key": "feature", "log_media": False,
                      "transformer_config": {"target": "specvqgan.modules.transformer.mingpt.GPTFeats", "params": {
                          "feat_embedding_config": {"target": "torch.nn.Conv1d",
                                                    "params": {"in_channels": 12, "kernel_size": 1}},
                          "GPT_config": {"vocab_size": VOCAB, "n_layer": 1, "n_head": 2, "n_embd": 16}}},
                      "first_stage_permuter_config": {"target": "specvqgan.modules.transformer.permuter.ColumnMajor"},
                      "first_stage_config": {"target": "specvqgan.models.vqgan.VQModel", "params": {
                          "ckpt_path": None, "embed_dim": 8, "n_embed": VOCAB,
                          "ddconfig": {"double_z": False, "z_channels": 8, "resolution": 160, "in_channels": 1,
                                       "out_ch": 1, "ch": 32, "ch_mult": [1, 1, 1, 1, 1], "num_res_blocks": 1,
                                       "attn_resolutions": [], "dropout": 0.0},
                          "lossconfig": {"target": "specvqgan.modules.losses.DummyLoss"}}},
                      "cond_stage_config": {"target": "specvqgan.modules.conditioning.RawFeatsStage",
                                            "params": {"n_feats": 40}}}},
        "data": {"target": "specvqgan.data.datamodule.DataModule", "params": {
            "batch_size": 2, "num_workers": 0,
            "validation": {"target": "specvqgan.data.toy.ToySpecsCondOnFeatsValidation",
                           "params": {"data_root": str(data_root), "duration": 2,
                                      "condition_dataset_cfg": feats}}}},
    }


@pytest.fixture
def tiny_ckpt(toy_root, tmp_path):
    """A train.py-style checkpoint ({state_dict, config with model and data}) of a random tiny model."""
    cfg = tiny_config(toy_root)
    torch.manual_seed(0)
    model = instantiate_from_config(OmegaConf.create(cfg["model"]))
    with torch.no_grad():  # larger weights: token choices depend clearly on the condition
        for p in model.transformer.parameters():
            p.normal_(0, 0.3)
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": model.state_dict(), "config": cfg}, path)
    return path


def run_cli(repo_root, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root))
    proc = subprocess.run([sys.executable, "scripts/sample_dataset.py", "--no-progress", *map(str, args)],
                          cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
    return proc


def read_all(folder):
    return {p.relative_to(folder).as_posix(): np.load(p) for p in sorted(folder.rglob("*.npy"))}


def test_samples_naming_determinism_resume_and_shards(repo_root, tiny_ckpt, tmp_path):
    out = tmp_path / "samples"
    proc = run_cli(repo_root, "--ckpt", tiny_ckpt, "--out", out, "--samples-per-video", 2, "--batch-size", 3,
                   "--top-k", 8, "--seed", 7, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["written"] == 4 and result["skipped"] == 0 and result["videos"] == 2
    files = read_all(out)
    # valid split of the fixture: bell_0001, drum_0001 (horn has no valid clip)
    assert sorted(files) == ["bell/bell_0001_sample_0.npy", "bell/bell_0001_sample_1.npy",
                             "drum/drum_0001_sample_0.npy", "drum/drum_0001_sample_1.npy"]
    for name, mel in files.items():
        assert mel.shape == (80, 160) and mel.dtype == np.float32
        assert 0.0 <= mel.min() and mel.max() <= 1.0
        assert video_id(name) == name.split("/")[1].split("_sample_")[0]  # evaluate.py pairs it
    assert not np.array_equal(files["bell/bell_0001_sample_0.npy"], files["bell/bell_0001_sample_1.npy"])
    meta = json.loads((out / "sampling.json").read_text())
    assert meta["seed"] == 7 and meta["top_k"] == 8 and meta["split"] == "validation"
    assert not list(out.rglob("*.tmp"))

    def run(folder, **kw):
        opts = dict(ckpt=str(tiny_ckpt), out=str(folder), samples_per_video=2, top_k=8, seed=7, device="cpu",
                    progress=False) | kw
        return sample_dataset(SamplerOptions(**opts))

    # resume: nothing to do; a deleted file comes back identical although its batch differs
    assert run(out, batch_size=3)["written"] == 0
    (out / "drum" / "drum_0001_sample_1.npy").unlink()
    assert run(out, batch_size=1) | {"seconds": 0} == \
        {"videos": 2, "written": 1, "skipped": 3, "seconds": 0, "out": str(out), "shard": "0/1"}
    np.testing.assert_array_equal(np.load(out / "drum" / "drum_0001_sample_1.npy"),
                                  files["drum/drum_0001_sample_1.npy"])

    # two shards into one folder = the single run; more samples per video keep the first ones
    sharded = tmp_path / "sharded"
    assert run(sharded, shard="0/2", samples_per_video=3)["videos"] == 1
    assert run(sharded, shard="1/2", samples_per_video=3)["videos"] == 1
    s_files = read_all(sharded)
    assert len(s_files) == 6 and set(files) < set(s_files)
    for name, mel in files.items():
        np.testing.assert_array_equal(s_files[name], mel)
    # another seed gives other samples; mixing settings in one folder is refused
    assert run(tmp_path / "other", seed=8, samples_per_video=1)["written"] == 2
    assert not np.array_equal(np.load(tmp_path / "other" / "bell" / "bell_0001_sample_0.npy"),
                              files["bell/bell_0001_sample_0.npy"])
    with pytest.raises(ValueError, match="other settings.*top_k"):
        run(out, top_k=4)
    # another checkpoint (other bytes) in the same folder is refused, not mixed in (a copy is fine)
    copy, changed = tmp_path / "copy.ckpt", tmp_path / "changed.ckpt"
    copy.write_bytes(tiny_ckpt.read_bytes())
    changed.write_bytes(tiny_ckpt.read_bytes() + b"\0")
    assert run(out, ckpt=str(copy))["written"] == 0
    with pytest.raises(ValueError, match=r"sampling.json: .*another checkpoint .*ckpt_sha256.*changed.ckpt"):
        run(out, ckpt=str(changed))
    with pytest.raises(ValueError, match=r"other settings.*overrides"):
        run(out, overrides=("data.params.batch_size=3",))


def test_reconstructions_match_the_codebook(tiny_ckpt, toy_root, tmp_path):
    out = tmp_path / "rec"
    result = sample_dataset(SamplerOptions(ckpt=str(tiny_ckpt), out=str(out), mode="reconstructions", limit=1,
                                           device="cpu", progress=False))
    assert result["written"] == 1 and sorted(read_all(out)) == ["bell/bell_0001_sample_0.npy"]
    from specvqgan.models.cond_transformer import Net2NetTransformer
    codebook = Net2NetTransformer.from_checkpoint(tiny_ckpt).first_stage_model
    mel = np.load(toy_root / "features" / "bell" / "melspec_2s_22050hz" / "bell_0001_mel.npy")[:, 6:166]  # center crop
    with torch.no_grad():
        x = torch.from_numpy(2 * mel - 1)[None, None]
        want = ((codebook.decode_from_indices(codebook.encode_to_indices(x))[0, 0] + 1) / 2).clamp(0, 1)
    np.testing.assert_allclose(np.load(out / "bell" / "bell_0001_sample_0.npy"), want.numpy(), atol=1e-5)


def test_clear_errors(tiny_ckpt, tmp_path):
    def run(**kw):
        return sample_dataset(SamplerOptions(**(dict(ckpt=str(tiny_ckpt), out=str(tmp_path / "x"), device="cpu",
                                                    progress=False) | kw)))
    with pytest.raises(ValueError, match=r"data\.params\.test"):
        run(split="test")
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        run(ckpt=str(tmp_path / "nope.ckpt"))
    with pytest.raises(ValueError, match="i/n"):
        run(shard="2/2")


def test_gumbel_rows_are_exact_draws_and_batch_independent():
    """The per-row Gumbel-max draw: same row seed -> same tokens in any batch; its token frequencies
    follow the softmax of the filtered logits."""
    from specvqgan.modules.transformer.mingpt import GPTFeats
    torch.manual_seed(0)
    conv = {"target": "torch.nn.Conv1d", "params": {"in_channels": 12, "out_channels": 16, "kernel_size": 1}}
    gpt = GPTFeats(conv, {"vocab_size": VOCAB, "block_size": 9, "n_layer": 2, "n_head": 2, "n_embd": 16}).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            p.normal_(0, 0.3)
    c = torch.randn(2, 12, 4)
    seeds = [sample_seed(0, "a", 0), sample_seed(0, "b", 0), sample_seed(0, "c", 0)]
    cond3 = torch.cat([c, c[:1]])

    def draw(cond, rows):
        return sample_tokens(gpt, cond, 5, top_k=6, seed=rows)

    both = draw(cond3, seeds)
    torch.testing.assert_close(draw(cond3[2:], seeds[2:]), both[2:])
    torch.testing.assert_close(draw(cond3[:1], seeds[:1]), both[:1])
    # one step from a fixed context: empirical frequencies vs softmax(top-k logits)
    n = 4000
    cond = c[:1].expand(n, -1, -1)
    tokens = sample_tokens(gpt, cond, 1, temperature=0.7, top_k=6, seed=list(range(n)))[:, 0]
    with torch.no_grad():
        cache = gpt.new_cache(1)
        logits = gpt.forward_cached(gpt.embed_condition(c[:1]), cache)[0][0, -1]
    top = torch.topk(logits, 6)
    probs = torch.zeros_like(logits).scatter(0, top.indices, torch.softmax(top.values / 0.7, 0))
    freq = torch.bincount(tokens, minlength=logits.numel()).float() / n
    assert freq[probs == 0].sum() == 0
    assert (freq - probs).abs().max() < 0.03


def test_reference_style_data_module_gives_the_split(toy_root):
    """Shared keys of ConditionedSpectrogramDataModuleFromConfig (the paper configs) reach the split."""
    from specvqgan.dataset_sampling import build_split, clip_names
    feats = str(toy_root / "features" / "*" / "feature_color_dim12_21.5fps")
    cfg = OmegaConf.create({"data": {
        "target": "specvqgan.data.datamodule.ConditionedSpectrogramDataModuleFromConfig",
        "params": {"batch_size": 2, "spec_dir_path": str(toy_root / "features" / "*" / "melspec_2s_22050hz"),
                   "mel_num": 80, "spec_len": 173, "spec_crop_len": 160, "random_crop": False,
                   "rgb_feats_dir_path": feats, "feat_depth": 12, "feat_len": 43, "feat_crop_len": 40,
                   "validation": {"target": "specvqgan.data.vas.VASSpecsCondOnFeatsValidation", "params": {
                       "specs_dataset_cfg": {"split_path": str(toy_root / "toy_valid.txt")},
                       "condition_dataset_cfg": {"split_path": str(toy_root / "toy_valid.txt")}}}}}})
    dataset = build_split(cfg, "validation")
    assert clip_names(dataset) == ["bell/bell_0001", "drum/drum_0001"]
    assert dataset[0]["image"].shape == (80, 160) and dataset[0]["feature"].shape == (40, 12)
    with pytest.raises(ValueError, match=r"data\.params\.test"):
        build_split(cfg, "test")


def test_reference_sampler_keys(repo_root, tiny_ckpt, toy_root, tmp_path):
    """``sampler.*`` keys of the reference (model_logdir, splits, samples_per_video, batch_size, top_k, now)
    on an authors'-style run folder: samples in <run>/samples_<now>/<Dataset>_<split>, equal to our form's."""
    import shutil

    run = tmp_path / "2021-06-09T15-17-18_toy_transformer"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_ckpt, run / "checkpoints" / "epoch_000003.ckpt")
    (run / "configs").mkdir()
    OmegaConf.save(tiny_config("/moved/toy"), run / "configs" / "2021-06-09T15-17-18-project.yaml")
    OmegaConf.save({"lightning": {"trainer": {"gpus": "0,"}}}, run / "configs" / "2021-06-09T15-17-18-lightning.yaml")
    res = subprocess.run([sys.executable, "scripts/sample_dataset.py", f"sampler.model_logdir={run}",
                          "sampler.splits=[validation, ]", "sampler.samples_per_video=2", "sampler.batch_size=3",
                          "sampler.top_k=8", "sampler.now=2021-06-14T10-43-53",
                          f"data.params.validation.params.data_root={toy_root}"],
                         cwd=repo_root, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root)))
    assert res.returncode == 0, res.stderr[-3000:]
    out = run / "samples_2021-06-14T10-43-53" / "Toy_validation"
    files = sorted(p.relative_to(out) for p in out.rglob("*_sample_*.npy"))
    assert files and all(str(f).endswith(("_sample_0.npy", "_sample_1.npy")) for f in files)
    ours = tmp_path / "ours"
    sample_dataset(SamplerOptions(ckpt=str(tiny_ckpt), out=str(ours), split="validation",
                                  overrides=(f"data.params.validation.params.data_root={toy_root}",),
                                  samples_per_video=2, batch_size=3, top_k=8, progress=False))
    assert files == sorted(p.relative_to(ours) for p in ours.rglob("*_sample_*.npy"))
    for f in files:
        assert np.array_equal(np.load(out / f), np.load(ours / f)), f


@pytest.mark.slow
def test_torchrun_two_processes_write_the_single_process_files(repo_root, tiny_ckpt, tmp_path):
    """``torchrun --nproc_per_node 2`` (CPU, each rank a shard from RANK/WORLD_SIZE) = one process, file for file."""
    args = ["--ckpt", tiny_ckpt, "--samples-per-video", 2, "--top-k", 8, "--seed", 3, "--device", "cpu"]
    single = run_cli(repo_root, *args, "--out", tmp_path / "one")
    assert single.returncode == 0, single.stderr[-3000:]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "scripts/sample_dataset.py", "--no-progress", *map(str, args), "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the two ranks print one JSON line each; their lines may interleave on the shared stdout
    shards = sorted(json.loads(obj)["shard"] for obj in re.findall(r"\{[^{}]*\}", proc.stdout))
    assert shards == ["0/2", "1/2"]
    one, two = tmp_path / "one", tmp_path / "two"
    names = sorted(p.relative_to(one).as_posix() for p in one.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(two).as_posix() for p in two.rglob("*") if p.is_file())
    assert len(names) == 5  # 2 videos x 2 samples + sampling.json
    for name in names:
        if name != "sampling.json":  # its 'out' differs
            assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_av_benchmark_folders_pair_by_name(repo_root, tiny_ckpt, toy_video, tmp_path):
    """--av-benchmark: flac waveforms per sample, the split's video muxed with each and its real sound, all
    named ``<class>__<id>`` so av-benchmark's --gt_audio / --pred_audio / --video folders pair; a clip
    without a video still gets its waveform."""
    import shutil

    import soundfile as sf

    from feature_extraction.media import probe

    videos, bench = tmp_path / "videos", tmp_path / "bench"
    (videos / "bell").mkdir(parents=True)
    shutil.copy(toy_video, videos / "bell" / "bell_0001.mp4")  # drum_0001 has no video
    proc = run_cli(repo_root, "--ckpt", tiny_ckpt, "--out", tmp_path / "samples", "--samples-per-video", 2,
                   "--top-k", 8, "--device", "cpu", "--av-benchmark", bench, "--videos", videos)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["av_benchmark"]["written"] == 4
    files = sorted(p.relative_to(bench).as_posix() for p in bench.rglob("*.*"))
    assert files == ["gt_audio/bell__bell_0001.flac",
                     *(f"pred_audio/sample_{k}/{n}.flac" for k in (0, 1) for n in ("bell__bell_0001", "drum__drum_0001")),
                     "video/sample_0/bell__bell_0001.mp4", "video/sample_1/bell__bell_0001.mp4"]
    pred, sr = sf.read(bench / "pred_audio/sample_0/bell__bell_0001.flac")
    gt, _ = sf.read(bench / "gt_audio/bell__bell_0001.flac")
    assert sr == 22050 and len(pred) == 160 * 256 and len(gt) == len(pred) and np.abs(gt).max() > 0.05
    mel = np.load(tmp_path / "samples" / "bell" / "bell_0001_sample_1.npy")
    assert len(sf.read(bench / "pred_audio/sample_1/bell__bell_0001.flac")[0]) == mel.shape[1] * 256
    info = probe(bench / "video/sample_1/bell__bell_0001.mp4")
    assert info.has_video and info.has_audio and abs(info.audio_duration - len(pred) / sr) < 0.05


def test_one_seed_gives_the_same_tokens_through_every_entry_point(tiny_ckpt, tmp_path, monkeypatch):
    """Seed 7: the dataset sampler (batches of 3 mixing clips), ``VideoToSound.compute`` on ``<video id>.mp4``
    (its condition = the dataset item: feature extraction is tested in test_generate) and ``sample_tokens``
    with the rows' seeds draw the same tokens for each clip; another seed draws others."""
    from specvqgan.dataset_sampling import build_split, clip_names, data_config, load_item
    from specvqgan.models.cond_transformer import Net2NetTransformer
    from specvqgan.pipeline import Plan, VideoToSound
    from specvqgan.sampling import row_seeds
    from specvqgan.video_condition import ConditionSpec
    from vocoder.inference import load_vocoder

    drawn = []
    generate = Net2NetTransformer.generate

    def spy(self, *args, **kwargs):
        out = generate(self, *args, **kwargs)
        drawn.append(out[0])
        return out

    monkeypatch.setattr(Net2NetTransformer, "generate", spy)
    sample_dataset(SamplerOptions(ckpt=str(tiny_ckpt), out=str(tmp_path / "s"), samples_per_video=2, batch_size=3,
                                  top_k=8, seed=7, device="cpu", progress=False))
    by_dataset = torch.cat(drawn)  # rows (bell, 0), (bell, 1), (drum, 0), (drum, 1)

    model = Net2NetTransformer.from_checkpoint(tiny_ckpt)
    dataset = build_split(data_config(tiny_ckpt), "validation")
    clips = clip_names(dataset)
    assert clips == ["bell/bell_0001", "drum/drum_0001"]
    spec = ConditionSpec("color", ("color",), 12, 2.0, 43, 40, 40)
    pipe = VideoToSound(model, load_vocoder(None), spec)
    H, W = model.shape.latent_rows, model.shape.latent_cols
    for i, clip in enumerate(clips):
        vid = clip.split("/")[1]
        batch = torch.utils.data.default_collate([load_item(dataset, i, clip, 7)])
        cond = model.get_input(model.cond_stage_key, batch)
        monkeypatch.setattr(pipe, "prepare", lambda video, *a: Plan(video, 2.0, 16 * W, W, None))
        monkeypatch.setattr(pipe, "condition", lambda plan, start, class_id: cond)
        sound = pipe.compute(tmp_path / "videos" / f"{vid}.mp4", samples=2, top_k=8, seed=7)
        direct = sample_tokens(model.transformer, cond, H * W, num_samples=2, top_k=8, seed=row_seeds(7, 2, [vid]))
        want = by_dataset[2 * i:2 * i + 2]
        assert torch.equal(torch.as_tensor(sound.tokens), want) and torch.equal(direct, want)
        assert not torch.equal(want[0], want[1])
        other = sample_tokens(model.transformer, cond, H * W, num_samples=2, top_k=8, seed=row_seeds(8, 2, [vid]))
        assert not torch.equal(other, want)
