"""Feature extraction from raw videos (RegNet / SpecVQGAN recipe), CLI: ``python -m feature_extraction``.

* :mod:`feature_extraction.media` - probe (PyAV), decode with the ``imageio-ffmpeg`` binary (loop/trim,
  22050 Hz mono audio, 21.5 fps frames); :mod:`feature_extraction.encode` - H.264 + AAC clips (PyAV).
* :mod:`feature_extraction.extract` - folder -> ``audio_*``/``melspec_*``/``feature_*`` in the reference
  layout, with workers, skip-existing and a failure list.
* :mod:`feature_extraction.toy_features` - the colour-grid visual feature for the toy dataset only.
* :mod:`feature_extraction.weights` - the weight files (torchvision / TSN state-dict layouts, by path) of
  the paper's pretrained networks, which live in :mod:`specvqgan.modules.visual`;
  :mod:`feature_extraction.flow` - TV-L1 / Farneback flow images; :mod:`feature_extraction.visual` -
  batched extractors plugged into ``--feature``.
"""
