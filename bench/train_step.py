"""Time one training step of FFSeg against a bare Xception classifier.

Both models train on the same synthetic in-memory batch, with the same input
size, batch size, backend (KERAS_BACKEND) and dtype policy, with Adam; each
is warmed up (compilation), then the two alternate for `--steps` timed
`train_on_batch` calls each. Prints the median time per step of each and
their ratio, FFSeg / Xception.

The bare classifier is keras.applications.Xception (all 14 blocks) + global
average pooling + Dense: the "Xception" baseline of the paper's tables.
FFSeg stops its backbone after block 12 and adds six map heads, the
classifier and the multi-scale losses. Where PyTorch is installed, a bare
PyTorch Xception (`build_torch_xception`) trains on the same batch too, the
peer issue 12 measures FFSeg against (goal: FFSeg >= 1.0x its images/s).

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


def build_torch_xception(image_size):
    """A bare PyTorch Xception classifier with Adam, or None without PyTorch.

    The architecture of keras.applications.Xception (Chollet 2017): entry
    flow (two convolutions, three strided residual blocks of 128, 256 and
    728 channels), eight middle-flow blocks of three separable convolutions,
    the exit flow to 2048 channels, global average pooling and one logit.
    Returned as an object with `train_on_batch(x, y)` like a Keras model.
    """
    try:
        import torch
        from torch import nn
    except ImportError:
        return None

    def separable(cin, cout):
        return [
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]

    class Block(nn.Module):
        def __init__(self, cin, cout, repeats, stride, first_relu=True, grow_first=True):
            super().__init__()
            layers, channels = [], cin
            widths = [cout] * repeats if grow_first else [cin] * (repeats - 1) + [cout]
            for i, width in enumerate(widths):
                if i > 0 or first_relu:
                    layers.append(nn.ReLU())
                layers += separable(channels, width)
                channels = width
            if stride != 1:
                layers.append(nn.MaxPool2d(3, stride, padding=1))
            self.body = nn.Sequential(*layers)
            self.skip = None
            if stride != 1 or cin != cout:
                self.skip = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            return self.body(x) + (x if self.skip is None else self.skip(x))

    network = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        Block(64, 128, 2, 2, first_relu=False),
        Block(128, 256, 2, 2),
        Block(256, 728, 2, 2),
        *[Block(728, 728, 3, 1) for _ in range(8)],
        Block(728, 1024, 2, 2, grow_first=False),
        *separable(1024, 1536), nn.ReLU(),
        *separable(1536, 2048), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1),
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-4)
    loss_fn = nn.BCEWithLogitsLoss()

    class Trainer:
        name = f"torch {torch.__version__} Xception"

        def train_on_batch(self, x, y):
            images = torch.as_tensor(x).permute(0, 3, 1, 2) / 127.5 - 1.0
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(images), torch.as_tensor(y))
            loss.backward()
            optimizer.step()
            return float(loss.detach())  # waits for the step, as Keras' host values do

    network.train()
    return Trainer()


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
    torch_xception = build_torch_xception(args.image_size)
    if torch_xception is not None:
        runs["torch_xception"] = (
            torch_xception, images, targets["label"].astype("float32")[:, None]
        )
    else:
        print("PyTorch is not installed: no PyTorch Xception peer")
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
            f"{name:>14}: {1000 * median:9.1f} ms/step median, {1000 * mean:9.1f} mean, "
            f"{args.batch_size / median:8.1f} images/s"
        )
    ratio = results["ffseg"][0] / results["xception"][0]
    print(f"    ratio: {ratio:.2f} (FFSeg / Xception, median step time)")
    if "torch_xception" in results:
        speed = results["torch_xception"][0] / results["ffseg"][0]
        print(f"    FFSeg speed {speed:.2f}x the PyTorch bare Xception (images/s ratio; goal >= 1)")
    return ratio


if __name__ == "__main__":
    main()
