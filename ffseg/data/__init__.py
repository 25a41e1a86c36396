"""The input pipeline: TFDS examples -> joint augmentation -> batches.

- `pipeline`: `ensure_built` and `make_dataset` on tf.data.
"""
