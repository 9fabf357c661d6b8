"""Video -> sound: the Python API under ``scripts/generate.py``, the notebook and the demo app.

    pipe = VideoToSound.from_checkpoints(transformer="logs/<run>/checkpoints/last.ckpt", vocoder=None)
    sound = pipe.compute("in.mp4", samples=3, top_k=None, temperature=1.0, seed=0)  # arrays, nothing written
    sound.wavs   # (3, T * 256) float32 at 22050 Hz; sound.mels (3, 80, T) in [0, 1]
    res = write_sound(sound, "out/")   # specvqgan.outputs: out/in_sample_<k>.{wav,npy,png,mp4}
    res = pipe.generate("in.mp4", "out/", samples=3)   # the same two steps in one call

Steps (DESIGN.md section 1): the visual features the transformer was trained with are extracted from
the video (:func:`feature_extraction.extract.extract_visual`, RegNet recipe: 21.5 fps, looped when
shorter than the trained clip), cropped and resampled as the dataset does (:mod:`specvqgan.data.transforms`,
see :mod:`specvqgan.video_condition`); the GPT samples codebook tokens with the KV cache; the codebook decodes
them to a mel in [-1, 1]; the vocoder (MelGAN, else Griffin-Lim) turns the [0, 1] mel into 22050 Hz audio.

Length: the output covers the requested duration (default: the whole video): T = round(seconds * 22050)
// 256 mel frames, generated as ceil(T / 16) latent columns (at least the trained width W) and trimmed to
T. More than W columns use the sliding window of :func:`specvqgan.sampling.sample_long`, each window
conditioned on the features under it. A video shorter than the trained clip is looped to the trained
length for its features, and the sound is trimmed to the video's length.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from specvqgan.audio import HOP, SR
from specvqgan.checks import require_finite
from specvqgan.native import native_bf16
from specvqgan.outputs import GenerationResult, write_sound
from specvqgan.sampling import row_seeds
from specvqgan.shapes import FEAT_FPS, LATENT_DOWNSAMPLE
from specvqgan.video_condition import ConditionSpec, GenerationError, used_rows, window_features

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
DECODER_PRECISIONS = ("fp32", "bf16")
__all__ = ["VideoToSound", "GeneratedSound", "GenerationResult", "GenerationError", "ConditionSpec", "Plan"]


@dataclass
class GeneratedSound:
    """What :meth:`VideoToSound.compute` made for one video (``n`` samples, ``T`` mel frames); nothing on disk.

    Attributes:
        video: the input. video_seconds: its duration (None if the container does not say).
        duration: seconds generated, T * 256 / 22050. sample_rate: of ``wavs`` (22050).
        mels: (n, 80, T) float32 in [0, 1]. wavs: (n, T * 256) float32.
        tokens: (n, H * total_cols) int64 codebook indices, column-major (trimmed to T only in the mel).
        total_cols: latent columns generated, max(W, ceil(T / 16)).
        features: (N, D) float32 visual features at 21.5 fps the model was conditioned on (rows the windows
            do not read stay zero; uniform noise for ``random_features``), None for class-only models.
        class_id: the class condition (class-conditioned models), else None. random_features: the control.
        seconds: wall time per stage ("features", "tokens" (the GPT), "decoder" (codebook), "vocoder").
    """

    video: Path
    video_seconds: Optional[float]
    duration: float
    mels: np.ndarray
    wavs: np.ndarray
    tokens: np.ndarray
    total_cols: int
    features: Optional[np.ndarray] = None
    class_id: Optional[int] = None
    random_features: bool = False
    sample_rate: int = SR
    seconds: dict = field(default_factory=dict)

    @property
    def loop_video(self) -> bool:
        """The sound is longer than the video (its mp4 repeats the video)."""
        return self.video_seconds is not None and self.duration > self.video_seconds + 0.05


class VideoToSound:
    """A loaded transformer (+ codebook) and vocoder that turn videos into sound.

    Build it with :meth:`from_checkpoints`. ``spec`` (:class:`ConditionSpec`) says
    what the model was trained with: feature type, clip duration, feature crop/resampling, class.
    """

    def __init__(self, model, vocoder, spec: ConditionSpec, *, device: str = "cpu", precision: str = "fp32",
                 feature_weights: Optional[str] = None, random_feature_weights: bool = False,
                 checkpoint: str = ""):
        from feature_extraction.visual import PRETRAINED
        from specvqgan.sampling import prepare_gpt

        if precision not in PRECISIONS:
            raise GenerationError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "int8" and torch.device(device).type != "cpu":
            raise GenerationError("precision 'int8' (dynamic quantization) runs on the CPU only; use bf16 on GPU")
        if spec.feature in PRETRAINED and feature_weights is None and not random_feature_weights:
            raise GenerationError(f"{checkpoint}: the model was trained with {spec.feature!r} visual features; "
                                  f"pass feature_weights=<the pretrained weight file> (--feature-weights)")
        self.model = model.to(device).eval()
        bundled = getattr(model, "precision", None)            # a bundle's GPT is already prepared
        self.gpt = self.model.transformer if bundled == precision else prepare_gpt(self.model.transformer, precision)
        self.vocoder, self.spec = vocoder, spec
        self.device, self.precision, self.checkpoint = str(device), precision, str(checkpoint)
        self.feature_weights, self.random_feature_weights = feature_weights, random_feature_weights
        self.allow_truncated = False    # True: pad a truncated video stream (counted warning), not an error
        self.H, self.W = self.model.shape.latent_rows, self.model.shape.latent_cols   # the model's latent grid
        self.decoder_precision = "auto"

    @classmethod
    def from_checkpoints(cls, transformer: str | Path, vocoder: str | Path | None = None, *, device: str = "cpu",
                         precision: Optional[str] = None, feature_weights: str | Path | None = None,
                         feature: Optional[str] = None, random_feature_weights: bool = False,
                         vocoder_precision: str = "auto", trust: bool = False) -> "VideoToSound":
        """Load a transformer checkpoint (``train.py`` ``.ckpt``, an exported ``{state_dict, config}`` file, the
        authors' run layout) or an inference bundle (``python -m specvqgan.export``, docs/export.md), and a
        vocoder (MelGAN checkpoint in any layout ``vocoder.inference`` reads, or None for Griffin-Lim).

        Args:
            device: torch device for everything ("cpu", "cuda", "cuda:1").
            precision: GPT inference copy, "fp32" | "bf16" | "int8" (:func:`specvqgan.sampling.prepare_gpt`);
                None: a bundle's own precision, fp32 for a checkpoint. A bundle runs at its own precision only.
            feature_weights: weight file of the visual network the model was trained with (ResNet-50 /
                BN-Inception); not needed for the toy colour features.
            feature: visual feature name when the checkpoint does not tell (exported files without a data
                config and 2048-d features: "resnet50" or "bninception"); a bundle records it.
            random_feature_weights: allow a pretrained feature network without weights (tests only).
            vocoder_precision: MelGAN precision: "auto" (default: "mixed" on CPU, >= 40 dB SNR vs fp32, else
                "fp32"), "fp32", "mixed", "bf16" or "int8" (:class:`vocoder.MelGANVocoder`, docs/vocoder.md).
            trust: read the transformer and vocoder files in full (``weights_only=False``; they can run code):
                only for files you trust (docs/checkpoints.md).
        Raises:
            FileNotFoundError / GenerationError naming the file: missing, unreadable, not a transformer, a
            training config the pipeline cannot follow, or a bundle of another precision.
        """
        from specvqgan.export import load_transformer
        from vocoder.inference import load_vocoder

        transformer = Path(transformer)
        model, spec = load_transformer(transformer, feature=feature, trust=trust, device=device)
        bundled = getattr(model, "precision", None)          # an InferenceModel: prepared for one precision
        if bundled is not None and precision not in (None, bundled):
            raise GenerationError(f"{transformer}: an inference bundle prepared for {bundled}; precision "
                                  f"{precision!r} needs a bundle exported with --precision {precision} or the "
                                  f"checkpoint")
        precision = precision or bundled or "fp32"
        if vocoder is not None and not Path(vocoder).exists():
            raise FileNotFoundError(f"vocoder checkpoint not found: {vocoder}")
        voc = (load_vocoder(vocoder, device=device, precision=vocoder_precision, trust=trust) if vocoder
               else load_vocoder(None))
        log.info("loaded %s: %s", transformer, spec.describe())
        return cls(model, voc, spec, device=device, precision=precision,
                   feature_weights=None if feature_weights is None else str(feature_weights),
                   random_feature_weights=random_feature_weights, checkpoint=str(transformer))

    @classmethod
    def from_pretrained(cls, name: str, *, download: bool = False, cache_dir: str | Path | None = None,
                        base_url: Optional[str] = None, allow_http: bool = False, **kwargs) -> "VideoToSound":
        """The authors' transformer release ``name`` (or alias, e.g. ``"vggsound"``; ``python -m
        specvqgan.download --list``) with its MelGAN and feature network from the download cache
        (:func:`specvqgan.pretrained.resolve_model`; ``download=True`` fetches what is missing, otherwise a
        missing file raises ``MissingRelease`` naming the download command). kwargs: as :meth:`from_checkpoints`.
        A model trained on random features (the paper's "no feats" rows) needs ``generate(random_features=True)``."""
        from specvqgan.pretrained import resolve_model

        found = resolve_model(name, cache_dir, download=download, base_url=base_url, allow_http=allow_http)
        return cls.from_checkpoints(found.transformer, found.vocoder, feature_weights=found.feature_weights,
                                    random_feature_weights=found.random_features, **kwargs)

    # ------------------------------------------------------------------ features and conditions
    def video_features(self, video: str | Path, duration: float, info=None, rows=None) -> np.ndarray:
        """Visual features of ``video`` for ``duration`` seconds (looped past its end) -> (round(21.5 *
        duration), D) float32, the extractor's streams concatenated in the dataset's order (RGB, flow).
        ``info``: the video's :func:`feature_extraction.media.probe` result, if already known.
        ``rows``: compute only these rows (sorted, unique; see :func:`specvqgan.video_condition.used_rows`):
        the others stay zero, and only the frames behind ``rows`` are decoded and embedded."""
        from feature_extraction.extract import ExtractConfig, extract_visual

        cfg = ExtractConfig(duration=duration, feature=self.spec.feature, weights=self.feature_weights,
                            random_weights=self.random_feature_weights, device=self.device,
                            allow_truncated=self.allow_truncated)
        arrays = extract_visual(video, cfg, info, rows)
        feats = np.concatenate([arrays[f"feature_{s}"] for s in self.spec.streams], axis=1).astype(np.float32)
        if rows is None:
            return feats
        full = np.zeros((int(round(duration * FEAT_FPS)), feats.shape[1]), np.float32)
        full[rows] = feats
        return full

    def prepare(self, video: str | Path, duration: Optional[float] = None, random_features: bool = False,
                seed: Optional[int] = 0) -> "Plan":
        """Probe ``video``, size the output and extract its features (see :class:`Plan`)."""
        from feature_extraction.media import MediaError, probe

        video = Path(video)
        info = probe(video)
        if not info.has_video:
            raise MediaError(f"{video}: no video stream")
        length = duration if duration is not None else info.duration
        if length is None or length <= 0:
            raise GenerationError(f"{video}: cannot tell the video's duration; pass duration=<seconds>")
        n_frames = int(round(length * SR)) // HOP
        if n_frames < 1:
            raise GenerationError(f"{video}: duration {length:g} s is shorter than one mel frame")
        total_cols = max(self.W, math.ceil(n_frames / LATENT_DOWNSAMPLE))
        feats = None
        if self.spec.feature is not None:
            seconds = max(self.spec.duration, length, self.spec.rows_needed(total_cols, self.W) / FEAT_FPS)
            n_rows = int(round(seconds * FEAT_FPS))
            if random_features:   # the "no features" control: nothing to extract
                feats = np.random.default_rng(seed).random((n_rows, self.spec.feat_depth), dtype=np.float32)
            else:                 # only the rows the windows read (5 of 215 for a 5-feature 10 s model)
                feats = self.video_features(video, seconds, info, used_rows(self.spec, total_cols, self.W, n_rows))
        return Plan(video, info.duration, n_frames, total_cols, feats)

    def condition(self, plan: "Plan", start_col: int = 0, class_id: Optional[int] = None):
        """The model's condition (batch of 1, as ``Net2NetTransformer.get_input`` makes it) for the window
        whose first latent column is ``start_col``: features (1, D, n_feats) and/or the class (1, 1)."""
        batch = {}
        if plan.feats is not None:
            batch["feature"] = torch.from_numpy(window_features(plan.feats, self.spec, start_col))[None]
        if self.spec.needs_class:
            batch["target"] = torch.tensor([int(class_id)])
        return self.model.get_input(self.model.cond_stage_key, batch)

    # ------------------------------------------------------------------ codebook decoder
    @property
    def decoder_precision(self) -> str:
        """The codebook decoder's precision, "fp32" or "bf16" (bf16: autocast, channels-last, ~4x faster on a
        CPU with AMX; mel error measured in docs/benchmarks.md). Set "auto" (the default) for bf16 when the
        GPT runs in reduced precision and the device computes bf16 natively, else fp32."""
        return self._decoder_precision

    @decoder_precision.setter
    def decoder_precision(self, value: str) -> None:
        if value not in ("auto", *DECODER_PRECISIONS):
            raise GenerationError(f"decoder precision must be 'auto' or one of {DECODER_PRECISIONS}, got {value!r}")
        if value == "auto":
            value = "bf16" if self.precision != "fp32" and native_bf16(self.device) else "fp32"
        # bf16: convolutions in channels-last run oneDNN's bf16 kernels (the weights stay fp32)
        layout = torch.channels_last if value == "bf16" else torch.contiguous_format
        self.model.first_stage_model.decoder.to(memory_format=layout)
        self._decoder_precision = value

    def decode(self, tokens: torch.Tensor, total_cols: int) -> torch.Tensor:
        """Codebook indices (n, H * total_cols), column-major -> mel (n, 1, 80, 16 * total_cols) float32 in
        [-1, 1], in :attr:`decoder_precision`."""
        e_dim = self.model.first_stage_model.quantize.embedding.weight.shape[1]
        zshape = (tokens.shape[0], e_dim, self.H, total_cols)
        if self.decoder_precision == "fp32":
            return self.model.decode_to_img(tokens, zshape)
        with torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16):
            return self.model.decode_to_img(tokens, zshape).float()

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def compute(self, video: str | Path, *, samples: int = 3, top_k: Optional[int] = None, temperature: float = 1.0,
                top_p: Optional[float] = None, seed: Optional[int] = 0, duration: Optional[float] = None,
                random_features: bool = False, class_id: Optional[int] = None, progress: bool = False,
                window_hop: int = 1, guidance_scale: float = 1.0) -> GeneratedSound:
        """Generate ``samples`` soundtracks for ``video`` in memory (nothing is written; see
        :func:`specvqgan.outputs.write_sound` for the files).

        Args:
            samples: soundtracks, drawn in one batch. top_k / top_p / temperature: token choice.
            seed: reproducibility: sample k is seeded by (seed, the video's file stem, k), as the dataset
                sampler seeds a clip's samples (same seed, same tokens); None: torch's global RNG.
            duration: seconds to generate (default: the whole video); past the trained clip length the
                sliding window runs, past the video's end the video is looped.
            random_features: control: the visual features become uniform [0, 1) noise of the same shape
                (the datasets' "no features" mode), seeded by ``seed``.
            class_id: class index, required by class-conditioned models.
            window_hop: see ``sampling.window_start``.
            guidance_scale: classifier-free guidance (1: off; > 1 follows the video more closely, for models
                trained with ``p_uncond > 0``; docs/guidance.md).
        Returns:
            :class:`GeneratedSound`: mels (n, 80, T), wavs (n, T * 256), tokens, condition, timings.
        Raises:
            MediaError (missing / corrupt video, no video stream, shorter than 1 s) or GenerationError,
            naming the file.
        """
        video = Path(video)
        if samples < 1:
            raise GenerationError(f"samples must be >= 1, got {samples}")
        if self.spec.needs_class and class_id is None:
            raise GenerationError(f"{self.checkpoint}: the model is class-conditioned; pass class_id=<index> "
                                  f"(--class-id) to generate for {video}")
        if guidance_scale != 1 and not self.model.transformer.has_null_condition:
            raise GenerationError(f"{self.checkpoint}: guidance_scale={guidance_scale} needs a model trained with "
                                  f"p_uncond > 0 (docs/guidance.md); this one has no null condition")
        if not guidance_scale >= 0:
            raise GenerationError(f"guidance_scale must be >= 0, got {guidance_scale}")
        times, t0 = {}, time.perf_counter()
        plan = self.prepare(video, duration, random_features, seed)
        times["features"], t0 = time.perf_counter() - t0, time.perf_counter()
        cond = (lambda s: self.condition(plan, s, class_id)) if plan.total_cols > self.W else \
            self.condition(plan, 0, class_id)
        tokens, _ = self.model.generate(cond, num_samples=samples, total_cols=plan.total_cols, decode=False,
                                        temperature=temperature, top_k=top_k, top_p=top_p, gpt=self.gpt,
                                        seed=None if seed is None else row_seeds(seed, samples, [Path(video).stem]),
                                        progress=progress, window_hop=window_hop, guidance_scale=guidance_scale)
        times["tokens"], t0 = time.perf_counter() - t0, time.perf_counter()
        mel = self.decode(tokens, plan.total_cols)
        mels = ((mel[:, 0, :, :plan.n_frames] + 1) / 2).clamp(0, 1).cpu().numpy()  # (n, 80, T) in [0, 1]
        require_finite(mels, str(video), "generated mel values")
        times["decoder"], t0 = time.perf_counter() - t0, time.perf_counter()
        wavs = np.asarray(self.vocoder.vocode(mels), dtype=np.float32).reshape(samples, -1)  # (n, T * 256)
        require_finite(wavs, str(video), "vocoder waveform samples")
        times["vocoder"] = time.perf_counter() - t0
        return GeneratedSound(video=video, video_seconds=plan.video_seconds, duration=plan.n_frames * HOP / SR,
                              mels=mels, wavs=wavs, tokens=tokens.cpu().numpy(), total_cols=plan.total_cols,
                              features=plan.feats, class_id=class_id if self.spec.needs_class else None,
                              random_features=random_features, seconds=times)

    def generate(self, video: str | Path, out_dir: str | Path, *, write_mp4: bool = True, **kwargs) -> GenerationResult:
        """:meth:`compute` then :func:`~specvqgan.outputs.write_sound`: the soundtracks of ``video`` written to
        ``<out_dir>/<video stem>_sample_<k>.{wav,npy,png,mp4}`` (no .mp4 without ``write_mp4``).
        kwargs: as :meth:`compute`. Returns the :class:`~specvqgan.outputs.GenerationResult` (paths + sound)."""
        return write_sound(self.compute(video, **kwargs), out_dir, mp4=write_mp4)


@dataclass
class Plan:
    """One video prepared for generation.

    Attributes:
        video: the input. video_seconds: its duration (None if the container does not say).
        n_frames: T, mel frames of the output (round(seconds * 22050) // 256).
        total_cols: latent columns generated, max(W, ceil(T / 16)) (the mel is trimmed to T).
        feats: (N, D) visual features at 21.5 fps covering every window (None for class-only models).
    """

    video: Path
    video_seconds: Optional[float]
    n_frames: int
    total_cols: int
    feats: Optional[np.ndarray]
