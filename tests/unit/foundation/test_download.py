"""specvqgan.download against a local HTTP server on 127.0.0.1 (no other network): md5 checks, Range resume,
tar.gz unpacking, idempotence, errors naming the URL, and no implicit downloads anywhere."""
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from specvqgan import download as dl
from specvqgan.releases import HOSTS, RELEASES, find_release

CODEBOOK = "2021-05-19T22-16-54_vggsound_codebook"


class _Handler(BaseHTTPRequestHandler):
    """GET with ``Range: bytes=N-`` support. ``server.files``: path -> bytes; ``server.drop``: path -> n, send
    only n bytes of the body once (then close), as a broken connection would; ``server.log``: requests."""

    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start, status = 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m:
            start, status = int(m.group(1)), 206
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = srv.drop.pop(self.path, None)
        body = body[start:] if cut is None else body[start:start + cut]
        if srv.slow:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            time.sleep(srv.slow)
            body = body[len(body) // 2:]
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.drop, srv.log, srv.slow = {}, {}, [], 0.0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _targz(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _patch_md5(monkeypatch, name: str, *md5s):
    """Replace the published md5s of release ``name`` (in order of its files) for the test."""
    rel = find_release(name)
    files = tuple(type(f)(**{**f.__dict__, "md5": m}) for f, m in zip(rel.files, md5s))
    patched = type(rel)(**{**rel.__dict__, "files": files})
    monkeypatch.setattr(dl, "find_release", lambda n: patched if n in (rel.name, *rel.aliases) else find_release(n))
    return patched


KW = dict(timeout=5, retries=2, progress=False, allow_http=True)  # the local test server speaks plain http


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _pin_melgan(monkeypatch, generator: bytes, args: bytes):
    """Pin the MelGAN files of the registry to the git blob hashes of test contents."""
    rel = find_release("melgan")
    files = tuple(type(f)(**{**f.__dict__, "git_sha1": _git_sha1(data)}) for f, data in zip(rel.files, (generator, args)))
    patched = type(rel)(**{**rel.__dict__, "files": files})
    monkeypatch.setattr(dl, "find_release", lambda n: patched if n in (rel.name, *rel.aliases) else find_release(n))


def test_plain_file_downloaded_md5_checked_and_idempotent(server, tmp_path, repo_root, monkeypatch):
    # the registry md5 of the VGGSound mel stats is the md5 of the copy shipped in evaluation/data
    stats = (repo_root / "evaluation/data/train_means_stds_melspec_10s_22050hz.txt").read_bytes()
    weights = b"\x80fake-vggishish" * 5000
    _patch_md5(monkeypatch, "vggishish16", _md5(weights), find_release("vggishish16").files[1].md5)
    server.files = {"/vggishish16.pt": weights, "/train_means_stds_melspec_10s_22050hz.txt": stats}
    path = dl.download("vggishish", tmp_path, base_url=server.url, **KW)
    assert path == tmp_path / "vggishish/vggishish16.pt" and path.read_bytes() == weights
    assert (tmp_path / "vggishish/train_means_stds_melspec_10s_22050hz.txt").read_bytes() == stats
    assert not list(tmp_path.rglob("*.part"))
    n = len(server.log)
    assert dl.download("vggishish16", tmp_path, base_url=server.url, **KW) == path  # present + md5 ok
    assert len(server.log) == n, "a verified release must not touch the network"
    assert dl.local_path("vggishish16", tmp_path) == path


def test_bad_md5_keeps_nothing_and_says_so(server, tmp_path, monkeypatch):
    server.files = {"/melception-21-05-10T09-28-40.pt": b"not the real melception"}
    (tmp_path / "melception").mkdir()
    (tmp_path / "melception/melception-21-05-10T09-28-40.pt").write_bytes(b"corrupt copy")  # fails md5 too
    with pytest.raises(dl.DownloadError, match=r"md5 mismatch for http://127\.0\.0\.1:\d+/melception.*"
                                               r"expected a71a41041e945b457c7d3d814bbcf72d"):
        dl.download("melception", tmp_path, base_url=server.url, **KW)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.parent.name != ".locks"] == []
    with pytest.raises(FileNotFoundError, match="python -m specvqgan.download melception"):
        dl.local_path("melception", tmp_path)


def test_broken_connection_is_resumed_with_range(server, tmp_path, monkeypatch):
    data = bytes(range(256)) * 4000  # 1 MB, several chunks
    _patch_md5(monkeypatch, "melception", _md5(data))
    server.files = {"/melception-21-05-10T09-28-40.pt": data}
    server.drop = {"/melception-21-05-10T09-28-40.pt": 300_001}  # first response stops after 300001 bytes
    path = dl.download("melception", tmp_path, base_url=server.url, **KW)
    assert path.read_bytes() == data
    assert [r for _, r in server.log] == [None, "bytes=300001-"]


def test_existing_partial_file_is_resumed(server, tmp_path, monkeypatch):
    data = b"0123456789" * 10_000
    _patch_md5(monkeypatch, "melception", _md5(data))
    server.files = {"/melception-21-05-10T09-28-40.pt": data}
    part = tmp_path / "melception/melception-21-05-10T09-28-40.pt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:12_345])
    path = dl.download("melception", tmp_path, base_url=server.url, **KW)
    assert path.read_bytes() == data and not part.exists()
    assert server.log == [("/melception-21-05-10T09-28-40.pt", "bytes=12345-")]


def test_stale_partial_file_is_refetched_from_scratch(server, tmp_path, monkeypatch):
    data = b"fresh" * 1000
    _patch_md5(monkeypatch, "melception", _md5(data))
    server.files = {"/melception-21-05-10T09-28-40.pt": data}
    part = tmp_path / "melception/melception-21-05-10T09-28-40.pt.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale" * 10)  # right length prefix, wrong bytes
    assert dl.download("melception", tmp_path, base_url=server.url, **KW).read_bytes() == data
    assert [r for _, r in server.log] == ["bytes=50-", None]


def test_targz_release_is_unpacked_and_not_fetched_again(server, tmp_path, monkeypatch):
    archive = _targz({f"{CODEBOOK}/checkpoints/last.ckpt": b"weights",
                      f"{CODEBOOK}/configs/2021-05-19T22-16-54-project.yaml": b"model: {}\n"})
    _patch_md5(monkeypatch, CODEBOOK, _md5(archive))
    server.files = {f"/models/{CODEBOOK}.tar.gz": archive}
    path = dl.download("vggsound_codebook", tmp_path, base_url=server.url, **KW)
    assert path == tmp_path / CODEBOOK / "checkpoints/last.ckpt" and path.read_bytes() == b"weights"
    assert (tmp_path / CODEBOOK / "configs/2021-05-19T22-16-54-project.yaml").is_file()
    assert not (tmp_path / f"{CODEBOOK}.tar.gz").exists()  # archive removed after unpacking
    assert json.loads((tmp_path / CODEBOOK / dl.MARKER).read_text())["md5"] == _md5(archive)
    dl.download(CODEBOOK, tmp_path, base_url=server.url, **KW)
    assert len(server.log) == 1


def test_archive_escaping_the_cache_is_refused(server, tmp_path, monkeypatch):
    archive = _targz({"../evil.txt": b"x"})
    _patch_md5(monkeypatch, CODEBOOK, _md5(archive))
    server.files = {f"/models/{CODEBOOK}.tar.gz": archive}
    with pytest.raises(dl.DownloadError, match="cannot unpack"):
        dl.download(CODEBOOK, tmp_path / "cache", base_url=server.url, **KW)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "cache" / CODEBOOK / dl.MARKER).exists()


def test_unpublished_md5_is_recorded_and_checked(server, tmp_path):
    files = ("netG.pt", "netD.pt", "optG.pt", "optD.pt")
    server.files = {f"/melgan_ckpt/{f}": f.encode() * 3 for f in files}
    path = dl.download("melgan_vggsound_train", tmp_path, base_url=server.url, **KW)
    assert path == tmp_path / "melgan/vggsound_train/netG.pt" and path.read_bytes() == b"netG.pt" * 3
    assert path.with_name("netG.pt.md5").read_text().split()[0] == _md5(b"netG.pt" * 3)
    path.write_bytes(b"corrupted")  # no longer matches the recorded md5 -> fetched again
    dl.download("melgan_vggsound_train", tmp_path, base_url=server.url, **KW)
    assert path.read_bytes() == b"netG.pt" * 3
    assert [p for p, _ in server.log].count("/melgan_ckpt/netG.pt") == 2


