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
from ffseg.models.losses import MultiScaleMaskLoss, MultiScaleNoiseLoss, classification_loss
from ffseg.models.metrics import ManipulationIoU

NUM_SCALES = len(TAP_NAMES)
SEMANTIC_MAP_KEYS = tuple(f"semantic_map_{j + 1}" for j in range(NUM_SCALES))
NOISE_MAP_KEYS = tuple(f"noise_map_{j + 1}" for j in range(NUM_SCALES))


def _num_replicas_in_sync():
    """Replicas that each see a slice of the global batch (1 off tf.distribute).

    Only the TensorFlow backend splits a batch over replicas inside the step;
    JAX computes the step on the global batch.
    """
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


@keras.saving.register_keras_serializable(package="ffseg")
class FFSeg(keras.Model):
    """Two-stream multi-scale face forgery detector and localizer (paper Fig. 2).

    An Xception backbone (`ffseg.backbone`) feeds three taps; on each tap a
    `SemanticMapHead` predicts a manipulation probability map and a
    `NoiseMapHead` a noise residual map. The last semantic and noise features
    are concatenated, multiplied by the last semantic map (spatial
    attention), and classified by a `ClassificationHead`. The localization
    map is the gamma-weighted sum of the semantic maps resized to the input.

    Input: float32 `(B, S, S, 3)` RGB pixels in [0, 255] (cast uint8 images;
    the model normalises them). Output: one dict,

    - `"logits"`: `(B, 1)` for `num_classes=2`, else `(B, num_classes)`;
    - `"score"`: `(B,)` probability that the face is fake;
    - `"class_probabilities"`: `(B, num_classes)` (`[1 - p, p]` in binary mode);
    - `"semantic_map_{1,2,3}"`, `"noise_map_{1,2,3}"`: `(B, h_j, w_j, 1)` at
      the taps (147/37/19 at S=299), shallow to deep;
    - `"localization_map"`: `(B, S, S, 1)`.

    Training targets `y` are a dict: `"label"` `(B,)` 0 real / 1 fake,
    `"method"` `(B,)` 0 real, 1..4 the FF++ methods (used when
    `num_classes > 2`), `"mask"` `(B, S, S, 1)` in {0, 1}, `"noise"`
    `(B, S, S, 1)` noise residual in pixel units. The loss is Eq. 1,
    L = Lc + noise_loss_weight * Ln + mask_loss_weight * Lb, see
    `ffseg.losses`. Compile with an optimizer only: losses and metrics
    (`auc`, `accuracy`, `iou`, and the loss components) are built in.

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
        training_stage: `"full"` or `"semantic"`, see `set_training_stage`.
        batch_norm_momentum: momentum of every BatchNormalization layer
            (backbone and heads); Keras' 0.99 suits long runs, short runs
            need less or inference normalises with the initial statistics.
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
        **kwargs,
    ):
        image_size = int(image_size)
        num_classes = int(num_classes)
        gammas = tuple(float(gamma) for gamma in gammas)
        head_filters = tuple(int(filters) for filters in head_filters)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if len(gammas) != NUM_SCALES or len(head_filters) != NUM_SCALES:
            raise ValueError(
                f"gammas and head_filters need {NUM_SCALES} values (one per tap), "
                f"got {gammas} and {head_filters}"
            )

        # === Layers ===
        momentum = float(batch_norm_momentum)
        self.backbone = xception_backbone(
            (image_size, image_size, 3),
            weights=backbone_weights,
            name="backbone",
            batch_norm_momentum=momentum,
        )
        self.semantic_heads = [
            SemanticMapHead(filters, batch_norm_momentum=momentum, name=f"semantic_head_{j + 1}")
            for j, filters in enumerate(head_filters)
        ]
        self.noise_heads = [
            NoiseMapHead(filters, batch_norm_momentum=momentum, name=f"noise_head_{j + 1}")
            for j, filters in enumerate(head_filters)
        ]
        self.fusion = keras.layers.Concatenate(name="fusion")
        self.attention = keras.layers.Multiply(name="semantic_attention")
        self.classification_head = ClassificationHead(
            num_classes,
            filters=classifier_filters,
            batch_norm_momentum=momentum,
            name="classification_head",
        )
        self.detection_scores = DetectionScores(num_classes, name="detection_scores")
        self.localization = LocalizationMap(image_size, gammas, name="localization_map")

        # === Functional model ===
        images = keras.Input(shape=(image_size, image_size, 3), name="image")
        taps = self.backbone(images)
        outputs = {}
        for j, tap_name in enumerate(TAP_NAMES):
            semantic_features, outputs[SEMANTIC_MAP_KEYS[j]] = self.semantic_heads[j](
                taps[tap_name]
            )
            noise_features, outputs[NOISE_MAP_KEYS[j]] = self.noise_heads[j](taps[tap_name])
        # Spatial attention: the deepest semantic map weights the fused features.
        fused = self.fusion([semantic_features, noise_features])
        attended = self.attention([fused, outputs[SEMANTIC_MAP_KEYS[-1]]])
        logits = self.classification_head(attended)
        score, class_probabilities = self.detection_scores(logits)
        outputs = {
            "logits": logits,
            "score": score,
            "class_probabilities": class_probabilities,
            **outputs,
            "localization_map": self.localization([outputs[key] for key in SEMANTIC_MAP_KEYS]),
        }
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

        # === Losses and metrics ===
        self.classification_loss_fn = classification_loss(num_classes)
        self.noise_loss_fn = MultiScaleNoiseLoss()
        self.mask_loss_fn = MultiScaleMaskLoss()
        self.classification_loss_tracker = keras.metrics.Mean(name="classification_loss")
        self.noise_loss_tracker = keras.metrics.Mean(name="noise_loss")
        self.mask_loss_tracker = keras.metrics.Mean(name="mask_loss")
        self.auc_metric = keras.metrics.AUC(num_thresholds=1000, name="auc")
        if num_classes == 2:
            self.accuracy_metric = keras.metrics.BinaryAccuracy(name="accuracy")
        else:
            self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.iou_metric = ManipulationIoU(name="iou")

        self.training_stage = None
        self.set_training_stage(training_stage)

    def set_training_stage(self, stage):
        """Selects the paper's training step (Sec. IV-B.1); call before `compile`.

        - `"semantic"`, step (1): backbone, semantic heads and classifier
          train; the noise heads are frozen and the noise loss is off.
        - `"full"`, step (2): everything trains with the configured weights.

        Changing the stage of a compiled model takes effect at the next
        `compile`.
        """
        if stage not in TRAINING_STAGES:
            raise ValueError(f"training stage must be one of {TRAINING_STAGES}, got {stage!r}")
        if self.compiled and stage != self.training_stage:
            warnings.warn(
                "set_training_stage() on a compiled FFSeg: call compile() again "
                "before training so the optimizer sees the new trainable weights.",
                stacklevel=2,
            )
        for head in self.noise_heads:
            head.trainable = stage == "full"
        self.training_stage = stage

    @property
    def effective_noise_loss_weight(self):
        """lambda_1 in the current training stage (0 in the "semantic" stage)."""
        return self.noise_loss_weight if self.training_stage == "full" else 0.0

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

        total = self.classification_loss_fn(
            self._class_target(y), y_pred["logits"], sample_weight=sample_weight
        )
        track(self.classification_loss_tracker, total)

        noise_weight = self.effective_noise_loss_weight
        if noise_weight > 0.0 or "noise" in y:
            if "noise" not in y:
                raise KeyError("FFSeg targets need 'noise' while the noise loss is on")
            noise_loss = self.noise_loss_fn(
                y["noise"], [y_pred[key] for key in NOISE_MAP_KEYS], sample_weight=sample_weight
            )
            track(self.noise_loss_tracker, noise_loss)
            if noise_weight > 0.0:
                total = total + noise_weight * noise_loss

        if self.mask_loss_weight > 0.0 or "mask" in y:
            if "mask" not in y:
                raise KeyError("FFSeg targets need 'mask' while the mask loss is on")
            mask_loss = self.mask_loss_fn(
                y["mask"], [y_pred[key] for key in SEMANTIC_MAP_KEYS], sample_weight=sample_weight
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
        if "mask" in y:
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
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # A reloaded model gets its weights from the saved file; fetching or
        # reading the ImageNet weights again would be wasted (or fail offline).
        config["backbone_weights"] = None
        return cls(**config)
