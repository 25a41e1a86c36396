"""The input pipeline: TFDS examples -> joint augmentation -> batches.

- `pipeline`: `ensure_built`, `check_methods` and `make_dataset` on tf.data
  (balanced real/fake stream, method filter, noise labels at any sigma,
  pseudo-fakes made on the fly from real faces).
- `arrays`: the TensorFlow-free loader of array_record builds (NumPy
  batches, `keras.utils.PyDataset`), for training under JAX.
- `augment`: the flip and balance decisions both loaders share; NumPy area
  resizing.
"""
