"""Mel spectrogram -> waveform for inference: MelGAN, with Griffin-Lim behind the same interface.

Mel scale at this interface: **[0, 1]** (``specvqgan.audio.wav_to_mel``; the reference's
``VocoderMelGan.vocode`` receives ``(spec + 1) / 2``). The codebook decoder / transformer work in
[-1, 1]: pass ``input_range="-1,1"`` (or map ``(x + 1) / 2`` yourself). Output: float32 waveform at
22050 Hz with exactly ``T * 256`` samples for T mel frames.

    voc = MelGANVocoder.from_checkpoint("vocoder/logs/vggsound")   # folder with best_netG.pt + args.yml
    wav = voc.vocode(mel)            # (80, T) -> (T*256,);  (B, 80, T) -> (B, T*256)
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import yaml

from specvqgan.audio import HOP, N_MELS, SR, mel_to_wav
from specvqgan.checkpoint import read
from specvqgan.native import native_bf16
from vocoder.fast import FastGenerator, mixed_stages
from vocoder.modules import Generator

log = logging.getLogger(__name__)

REFERENCE_ARGS = {"n_mel_channels": 80, "ngf": 32, "n_residual_layers": 3}  # vocoder/logs/vggsound/args.yml
INPUT_RANGES = ("0,1", "-1,1")
BACKENDS = ("auto", "fast", "eager")
PRECISIONS = ("fp32", "bf16", "int8", "mixed")
#: "auto": the measured best quality/speed choice (docs/vocoder.md): "mixed" on the fast CPU backend of a CPU with
#: native bf16 (>= 40 dB SNR against fp32 on the golden weights, ~30 % faster), else "fp32"; the CLIs' and the
#: pipeline's default
AUTO_PRECISION = "auto"
WHAT = "vocoder checkpoint"


class _ArgsLoader(yaml.SafeLoader):
    """Safe loader for the reference ``args.yml`` (a ``yaml.dump`` of an ``argparse.Namespace``):
    python objects become plain mappings, ``pathlib`` paths become strings; nothing is executed."""


def _construct_object(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        parts = loader.construct_sequence(node, deep=True)
        return "/".join(str(p) for p in parts) if "Path" in suffix else parts
    return loader.construct_scalar(node)


_ArgsLoader.add_multi_constructor("tag:yaml.org,2002:python/", _construct_object)


def read_reference_args(path: str | Path) -> dict:
    """The generator arguments of a reference ``args.yml`` (n_mel_channels, ngf, n_residual_layers)."""
    path = Path(path)
    try:
        args = yaml.load(path.read_text(), Loader=_ArgsLoader)
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read vocoder args file {path}: {err}") from err
    if not isinstance(args, Mapping):
        raise ValueError(f"vocoder args file {path} holds no mapping of arguments")
    missing = [k for k in REFERENCE_ARGS if k not in args]
    if missing:
        raise ValueError(f"vocoder args file {path} lacks {missing}")
    return {k: int(args[k]) for k in REFERENCE_ARGS}


def load_generator(path: str | Path, trust: bool = False) -> Generator:
    """Build a :class:`Generator` from any supported checkpoint layout and load it strictly.

    * a folder with ``best_netG.pt`` (plain state_dict) + ``args.yml`` (the reference release);
    * a plain generator state_dict file (``model.*`` keys; paper-size args, or ``args.yml`` beside it);
    * our Lightning ``.ckpt`` or exported file (``generator.*`` keys + config).

    ``trust``: read the weights in full (``weights_only=False``; see :func:`specvqgan.checkpoint.read`).
    """
    path = Path(path)
    if path.is_dir():
        weights, args_file = path / "best_netG.pt", path / "args.yml"
        for f in (weights, args_file):
            if not f.is_file():
                raise FileNotFoundError(f"vocoder folder {path} lacks {f.name} (expected best_netG.pt + args.yml)")
        return _build(_gen_kwargs(read_reference_args(args_file)), read(weights, trust=trust, what=WHAT), weights)
    if not path.is_file():
        raise FileNotFoundError(f"vocoder checkpoint not found: {path}")
    ckpt = read(path, trust=trust, what=WHAT)
    if isinstance(ckpt, Mapping) and "state_dict" in ckpt:  # ours: Lightning .ckpt or exported file
        config = ckpt.get("config") or {}
        if isinstance(config, Mapping) and "model" in config:
            config = config["model"]
        params = dict((config or {}).get("params", {}) or {})
        sd = {k[len("generator."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("generator.")}
        if not sd:
            raise ValueError(f"{path} has no generator.* weights (is it a MelGAN checkpoint?)")
        return _build(_gen_kwargs({**REFERENCE_ARGS, **params}), sd, path)
    args_file = path.parent / "args.yml"
    args = read_reference_args(args_file) if args_file.is_file() else REFERENCE_ARGS
    return _build(_gen_kwargs(args), ckpt, path)


def _gen_kwargs(params: Mapping) -> dict:
    kwargs = {"input_size": int(params.get("n_mel_channels", 80)), "ngf": int(params.get("ngf", 32)),
              "n_residual_layers": int(params.get("n_residual_layers", 3))}
    if "ratios" in params:
        kwargs["ratios"] = [int(r) for r in params["ratios"]]
    return kwargs


def _build(kwargs: dict, state_dict: Any, path: Path) -> Generator:
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path} holds no generator state_dict")
    generator = Generator(**kwargs)
    try:
        generator.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path} does not match Generator({kwargs}): {err}") from err
    return generator.eval()


def _as_batch(mel: Any, input_range: str) -> tuple[torch.Tensor, bool]:
    """np/torch (80, T) or (B, 80, T) -> float tensor (B, 80, T) on the [0, 1] scale, and 'was single'."""
    if input_range not in INPUT_RANGES:
        raise ValueError(f"input_range must be one of {INPUT_RANGES}, got {input_range!r}")
    x = torch.as_tensor(np.asarray(mel) if not isinstance(mel, torch.Tensor) else mel).float()
    single = x.dim() == 2
    if single:
        x = x[None]
    if x.dim() != 3 or x.shape[1] != N_MELS or x.shape[-1] == 0:
        raise ValueError(f"expected a mel spectrogram ({N_MELS}, T) or (B, {N_MELS}, T) with T > 0, "
                         f"got shape {tuple(x.shape)}")
    if input_range == "-1,1":
        x = (x + 1.0) / 2.0
    elif x.numel() and float(x.min()) < -0.5:
        raise ValueError(f"mel values go down to {float(x.min()):.2f}: the vocoder takes the [0, 1] scale; "
                         f"for a [-1, 1] mel (codebook/transformer output) pass input_range='-1,1'")
    return x, single


def _return_like(wav: torch.Tensor, like: Any, single: bool):
    wav = wav[0] if single else wav
    return wav if isinstance(like, torch.Tensor) else wav.numpy()


class MelGANVocoder:
    """MelGAN inference: weight norm folded away, ``torch.inference_mode``, any length, fp32 or bf16.

    Args:
        generator: a trained :class:`Generator` (its weights are folded in a private copy).
        device: where to run. precision: ``"fp32"`` (matches the reference ~1e-6), ``"bf16"``
            (~2x faster on CPUs with AVX512-BF16/AMX; not exact: max abs error ~1e-3 on random weights,
            1e-2 on the golden weights and mel) or ``"int8"`` (CPU fast backend only: int8 GEMMs with
            per-chunk activation scales for the wide stages, bf16 elsewhere) or ``"mixed"`` (CPU fast
            backend only: :func:`vocoder.fast.mixed_stages`, bf16 GEMMs in the wide stages with fp32 shortcuts
            in the heaviest one, fp32 elsewhere; >= 40 dB SNR against fp32 on the golden weights); ``"auto"``: ``"mixed"`` where the fast backend runs on a CPU with native bf16
            (AVX512-BF16 / AMX), else ``"fp32"``.
            Speed and error of each: docs/vocoder.md.
        chunk_frames: vocode inputs longer than this in overlapping chunks (exact: each chunk carries
            ``CONTEXT_FRAMES`` of context on both sides, more than the generator's receptive field);
            bounds memory for long audio. ``None``: never chunk.
        backend: ``"fast"`` = :class:`vocoder.fast.FastGenerator` (time-major GEMMs, chunked stages; CPU
            only; same outputs), ``"eager"`` = the ``nn.Module``, ``"auto"`` = fast on CPU, eager elsewhere.
        fast_options: extra keyword arguments for :class:`~vocoder.fast.FastGenerator`
            (``chunk_bytes``, ``winograd_channels``).
    """

    CONTEXT_FRAMES = 16  # > receptive field of the paper generator (about +-7 frames; tests check exactness)
    sample_rate = SR

    def __init__(self, generator: Generator, device: str | torch.device = "cpu", precision: str = "fp32",
                 chunk_frames: int | None = 2048, backend: str = "auto", fast_options: Mapping | None = None):
        if precision not in PRECISIONS + (AUTO_PRECISION,):
            raise ValueError(f"precision must be {AUTO_PRECISION!r} or one of {PRECISIONS}, got {precision!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if generator.hop_length != HOP:
            raise ValueError(f"generator hop {generator.hop_length} != mel hop {HOP}")
        self.device = torch.device(device)
        if backend == "fast" and self.device.type != "cpu":
            raise ValueError(f"backend 'fast' runs on the CPU only, got device {self.device}")
        use_fast = backend == "fast" or (backend == "auto" and self.device.type == "cpu")
        if precision == AUTO_PRECISION:  # mixed needs native bf16 (emulated bf16 is slower than fp32)
            precision = "mixed" if use_fast and native_bf16("cpu") else "fp32"
        if precision in ("int8", "mixed") and not use_fast:
            raise ValueError(f"precision {precision!r} needs the fast CPU backend (backend 'fast' or 'auto' on the CPU)")
        gen = _folded_copy(generator)
        # int8: the mel stays fp32 here (FastGenerator casts it for its bf16 first conv)
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.generator = gen.to(self.device, self.dtype).eval()
        self.fast = None
        if use_fast:
            fast_dtype = torch.int8 if precision == "int8" else self.dtype
            options = mixed_stages(gen) if precision == "mixed" else {}
            if precision in ("mixed", "bf16"):  # Winograd only in fp32 GEMMs: bf16 ones gain nothing, lose ~0.5 dB
                options["winograd_channels"] = None
            self.fast = FastGenerator(gen, fast_dtype, **{**options, **dict(fast_options or {})})
        self.precision = precision
        self.chunk_frames = chunk_frames
        self.hop_length = HOP

    def _generate(self, x: torch.Tensor) -> torch.Tensor:
        """mel (B, 80, T) on the device in ``self.dtype`` -> wav (B, T * 256)."""
        return (self.fast or self.generator)(x)[:, 0]

    @classmethod
    def from_checkpoint(cls, path: str | Path, trust: bool = False, **kwargs) -> "MelGANVocoder":
        """From a reference folder (``best_netG.pt`` + ``args.yml``), a plain ``best_netG.pt``, our
        Lightning ``.ckpt`` or an exported ``{state_dict, config}`` file (``trust``: see
        :func:`load_generator`). kwargs: see the class."""
        return cls(load_generator(path, trust=trust), **kwargs)

    @torch.inference_mode()
    def vocode(self, mel: Any, input_range: str = "0,1"):
        """mel (80, T) or (B, 80, T), numpy or torch -> float32 wav (T * 256,) or (B, T * 256), same kind."""
        x, single = _as_batch(mel, input_range)
        n_frames = x.shape[-1]
        x = x.to(self.device, self.dtype)
        if n_frames < 4:  # the first reflection pad needs > 3 frames: extend by edge replication
            x = torch.cat([x, x[..., -1:].expand(-1, -1, 4 - n_frames)], dim=-1)
        if self.chunk_frames is None or x.shape[-1] <= self.chunk_frames:
            wav = self._generate(x)
        else:
            wav = self._chunked(x)
        wav = wav[:, : n_frames * HOP].float().cpu()
        return _return_like(wav, mel, single)

    def _chunked(self, x: torch.Tensor) -> torch.Tensor:
        """Chunks of ``chunk_frames`` frames with ``CONTEXT_FRAMES`` of real context each side."""
        n, ctx, step = x.shape[-1], self.CONTEXT_FRAMES, self.chunk_frames
        out = []
        for start in range(0, n, step):
            lo, hi = max(0, start - ctx), min(n, start + step + ctx)
            if hi - lo < 4:  # a tail shorter than the pad: widen to the left
                lo = max(0, hi - 4)
            wav = self._generate(x[..., lo:hi])
            out.append(wav[:, (start - lo) * HOP: (min(n, start + step) - lo) * HOP])
        return torch.cat(out, dim=-1)

    __call__ = vocode


def _folded_copy(generator: Generator) -> Generator:
    """A copy of ``generator`` with weight norm folded into plain convs (same outputs, ~1e-7)."""
    return copy.deepcopy(generator).remove_weight_norm()


class GriffinLimVocoder:
    """Griffin-Lim fallback with the :class:`MelGANVocoder` interface (``specvqgan.audio.mel_to_wav``).

    Needs no weights; audibly worse (phasey). ``n_iter`` Griffin-Lim iterations per clip.
    """

    sample_rate = SR
    hop_length = HOP

    def __init__(self, n_iter: int = 32, seed: int = 0):
        self.n_iter, self.seed = n_iter, seed

    def vocode(self, mel: Any, input_range: str = "0,1"):
        """mel (80, T) or (B, 80, T) -> float32 wav (T * 256,) or (B, T * 256), same kind as the input."""
        x, single = _as_batch(mel, input_range)
        wav = torch.from_numpy(np.stack([mel_to_wav(m.numpy(), n_iter=self.n_iter, seed=self.seed)
                                         for m in x.clamp(0, 1)]))
        return _return_like(wav, mel, single)

    __call__ = vocode


def load_vocoder(ckpt: str | Path | None = None, trust: bool = False, **kwargs):
    """MelGAN from ``ckpt`` when given (``trust``: see :func:`load_generator`), else the Griffin-Lim
    fallback. kwargs go to the vocoder."""
    if ckpt is None:
        return GriffinLimVocoder(**kwargs)
    return MelGANVocoder.from_checkpoint(ckpt, trust=trust, **kwargs)

