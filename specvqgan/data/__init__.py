"""Datasets (VAS, VGGSound, toy; spectrograms, visual features, waveform segments) and the DataModule.

Import the submodules directly (``specvqgan.data.vas``, ``.vggsound``, ``.toy``, ``.waves``, ``.datamodule``);
nothing is imported here, so ``import specvqgan.data`` stays cheap.
"""
