"""Using a trained model: export, predictors, `ffseg detect`.

- `export`: the SavedModel and its serving signature (uint8 crops in);
- `predictors`: one `predict(crops)` over a SavedModel or a `.keras` file;
- `detect`: images and videos -> per-face scores, maps and overlays.
"""
