"""scripts/app.py (Gradio) started headless on 127.0.0.1 as a subprocess; one real generation through the
HTTP API with gradio_client (a toy clip, an untrained tiny transformer, Griffin-Lim) returns videos with a
sound track of the clip's length and their spectrograms; a corrupt upload gets a clear error."""
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import av
import pytest

pytestmark = pytest.mark.slow      # ~15-25 s: server start (gradio + torch imports), one generation


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log_path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"app did not answer at {url} within {timeout} s:\n{log_path.read_text()[-3000:]}")


def _path(item) -> str:
    """The local file of a gallery item as gradio_client returns it ({"video"|"image": path | {path}})."""
    media = item.get("video") or item.get("image")
    return media if isinstance(media, str) else media.get("path") or media.get("video")


def test_app_serves_one_generation(repo_root, tiny_transformer_ckpt, toy_video, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = tmp_path / "app.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "scripts/app.py", "--transformer", str(tiny_transformer_ckpt),
                                 "--examples", str(toy_video.parent), "--out", str(tmp_path / "out"),
                                 "--max-upload-mb", "1",
                                 "--host", "127.0.0.1", "--port", str(port)],
                                cwd=repo_root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(url, proc, log_path)
        client = Client(url, download_files=str(tmp_path / "downloads"), verbose=False, analytics_enabled=False)
        videos, images, summary = client.predict(handle_file(str(toy_video)), 0, 1.0, 2, 0, False,
                                                 api_name="/generate")
        assert len(videos) == 2 and len(images) == 2 and "2 sample(s)" in summary
        for item in videos:
            with av.open(_path(item)) as c:
                assert c.streams.video, "no video stream"
                audio = c.streams.audio[0]
                assert float(audio.duration * audio.time_base) == pytest.approx(2.0, abs=0.1)
        assert all(_path(item).endswith(".png") for item in images)
        assert "/" not in summary                                     # no server paths

        # only the app's own outputs are served: not other files in --out, nor beside the examples
        (tmp_path / "out" / "secret.txt").write_text("private")
        (toy_video.parent / "notes.txt").write_text("private")
        for private in (tmp_path / "out" / "secret.txt", toy_video.parent / "notes.txt"):
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(f"{url}gradio_api/file={private}", timeout=10)
            assert denied.value.code in (403, 404)
        (run_root,) = (tmp_path / "out").glob("specvqgan_app_*")
        (made,) = [p for p in run_root.rglob("*_sample_0.png")]
        with urllib.request.urlopen(f"{url}gradio_api/file={made}", timeout=10) as r:
            assert r.status == 200

        big = tmp_path / "big.mp4"
        big.write_bytes(toy_video.read_bytes() + bytes(2 << 20))       # over --max-upload-mb 1
        with pytest.raises(Exception, match="(?i)size|large|413"):
            client.predict(handle_file(str(big)), 0, 1.0, 1, 0, False, api_name="/generate")

        bad = tmp_path / "corrupt.mp4"
        bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
        with pytest.raises(AppError, match="corrupt.mp4") as err:
            client.predict(handle_file(str(bad)), 0, 1.0, 1, 0, False, api_name="/generate")
        assert str(tmp_path) not in str(err.value) and "/tmp" not in str(err.value)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_old_request_folders_are_removed_and_paths_hidden(repo_root, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("app_cli", repo_root / "scripts" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    old, new = tmp_path / "run_old", tmp_path / "run_new"
    for d in (old, new):
        d.mkdir()
        (d / "x_sample_0.wav").write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    app.remove_old_runs(tmp_path, keep_seconds=3600)
    assert not old.exists() and new.is_dir()
    assert app.no_paths("/srv/uploads/tmp12/clip.mp4: ffmpeg timed out (command: /usr/bin/ffmpeg -i "
                        "/srv/uploads/tmp12/clip.mp4)") == "clip.mp4: ffmpeg timed out (command: ffmpeg -i clip.mp4)"
