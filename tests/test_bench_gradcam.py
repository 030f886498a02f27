"""bench.gradcam --compare-layers on a few shipped test images: it runs, keeps only the
images still classified right on the canvas, and records a share per candidate layer."""

import numpy as np

from bench import gradcam
from cifar_demo import Predictor


def test_compare_layers_records_each_candidate_layer_on_the_kept_images(monkeypatch):
    images, labels, _ = gradcam.shipped_test_images()
    monkeypatch.setattr(gradcam, "test_images", lambda: (images[:12], labels[:12], "a dozen shipped test images"))
    recorded = {}
    monkeypatch.setattr(gradcam, "record", lambda section, figures, notes: recorded.update(figures))
    gradcam.compare_layers(Predictor.load(), count=12)
    kept, _ = recorded.pop("images still classified right on the canvas")
    assert 0 < kept <= 12
    assert len(recorded) == 2 * len(gradcam.CANDIDATE_LAYERS)
    for name, (share, unit) in recorded.items():
        assert unit == "%" and 0 <= share <= 100 and np.isfinite(share), name
