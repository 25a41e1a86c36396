"""FFSeg: the detect-and-locate model of Kong et al. (IEEE TIFS 2022), section III."""

import warnings

import keras
from keras import ops

from ffseg.constants import TRAINING_STAGES
from ffseg.models.backbone import TAP_NAMES, xception_backbone
from ffseg.models.heads import (
    ClassificationHead,
    DetectionScores,
    LocalizationMap,
    NoiseMapHead,
    SemanticMapHead,
)
from ffseg.models.losses import (
    MultiScaleMaskLoss,
    MultiScaleNoiseLoss,
    classification_loss,
    noise_unit_scale,
)
from ffseg.models.metrics import ManipulationIoU

NUM_SCALES = len(TAP_NAMES)
SEMANTIC_MAP_KEYS = tuple(f"semantic_map_{j + 1}" for j in range(NUM_SCALES))
NOISE_MAP_KEYS = tuple(f"noise_map_{j + 1}" for j in range(NUM_SCALES))

# The stages `FFSeg.set_training_stage` accepts. `TRAINING_STAGES` holds the
# paper's two steps (Sec. IV-B.1): "semantic" (backbone and semantic heads on
# the mask loss alone) and "full" (everything, Eq. 1). "semantic_and_classifier"
# is the first step ffseg 0.1 trained (the classifier trains with the semantic
# branch, only the noise branch is frozen): kept as a variant to compare.
SEMANTIC_AND_CLASSIFIER = "semantic_and_classifier"
STAGES = (TRAINING_STAGES[0], SEMANTIC_AND_CLASSIFIER, TRAINING_STAGES[-1])


def _num_replicas_in_sync():
    """Replicas that each see a slice of the global batch (1 off tf.distribute).

    Only the TensorFlow backend splits a batch over replicas inside the step;
    JAX computes the step on the global batch.
    """
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _check_taps(taps):
    """`taps` as a tuple in backbone order (shallow to deep), validated."""
    if isinstance(taps, str):
        taps = [taps]
    taps = [str(tap) for tap in taps]
    unknown = sorted(set(taps) - set(TAP_NAMES))
    if unknown or not taps or len(set(taps)) != len(taps):
        raise ValueError(
            f"taps must be distinct names among {TAP_NAMES}, at least one; got {tuple(taps)}"
        )
    return tuple(tap for tap in TAP_NAMES if tap in taps)


def ffseg_arguments(model_config, loss_config):
    """`FFSeg` keyword arguments from an experiment's `ModelConfig` and `LossConfig`.

    The one mapping from `ffseg.config` to the model, so a field added to
    either config reaches the model wherever a model is built from it.
    """
    return dict(
        image_size=model_config.image_size,
        num_classes=model_config.num_classes,
        backbone_weights=model_config.backbone_weights,
        gammas=model_config.gammas,
        batch_norm_momentum=model_config.batch_norm_momentum,
        semantic_maps=model_config.semantic_maps,
        noise_maps=model_config.noise_maps,
        taps=model_config.taps,
        noise_loss_weight=loss_config.noise_weight,
        mask_loss_weight=loss_config.mask_weight,
        noise_unit=loss_config.noise_unit,
    )


