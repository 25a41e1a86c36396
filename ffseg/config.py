"""Experiment configuration: frozen dataclasses and the named experiments.

An `ExperimentConfig` fully describes one training run; `experiments/train.py`
resolves it from `--experiment NAME` plus `--set key=value` overrides and writes
it as JSON into the model directory before training starts, so every run can
be reproduced from its own folder.
"""

from __future__ import annotations

import dataclasses
import json
import typing

from ffseg.constants import CLASS_NAMES, METHODS  # noqa: F401  (re-exported)

# The backbone taps that can carry heads, shallow to deep (ffseg.models.backbone
# names them; repeated here because the config layer sits below the models).
TAPS = ("low", "mid", "high")
NOISE_UNITS = ("unit", "pixel")


def _names(value, field, allowed):
    """A tuple of names from a sequence or a comma-separated string, checked.

    `--set` and JSON give strings and lists; the dataclasses keep tuples.
    """
    if isinstance(value, str):
        value = [part for part in value.replace(" ", "").split(",") if part]
    value = tuple(str(name) for name in value)
    unknown = [name for name in value if name not in allowed]
    if unknown or not value or len(set(value)) != len(value):
        raise ValueError(
            f"{field} must be distinct names among {allowed}, at least one; got {value}"
        )
    # In the canonical order, so equal choices compare (and serialise) equal.
    return tuple(name for name in allowed if name in value)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The FFSeg network (paper section III).

    Args:
        image_size: side of the square face crop fed to the network. The paper
            uses 299; Xception needs at least 71.
        num_classes: 2 for real/fake, 5 for real + the four FF++ methods
            (paper Table V).
        backbone_weights: "imagenet", None (random) or a path to a Keras
            weights file of `keras.applications.Xception(include_top=False)`.
        gammas: weights of the three semantic maps in the localization map
            M = g1*M1 + g2*M2 + g3*M3 (paper section IV-D, Table VI).
        batch_norm_momentum: of every BatchNormalization layer; 0.99 (Keras'
            Xception) for full runs. A run of a few hundred steps needs less,
            or the moving statistics stay near their initial values and
            inference-mode outputs barely depend on the input.
        semantic_maps: build the semantic-map heads (paper Table VII); without
            them there is no attention and no localization map.
        noise_maps: build the noise-map heads (paper Table VII). Both False is
            the table's "detection only" row.
        taps: the backbone taps that carry heads, among "low", "mid", "high"
            (paper Table VIII); `--set model.taps=mid,high`.
    """

    image_size: int = 299
    num_classes: int = 2
    backbone_weights: typing.Optional[str] = "imagenet"
    gammas: typing.Tuple[float, float, float] = (0.1, 0.2, 0.7)
    batch_norm_momentum: float = 0.99
    semantic_maps: bool = True
    noise_maps: bool = True
    taps: typing.Tuple[str, ...] = TAPS

    def __post_init__(self):
        object.__setattr__(self, "taps", _names(self.taps, "model.taps", TAPS))


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """L = Lc + noise_weight * Ln + mask_weight * Lb (paper Eq. 1).

    The weights are the authors' code's (lambda1 = 0.1, lambda2 = 1.0).

    Args:
        noise_unit: the unit of the noise target that Ln compares with:
            "unit" (the stored residual / 255) is what the authors' loader
            gives (it reads the noise map as an 8-bit image, i.e. floats in
            [0, 1]), so lambda1 = 0.1 weighs what it weighed in their
            training; "pixel" keeps 0..255 units (ffseg 0.1), which makes
            the noise term ~255x heavier.
    """

    noise_weight: float = 0.1
    mask_weight: float = 1.0
    noise_unit: str = "unit"

    def __post_init__(self):
        if self.noise_unit not in NOISE_UNITS:
            raise ValueError(
                f"loss.noise_unit must be one of {NOISE_UNITS}, got {self.noise_unit!r}"
            )


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how they are fed.

    Args:
        dataset: TFDS name with config, e.g. "ffpp/c23".
        data_dir: TFDS data directory (None: TFDS' default, ~/tensorflow_datasets).
        manual_dir: FF++ root for building the dataset if it is missing
            (None: only the `sample` config can be built without one).
        train_split / validation_split: TFDS split names or slices.
        flip: random horizontal flip of image, mask and noise together.
        shuffle_buffer: examples held for shuffling the training split.
        deterministic: fixed shuffle/augmentation seeds and ordered tf.data.
        seed: the seed used when deterministic.
        max_validation_examples: cap on validation examples per epoch (None: all).
        balance: draw training examples from a real and a fake stream with
            equal probability, so batches are 1:1 real:fake in expectation
            whatever the stored ratio (paper Table I trains on 1:1).
        methods: FF++ methods whose fakes are used, with every real face
            (None: all four). ("Deepfakes",) is the training set of paper
            Table IV; one method per run is Table III as the paper ran it.
            The dataset must hold them: training stops first, naming any
            absent method.
        noise_sigma: sigma of the noise label (paper Eq. 5, 0..255 units);
            None: the dataset's. Another value recomputes the label from the
            stored face in the input pipeline (paper Fig. 4's sweep needs no
            rebuild).
    """

    dataset: str = "ffpp/c23"
    data_dir: typing.Optional[str] = None
    manual_dir: typing.Optional[str] = None
    train_split: str = "train"
    validation_split: str = "validation"
    flip: bool = True
    shuffle_buffer: int = 2048
    deterministic: bool = False
    seed: int = 0
    max_validation_examples: typing.Optional[int] = None
    balance: bool = False
    methods: typing.Optional[typing.Tuple[str, ...]] = None
    noise_sigma: typing.Optional[float] = None

    def __post_init__(self):
        if self.methods is not None:
            object.__setattr__(self, "methods", _names(self.methods, "data.methods", METHODS))
        if self.noise_sigma is not None:
            sigma = float(self.noise_sigma)
            if not sigma > 0.0:
                raise ValueError(f"data.noise_sigma must be positive, got {self.noise_sigma}")
            object.__setattr__(self, "noise_sigma", sigma)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule: the paper's two steps (section IV-B).

    Step 1 (`semantic_epochs`) trains the backbone, semantic heads and
    classifier with the noise branch frozen; step 2 (`full_epochs`) trains
    everything from step 1's weights. Adam(0.9, 0.999), lr 2e-4, weight
    decay 1e-5, batch 32 as in the paper.
    """

    batch_size: int = 32
    learning_rate: float = 2e-4
    weight_decay: float = 1e-5
    semantic_epochs: int = 5
    full_epochs: int = 10
    steps_per_epoch: typing.Optional[int] = None
    validation_steps: typing.Optional[int] = None
    mixed_precision: bool = False
    tensorboard_images: int = 4
    export: bool = True


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "ExperimentConfig":
        unknown = set(values) - set(_SECTIONS)
        if unknown:
            raise ValueError(f"unknown config sections: {sorted(unknown)}")
        kwargs = {}
        for name, section_cls in _SECTIONS.items():
            section = dict(values.get(name, {}))
            if "gammas" in section:
                section["gammas"] = tuple(section["gammas"])
            kwargs[name] = section_cls(**section)
        return cls(**kwargs)


_SECTIONS = {
    "model": ModelConfig,
    "loss": LossConfig,
    "data": DataConfig,
    "train": TrainConfig,
}


def _ffpp(quality: str, num_classes: int, methods=None) -> ExperimentConfig:
    # Balanced: the builds store one real face per fake frame of each of the
    # four methods' videos (1:4 with the default protocol; fewer fakes with a
    # method filter), while the paper trains on 1:1 (Table I).
    return ExperimentConfig(
        model=ModelConfig(num_classes=num_classes),
        data=DataConfig(dataset=f"ffpp/{quality}", balance=True, methods=methods),
    )


EXPERIMENTS: typing.Dict[str, ExperimentConfig] = {
    # Runs on 2 CPU cores in a few minutes: the README's main job. Small input,
    # random init (no download), few steps, on the embedded sample dataset.
    "sample": ExperimentConfig(
        model=ModelConfig(image_size=96, backbone_weights=None, batch_norm_momentum=0.9),
        data=DataConfig(dataset="ffpp/sample", shuffle_buffer=256, deterministic=True),
        train=TrainConfig(
            batch_size=8,
            learning_rate=1e-3,
            semantic_epochs=3,
            full_epochs=9,
            steps_per_epoch=None,
        ),
    ),
    "ffpp_c23": _ffpp("c23", 2),
    "ffpp_c40": _ffpp("c40", 2),
    "ffpp_c23_5class": _ffpp("c23", 5),
    "ffpp_c40_5class": _ffpp("c40", 5),
    # Paper Table IV (Celeb-DF): models trained on real + Deepfakes only
    # (Sec. IV-C), evaluated on Celeb-DF.
    "ffpp_c40_deepfakes": _ffpp("c40", 2, ("Deepfakes",)),
    # Paper Table III as the paper ran it: one detector per method, trained
    # and tested on real + that method (ffpp_c23_deepfakes is also Table IV's
    # c23 model).
    **{
        f"ffpp_c23_{method.lower()}": _ffpp("c23", 2, (method,))
        for method in METHODS
    },
}


def get_experiment(name: str) -> ExperimentConfig:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)}"
        ) from None


def _parse_value(text: str, current):
    """Parses `text` as the type of the field's current value."""
    if text.lower() in ("none", "null"):
        return None
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(current, tuple):
        items = [v.strip() for v in text.strip("()[] ").split(",")]
        if current and all(isinstance(v, str) for v in current):
            return tuple(items)  # names, e.g. model.taps=mid,high
        return tuple(float(v) for v in items)
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if current is None:
        # Optional fields: numbers stay numbers, anything else is a string.
        for convert in (int, float):
            try:
                return convert(text)
            except ValueError:
                pass
    return text


def override(config: ExperimentConfig, assignments) -> ExperimentConfig:
    """Applies `section.field=value` strings (e.g. `train.batch_size=16`)."""
    for assignment in assignments or ():
        key, sep, text = assignment.partition("=")
        section_name, _, field_name = key.strip().partition(".")
        if not sep or section_name not in _SECTIONS or not field_name:
            raise ValueError(
                f"--set expects section.field=value with section in "
                f"{sorted(_SECTIONS)}, got {assignment!r}"
            )
        section = getattr(config, section_name)
        names = {f.name for f in dataclasses.fields(section)}
        if field_name not in names:
            raise ValueError(
                f"{section_name} has no field {field_name!r}; fields: {sorted(names)}"
            )
        value = _parse_value(text.strip(), getattr(section, field_name))
        section = dataclasses.replace(section, **{field_name: value})
        config = dataclasses.replace(config, **{section_name: section})
    return config
