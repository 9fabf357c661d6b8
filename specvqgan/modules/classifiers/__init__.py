"""Spectrogram classifiers (VGGish-ish, Melception)."""
