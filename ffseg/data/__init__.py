"""The input pipeline: TFDS examples -> joint augmentation -> batches.

- `pipeline`: `ensure_built`, `check_methods` and `make_dataset` on tf.data
  (balanced real/fake stream, method filter, noise labels at any sigma).
"""
