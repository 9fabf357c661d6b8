"""Reference target paths -> our classes.

Configs written for the reference implementation (github.com/v-iashin/SpecVQGAN) name classes by
their paths there. `specvqgan.config.instantiate_from_config` looks a target up here first, so such
a config instantiates unchanged. One line per class whose reference path differs from ours; a
reference path that equals ours needs no entry.
"""

REFERENCE_ALIASES: dict[str, str] = {
    # reference path: our path
    # datasets helper (the reference's data modules lived in train.py)
    "train.SpectrogramDataModuleFromConfig": "specvqgan.data.datamodule.SpectrogramDataModuleFromConfig",
    "train.ConditionedSpectrogramDataModuleFromConfig":
        "specvqgan.data.datamodule.ConditionedSpectrogramDataModuleFromConfig",
    # the reference's train.py callbacks (spectrogram images + audio in TensorBoard)
    "train.ImageLogger": "specvqgan.media_logging.ImageLogger",
    "train.VocoderMelGan": "specvqgan.media_logging.VocoderMelGan",
    "train.VocoderGriffinLim": "specvqgan.media_logging.VocoderGriffinLim",
    # losses helper (VGGish-ish, LPAPS, PatchGAN, VQ perceptual loss)
    'specvqgan.modules.losses.DummyLoss': 'specvqgan.losses.vqperceptual.DummyLoss',
    'specvqgan.modules.losses.vqperceptual.DummyLoss': 'specvqgan.losses.vqperceptual.DummyLoss',
    'specvqgan.modules.losses.VQLPAPSWithDiscriminator': 'specvqgan.losses.vqperceptual.VQLPAPSWithDiscriminator',
    'specvqgan.modules.losses.vqperceptual.VQLPAPSWithDiscriminator':
        'specvqgan.losses.vqperceptual.VQLPAPSWithDiscriminator',
    'specvqgan.modules.losses.lpaps.LPAPS': 'specvqgan.losses.lpaps.LPAPS',
    'specvqgan.modules.losses.vggishish.model.VGGishish': 'specvqgan.modules.classifiers.vggishish.VGGishish',
    'specvqgan.modules.discriminator.model.NLayerDiscriminator': 'specvqgan.modules.discriminator.NLayerDiscriminator',
    # transformer helper (condition stages live in one module here)
    'specvqgan.modules.misc.raw_feats.RawFeatsStage': 'specvqgan.modules.conditioning.RawFeatsStage',
    'specvqgan.modules.misc.class_cond.ClassOnlyStage': 'specvqgan.modules.conditioning.ClassOnlyStage',
    'specvqgan.modules.misc.feats_class_cond.FeatsClassStage': 'specvqgan.modules.conditioning.FeatsClassStage',
    'specvqgan.modules.misc.class_cond.FeatsClassStage': 'specvqgan.modules.conditioning.FeatsClassStage',
    'specvqgan.modules.misc.raw_feats.FeatsClassStage': 'specvqgan.modules.conditioning.FeatsClassStage',
    # codebook helper (VQGAN encoder/decoder and quantizer)
    'specvqgan.modules.diffusionmodules.model.Encoder': 'specvqgan.modules.vqgan.encoder_decoder.Encoder',
    'specvqgan.modules.diffusionmodules.model.Decoder': 'specvqgan.modules.vqgan.encoder_decoder.Decoder',
    'specvqgan.modules.diffusionmodules.model.Encoder1d': 'specvqgan.modules.vqgan.encoder_decoder.Encoder1d',
    'specvqgan.modules.diffusionmodules.model.Decoder1d': 'specvqgan.modules.vqgan.encoder_decoder.Decoder1d',
    'specvqgan.modules.vqvae.quantize.VectorQuantizer': 'specvqgan.modules.vqgan.quantize.VectorQuantizer',
    'specvqgan.modules.vqvae.quantize.VectorQuantizer1d': 'specvqgan.modules.vqgan.quantize.VectorQuantizer1d',
    # evaluation helper (reference eval configs' feature extractor)
    'evaluation.feature_extractors.melception.Melception': 'evaluation.melception.MelceptionExtractor',
    # vocoder helper (the reference's second, identical copy of the MelGAN modules)
    'vocoder.mel2wav.modules.Generator': 'vocoder.modules.Generator',
    'vocoder.mel2wav.modules.Discriminator': 'vocoder.modules.Discriminator',
}
