"""The paper's evaluation: figures, the evaluation run, the report.

- `figures`: AUC, ACC, EER, AP, per-method accuracy, 5-class recall, IoU,
  pixel AUC and the Table VI sweep (numpy, scikit-learn);
- `runner`: `evaluate_split`, a predictor over a TFDS split;
- `report`: results.json, report.md, roc.png, maps.png, scores.csv.
"""
