"""Training FFSeg: the paper's two steps, callbacks, distribution.

- `trainer`: `train(config, model_dir)`, what `python -m experiments.train` runs;
- `callbacks`: the best checkpoint and TensorBoard map images.
"""
