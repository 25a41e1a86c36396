"""Experiment configuration: frozen dataclasses and the named experiments.

An `ExperimentConfig` fully describes one training run; `experiments/train.py`
resolves it from `--experiment NAME` plus `--set key=value` overrides and writes
it as JSON into the model directory before training starts, so every run can
be reproduced from its own folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing

from ffseg.constants import CLASS_NAMES, METHODS, QUALITIES  # noqa: F401  (re-exported)

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
        pseudo_fakes: fraction of the training stream made of self-blended
            pseudo-fakes of real faces (Shiohara & Yamasaki, CVPR 2022), made
            on the fly with their blend masks and noise labels, method id 5
            ("pseudo-fake"); the same fraction of the validation split's real
            faces is turned into pseudo-fakes. 0: none. Needs a binary model.
        stored_fakes: use the dataset's fakes; False: real faces and
            pseudo-fakes only (needs `pseudo_fakes` > 0), for a model that
            never sees a manipulation method.
        loader_workers: threads that make the batches of the TensorFlow-free
            loader (`ffseg.data.arrays`, the JAX backend's input); 0: one per
            CPU core, at most 8. Batches are pure functions of their number:
            the count changes the speed, never the batches.
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
    pseudo_fakes: float = 0.0
    stored_fakes: bool = True
    loader_workers: int = 0

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
    """Optimisation schedule: the paper's two training steps (section IV-B.1).

    Step 1 (`semantic_epochs`) trains what `first_step` names, and its
    checkpoint is the epoch of best validation IoU (`semantic/best.weights.h5`);
    step 2 (`full_epochs`) starts from that checkpoint and trains everything on
    Eq. 1, and its best validation AUC is the run's result (`best.weights.h5`,
    `model.keras`, `export/`). Adam(0.9, 0.999), lr 2e-4, weight decay 1e-5,
    batch 32 as in the paper.

    Args:
        batch_size: the global batch (split across replicas).
        learning_rate / weight_decay: Adam's.
        semantic_epochs / full_epochs: epochs of step 1 and step 2 (0 skips a
            step; not both).
        first_step: what step 1 trains. "semantic" is the paper's step 1:
            the Xception backbone and the semantic map heads on the mask loss
            alone (classifier and noise heads frozen). "semantic_and_classifier"
            is ffseg 0.1's step 1: the classifier trains too, on frozen noise
            features.
        steps_per_epoch / validation_steps: None = the whole split per epoch.
        mixed_precision: a Keras dtype policy name: "mixed_bfloat16" (current
            GPUs and TPUs), "mixed_float16" (older GPUs; loss scaling is
            automatic), or None / "float32" for full precision. A run folder
            of ffseg 0.1 holds a bool: `false` reads as None, `true` as
            "mixed_float16" (what it switched on).
        tensorboard_images: faces shown with their maps in TensorBoard (0: none).
        export: write the SavedModel for serving at the end.
    """

    batch_size: int = 32
    learning_rate: float = 2e-4
    weight_decay: float = 1e-5
    semantic_epochs: int = 5
    full_epochs: int = 10
    first_step: str = "semantic"
    steps_per_epoch: typing.Optional[int] = None
    validation_steps: typing.Optional[int] = None
    mixed_precision: typing.Optional[str] = None
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
        """The config that `to_dict` (or a run folder's config.json) describes.

        Missing fields take their defaults; unknown sections or fields and
        values of the wrong type raise a one-line `ConfigError` naming them.
        Example:

        >>> config = get_experiment("sample")
        >>> ExperimentConfig.from_dict(json.loads(config.to_json())) == config
        True
        """
        return from_dict(values)


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


# Runs on 2 CPU cores in a few minutes: the README's main job. Small input,
# random init (no download), few steps, on the embedded sample dataset.
_SAMPLE = ExperimentConfig(
    model=ModelConfig(image_size=96, backbone_weights=None, batch_norm_momentum=0.9),
    data=DataConfig(dataset="ffpp/sample", shuffle_buffer=256, deterministic=True),
    train=TrainConfig(
        batch_size=8,
        learning_rate=1e-3,
        semantic_epochs=3,
        full_epochs=9,
        steps_per_epoch=None,
    ),
)

EXPERIMENTS: typing.Dict[str, ExperimentConfig] = {
    "sample": _SAMPLE,
    # The sample's real faces only, and self-blended pseudo-fakes of them:
    # the sample's four imitation methods are never seen in training.
    "sample_sbi": dataclasses.replace(
        _SAMPLE, data=dataclasses.replace(_SAMPLE.data, pseudo_fakes=0.5, stored_fakes=False)
    ),
    "ffpp_c23": _ffpp("c23", 2),
    # FF++ c23 real faces and their pseudo-fakes, 1:1: evaluated on the four
    # FF++ methods and on Celeb-DF, the generalization table.
    "ffpp_c23_sbi": dataclasses.replace(
        _ffpp("c23", 2),
        data=DataConfig(dataset="ffpp/c23", pseudo_fakes=0.5, stored_fakes=False),
    ),
    "ffpp_c40": _ffpp("c40", 2),
    "ffpp_c23_5class": _ffpp("c23", 5),
    "ffpp_c40_5class": _ffpp("c40", 5),
    # Paper Table III as the paper ran it (on LQ faces): one detector per
    # method, trained and tested on real + that method. ffpp_<q>_deepfakes is
    # also Table IV's model of quality q: real + Deepfakes only (Sec. IV-C),
    # evaluated on Celeb-DF.
    **{
        f"ffpp_{quality}_{method.lower()}": _ffpp(quality, 2, (method,))
        for quality in QUALITIES
        for method in METHODS
    },
}


# One line per experiment for `python -m experiments.train --list`. Every
# name in EXPERIMENTS needs one (tests/test_config.py checks): add it here
# when adding an experiment.
DESCRIPTIONS: typing.Dict[str, str] = {
    "sample": "the README's main job: the embedded ffpp/sample faces, 96 px, random init, "
    "a few minutes on 2 CPU cores",
    "sample_sbi": "the sample's real faces and self-blended pseudo-fakes of them, never its "
    "fakes; compare with `sample` on its test split",
    "ffpp_c23": "FF++ c23 (HQ), real/fake, 299 px, ImageNet Xception (paper Table II)",
    "ffpp_c23_sbi": "FF++ c23 real faces + self-blended pseudo-fakes (1:1), no stored fakes; "
    "test on the four FF++ methods and Celeb-DF (generalization)",
    "ffpp_c40": "FF++ c40 (LQ), real/fake, 299 px, ImageNet Xception (paper Table II)",
    "ffpp_c23_5class": "FF++ c23, real + the four methods as 5 classes (paper Table V)",
    "ffpp_c40_5class": "FF++ c40, real + the four methods as 5 classes (paper Table V)",
    **{
        f"ffpp_{quality}_{method.lower()}": f"FF++ {quality}, real + {method} only "
        + ("(paper Tables III and IV: Celeb-DF)" if method == "Deepfakes" else "(paper Table III)")
        for quality in QUALITIES
        for method in METHODS
    },
}

# The two values of `train.first_step`: FFSeg training stages (see
# `FFSeg.set_training_stage`) that step 1 may run. "semantic" is the paper's.
FIRST_STEPS = ("semantic", "semantic_and_classifier")
# `train.mixed_precision` values besides None: Keras dtype policy names.
PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


class ConfigError(ValueError):
    """A config value, field or `--set` assignment that cannot be used.

    The message is one line that names the field (`section.field`) and says
    what was expected, e.g. `model.image_size: expected an integer, got 'abc'`.
    """


def get_experiment(name: str) -> ExperimentConfig:
    """The named experiment's config (a key of `EXPERIMENTS`).

    Example:

    >>> get_experiment("ffpp_c40").data.dataset
    'ffpp/c40'
    """
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown experiment {name!r}; choose one of {', '.join(sorted(EXPERIMENTS))}"
        ) from None


def describe_experiments() -> typing.List[typing.Tuple[str, str]]:
    """`(name, one-line description)` of every experiment, sorted by name."""
    return [
        (name, DESCRIPTIONS.get(name, "(no description)")) for name in sorted(EXPERIMENTS)
    ]


# === Field types: parsing `--set` text and checking JSON values =============


def _field_types(section_cls) -> dict:
    return typing.get_type_hints(section_cls)


def _split_optional(hint):
    """(inner type, True) for Optional[X], else (hint, False)."""
    if typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _describe(hint) -> str:
    """A field type in words, for messages: 'an integer', 'none or a string'..."""
    inner, optional = _split_optional(hint)
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        if len(args) == 2 and args[1] is Ellipsis:
            text = f"a comma-separated list of {_describe(args[0]).split(' ', 1)[1]}s"
        else:
            text = f"a comma-separated list of {len(args)} {_describe(args[0]).split(' ', 1)[1]}s"
    else:
        text = {
            bool: "a boolean (true or false)",
            int: "an integer",
            float: "a number",
            str: "a string",
        }.get(inner, f"a {getattr(inner, '__name__', inner)}")
    return f"none or {text}" if optional else text


def _coerce(value, hint):
    """`value` as a value of type `hint` (JSON lists -> tuples, ints -> floats).

    Raises TypeError when it is not one.
    """
    inner, optional = _split_optional(hint)
    if value is None:
        if optional:
            return None
        raise TypeError
    if typing.get_origin(inner) is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError
        args = typing.get_args(inner)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(item, args[0]) for item in value)
        if len(value) != len(args):
            raise TypeError
        return tuple(_coerce(item, arg) for item, arg in zip(value, args))
    if inner is bool:
        if isinstance(value, bool):
            return value
    elif inner is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif inner is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif inner is str:
        if isinstance(value, str):
            return value
    else:
        return value  # a type this module does not know: taken as given
    raise TypeError


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse_value(text: str, hint):
    """Parses `--set` text as a value of the field type `hint`.

    Raises TypeError or ValueError when the text is not one.
    """
    inner, optional = _split_optional(hint)
    if text.lower() in ("none", "null"):
        if optional:
            return None
        raise ValueError
    if typing.get_origin(inner) is tuple:
        args = typing.get_args(inner)
        items = [item.strip() for item in text.strip("()[] ").split(",") if item.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_parse_value(item, args[0]) for item in items)
        if len(items) != len(args):
            raise ValueError
        return tuple(_parse_value(item, arg) for item, arg in zip(items, args))
    if inner is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError
    if inner is int:
        return int(text)
    if inner is float:
        return float(text)
    return text


# === Value rules beyond the type ============================================


def _at_least(minimum):
    return lambda value: value is None or value >= minimum


def _one_of(choices):
    return lambda value: value is None or value in choices


# "section.field" -> (rule, what is expected). A field that a later version
# renames is skipped, not an error.
_RULES = {
    "model.image_size": (_at_least(71), "an integer of at least 71 (Xception's smallest input)"),
    "model.num_classes": (_at_least(2), "an integer of at least 2"),
    "train.batch_size": (_at_least(1), "a positive integer"),
    "train.learning_rate": (lambda v: v > 0, "a positive number"),
    "train.weight_decay": (_at_least(0), "a number of at least 0"),
    "train.semantic_epochs": (_at_least(0), "an integer of at least 0"),
    "train.full_epochs": (_at_least(0), "an integer of at least 0"),
    "train.first_step": (_one_of(FIRST_STEPS), "one of " + ", ".join(FIRST_STEPS)),
    "train.steps_per_epoch": (_at_least(1), "none or a positive integer"),
    "train.validation_steps": (_at_least(1), "none or a positive integer"),
    "train.mixed_precision": (
        _one_of(PRECISION_POLICIES),
        "none or a dtype policy name: " + ", ".join(PRECISION_POLICIES),
    ),
    "train.tensorboard_images": (_at_least(0), "an integer of at least 0"),
    "data.shuffle_buffer": (_at_least(1), "a positive integer"),
    "data.loader_workers": (_at_least(0), "an integer of at least 0"),
    "data.max_validation_examples": (_at_least(1), "none or a positive integer"),
}


def _check_field(key: str, value, hint):
    try:
        value = _coerce(value, hint)
    except TypeError:
        raise ConfigError(f"{key}: expected {_describe(hint)}, got {value!r}") from None
    rule = _RULES.get(key)
    if rule is not None and not rule[0](value):
        raise ConfigError(f"{key}: expected {rule[1]}, got {value!r}")
    return value


def validate(config: ExperimentConfig) -> ExperimentConfig:
    """Checks every field's type and range; returns `config` unchanged.

    Raises:
        ConfigError: naming the first wrong field and what it expects.
    """
    for name, section_cls in _SECTIONS.items():
        section = getattr(config, name)
        for field_name, hint in _field_types(section_cls).items():
            _check_field(f"{name}.{field_name}", getattr(section, field_name), hint)
    # Checks across fields run here, after every `--set`: their order is free.
    if not 0.0 <= config.data.pseudo_fakes < 1.0:
        raise ConfigError(
            f"data.pseudo_fakes: expected a fraction in [0, 1), got {config.data.pseudo_fakes}"
        )
    if not config.data.stored_fakes and config.data.pseudo_fakes == 0.0:
        raise ConfigError(
            "data.stored_fakes: false leaves real faces only; set data.pseudo_fakes to a "
            "fraction in (0, 1), e.g. 0.5"
        )
    if config.data.pseudo_fakes and config.model.num_classes != 2:
        raise ConfigError(
            "data.pseudo_fakes: pseudo-fakes are no class of the "
            f"{config.model.num_classes}-class task; use them with model.num_classes=2"
        )
    if config.train.semantic_epochs == 0 and config.train.full_epochs == 0:
        raise ConfigError(
            "train.semantic_epochs, train.full_epochs: both are 0, nothing would be trained"
        )
    return config


def _unknown_field(section_name: str, field_name: str, names) -> ConfigError:
    close = difflib.get_close_matches(field_name, names, n=1)
    hint = f"; did you mean {section_name}.{close[0]}?" if close else ""
    return ConfigError(
        f"{section_name}.{field_name}: {section_name} has no field {field_name!r}{hint} "
        f"({section_name} fields: {', '.join(sorted(names))})"
    )


def _legacy(section_name: str, section: dict) -> dict:
    """Maps values that ffseg 0.1 wrote into config.json to today's fields."""
    if section_name == "train" and section:
        if isinstance(section.get("mixed_precision"), bool):
            # 0.1's bool switched on "mixed_float16".
            section["mixed_precision"] = "mixed_float16" if section["mixed_precision"] else None
        # 0.1 wrote no first_step: its step 1 trained the classifier too.
        section.setdefault("first_step", "semantic_and_classifier")
    return section


def from_dict(values: dict) -> ExperimentConfig:
    """`ExperimentConfig.from_dict`: a config from nested JSON-like values."""
    if not isinstance(values, dict):
        raise ConfigError(f"a config is a JSON object of sections, got {type(values).__name__}")
    unknown = sorted(set(values) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: no such config section (sections: {', '.join(_SECTIONS)})"
        )
    kwargs = {}
    for name, section_cls in _SECTIONS.items():
        section = values.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{name}: expected a JSON object of fields, got {section!r}")
        section = _legacy(name, dict(section))
        types = _field_types(section_cls)
        for field_name in section:
            if field_name not in types:
                raise _unknown_field(name, field_name, types)
        kwargs[name] = section_cls(
            **{
                field_name: _check_field(f"{name}.{field_name}", value, types[field_name])
                for field_name, value in section.items()
            }
        )
    return validate(ExperimentConfig(**kwargs))


def override(config: ExperimentConfig, assignments) -> ExperimentConfig:
    """Applies `section.field=value` strings (e.g. `train.batch_size=16`).

    Each value is parsed as its field's type ("none" for an optional field;
    "a,b,c" for a list); the result is validated.

    Raises:
        ConfigError: one line naming the assignment or field, and what it
            expects.

    Example:

    >>> config = override(get_experiment("sample"), ["train.batch_size=16"])
    >>> config.train.batch_size
    16
    """
    for assignment in assignments or ():
        key, sep, text = assignment.partition("=")
        section_name, _, field_name = key.strip().partition(".")
        if not sep or section_name not in _SECTIONS or not field_name:
            raise ConfigError(
                f"--set {assignment!r}: expected section.field=value with section one of "
                f"{', '.join(_SECTIONS)}"
            )
        types = _field_types(_SECTIONS[section_name])
        if field_name not in types:
            raise _unknown_field(section_name, field_name, types)
        hint = types[field_name]
        try:
            value = _parse_value(text.strip(), hint)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{section_name}.{field_name}: expected {_describe(hint)}, got {text.strip()!r}"
            ) from None
        value = _check_field(key.strip(), value, hint)
        section = dataclasses.replace(getattr(config, section_name), **{field_name: value})
        config = dataclasses.replace(config, **{section_name: section})
    return validate(config)


def differences(old: ExperimentConfig, new: ExperimentConfig) -> typing.List[str]:
    """`"section.field: old -> new"` for every field that differs, sorted."""
    flat_old, flat_new = _flatten(old.to_dict()), _flatten(new.to_dict())
    return [
        f"{key}: {flat_old.get(key)!r} -> {flat_new.get(key)!r}"
        for key in sorted(set(flat_old) | set(flat_new))
        if flat_old.get(key) != flat_new.get(key)
    ]


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat
