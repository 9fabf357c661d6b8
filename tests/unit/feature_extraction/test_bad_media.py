"""Odd media made with the imageio-ffmpeg binary: extreme aspect ratio, truncated file, long low-resolution
video, playlists, ':' in a name, time-outs. Decoding stays bounded, truncation is an error naming the file
(or a counted warning when allowed), nothing but local files of known containers is opened."""
import logging
import subprocess
import tracemalloc

import numpy as np
import pytest

from feature_extraction import extract, media
from feature_extraction.extract import ExtractConfig, extract_folder, extract_visual
from feature_extraction.encode import write_mp4
from feature_extraction.media import MediaError, iter_frames, probe, read_audio, read_frames
from feature_extraction.visual import ResNet50Features

SR = 22050


def _ffmpeg(*args):
    subprocess.run([media.ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


def _lavfi_video(path, size, seconds, rate=25, audio=True):
    extra = ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}:r={SR}"] if audio else []
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=s={size}:d={seconds}:r={rate}", *extra, "-c:v", "libx264",
            "-preset", "ultrafast", "-pix_fmt", "yuv420p", *(["-c:a", "aac"] if audio else []),
            "-movflags", "+faststart", path)
    return path


@pytest.fixture(scope="module")
def truncated(tmp_path_factory):
    """A 4 s faststart mp4 (index first) cut at 60 %: the container still says 4 s."""
    d = tmp_path_factory.mktemp("trunc")
    full = _lavfi_video(d / "full.mp4", "64x48", 4)
    data = full.read_bytes()
    (d / "cut.mp4").write_bytes(data[:int(len(data) * 0.6)])
    return d / "cut.mp4"


def test_truncated_file_is_an_error_naming_it(truncated, caplog):
    assert probe(truncated).duration == pytest.approx(4.0, abs=0.1)
    with pytest.raises(MediaError, match=r"cut.mp4: the video stream ended early: \d+ of 86 frames"):
        read_frames(truncated, 4.0, 21.5, (8, 8))
    with pytest.raises(MediaError, match=r"cut.mp4: the audio stream ended early: \d+ of 88200 samples"):
        read_audio(truncated, 4.0, SR)
    with pytest.raises(MediaError, match="cut.mp4: the video stream ended early"):   # looping is no cover-up
        read_frames(truncated, 6.0, 21.5, (8, 8), loop=True)
    with caplog.at_level(logging.WARNING):
        frames = read_frames(truncated, 4.0, 21.5, (8, 8), allow_truncated=True)
    assert frames.shape == (86, 8, 8, 3) and "of 86 frames decoded" in caplog.text


def test_truncated_file_fails_extraction_unless_allowed(truncated, tmp_path):
    res = extract_folder(truncated.parent, tmp_path / "a", ExtractConfig(duration=4.0), progress=False)
    by_name = {r.video.split("/")[-1]: r for r in res}
    assert by_name["full.mp4"].status == "done"
    assert by_name["cut.mp4"].status == "failed" and "ended early" in by_name["cut.mp4"].reason
    res = extract_folder(truncated.parent, tmp_path / "b", ExtractConfig(duration=4.0, allow_truncated=True),
                         progress=False)
    assert {r.status for r in res} == {"done"}


def test_extreme_aspect_ratio_decodes_at_a_capped_size(tmp_path, monkeypatch):
    thin = _lavfi_video(tmp_path / "thin.mp4", "4096x2", 1.2, audio=False)
    ex = ResNet50Features(resize=32, crop=28, batch_size=8)
    assert ex.frame_size_for(4096, 2) == (32, 128)                   # not 32 x 65536
    assert ex.frame_size_for(2, 4096) == (128, 32)
    assert ex.frame_size_for(1280, 720) == (32, 56)                  # ordinary ratios unchanged
    chunks = list(iter_frames(thin, 1.2, 21.5, (32, 128), max_aspect=4, chunk=8))
    assert [c.shape for c in chunks] == [(8, 32, 128, 3)] * 3 + [(2, 32, 128, 3)]

    class Probe(ResNet50Features):                  # the real size rule, a cheap stand-in network
        def __call__(self, frames):
            assert frames.shape[1:] == (32, 128, 3)
            return {"resnet50": frames.reshape(len(frames), -1)[:, :2048].astype(np.float32)}

    monkeypatch.setattr(extract, "_build_extractor", lambda *a: Probe(resize=32, crop=28, batch_size=8))
    cfg = ExtractConfig(duration=1.2, feature="resnet50", random_weights=True, batch_size=8)
    assert extract_visual(thin, cfg)["feature_resnet50"].shape == (26, 2048)


