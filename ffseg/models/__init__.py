"""The FFSeg network (paper section III) in Keras 3 (`keras.ops` only).

- `backbone`: Xception tapped at three depths;
- `heads`: semantic-map, noise-map and classification heads, fusion layers;
- `ffseg_model`: `FFSeg`, the model and its combined loss (Eq. 1);
- `losses`: the mask and noise losses (Eq. 3, 6) and the classification loss;
- `metrics`: streaming localization IoU (Eq. 7).

Importing this package registers every serializable class with Keras.
"""

from ffseg.models import heads, losses, metrics  # noqa: F401  (registers the classes)
from ffseg.models.ffseg_model import FFSeg  # noqa: F401
