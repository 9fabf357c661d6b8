"""Reference target paths -> our classes.

Configs written for the reference implementation (github.com/v-iashin/SpecVQGAN) name classes by
their paths there. `specvqgan.config.instantiate_from_config` looks a target up here first, so such
a config instantiates unchanged. One line per class whose reference path differs from ours; a
reference path that equals ours needs no entry.
"""

REFERENCE_ALIASES: dict[str, str] = {
    # reference path: our path
    # transformer helper (condition stages live in one module here)
    'specvqgan.modules.misc.raw_feats.RawFeatsStage': 'specvqgan.modules.conditioning.RawFeatsStage',
    'specvqgan.modules.misc.class_cond.ClassOnlyStage': 'specvqgan.modules.conditioning.ClassOnlyStage',
    'specvqgan.modules.misc.feats_class_cond.FeatsClassStage': 'specvqgan.modules.conditioning.FeatsClassStage',
    'specvqgan.modules.misc.class_cond.FeatsClassStage': 'specvqgan.modules.conditioning.FeatsClassStage',
    'specvqgan.modules.misc.raw_feats.FeatsClassStage': 'specvqgan.modules.conditioning.FeatsClassStage',
}
