"""bench.batch_preparation on random pixels and a narrow model: it runs every arm and records
each one's cost per batch and its share of the training step it measured."""

import numpy as np
import pytest

from bench import batch_preparation


def test_every_arm_is_recorded_against_the_measured_training_step(monkeypatch, capsys):
    monkeypatch.setattr(batch_preparation, "on_this_machine", lambda: False)
    recorded = {}
    monkeypatch.setattr(batch_preparation, "record", lambda section, figures: recorded.update(figures))
    batch_preparation.main(["--batches", "2", "--batch-size", "8", "--width-mult", "0.125", "--precision", "float32"])
    step, unit = recorded.pop("training step")
    assert unit == "ms" and step > 0
    drawing, unit = recorded.pop("one class drawing")
    assert unit == "ms" and drawing > 0
    arms = {name.rsplit(": ", 1)[0] for name in recorded}
    assert len(arms) == 4 and len(recorded) == 8
    for arm in arms:
        per_batch, unit = recorded[f"{arm}: per batch"]
        share, share_unit = recorded[f"{arm}: against a training step"]
        assert (unit, share_unit) == ("ms", "%") and np.isfinite(per_batch)
        assert share == pytest.approx(per_batch / step * 100)
    assert recorded["class drawings, every image: per batch"][0] == pytest.approx(drawing * 8)
    assert "one class drawing:" in capsys.readouterr().out


def test_bad_counts_are_refused():
    with pytest.raises(SystemExit):
        batch_preparation.main(["--batches", "0"])
