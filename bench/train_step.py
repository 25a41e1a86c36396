"""Time one training step of FFSeg against a bare Xception classifier.

Both models train on the same synthetic in-memory batch, with the same input
size, batch size, backend (KERAS_BACKEND) and dtype policy, with Adam; each
is warmed up (compilation), then the two alternate for `--steps` timed
`train_on_batch` calls each. Prints the median time per step of each and
their ratio, FFSeg / Xception.

The bare classifier is keras.applications.Xception (all 14 blocks) + global
average pooling + Dense: the "Xception" baseline of the paper's tables.
FFSeg stops its backbone after block 12 and adds six map heads, the
classifier and the multi-scale losses.

    KERAS_BACKEND=jax python bench/train_step.py --image-size 128 --batch-size 8
    python bench/train_step.py --dtype-policy mixed_bfloat16     # 299 px, batch 32
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model")
    parser.add_argument(
        "--dtype-policy", default=None, help='e.g. "mixed_bfloat16"; default: float32'
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def synthetic_batch(batch_size, image_size, seed):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
    label = (np.arange(batch_size) % 2).astype("int32")
    mask = np.zeros((batch_size, image_size, image_size, 1), "float32")
    quarter = image_size // 4
    mask[label == 1, quarter : 3 * quarter, quarter : 3 * quarter] = 1.0
    noise = rng.normal(scale=3.0, size=mask.shape).astype("float32")
    return images, {"label": label, "method": 2 * label, "mask": mask, "noise": noise}


def build_ffseg(image_size):
    import keras

    from ffseg.models.ffseg_model import FFSeg

    # Random weights, as the bare classifier's: the step time does not depend
    # on them, and the bench needs no download.
    model = FFSeg(image_size=image_size, backbone_weights=None)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=2e-4))
    return model


def build_xception_classifier(image_size):
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.applications.Xception(
        include_top=False, weights=None, input_shape=(image_size, image_size, 3), pooling="avg"
    )(x)
    logits = keras.layers.Dense(1, dtype=keras.config.dtype_policy().variable_dtype)(x)
    model = keras.Model(inputs, logits, name="xception_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=2e-4),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return model


def time_steps(runs, warmup, steps):
    """Seconds per `train_on_batch` for each `(model, x, y)` in `runs`.

    `train_on_batch` returns host values, so each call waits for its step.
    The models alternate step by step, so a change in machine load hits
    both alike and the ratio stays fair.
    """
    for model, x, y in runs.values():
        for _ in range(warmup):
            model.train_on_batch(x, y)
    durations = {name: [] for name in runs}
    for _ in range(steps):
        for name, (model, x, y) in runs.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            durations[name].append(time.perf_counter() - start)
    return durations


def describe_devices():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return ", ".join(sorted({device.device_kind for device in jax.devices()}))
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"{len(gpus)} GPU" if gpus else "CPU"


def main(argv=None):
    args = parse_args(argv)
    import keras

    if args.dtype_policy:
        keras.config.set_dtype_policy(args.dtype_policy)
    keras.utils.set_random_seed(args.seed)
    images, targets = synthetic_batch(args.batch_size, args.image_size, args.seed)

    runs = {
        "ffseg": (build_ffseg(args.image_size), images, targets),
        "xception": (
            build_xception_classifier(args.image_size),
            images,
            targets["label"].astype("float32")[:, None],
        ),
    }
    durations = time_steps(runs, args.warmup, args.steps)
    results = {
        name: (statistics.median(values), statistics.fmean(values))
        for name, values in durations.items()
    }

    print(
        f"backend={keras.backend.backend()} dtype_policy={keras.config.dtype_policy().name} "
        f"image_size={args.image_size} batch_size={args.batch_size} steps={args.steps} "
        f"devices={describe_devices()}"
    )
    for name, (median, mean) in results.items():
        print(
            f"{name:>9}: {1000 * median:9.1f} ms/step median, {1000 * mean:9.1f} mean, "
            f"{args.batch_size / median:8.1f} images/s"
        )
    ratio = results["ffseg"][0] / results["xception"][0]
    print(f"    ratio: {ratio:.2f} (FFSeg / Xception, median step time)")
    return ratio


if __name__ == "__main__":
    main()