def test_melgan_is_pinned_by_git_blob_hashes(server, tmp_path, monkeypatch):
    """The registry pins the reference repository's blobs; other content never lands under the final name."""
    assert [f.git_sha1 for f in find_release("melgan").files] == [
        "3277182de0554b2a4016ee42c9d0d4127c06ad8c", "173f2720acf1b3e6cd3cb7cab60e83d97cd358cb"]
    server.files = {"/vocoder/logs/vggsound/best_netG.pt": b"generator", "/vocoder/logs/vggsound/args.yml": b"ngf: 32\n"}
    with pytest.raises(dl.DownloadError, match=r"git blob hash mismatch for .*best_netG\.pt: expected 3277182d"):
        dl.download("melgan", tmp_path, base_url=server.url, **KW)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.parent.name != ".locks"] == []
    _pin_melgan(monkeypatch, b"generator", b"ngf: 32\n")
    path = dl.download("melgan", tmp_path, base_url=server.url, **KW)
    assert (path / "best_netG.pt").read_bytes() == b"generator" and not (path / "best_netG.pt.md5").exists()
    (path / "args.yml").write_bytes(b"ngf: 64\n")  # tampered in the cache: not verified, fetched again
    assert dl.is_present(dl.find_release("melgan"), tmp_path) and not dl.is_present(
        dl.find_release("melgan"), tmp_path, verify=True)
    dl.download("melgan", tmp_path, base_url=server.url, **KW)
    assert (path / "args.yml").read_bytes() == b"ngf: 32\n"


def test_plain_http_needs_an_explicit_opt_in(server, tmp_path, monkeypatch):
    kw = {**KW, "allow_http": False}
    with pytest.raises(dl.DownloadError, match=r"refusing the plain-http URL http://127.*--allow-http"):
        dl.download("lpaps", tmp_path, base_url=server.url, **kw)
    monkeypatch.setenv("SPECVQGAN_BASE_URL", server.url)
    with pytest.raises(dl.DownloadError, match="plain-http"):
        dl.download("lpaps", tmp_path, **kw)
    assert server.log == []
    monkeypatch.setenv("SPECVQGAN_CACHE", str(tmp_path))
    assert dl.main(["lpaps", "-q"]) == 1 and server.log == []


def test_two_concurrent_fetches_of_a_release_both_succeed(server, tmp_path, monkeypatch):
    """Two fetchers at once (threads holding separate lock handles, as two processes would) take turns:
    both return the verified path, the file is fetched once, and no partial file is left."""
    data = bytes(range(256)) * 2000
    _patch_md5(monkeypatch, "melception", _md5(data))
    server.files = {"/melception-21-05-10T09-28-40.pt": data}
    server.slow = 0.3  # seconds in the middle of each body: the two transfers would overlap
    results, errors = [], []

    def fetch():
        try:
            results.append(dl.download("melception", tmp_path, base_url=server.url, **KW))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert results[0].read_bytes() == data and len(server.log) == 1
    assert not list(tmp_path.rglob("*.part"))


def test_http_errors_name_the_url(server, tmp_path):
    with pytest.raises(dl.DownloadError, match=rf"HTTP 404 .* for {server.url}/models/{CODEBOOK}\.tar\.gz"):
        dl.download(CODEBOOK, tmp_path, base_url=server.url, **KW)
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    with pytest.raises(dl.DownloadError, match=r"cannot download http://127\.0\.0\.1:9/lpaps\.pt"):
        dl.download("lpaps", tmp_path, base_url=dead, timeout=2, retries=0, progress=False, allow_http=True)