def test_long_low_res_video_is_decoded_in_bounded_chunks(tmp_path):
    long = _lavfi_video(tmp_path / "long.mp4", "64x64", 60, rate=10, audio=False)
    tracemalloc.start()
    n, biggest = 0, 0
    for chunk in iter_frames(long, 60.0, 21.5, (64, 64), chunk=32):
        n, biggest = n + len(chunk), max(biggest, len(chunk))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    whole = 1290 * 64 * 64 * 3                                       # 15.9 MB if held at once
    assert (n, biggest) == (1290, 32)
    assert peak < whole / 4, f"peak {peak} bytes while decoding"


def test_playlists_urls_and_unknown_files_are_refused(tmp_path, monkeypatch):
    write_mp4(tmp_path / "seg.mp4", np.zeros((10, 16, 16, 3), np.uint8), 25, None, SR)
    playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.4,\nseg.mp4\n#EXT-X-ENDLIST\n"
    (tmp_path / "list.m3u8").write_text(playlist)
    (tmp_path / "list.mp4").write_text(playlist)                    # a playlist behind a video extension
    with pytest.raises(MediaError, match=r"list.m3u8: not a video file .*extension .m3u8"):
        probe(tmp_path / "list.m3u8")
    with pytest.raises(MediaError, match=r"list.mp4: cannot open"):
        probe(tmp_path / "list.mp4")
    with pytest.raises(MediaError, match=r"list.mp4: ffmpeg failed"):
        read_frames(tmp_path / "list.mp4", 0.4, 21.5, (8, 8), info=probe(tmp_path / "seg.mp4"))
    with pytest.raises(MediaError, match="not a regular file"):
        probe(tmp_path)
    monkeypatch.chdir(tmp_path)                                      # 'a:b.mp4' is a file, not a protocol
    (tmp_path / "seg.mp4").rename(tmp_path / "http:seg.mp4")
    assert probe("http:seg.mp4").has_video
    assert read_frames("http:seg.mp4", 0.4, 21.5, (8, 8)).shape == (9, 8, 8, 3)


def test_ffmpeg_time_out_and_pixel_limit_name_the_file(tmp_path, monkeypatch):
    clip = tmp_path / "clip.mp4"
    write_mp4(clip, np.zeros((25, 16, 16, 3), np.uint8), 25, None, SR)
    info = probe(clip)
    monkeypatch.setattr(media, "TIMEOUT_BASE_S", 0.0)
    monkeypatch.setattr(media, "TIMEOUT_PER_SECOND", 0.0)
    with pytest.raises(MediaError, match=r"clip.mp4: ffmpeg timed out after 0 s \(command: .*ffmpeg.*clip.mp4"):
        read_frames(clip, 1.0, 21.5, (8, 8), info=info)
    monkeypatch.setattr(media, "MAX_SOURCE_PIXELS", 100)
    with pytest.raises(MediaError, match="clip.mp4: 16x16 frames are larger than"):
        probe(clip)


def test_ffmpeg_time_limit_counts_only_waiting_for_ffmpeg(tmp_path):
    """A slow reader (embedding a chunk between reads) does not use up ffmpeg's time limit."""
    import time

    clip = tmp_path / "clip.mp4"
    write_mp4(clip, np.zeros((25, 16, 16, 3), np.uint8), 25, None, SR)
    args = [*media.input_args(clip), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    with media.FFmpegStream(args, clip, timeout=1.5) as ff:
        first = ff.read(16 * 16 * 3)
        time.sleep(2.5)                                              # the reader's own work: not counted
        rest = ff.read(1 << 20)
    assert len(first) == 16 * 16 * 3 and len(rest) == 24 * 16 * 16 * 3 and not ff.timed_out


def test_frame_subset_of_a_truncated_file(truncated):
    """Picks past the end of a truncated stream: an error, or (allowed) the padded full read's frames."""
    with pytest.raises(MediaError, match="cut.mp4: the video stream ended early"):
        read_frames(truncated, 4.0, 21.5, (8, 8), indices=[0, 80])
    full = read_frames(truncated, 4.0, 21.5, (8, 8), allow_truncated=True)
    picks = read_frames(truncated, 4.0, 21.5, (8, 8), indices=[0, 5, 80, 85], allow_truncated=True)
    assert np.array_equal(picks, full[[0, 5, 80, 85]])
