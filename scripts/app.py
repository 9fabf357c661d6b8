"""Demo app (Gradio): pick or upload a video, get it back with sound generated from its frames.

    python scripts/app.py --transformer demo/models/transformer.ckpt [--vocoder MELGAN.ckpt] \
        [--examples data/toy] [--host 127.0.0.1] [--port 7860] [--out DIR] [--max-seconds 30] \
        [--max-upload-mb 200] [--keep-minutes 60]
    python scripts/app.py --model vggsound [--download]     # a released model by name (docs/own_data.md)

then open http://127.0.0.1:7860. A thin UI over :class:`specvqgan.pipeline.VideoToSound` (all the work is
there: ``compute`` makes the sound, ``specvqgan.outputs.write_sound`` the files): sliders for top-k,
temperature, the number of samples and the seed; outputs are the videos with the generated sound muxed in
and their spectrograms; errors (a corrupt upload ...) show in the page.
Nothing leaves the machine: analytics are off, no share link, and the page needs no CDN. The same call is
open to scripts as the API endpoint ``/generate``: ``gradio_client.Client(url).predict(handle_file(video),
top_k, temperature, samples, seed, random_features[, guidance_scale], api_name="/generate")``
(``guidance_scale`` only for models trained with ``p_uncond > 0``, docs/guidance.md).

Limits (docs/robustness.md): uploads over ``--max-upload-mb`` are refused, sound is made for the first
``--max-seconds`` of a video, each request's folder (and Gradio's copies) is deleted ``--keep-minutes``
after it was made, messages carry file names but no server paths, and only the generated files and the
example videos themselves are served.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import gradio as gr  # noqa: E402

from specvqgan.video_files import find_videos  # noqa: E402
from feature_extraction.media import probe  # noqa: E402
from specvqgan.checkpoint import add_trust_argument  # noqa: E402
from specvqgan.data.clips import read_split  # noqa: E402
from specvqgan.outputs import write_sound  # noqa: E402
from specvqgan.pipeline import VideoToSound  # noqa: E402

log = logging.getLogger("specvqgan.app")
MAX_EXAMPLES = 8

INTRO = """# SpecVQGAN: sound for a silent video
The model reads the video's visual features, samples a spectrogram codebook token by token with a
transformer conditioned on them (Iashin & Rahtu, BMVC 2021, sec. 3.2), decodes the spectrogram and turns it
into a waveform with the vocoder (MelGAN, or Griffin-Lim when none is loaded). Videos longer than the
trained clip length are generated with a sliding window. Upload a video or pick an example below."""


def find_examples(root: str | Path | None, limit: int = MAX_EXAMPLES) -> list[Path]:
    """Example videos: a toy dataset root (``toy_valid.txt`` + ``videos/``) gives its validation clips,
    any other folder its video files; at most ``limit``, taking one per sub-folder (class) in turn.
    ``None`` -> none."""
    if root is None:
        return []
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--examples: folder not found: {root}")
    split = root / "toy_valid.txt"
    if split.is_file():
        videos = [root / "videos" / f"{row}.mp4" for row in read_split(split)]
        videos = [v for v in videos if v.is_file()]
    else:
        videos = find_videos(root)
    if not videos:
        raise FileNotFoundError(f"--examples: no videos in {root}")
    by_folder: dict[Path, list[Path]] = {}
    for v in videos:
        by_folder.setdefault(v.parent, []).append(v)
    mixed = [v for row in itertools.zip_longest(*by_folder.values()) for v in row if v is not None]
    return mixed[:limit]          # one per folder (class) first


def no_paths(msg: str) -> str:
    """``msg`` with the folders of absolute paths removed (``/srv/x/up.mp4: ...`` -> ``up.mp4: ...``)."""
    return re.sub(r"/(?:[^\s/'\"`()]+/)+", "", msg)


def remove_old_runs(out_root: Path, keep_seconds: float) -> None:
    """Delete the per-request ``run_*`` folders under ``out_root`` older than ``keep_seconds``."""
    limit = time.time() - keep_seconds
    for run in out_root.glob("run_*"):
        try:
            if run.is_dir() and run.stat().st_mtime < limit:
                shutil.rmtree(run, ignore_errors=True)
        except FileNotFoundError:   # removed by a concurrent request
            pass


def make_handler(pipe: VideoToSound, out_root: Path, max_seconds: float | None = None,
                 keep_seconds: float = 3600.0):
    """The button's callback: (video path, top-k, temperature, samples, seed, random features) ->
    (gallery of mp4s, gallery of spectrogram pngs, a markdown summary). Videos longer than ``max_seconds``
    (or of unknown length) get sound for their first ``max_seconds`` only. Each request writes to its own
    ``out_root/run_*`` folder; those older than ``keep_seconds`` are deleted at every request. Errors become
    ``gr.Error`` naming the file, never a server path."""

    def generate(video, top_k, temperature, samples, seed, random_features, guidance_scale=1.0,
                 progress=gr.Progress(track_tqdm=True)):  # the page shows the pipeline's tqdm bars
        if not video:
            raise gr.Error("Upload a video or pick an example first.")
        remove_old_runs(out_root, keep_seconds)
        name = Path(video).name
        out_dir = Path(tempfile.mkdtemp(prefix="run_", dir=out_root))
        start = time.perf_counter()
        try:
            length = probe(video).duration
            duration = max_seconds if max_seconds and (length is None or length > max_seconds) else None
            sound = pipe.compute(video, samples=int(samples), top_k=int(top_k) or None,
                                 temperature=float(temperature), seed=int(seed), duration=duration,
                                 random_features=bool(random_features), progress=True,
                                 guidance_scale=float(guidance_scale))
            res = write_sound(sound, out_dir)
        except Exception as err:  # shown in the page; the traceback goes to the server log
            log.exception("generation failed for %s", video)
            msg = no_paths(str(err)).removeprefix(f"{name}: ")       # not the upload's temp path
            raise gr.Error(f"Cannot generate sound for {name}: {msg}") from err
        seconds = time.perf_counter() - start
        videos = [(str(p), f"sample {k}") for k, p in enumerate(res.mp4_paths)]
        images = [(str(p), f"sample {k}") for k, p in enumerate(res.png_paths)]
        cut = f" (the first {res.duration:.0f} s of {length or 0:.0f} s)" if duration else ""
        summary = (f"**{name}**: {len(res.mp4_paths)} sample(s) of {res.duration:.2f} s{cut} in {seconds:.1f} s "
                   f"(top-k {int(top_k) or 'off'}, temperature {float(temperature):g}, seed {int(seed)}"
                   f"{', random visual features' if random_features else ''}"
                   f"{f', guidance {float(guidance_scale):g}' if float(guidance_scale) != 1 else ''}).")
        return videos, images, summary

    return generate


def build_app(pipe: VideoToSound, examples: list[Path], out_root: Path,
              max_seconds: float | None = None, keep_seconds: float = 3600.0) -> gr.Blocks:
    """The Blocks UI; the generate button is also the API endpoint ``/generate``. Gradio's own copies of
    uploads and outputs are deleted after ``keep_seconds`` as well."""
    every = max(60, int(keep_seconds // 4))
    with gr.Blocks(title="SpecVQGAN demo", delete_cache=(every, int(keep_seconds))) as app:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Input video", sources=["upload"], height=320)
                top_k = gr.Slider(0, 1024, value=0, step=1, label="top-k (0 = off: sample from all codes)")
                temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature")
                samples = gr.Slider(1, 6, value=3, step=1, label="samples")
                seed = gr.Number(value=0, precision=0, label="seed")
                random_features = gr.Checkbox(False, label="control: replace the visual features by noise")
                inputs = [video, top_k, temperature, samples, seed, random_features]
                if pipe.model.transformer.has_null_condition:  # trained with p_uncond: docs/guidance.md
                    inputs.append(gr.Slider(1.0, 5.0, value=1.0, step=0.5,
                                            label="guidance scale (1 = off; higher follows the video more)"))
                button = gr.Button("Generate sound", variant="primary")
            with gr.Column():
                videos = gr.Gallery(label="Videos with generated sound", columns=3, object_fit="contain",
                                    height="auto")
                images = gr.Gallery(label="Spectrograms (low frequencies at the bottom)", columns=3,
                                    object_fit="contain", height="auto")
                summary = gr.Markdown(label="summary")
        if examples:
            gr.Examples([[str(p)] for p in examples], inputs=[video], label="Examples",
                        example_labels=[f"{p.parent.name}/{p.name}" for p in examples])
        button.click(make_handler(pipe, out_root, max_seconds, keep_seconds),
                     inputs=inputs,
                     outputs=[videos, images, summary], api_name="generate")
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--transformer", help="transformer checkpoint (train.py .ckpt or exported)")
    which.add_argument("--model", help="a released model by name or alias (python -m specvqgan.download --list)")
    parser.add_argument("--download", action="store_true", help="with --model: fetch what the cache lacks")
    parser.add_argument("--vocoder", default=None, help="MelGAN checkpoint (default: Griffin-Lim)")
    parser.add_argument("--feature-weights", default=None,
                        help="weights of the visual feature net the model was trained with (not for toy models)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"))
    parser.add_argument("--examples", default=None,
                        help="a toy dataset root (its validation clips) or a folder of videos")
    parser.add_argument("--out", default=None, help="where generated files go (default: a new temporary folder)")
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="sound for at most this many seconds of an upload (0 = the whole video)")
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="refuse larger uploads")
    parser.add_argument("--keep-minutes", type=float, default=60.0,
                        help="delete each request's files this long after it was made")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    add_trust_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")

    try:
        examples = find_examples(args.examples)
        if args.model:
            pipe = VideoToSound.from_pretrained(args.model, download=args.download, device=args.device,
                                                precision=args.precision, trust=args.trust_checkpoint)
        else:
            pipe = VideoToSound.from_checkpoints(transformer=args.transformer, vocoder=args.vocoder,
                                                 device=args.device, precision=args.precision,
                                                 feature_weights=args.feature_weights, trust=args.trust_checkpoint)
    except (FileNotFoundError, ValueError, RuntimeError, KeyError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    if args.max_upload_mb <= 0 or args.keep_minutes <= 0 or args.max_seconds < 0:
        print("error: --max-upload-mb and --keep-minutes must be > 0, --max-seconds >= 0", file=sys.stderr)
        return 2
    # a folder of its own (even inside --out .): only what the app wrote, and the example files, are served
    parent = Path(args.out) if args.out else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    out_root = Path(tempfile.mkdtemp(prefix="specvqgan_app_", dir=parent)).resolve()
    allowed = [str(out_root)] + [str(p.resolve()) for p in examples]
    print(f"serving on http://{args.host}:{args.port} (outputs in {out_root})", flush=True)
    app = build_app(pipe, examples, out_root, args.max_seconds, args.keep_minutes * 60)
    app.launch(server_name=args.host, server_port=args.port, share=False, allowed_paths=allowed, show_error=True,
               footer_links=["api"], max_file_size=f"{args.max_upload_mb:g}mb")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
