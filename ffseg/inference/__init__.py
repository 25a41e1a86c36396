"""Using a trained model: export, predictors, `ffseg detect`.

- `export`: the SavedModel and its serving function (uint8 crops in);
- `model_card`: what an export says about itself (`ffseg.json`);
- `predictors`: `load_model`, and one `predict(crops)` over a SavedModel or
  a `.keras` file, on crops of any size;
- `probe`: is an input file an image, a video, or neither;
- `detect`: images and videos -> per-face scores, maps and documents;
- `overlay`: heatmaps, boxes and scores drawn over a frame;
- `outputs`: output names chosen up front, and writes that replace nothing.
"""