@keras.saving.register_keras_serializable(package="ffseg")
class FFSeg(keras.Model):
    """Two-stream multi-scale face forgery detector and localizer (paper Fig. 2).

    An Xception backbone (`ffseg.models.backbone`) feeds three taps; on each
    tap a `SemanticMapHead` predicts a manipulation probability map and a
    `NoiseMapHead` a noise residual map. The last semantic and noise features
    are concatenated, multiplied by the last semantic map (spatial
    attention), and classified by a `ClassificationHead`. The localization
    map is the gamma-weighted sum of the semantic maps resized to the input.

    The ablations of paper Table VII and VIII remove heads (they have no
    weights and no outputs, not merely a zero loss weight):

    - `semantic_maps=False`: no semantic heads, hence no attention and no
      localization map; the classifier sees the noise features.
    - `noise_maps=False`: no noise heads; the classifier sees the
      attention-weighted semantic features.
    - both False (detection only): the classifier sees the deepest tap.
    - `taps`: which backbone taps carry heads (Table VIII); the deepest of
      them feeds the classifier, and the localization map weighs the present
      semantic maps with their gammas rescaled to the same total.

    Input: float32 `(B, S, S, 3)` RGB pixels in [0, 255] (cast uint8 images;
    the model normalises them). Output: one dict,

    - `"logits"`: `(B, 1)` for `num_classes=2`, else `(B, num_classes)`;
    - `"score"`: `(B,)` probability that the face is fake;
    - `"class_probabilities"`: `(B, num_classes)` (`[1 - p, p]` in binary mode);
    - `"semantic_map_{j}"`, `"noise_map_{j}"`: `(B, h_j, w_j, 1)` at tap j
      (1 low, 2 mid, 3 high: 147/37/19 at S=299), for the present heads;
      noise maps are in `noise_unit`;
    - `"localization_map"`: `(B, S, S, 1)`, when there are semantic maps.

    Training targets `y` are a dict: `"label"` `(B,)` 0 real / 1 fake,
    `"method"` `(B,)` 0 real, 1..4 the FF++ methods (used when
    `num_classes > 2`), `"mask"` `(B, S, S, 1)` in {0, 1}, `"noise"`
    `(B, S, S, 1)` noise residual in pixel units (0..255, as the dataset
    stores it). The loss is Eq. 1,
    L = Lc + noise_loss_weight * Ln + mask_loss_weight * Lb, see
    `ffseg.models.losses`. Compile with an optimizer only: losses and
    metrics (`auc`, `accuracy`, `iou`, and the loss components) are built in.

    Args:
        image_size: input side S (at least 71).
        num_classes: 2 (real/fake) or the number of classes of the method
            task, real included (5 for FF++, paper Table V).
        backbone_weights: `"imagenet"`, `None`, or a path to Xception
            (include_top=False) weights. Used at construction only: a
            reloaded model takes its weights from the saved file.
        gammas: localization map weights, shallow to deep (paper Table VI).
        noise_loss_weight: lambda_1 of Eq. 1.
        mask_loss_weight: lambda_2 of Eq. 1.
        head_filters: widths of the semantic and noise heads on the three
            taps (64, 256 and 728 channels at the taps).
        classifier_filters: width of the classification head.
        training_stage: one of `STAGES`, see `set_training_stage`.
        batch_norm_momentum: momentum of every BatchNormalization layer
            (backbone and heads); Keras' 0.99 suits long runs, short runs
            need less or inference normalises with the initial statistics.
        semantic_maps: build the semantic-map heads (paper Table VII).
        noise_maps: build the noise-map heads (paper Table VII).
        taps: the backbone taps that carry heads, among "low", "mid",
            "high" (paper Table VIII).
        noise_unit: the unit the noise maps regress: "unit" (the residual /
            255, as the authors' loader reads its 8-bit noise images: with
            it lambda_1 = 0.1 weighs what it weighed in their training) or
            "pixel" (0..255, what ffseg 0.1 trained on).

    Example:

    ```python
    import numpy as np
    from ffseg.models.ffseg_model import FFSeg

    model = FFSeg(image_size=71, backbone_weights=None)
    images = np.random.uniform(0, 255, (2, 71, 71, 3)).astype("float32")
    outputs = model.predict(images, verbose=0)
    outputs["score"].shape, outputs["localization_map"].shape  # (2,), (2, 71, 71, 1)

    # One training step on targets in the dataset's form.
    targets = {
        "label": np.array([0, 1], "int32"),
        "mask": np.zeros((2, 71, 71, 1), "float32"),
        "noise": np.zeros((2, 71, 71, 1), "float32"),
    }
    model.set_training_stage("semantic")  # paper Sec. IV-B.1, step 1
    model.compile(optimizer="adam")
    model.fit(images, targets, batch_size=2, epochs=1, verbose=0)

    # Table VII: detection with semantic maps only (no noise heads).
    semantic_only = FFSeg(image_size=71, noise_maps=False)
    ```
    """

    def __init__(
        self,
        image_size=299,
        num_classes=2,
        backbone_weights=None,
        gammas=(0.1, 0.2, 0.7),
        noise_loss_weight=0.1,
        mask_loss_weight=1.0,
        head_filters=(64, 128, 256),
        classifier_filters=512,
        training_stage="full",
        batch_norm_momentum=0.99,
        semantic_maps=True,
        noise_maps=True,
        taps=TAP_NAMES,
        noise_unit="unit",
        **kwargs,
    ):
        image_size = int(image_size)
        num_classes = int(num_classes)
        gammas = tuple(float(gamma) for gamma in gammas)
        head_filters = tuple(int(filters) for filters in head_filters)
        semantic_maps, noise_maps = bool(semantic_maps), bool(noise_maps)
        taps = _check_taps(taps)
        noise_unit_scale(noise_unit)  # validates
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if len(gammas) != NUM_SCALES or len(head_filters) != NUM_SCALES:
            raise ValueError(
                f"gammas and head_filters need {NUM_SCALES} values (one per tap), "
                f"got {gammas} and {head_filters}"
            )
        scales = [TAP_NAMES.index(tap) for tap in taps]

        # === Layers ===
        momentum = float(batch_norm_momentum)
        self.backbone = xception_backbone(
            (image_size, image_size, 3),
            weights=backbone_weights,
            name="backbone",
            batch_norm_momentum=momentum,
        )
        # Heads keep the name of their tap's scale (semantic_head_3 is on
        # "high" whatever the other taps), so outputs and weights line up
        # across ablations.
        self.semantic_heads = [
            SemanticMapHead(
                head_filters[j], batch_norm_momentum=momentum, name=f"semantic_head_{j + 1}"
            )
            for j in (scales if semantic_maps else ())
        ]
        self.noise_heads = [
            NoiseMapHead(head_filters[j], batch_norm_momentum=momentum, name=f"noise_head_{j + 1}")
            for j in (scales if noise_maps else ())
        ]
        self.fusion = (
            keras.layers.Concatenate(name="fusion") if semantic_maps and noise_maps else None
        )
        # Spatial attention needs a semantic map to attend with.
        self.attention = (
            keras.layers.Multiply(name="semantic_attention") if semantic_maps else None
        )
        self.classification_head = ClassificationHead(
            num_classes,
            filters=classifier_filters,
            batch_norm_momentum=momentum,
            name="classification_head",
        )
        self.detection_scores = DetectionScores(num_classes, name="detection_scores")
        self.localization = None
        if semantic_maps:
            # A subset of taps keeps the gammas' total, so the map stays on
            # the scale its 0.5 IoU threshold assumes.
            present = [gammas[j] for j in scales]
            rescale = sum(gammas) / sum(present) if len(scales) < NUM_SCALES else 1.0
            self.localization = LocalizationMap(
                image_size, [gamma * rescale for gamma in present], name="localization_map"
            )

        # === Functional model ===
        images = keras.Input(shape=(image_size, image_size, 3), name="image")
        features = self.backbone(images)
        maps = {}
        semantic_features = noise_features = None
        # Shallow to deep, so the last features are the deepest tap's.
        for j, head in zip(scales, self.semantic_heads):
            semantic_features, maps[SEMANTIC_MAP_KEYS[j]] = head(features[TAP_NAMES[j]])
        for j, head in zip(scales, self.noise_heads):
            noise_features, maps[NOISE_MAP_KEYS[j]] = head(features[TAP_NAMES[j]])
        # The classifier's input: the deepest present features, fused and
        # weighted by the deepest semantic map (spatial attention) if any.
        if semantic_maps and noise_maps:
            classifier_input = self.fusion([semantic_features, noise_features])
        elif semantic_maps:
            classifier_input = semantic_features
        elif noise_maps:
            classifier_input = noise_features
        else:
            classifier_input = features[taps[-1]]
        if semantic_maps:
            deepest_map = maps[SEMANTIC_MAP_KEYS[scales[-1]]]
            classifier_input = self.attention([classifier_input, deepest_map])
        logits = self.classification_head(classifier_input)
        score, class_probabilities = self.detection_scores(logits)
        outputs = {"logits": logits, "score": score, "class_probabilities": class_probabilities}
        for key in SEMANTIC_MAP_KEYS + NOISE_MAP_KEYS:
            if key in maps:
                outputs[key] = maps[key]
        if semantic_maps:
            outputs["localization_map"] = self.localization(
                [maps[SEMANTIC_MAP_KEYS[j]] for j in scales]
            )
        kwargs.setdefault("name", "ffseg")
        super().__init__(inputs=images, outputs=outputs, **kwargs)

        # === Config ===
        self.image_size = image_size
        self.num_classes = num_classes
        self.backbone_weights = None if backbone_weights is None else str(backbone_weights)
        self.gammas = gammas
        self.noise_loss_weight = float(noise_loss_weight)
        self.mask_loss_weight = float(mask_loss_weight)
        self.head_filters = head_filters
        self.classifier_filters = int(classifier_filters)
        self.batch_norm_momentum = momentum
        self.semantic_maps = semantic_maps
        self.noise_maps = noise_maps
        self.taps = taps
        self.noise_unit = str(noise_unit)
        # The output keys of the present maps, shallow to deep.
        self.semantic_map_keys = tuple(key for key in SEMANTIC_MAP_KEYS if key in outputs)
        self.noise_map_keys = tuple(key for key in NOISE_MAP_KEYS if key in outputs)

        # === Losses and metrics ===
        # A removed head has no loss and no tracker: its log would read 0.
        self.classification_loss_fn = classification_loss(num_classes)
        self.classification_loss_tracker = keras.metrics.Mean(name="classification_loss")
        self.noise_loss_fn = self.noise_loss_tracker = None
        self.mask_loss_fn = self.mask_loss_tracker = None
        if noise_maps:
            self.noise_loss_fn = MultiScaleNoiseLoss(unit=self.noise_unit)
            self.noise_loss_tracker = keras.metrics.Mean(name="noise_loss")
        if semantic_maps:
            self.mask_loss_fn = MultiScaleMaskLoss()
            self.mask_loss_tracker = keras.metrics.Mean(name="mask_loss")
        self.auc_metric = keras.metrics.AUC(num_thresholds=1000, name="auc")
        if num_classes == 2:
            self.accuracy_metric = keras.metrics.BinaryAccuracy(name="accuracy")
        else:
            self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.iou_metric = ManipulationIoU(name="iou") if semantic_maps else None

        self.training_stage = None
        self.set_training_stage(training_stage)

    def set_training_stage(self, stage):
        """Selects what trains (paper Sec. IV-B.1); call before `compile`.

        - `"semantic"`, the paper's step (1): the backbone and the semantic
          heads train on the mask loss alone; the noise heads and the
          classifier are frozen (BatchNormalization statistics included)
          and the classification and noise losses are off (still logged).
        - `"semantic_and_classifier"`: step (1) as ffseg 0.1 ran it: the
          classifier trains too (classification + mask loss); only the noise
          heads are frozen and the noise loss is off.
        - `"full"`, step (2): everything trains, Eq. 1 with the configured
          weights.

        Changing the stage of a compiled model takes effect at the next
        `compile`.
        """
        if stage not in STAGES:
            raise ValueError(f"training stage must be one of {STAGES}, got {stage!r}")
        if stage != "full" and not self.semantic_maps:
            raise ValueError(
                f"training stage {stage!r} trains the semantic heads, and this model has none "
                "(semantic_maps=False): train it in stage 'full'"
            )
        if stage == "semantic" and self.mask_loss_weight <= 0.0:
            raise ValueError(
                "training stage 'semantic' trains on the mask loss alone, and "
                f"mask_loss_weight is {self.mask_loss_weight}"
            )
        if self.compiled and stage != self.training_stage:
            warnings.warn(
                "set_training_stage() on a compiled FFSeg: call compile() again "
                "before training so the optimizer sees the new trainable weights.",
                stacklevel=2,
            )
        for head in self.noise_heads:
            head.trainable = stage == "full"
        self.classification_head.trainable = stage != "semantic"
        self.training_stage = stage

    @property
    def effective_noise_loss_weight(self):
        """lambda_1 in the current training stage (0 before "full" or without noise maps)."""
        if self.training_stage != "full" or not self.noise_maps:
            return 0.0
        return self.noise_loss_weight

    @property
    def effective_classification_loss_weight(self):
        """The weight of Lc in the current stage: 0 in the paper's step 1 ("semantic")."""
        return 0.0 if self.training_stage == "semantic" else 1.0

    def _fake_label(self, y):
        if "label" in y:
            return y["label"]
        if "method" in y:
            return ops.cast(ops.greater(y["method"], 0), "int32")
        raise KeyError("FFSeg targets need a 'label' (or 'method') entry")

    def _class_target(self, y):
        if self.num_classes == 2:
            return self._fake_label(y)
        if "method" not in y:
            raise KeyError(f"FFSeg with num_classes={self.num_classes} needs a 'method' target")
        return y["method"]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """L = Lc + lambda_1 Ln + lambda_2 Lb (paper Eq. 1), from the output dict."""
        del x, training
        if not isinstance(y, dict):
            raise ValueError(
                "FFSeg needs a dict of targets with 'label'/'method', 'mask' and 'noise'; "
                f"got {type(y).__name__}"
            )
        if self.loss is not None:
            raise ValueError("FFSeg computes its own loss: compile it without `loss`.")
        replicas = _num_replicas_in_sync()
        batch_size = ops.shape(y_pred["logits"])[0]

        def track(tracker, value):
            # Loss values are already divided by the replica count (for the
            # gradient sum); the tracker must see the true component.
            tracker.update_state(value * replicas, sample_weight=batch_size)

        classification = self.classification_loss_fn(
            self._class_target(y), y_pred["logits"], sample_weight=sample_weight
        )
        track(self.classification_loss_tracker, classification)
        total = 0.0
        if self.effective_classification_loss_weight > 0.0:
            total = classification

        noise_weight = self.effective_noise_loss_weight
        if self.noise_maps and (noise_weight > 0.0 or "noise" in y):
            if "noise" not in y:
                raise KeyError("FFSeg targets need 'noise' while the noise loss is on")
            noise_loss = self.noise_loss_fn(
                y["noise"],
                [y_pred[key] for key in self.noise_map_keys],
                sample_weight=sample_weight,
            )
            track(self.noise_loss_tracker, noise_loss)
            if noise_weight > 0.0:
                total = total + noise_weight * noise_loss

        if self.semantic_maps and (self.mask_loss_weight > 0.0 or "mask" in y):
            if "mask" not in y:
                raise KeyError("FFSeg targets need 'mask' while the mask loss is on")
            mask_loss = self.mask_loss_fn(
                y["mask"],
                [y_pred[key] for key in self.semantic_map_keys],
                sample_weight=sample_weight,
            )
            track(self.mask_loss_tracker, mask_loss)
            if self.mask_loss_weight > 0.0:
                total = total + self.mask_loss_weight * mask_loss

        # Regularization losses count once per global batch, like the others.
        for extra in self.losses:
            total = total + ops.sum(extra) / replicas
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates `auc`, `accuracy` and `iou`; returns every metric's value."""
        del x
        label = self._fake_label(y)
        self.auc_metric.update_state(label, y_pred["score"], sample_weight=sample_weight)
        if self.num_classes == 2:
            self.accuracy_metric.update_state(label, y_pred["score"], sample_weight=sample_weight)
        else:
            self.accuracy_metric.update_state(
                y["method"], y_pred["class_probabilities"], sample_weight=sample_weight
            )
        if self.iou_metric is not None and "mask" in y:
            manipulated = ops.cast(ops.reshape(label, (-1,)), "float32")
            if sample_weight is not None:
                manipulated = manipulated * ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
            self.iou_metric.update_state(
                y["mask"], y_pred["localization_map"], sample_weight=manipulated
            )
        return self.get_metrics_result()

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "num_classes": self.num_classes,
            "backbone_weights": self.backbone_weights,
            "gammas": list(self.gammas),
            "noise_loss_weight": self.noise_loss_weight,
            "mask_loss_weight": self.mask_loss_weight,
            "head_filters": list(self.head_filters),
            "classifier_filters": self.classifier_filters,
            "batch_norm_momentum": self.batch_norm_momentum,
            "training_stage": self.training_stage,
            "semantic_maps": self.semantic_maps,
            "noise_maps": self.noise_maps,
            "taps": list(self.taps),
            "noise_unit": self.noise_unit,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # A reloaded model gets its weights from the saved file; fetching or
        # reading the ImageNet weights again would be wasted (or fail offline).
        config["backbone_weights"] = None
        # Models saved by ffseg 0.1 have no noise_unit: they regressed the
        # noise residual in pixel units.
        config.setdefault("noise_unit", "pixel")
        return cls(**config)
