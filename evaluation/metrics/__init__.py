"""Evaluation metrics as pure functions over saved Melception outputs (paper section 5)."""
from evaluation.metrics.fid import fid
from evaluation.metrics.isc import inception_score
from evaluation.metrics.kid import kid
from evaluation.metrics.kl import mkl, video_id

__all__ = ["fid", "kid", "inception_score", "mkl", "video_id"]
