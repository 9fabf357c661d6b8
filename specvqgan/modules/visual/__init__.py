"""Visual networks of the paper's conditions (ResNet-50, BN-Inception); weights by path in
:mod:`feature_extraction.weights`."""
