"""Data: splits, the in-memory image source, augmentation, image reading and the data sets.

``split`` (long-tailed counts and draws), ``source`` (``SSLTData``, ``TensorSource``),
``augment`` (batched tensor augmentation), ``imageio`` (safe image decoding) and
``datasets/`` (one registered data set per module).
"""
