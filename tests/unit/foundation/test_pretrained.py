"""Models by name without the network: the registry's aliases / requirements / feature-network files, the
``--list`` table, the missing-release error with its command, and recursive video listing."""
import pytest

import specvqgan.download as dl
from specvqgan.pretrained import MissingRelease, needed, resolve_model
from specvqgan.releases import RELEASES, find_release
from specvqgan.video_files import list_videos


def test_transformer_aliases_requirements_and_feature_weights():
    tr = [r for r in RELEASES if r.kind == "transformer"]
    assert len({a for r in tr for a in r.aliases}) == len(tr) + 1  # one short alias each, + "vggsound"
    demo = find_release("vggsound")
    assert demo.name == "2021-07-30T21-34-25_vggsound_transformer" and demo.feature == "resnet50"
    assert [r.name for r in needed("vas_bninception_212")] == [
        "2021-06-09T15-17-18_vas_transformer", "melgan_vggsound", "bninception_imagenet"]
    assert find_release("vas_bninception_212").codebook == "2021-06-06T19-42-53_vas_codebook"
    assert find_release("vas_vggsoundcb_resnet50_1").codebook == "2021-05-19T22-16-54_vggsound_codebook"
    assert [r.name for r in needed("vggsound_class")] == ["2021-06-03T00-43-28_vggsound_transformer", "melgan_vggsound"]
    assert find_release("vggsound_nofeats").condition == "noise"
    resnet, bn = find_release("resnet50").files[0], find_release("bninception").files[0]
    assert dl.url_of(resnet) == "https://download.pytorch.org/models/resnet50-19c8e357.pth"
    assert resnet.sha256_prefix == "19c8e357" and bn.sha256_prefix == "9f5701afb96c8044"
    assert dl.url_of(bn) == "https://yjxiong.blob.core.windows.net/models/bn_inception-9f5701afb96c8044.pth"
    with pytest.raises(ValueError, match="codebook release, not a transformer"):
        needed("vggsound_codebook")


def test_list_shows_alias_and_paper_numbers(tmp_path, capsys):
    assert dl.main(["--list", "--cache-dir", str(tmp_path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("2021-07-30T21-34-25"))
    assert "vggsound_resnet50_5, vggsound" in row and " 11.3 " in row and " 7.0 " in row


def test_missing_release_names_the_command_and_touches_nothing(tmp_path):
    with pytest.raises(MissingRelease) as err:
        resolve_model("vas_resnet50_5", tmp_path / "c")
    assert err.value.command == ("python -m specvqgan.download 2021-07-29T14-51-25_vas_transformer melgan_vggsound "
                                 f"resnet50_imagenet --cache-dir {tmp_path / 'c'}")
    assert err.value.command in str(err.value) and not (tmp_path / "c").exists()


def test_list_videos_recurses_and_refuses_colliding_names(tmp_path):
    for rel in ("a/x.mp4", "a/deep/y.MKV", "b/x.webm", "notes.txt", "top.mov"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    items = list_videos([tmp_path, tmp_path / "top.mov"])  # a file named twice is listed once
    assert sorted(i.name for i in items) == ["a__deep__y", "a__x", "b__x", "top"]
    assert {i.name: i.subdir.as_posix() for i in items}["a__deep__y"] == "a/deep"
    with pytest.raises(ValueError, match="same name 'x'"):
        list_videos([tmp_path / "a/x.mp4", tmp_path / "b/x.webm"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no videos .* under .*empty"):
        list_videos([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="video not found: .*gone.mp4"):
        list_videos([tmp_path / "gone.mp4"])
