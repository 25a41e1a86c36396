"""The paper's figures beside ours: which of them applies to an evaluation.

The paper's numbers (Tables II-VIII and Fig. 4, FFSeg's rows and the
Xception baseline's) live in one data file, `paper_figures.json` beside this
module, each with the table, row and column it was read from and the
*setting* of the run that reproduces it: the training quality, the test
dataset, the methods trained on, 2 or 5 classes, the Table VII/VIII model
switches and the noise sigma.

`run_setting` works out the setting of the model being evaluated, from what
training left beside it:

- a `.keras` file: `config.json` in the same folder (the resolved
  `ExperimentConfig` that training writes into its model_dir);
- an exported SavedModel folder: the `config` (resolved config) and
  `experiment` (experiment name) keys of its `ffseg.json` metadata, else the
  `config.json` of the run folder that holds the export (`<model_dir>/export`);
- a run folder (`<model_dir>`, whose `export/` is served): the same, from
  `<model_dir>/export/ffseg.json` and `<model_dir>/config.json`;
- else an experiment name given by the caller (`--experiment`), resolved
  with `ffseg.config.get_experiment`.

`compare` then picks the paper's figures whose setting matches, keyed by
where the comparable figure sits in the results (e.g. `frame_level.auc`).
"""

from __future__ import annotations

import functools
import json
import os

from ffseg.constants import METHODS, NOISE_SIGMA, QUALITIES

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "paper_figures.json")
# The taps of ffseg's model config (`model.taps`) and the paper's names for
# them (Table VIII, Fig. 2): f1 shallow, f2 middle, f3 deep.
TAP_NAMES = {"low": "f1", "mid": "f2", "high": "f3", "f1": "f1", "f2": "f2", "f3": "f3"}
# Setting keys that say which network was trained (Tables VII, VIII) rather
# than on what data.
MODEL_KEYS = ("semantic_maps", "noise_maps", "taps")


@functools.lru_cache(maxsize=1)
def load_figures(path: str = DATA_FILE) -> dict:
    """The paper's figures: the parsed `paper_figures.json`."""
    with open(path) as f:
        return json.load(f)


def dataset_setting(name: str):
    """A TFDS name ("ffpp/c23", "ffpp/c40_paper/1.0.0", "celeb_df") -> the
    paper's test name ("ffpp/c23", "ffpp/c40", "celeb_df") and its quality
    (None for Celeb-DF and for FF++ configs of no paper quality)."""
    parts = str(name).split("/")
    if parts[0] == "celeb_df":
        return "celeb_df", None
    if parts[0] == "ffpp" and len(parts) > 1:
        for quality in QUALITIES:
            if parts[1] == quality or parts[1].startswith(quality + "_"):
                return f"ffpp/{quality}", quality
        return f"ffpp/{parts[1]}", None
    return parts[0], None


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def training_record(model_path: str, experiment: str | None = None) -> dict:
    """What is known of how the model at `model_path` was trained.

    Returns {"experiment": name or None, "config": the resolved config as a
    dict or None, "source": where it came from}. See the module docstring for
    the files read. An explicit `experiment` wins over the files' name but
    not over a stored config (the config is what was actually trained);
    without a stored config, the named experiment's defaults are assumed.
    """
    path = os.path.abspath(os.fspath(model_path)).rstrip(os.sep)
    config, name, source = None, None, None
    # The run folder: the .keras file's or the export's parent; a model_dir
    # given itself (evaluate takes one and serves its export/).
    run_dir = os.path.dirname(path)
    if os.path.isdir(path):
        export = path
        if os.path.exists(os.path.join(path, "export", "ffseg.json")):
            export, run_dir = os.path.join(path, "export"), path
        info = _read_json(os.path.join(export, "ffseg.json")) or {}
        name = info.get("experiment")
        if isinstance(info.get("config"), dict):
            config, source = info["config"], os.path.join(export, "ffseg.json")
    candidates = [os.path.join(run_dir, "config.json")]
    for candidate in candidates:
        if config is None:
            stored = _read_json(candidate)
            if isinstance(stored, dict) and "model" in stored and "data" in stored:
                config, source = stored, candidate
    name = experiment or name
    if config is None and name:
        from ffseg import config as config_lib

        config = config_lib.get_experiment(name).to_dict()
        source = f"experiment {name!r} (its defaults: no stored config found)"
    return {"experiment": name, "config": config, "source": source}


def _methods(value):
    if value in (None, "all") or (isinstance(value, (list, tuple)) and set(value) == set(METHODS)):
        return "all"
    return sorted(value, key=METHODS.index) if all(v in METHODS for v in value) else list(value)


def _taps(value):
    if value is None:
        return ["f1", "f2", "f3"]
    return sorted(TAP_NAMES.get(str(v), str(v)) for v in value)


def run_setting(record: dict, test_dataset: str, num_classes: int | None = None) -> dict:
    """The setting of an evaluation: its training record against `test_dataset`.

    Keys as in the data file's entries (train_quality, test, trained_methods,
    classes, semantic_maps, noise_maps, taps, noise_sigma); `known` is False
    when no training record was found, and then the training is assumed to
    be the paper's full model on the test data's quality.
    """
    test, test_quality = dataset_setting(test_dataset)
    config = record.get("config")
    if config is None:
        return {
            "known": False,
            "train_dataset": None,
            "train_quality": test_quality,
            "test": test,
            "trained_methods": "all",
            "classes": num_classes or 2,
            "semantic_maps": True,
            "noise_maps": True,
            "taps": ["f1", "f2", "f3"],
            "noise_sigma": NOISE_SIGMA.get(test_quality),
        }
    model, data = config.get("model", {}), config.get("data", {})
    train_dataset = data.get("dataset")
    _, train_quality = dataset_setting(train_dataset or "")
    sigma = data.get("noise_sigma")
    return {
        "known": True,
        "train_dataset": train_dataset,
        "train_quality": train_quality,
        "test": test,
        "trained_methods": _methods(data.get("methods")),
        "classes": num_classes or int(model.get("num_classes", 2)),
        "semantic_maps": bool(model.get("semantic_maps", True)),
        "noise_maps": bool(model.get("noise_maps", True)),
        "taps": _taps(model.get("taps")),
        "noise_sigma": float(sigma) if sigma is not None else NOISE_SIGMA.get(train_quality),
        "gammas": [float(g) for g in model.get("gammas", (0.1, 0.2, 0.7))],
    }


