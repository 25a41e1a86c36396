"""Every named experiment trains a step on the dummy FF++ build with its own options.

Each experiment's model (its `model` and `loss` sections, at 71 px with random
weights) runs one training step on batches made with its `data` options
(method filter, balance, noise sigma) from the dummy c23 build. Experiments
whose model sections are equal share one compiled model, so the suite builds
three models, not one per experiment.
"""

import math

import keras
import numpy as np
import pytest

from ffseg import config as config_lib
from ffseg.constants import CLASS_NAMES, METHODS, PSEUDO_FAKE_METHOD
from ffseg.data import pipeline as data_lib
from ffseg.models.ffseg_model import FFSeg, ffseg_arguments

SMALL = [
    "model.image_size=71",
    "model.backbone_weights=none",
    "train.batch_size=2",
    "data.shuffle_buffer=16",
    "data.deterministic=true",
]


@pytest.fixture(scope="module")
def compiled_models():
    return {}


@pytest.mark.parametrize("name", sorted(config_lib.EXPERIMENTS))
def test_experiment_trains_a_step(name, dummy_ffpp, compiled_models):
    config = config_lib.override(config_lib.get_experiment(name), SMALL)
    key = (config.model, config.loss)
    if key not in compiled_models:
        model = FFSeg(**ffseg_arguments(config.model, config.loss))
        model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate))
        compiled_models[key] = model
    model = compiled_models[key]

    if config.data.stored_fakes:
        data_lib.check_methods(dummy_ffpp, config.data.methods)
    ds = data_lib.make_dataset(
        dummy_ffpp,
        config.data.train_split,
        image_size=config.model.image_size,
        batch_size=config.train.batch_size,
        training=True,
        **data_lib.dataset_options(config.data),
    )
    kept = {0}
    if config.data.stored_fakes:
        kept |= {CLASS_NAMES.index(m) for m in config.data.methods or METHODS}
    if config.data.pseudo_fakes:
        kept.add(PSEUDO_FAKE_METHOD)
    for _, targets in ds.take(4):
        assert set(targets["method"].numpy()) <= kept

    before = [np.copy(weight) for weight in model.classification_head.get_weights()]
    logs = model.fit(ds, steps_per_epoch=1, epochs=1, verbose=0).history
    assert math.isfinite(logs["loss"][0]) and logs["loss"][0] > 0.0
    after = model.classification_head.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_the_protocol_experiments():
    experiments = config_lib.EXPERIMENTS
    for name, config in experiments.items():
        if name.endswith("_sbi"):
            # Real faces only, half the stream pseudo-fakes: 1:1 without data.balance.
            assert not config.data.stored_fakes and config.data.pseudo_fakes == 0.5, name
            assert config.model.num_classes == 2, name
        elif name.startswith("ffpp_"):
            assert config.data.balance, name  # paper Table I trains on 1:1
            assert config.loss.noise_unit == "unit", name
    # Table IV (Celeb-DF): trained on real + Deepfakes only.
    for quality in ("c23", "c40"):
        config = experiments[f"ffpp_{quality}_deepfakes"]
        assert config.data.methods == ("Deepfakes",)
        assert config.data.dataset == f"ffpp/{quality}"
    # Table III as the paper ran it: one detector per method.
    for method in METHODS:
        config = experiments[f"ffpp_c23_{method.lower()}"]
        assert config.data.methods == (method,) and config.model.num_classes == 2
    assert experiments["ffpp_c23"].data.methods is None
