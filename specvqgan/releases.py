"""Registry of the authors' released checkpoints (fetched only by ``python -m specvqgan.download``).

Every entry was copied from the reference repository (github.com/v-iashin/SpecVQGAN): the README
tables "Codebooks" / "Transformers" / "VGGish-ish, Melception, and MelGAN", ``specvqgan/util.py``
(``URL_MAP`` / ``MD5_MAP``) and ``feature_extraction/demo_utils.py`` (``maybe_download_model``).
MD5 sums are the published ones; ``md5=None`` means the authors published none: the MelGAN release files
are then pinned by their git blob hashes in the reference repository, and for the MelGAN training state
the downloader records the md5 it computed and says so.
FID / MKL are the README's numbers (paper Tables 1-3); nothing here was measured by this project.

Hosts: ``a3s`` is the authors' object store, ``github`` the reference repository (MelGAN lives in git
under ``vocoder/logs/vggsound``), ``torchvision`` / ``tsn`` the model zoos of the ImageNet feature networks
the reference's features came from. A mirror (``--base-url``) serves every file at ``<base>/<path>``.

Feature networks: the reference environment pins torchvision 0.9.1, whose ``resnet50(pretrained=True)``
loads ``resnet50-19c8e357.pth`` (re-serialized as ``resnet50-0676ba61.pth`` with unchanged weights from
torchvision 0.10, pytorch/vision#3620); the BN-Inception features follow RegNet / tsn-pytorch, whose model
zoo file is ``bn_inception-9f5701afb96c8044.pth``. Neither zoo publishes an md5: the hex in the file name
is the prefix of its sha256 (PyTorch's model-zoo convention), checked after download (``sha256_prefix``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

HOSTS: Dict[str, str] = {
    "a3s": "https://a3s.fi/swift/v1/AUTH_a235c0f452d648828f745589cde1219a/specvqgan_public",
    "github": "https://github.com/v-iashin/SpecVQGAN/raw/main",
    "torchvision": "https://download.pytorch.org/models",
    "tsn": "https://yjxiong.blob.core.windows.net/models",
}


@dataclass(frozen=True)
class RemoteFile:
    """One file of a release: ``path`` on the host, its published ``md5`` (or None), where it goes in the cache
    (``dest``, relative to the cache dir), whether it is a ``.tar.gz`` to unpack (``archive``), the sha256
    prefix its file name carries (``sha256_prefix``, model-zoo files) and, for files kept in the reference
    git repository, their git blob hash there (``git_sha1``: sha1 of ``b"blob <size>\0" + content``), which
    pins files the authors published no md5 for. All are checked before a download gets its final name."""

    path: str
    md5: Optional[str]
    dest: str
    host: str = "a3s"
    archive: bool = False
    sha256_prefix: Optional[str] = None
    git_sha1: Optional[str] = None


@dataclass(frozen=True)
class Release:
    """A named release: what it is, its files, and the local path a loader takes (``use``, relative to the
    cache dir, with the command/API that takes it in ``loader``)."""

    name: str
    kind: str  # codebook | transformer | vocoder | classifier | lpaps
    description: str
    files: Tuple[RemoteFile, ...]
    use: str
    loader: str
    size: str = ""  # as published (README), informative only
    fid: Optional[float] = None
    mkl: Optional[float] = None
    aliases: Tuple[str, ...] = field(default=())
    requires: Tuple[str, ...] = field(default=())  # releases it runs with: vocoder, feature network
    codebook: Optional[str] = None  # transformers: the codebook release (its weights are inside the .ckpt)
    feature: Optional[str] = None  # visual feature the model takes (feature_extraction name), None: none
    condition: str = ""  # transformers: "features" | "noise" (trained on random features) | "class"


_CODEBOOK_LOADER = "python -m specvqgan.codec encode in.wav codes.npz --ckpt {path}"
_TRANSFORMER_LOADER = "Net2NetTransformer.from_checkpoint(<run>/checkpoints/<the .ckpt>), config from <run>/configs"


def _model(name: str, md5: str, kind: str, description: str, use: str, loader: str, fid=None, mkl=None,
           aliases=()) -> Release:
    archive = RemoteFile(f"models/{name}.tar.gz", md5, f"{name}.tar.gz", archive=True)
    return Release(name, kind, description, (archive,), use, loader, fid=fid, mkl=mkl, aliases=tuple(aliases))


def _codebook(name, md5, description, fid, mkl, alias) -> Release:
    return _model(name, md5, "codebook", description, f"{name}/checkpoints/last.ckpt", _CODEBOOK_LOADER,
                  fid, mkl, (alias,))


_CODEBOOKS = {"vggsound": "2021-05-19T22-16-54_vggsound_codebook", "vas": "2021-06-06T19-42-53_vas_codebook"}
_FEATURE_WEIGHTS = {"bninception": "bninception_imagenet", "resnet50": "resnet50_imagenet"}


def _transformer(name, md5, description, fid, mkl) -> Release:
    """A transformer row: its short alias (``vggsound_resnet50_5``, ``vas_vggsoundcb_bninception_212``,
    ``vas_class``, ...), codebook, vocoder and feature network follow from the README's description. The
    codebook's weights travel inside the transformer checkpoint (``first_stage_model.*``), so only the MelGAN
    the paper evaluated with (VGGSound's, for every model) and the feature network are ``requires``."""
    group, setting = description[1], description.split(", ")[-1].lower()
    dataset = {"a": "vggsound", "b": "vas_vggsoundcb", "c": "vas"}[group]
    codebook = _CODEBOOKS["vas" if group == "c" else "vggsound"]
    feature, condition = None, {"no feats": "noise", "class label": "class"}.get(setting, "features")
    if condition == "features":
        count, _, net = setting.split(" ")
        feature = net.replace("-", "")
        alias = f"{dataset}_{feature}_{count}"
    else:
        alias = f"{dataset}_{'nofeats' if condition == 'noise' else 'class'}"
    aliases = (alias, "vggsound") if name == DEMO_TRANSFORMER else (alias,)
    requires = ("melgan_vggsound",) + ((_FEATURE_WEIGHTS[feature],) if feature else ())
    rel = _model(name, md5, "transformer", description, name, _TRANSFORMER_LOADER, fid, mkl, aliases)
    return Release(**{**rel.__dict__, "requires": requires, "feature": feature, "condition": condition,
                      "codebook": codebook})


# the model of the reference's demo (feature_extraction/demo_utils.py, SpecVQGAN_Demo.ipynb): alias "vggsound"
DEMO_TRANSFORMER = "2021-07-30T21-34-25_vggsound_transformer"


# (a) trained on VGGSound with the VGGSound codebook; (b) on VAS with the VGGSound codebook;
# (c) on VAS with the VAS codebook. * in the README: evaluated on fewer samples per video.
_TRANSFORMERS = [
    ("2021-06-20T16-35-20_vggsound_transformer", "b1f9bb63d831611479249031a1203371", "(a) VGGSound, no feats", 13.5, 9.7),
    ("2021-06-03T11-18-51_vggsound_transformer", "f2fe41dab17e232bd94c6d119a807fee", "(a) VGGSound, 1 feat BN-Inception", 8.6, 7.7),
    ("2021-07-30T21-03-22_vggsound_transformer", "27a61d4b74a72578d13579333ed056f6", "(a) VGGSound, 1 feat ResNet50", 11.5, 7.3),
    ("2021-06-03T09-34-10_vggsound_transformer", "b082d894b741f0d7a1af9c2732bad70f", "(a) VGGSound, 5 feats BN-Inception", 9.4, 7.0),
    ("2021-07-30T21-34-25_vggsound_transformer", "f4d7105811589d441b69f00d7d0b8dc8", "(a) VGGSound, 5 feats ResNet50", 11.3, 7.0),
    ("2021-06-03T07-27-58_vggsound_transformer", "79895ac08303b1536809cad1ec9a7502", "(a) VGGSound, 212 feats BN-Inception", 9.6, 6.8),
    ("2021-07-30T21-34-41_vggsound_transformer", "b222cc0e7aeb419f533d5806a08669fe", "(a) VGGSound, 212 feats ResNet50", 10.5, 6.9),
    ("2021-06-20T16-34-36_vas_transformer", "e6b0b5be1f8ac551700f49d29cda50d7", "(b) VAS w/ VGGSound codebook, no feats", 33.7, 9.6),
    ("2021-06-03T06-32-51_vas_transformer", "a98a124d6b3613923f28adfacba3890c", "(b) VAS w/ VGGSound codebook, 1 feat BN-Inception", 38.6, 7.3),
    ("2021-07-29T11-47-40_vas_transformer", "37cd48f06d74176fa8d0f27303841d94", "(b) VAS w/ VGGSound codebook, 1 feat ResNet50", 26.5, 6.7),
    ("2021-06-03T05-51-34_vas_transformer", "38da002f900fb81275b73e158e919e16", "(b) VAS w/ VGGSound codebook, 5 feats BN-Inception", 29.1, 6.9),
    ("2021-07-29T11-36-00_vas_transformer", "7b6951a33771ef527f1c1b1f99b7595e", "(b) VAS w/ VGGSound codebook, 5 feats ResNet50", 22.3, 6.5),
    ("2021-06-03T05-38-40_vas_transformer", "1c4e56077d737677eac524383e6d98d3", "(b) VAS w/ VGGSound codebook, 212 feats BN-Inception", 20.5, 6.0),
    ("2021-07-29T11-52-28_vas_transformer", "6e553ea44c8bc7a3310961f74e7974ea", "(b) VAS w/ VGGSound codebook, 212 feats ResNet50", 20.8, 6.2),
    ("2021-06-20T16-24-38_vas_transformer", "ea4945802094f826061483e7b9892839", "(c) VAS, no feats", 28.7, 9.2),
    ("2021-06-09T13-31-37_vas_transformer", "8a3adf60baa049a79ae62e2e95014ff7", "(c) VAS, 1 feat BN-Inception", 25.1, 6.6),
    ("2021-07-29T14-59-49_vas_transformer", "a7a1342030653945e97f68a8112ed54a", "(c) VAS, 1 feat ResNet50", 25.1, 6.3),
    ("2021-06-09T14-14-24_vas_transformer", "4e1b24207780eff26a387dd9317d054d", "(c) VAS, 5 feats BN-Inception", 24.8, 6.2),
    ("2021-07-29T14-51-25_vas_transformer", "78b8d42be19dd1b0a346b1f512967302", "(c) VAS, 5 feats ResNet50", 20.9, 6.1),
    ("2021-06-09T15-17-18_vas_transformer", "4542632b3c5bfbf827ea7868cedd4634", "(c) VAS, 212 feats BN-Inception", 25.4, 5.9),
    ("2021-07-29T13-34-39_vas_transformer", "dc2b5cbd28ad98d2f9ca4329e8aa0f64", "(c) VAS, 212 feats ResNet50", 22.6, 5.8),
    ("2021-06-03T00-43-28_vggsound_transformer", "98a3788ab973f1c3cc02e2e41ad253bc", "(a) VGGSound, class label", 7.8, 5.0),
    ("2021-06-08T14-41-19_vas_transformer", "16a816a270f09a76bfd97fe0006c704b", "(b) VAS w/ VGGSound codebook, class label", 39.6, 6.7),
    ("2021-06-09T09-42-07_vas_transformer", "412b01be179c2b8b02dfa0c0b49b9a0f", "(c) VAS, class label", 23.9, 5.5),
]

_VGGISHISH_STATS = "train_means_stds_melspec_10s_22050hz.txt"

RELEASES: Tuple[Release, ...] = (
    _codebook("2021-05-19T22-16-54_vggsound_codebook", "7ea229427297b5d220fb1c80db32dbc5",
              "VGGSound codebook (1024 codes)", 1.0, 0.8, "vggsound_codebook"),
    _codebook("2021-06-06T19-42-53_vas_codebook", "0024ad3705c5e58a11779d3d9e97cc8a",
              "VAS codebook (128 codes)", 6.0, 1.0, "vas_codebook"),
    *(_transformer(*row) for row in _TRANSFORMERS),
    Release("melgan_vggsound", "vocoder", "MelGAN vocoder trained on VGGSound (reference vocoder/logs/vggsound)",
            (RemoteFile("vocoder/logs/vggsound/best_netG.pt", None, "melgan/vggsound/best_netG.pt", host="github",
                        git_sha1="3277182de0554b2a4016ee42c9d0d4127c06ad8c"),
             RemoteFile("vocoder/logs/vggsound/args.yml", None, "melgan/vggsound/args.yml", host="github",
                        git_sha1="173f2720acf1b3e6cd3cb7cab60e83d97cd358cb")),
            "melgan/vggsound", "MelGANVocoder.from_checkpoint('{path}') / python -m vocoder --ckpt {path}",
            aliases=("melgan",)),
    Release("melgan_vggsound_train", "vocoder", "MelGAN training state (netG/netD/optG/optD), to continue training",
            tuple(RemoteFile(f"melgan_ckpt/{f}", None, f"melgan/vggsound_train/{f}")
                  for f in ("netG.pt", "netD.pt", "optG.pt", "optD.pt")),
            "melgan/vggsound_train/netG.pt", "MelGANVocoder.from_checkpoint('{path}') (generator only)"),
    Release("melception", "classifier", "Melception (InceptionV3 on mels, 309 VGGSound classes) for FID/KID/IS/MKL",
            (RemoteFile("melception-21-05-10T09-28-40.pt", "a71a41041e945b457c7d3d814bbcf72d",
                        "melception/melception-21-05-10T09-28-40.pt"),),
            "melception/melception-21-05-10T09-28-40.pt",
            "evaluation.features.load_melception('{path}') / python evaluate.py --melception {path}", size="0.27 GB"),
    Release("vggishish16", "classifier", "VGGish-ish (VGG16 on mels, 309 VGGSound classes): LPAPS weights + mel stats",
            (RemoteFile("vggishish16.pt", "197040c524a07ccacf7715d7080a80bd", "vggishish/vggishish16.pt"),
             RemoteFile(_VGGISHISH_STATS, "f449c6fd0e248936c16f6d22492bb625", f"vggishish/{_VGGISHISH_STATS}")),
            "vggishish/vggishish16.pt",
            "lossconfig perceptual_ckpt={path} perceptual_stats={cache}/vggishish/" + _VGGISHISH_STATS,
            size="1.54 GB", aliases=("vggishish",)),
    Release("resnet50_imagenet", "features",
            "torchvision ResNet-50 ImageNet weights (torchvision 0.9.1, as the reference) for resnet50 features",
            (RemoteFile("resnet50-19c8e357.pth", None, "features/resnet50-19c8e357.pth", host="torchvision",
                        sha256_prefix="19c8e357"),),
            "features/resnet50-19c8e357.pth",
            "python -m feature_extraction --feature resnet50 --weights {path} / generate.py --feature-weights {path}",
            size="0.10 GB", aliases=("resnet50",)),
    Release("bninception_imagenet", "features",
            "TSN BN-Inception ImageNet weights (RegNet's RGB + flow features, the paper's default condition)",
            (RemoteFile("bn_inception-9f5701afb96c8044.pth", None, "features/bn_inception-9f5701afb96c8044.pth",
                        host="tsn", sha256_prefix="9f5701afb96c8044"),),
            "features/bn_inception-9f5701afb96c8044.pth",
            "python -m feature_extraction --feature bninception --weights {path} / generate.py --feature-weights "
            "{path}", aliases=("bninception",)),
    Release("lpaps", "lpaps", "LPAPS weights (listed only in an early reference util.py URL_MAP; may be gone)",
            (RemoteFile("lpaps.pt", "f8d4e7dba2b870222fe2bee26f85e7c9", "lpaps/lpaps.pt"),),
            "lpaps/lpaps.pt", "lossconfig perceptual_ckpt={path}"),
)


def find_release(name: str) -> Release:
    """The release called ``name`` (or one of its aliases); KeyError listing close names otherwise."""
    for rel in RELEASES:
        if name == rel.name or name in rel.aliases:
            return rel
    close = [r.name for r in RELEASES if name.lower() in r.name.lower()]
    hint = f"; did you mean {', '.join(close[:5])}?" if close else "; see `python -m specvqgan.download --list`"
    raise KeyError(f"unknown checkpoint {name!r}{hint}")