def _entry_setting(entry: dict, defaults: dict) -> dict:
    setting = dict(defaults)
    setting.update(entry["setting"])
    if setting.get("noise_sigma") == "paper":
        setting["noise_sigma"] = NOISE_SIGMA.get(setting["train_quality"])
    if setting.get("trained_methods") != "all":
        setting["trained_methods"] = _methods(setting["trained_methods"])
    setting["taps"] = _taps(setting["taps"])
    return setting


def _matches(entry_setting: dict, run: dict, ignore=()) -> bool:
    for key, wanted in entry_setting.items():
        if key in ignore or wanted == "any":
            continue
        have = run.get(key)
        if key == "noise_sigma" and not (run.get("noise_maps") and entry_setting["noise_maps"]):
            continue  # without noise heads the sigma trains nothing
        if isinstance(wanted, float) or isinstance(have, float):
            if have is None or wanted is None or abs(float(have) - float(wanted)) > 1e-9:
                return False
        elif have != wanted:
            return False
    return True


def metric_key(cell: dict) -> str:
    """Where a cell's comparable figure sits; gamma rows carry their gammas."""
    if "gammas" in cell:
        return cell["metric"] + "[" + ",".join(f"{g:.1f}" for g in cell["gammas"]) + "]"
    return cell["metric"]


def _add(figures: dict, key: str, entry: dict, cell: dict, note=None):
    source = f"{entry['table']}, {entry['row']}, {cell['column']}"
    figure = figures.setdefault(
        key, {"value": cell["value"], "unit": cell["unit"], "sources": [], "notes": []}
    )
    if figure["value"] != cell["value"]:
        # Two tables that print different figures for one run: keep both.
        figure.setdefault("other_values", []).append(cell["value"])
    figure["sources"].append(source)
    for text in (note, cell.get("note")):
        if text and text not in figure["notes"]:
            figure["notes"].append(text)


def compare(setting: dict, figures_data: dict | None = None) -> dict:
    """The paper's figures for an evaluation of `setting` (see `run_setting`).

    Returns {"paper": {metric key: figure}, "baseline": {metric key: figure},
    "different_protocol": {metric key: figure}, "tables": [names]}, where a
    figure is {"value", "unit", "sources", "notes"} and a metric key is a
    path into the results (`frame_level.auc`,
    `localization.gamma_sweep[0.1,0.2,0.7]`, ...):

    - `paper`: cells whose setting is the run's;
    - `baseline`: the Xception baseline's cells for the same data, when the
      run is an FFSeg with heads (the paper prints them beside its own);
    - `different_protocol`: Table III's one-detector-per-method cells, for
      a model trained on all methods, keyed by the per-method figure of that
      model on the same test faces.
    """
    data = figures_data or load_figures()
    defaults = data["default_setting"]
    out = {"paper": {}, "baseline": {}, "different_protocol": {}, "tables": []}
    is_baseline_run = not setting.get("semantic_maps") and not setting.get("noise_maps")
    for entry in data["entries"]:
        wanted = _entry_setting(entry, defaults)
        matched = None
        if _matches(wanted, setting):
            matched = "paper"
        elif (
            entry["model"] == "xception"
            and not is_baseline_run
            and _matches(wanted, setting, ignore=MODEL_KEYS + ("noise_sigma",))
        ):
            matched = "baseline"
        if matched:
            for cell in entry["cells"]:
                _add(out[matched], metric_key(cell), entry, cell, entry.get("note"))
                if cell["metric"] == "localization.gamma_sweep" and matched == "paper":
                    if [round(g, 1) for g in setting.get("gammas", [])] == cell["gammas"]:
                        # The model's own fused map uses these gammas.
                        _add(out["paper"], "localization.iou", entry, cell, entry.get("note"))
            if entry["table"] not in out["tables"] and matched == "paper":
                out["tables"].append(entry["table"])
            continue
        if setting.get("trained_methods") == "all" and entry["model"] == "ffseg":
            relaxed = dict(wanted, trained_methods="all")
            if _matches(relaxed, setting):
                for cell in entry["cells"]:
                    if "all_methods_metric" in cell:
                        _add(
                            out["different_protocol"],
                            cell["all_methods_metric"],
                            entry,
                            cell,
                            "The paper trains one detector per method (real + that method) "
                            "and tests it on the same; this model was trained on all methods",
                        )
    return out


def paper_value(figure: dict) -> str:
    """A paper figure as printed in a report (percent figures in %)."""
    value = figure["value"]
    if figure["unit"] == "%":
        return f"{value:.2f}"
    if figure["unit"] == "fraction":
        return f"{value:.4f}"
    return f"{value:g}"


def for_results(setting: dict, figures_data: dict | None = None) -> dict:
    """What an evaluation's results keep under `paper`: the run's setting,
    the paper tables that apply and their figures (see `compare`)."""
    found = compare(setting, figures_data)
    return {
        "setting": setting,
        "tables": found.pop("tables"),
        "figures": found,
    }