def test_cli_fetches_lists_and_prints_paths(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SPECVQGAN_BASE_URL", server.url)
    monkeypatch.setenv("SPECVQGAN_CACHE", str(tmp_path))
    server.files = {"/vocoder/logs/vggsound/best_netG.pt": b"g", "/vocoder/logs/vggsound/args.yml": b"a"}
    _pin_melgan(monkeypatch, b"g", b"a")
    assert dl.main(["melgan", "-q", "--allow-http"]) == 0
    assert dl.main(["--path", "melgan_vggsound"]) == 0
    assert dl.main(["--path", "melception"]) == 1  # not cached: an error, no download
    assert len(server.log) == 2
    assert dl.main(["--list"]) == 0


def test_registry_is_complete_and_well_formed():
    names = [r.name for r in RELEASES]
    assert sum(r.kind == "codebook" for r in RELEASES) == 2 and sum(r.kind == "transformer" for r in RELEASES) == 24
    assert len(set(names + [a for r in RELEASES for a in r.aliases])) == len(names) + sum(len(r.aliases) for r in RELEASES)
    for rel in RELEASES:
        for f in rel.files:
            assert f.md5 is None or re.fullmatch(r"[0-9a-f]{32}", f.md5), rel.name
            assert dl.url_of(f).startswith(HOSTS[f.host] + "/")
    assert dl.url_of(find_release("vggsound_codebook").files[0]) == (
        "https://a3s.fi/swift/v1/AUTH_a235c0f452d648828f745589cde1219a/specvqgan_public/models/"
        "2021-05-19T22-16-54_vggsound_codebook.tar.gz")
    assert find_release("vggsound_codebook").files[0].md5 == "7ea229427297b5d220fb1c80db32dbc5"
    with pytest.raises(KeyError, match="did you mean"):
        find_release("vas_transformer")


def test_nothing_downloads_implicitly(repo_root, tmp_path):
    # 1) only specvqgan/download.py has network code in the library
    offenders = []
    for folder in ("specvqgan", "vocoder", "evaluation", "feature_extraction"):
        for py in (repo_root / folder).rglob("*.py"):
            text = py.read_text()
            if py.name != "download.py" and re.search(r"urllib\.request|urlopen|http\.client|import requests|"
                                                      r"torch\.hub|load_state_dict_from_url|hf_hub", text):
                offenders.append(str(py.relative_to(repo_root)))
    assert offenders == []
    # 2) importing the downloader and asking for a missing checkpoint makes no connection
    code = ("import socket\n"
            "def boom(*a, **k): raise AssertionError('network used')\n"
            "socket.socket.connect = boom; socket.create_connection = boom\n"
            "import specvqgan.download as dl\n"
            f"try: dl.local_path('melception', {str(tmp_path)!r})\n"
            "except FileNotFoundError: print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert not any(tmp_path.iterdir())


def _reference_run(name: str, model_cfg: dict, state_dict: dict) -> bytes:
    """A .tar.gz in the authors' log layout: <name>/configs/<t>-project.yaml + <name>/checkpoints/last.ckpt
    (a Lightning checkpoint without a config, as their releases are)."""
    import torch
    from omegaconf import OmegaConf

    buf = io.BytesIO()
    torch.save({"state_dict": state_dict, "epoch": 3, "global_step": 7}, buf)
    project = OmegaConf.to_yaml(OmegaConf.create({"model": {"base_learning_rate": 1e-6, **model_cfg}}))
    return _targz({f"{name}/checkpoints/last.ckpt": buf.getvalue(),
                   f"{name}/configs/2021-01-01T00-00-00-project.yaml": project.encode()})


def test_downloaded_releases_feed_the_loaders(server, tmp_path, monkeypatch, reference_dir, request):
    """The paths the downloader returns load in the codebase: a codebook (codec) and a transformer
    (from_checkpoint), both built from the golden tiny models in the authors' release layout."""
    import torch

    from specvqgan.models.loading import load_codebook
    from specvqgan.config import load_config
    from specvqgan.models.cond_transformer import Net2NetTransformer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)                  # the golden outputs' setting; restored after
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    cb = torch.load(reference_dir / "golden/codebook_tiny.pt", weights_only=False)
    cb_params = dict(load_config([reference_dir / "golden/codebook_tiny.yaml"]).constructor_params)
    archive = _reference_run(CODEBOOK, {"target": "specvqgan.models.vqgan.VQModel", "params": cb_params},
                             cb["state_dict"])
    _patch_md5(monkeypatch, CODEBOOK, _md5(archive))
    server.files = {f"/models/{CODEBOOK}.tar.gz": archive}
    ckpt = dl.download(CODEBOOK, tmp_path, base_url=server.url, **KW)
    model = load_codebook(ckpt)
    with torch.no_grad():
        assert torch.equal(model.encode_to_indices(cb["input"]).reshape(cb["indices"].shape), cb["indices"])

    name = "2021-06-20T16-35-20_vggsound_transformer"
    tr = torch.load(reference_dir / "golden/transformer_tiny.pt", weights_only=False)
    tr_params = load_config([reference_dir / "golden/transformer_tiny.yaml"]).constructor_params
    sd = {**tr["state_dict"], **{f"first_stage_model.{k}": v for k, v in cb["state_dict"].items()
                                 if not k.startswith("loss.")}}
    archive = _reference_run(name, {"target": "specvqgan.models.cond_transformer.Net2NetTransformer",
                                    "params": dict(tr_params)}, sd)
    _patch_md5(monkeypatch, name, _md5(archive))
    server.files = {f"/models/{name}.tar.gz": archive}
    run = dl.download(name, tmp_path, base_url=server.url, **KW)
    gpt = Net2NetTransformer.from_checkpoint(str(run / "checkpoints/last.ckpt"))
    loaded = gpt.state_dict()
    for k, v in tr["state_dict"].items():  # strict load: every golden weight arrived unchanged
        if not k.endswith("attn.mask"):
            assert torch.equal(loaded[k], v), k
