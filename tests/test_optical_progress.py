"""optical_dl training shows a progress bar over its epochs (shared helper, quiet when piped)."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from thawdetect.plugins.optical_dl.chips import ChipSet
from thawdetect.plugins.optical_dl.train import train_model


def _chips(n: int = 4, size: int = 32) -> ChipSet:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 3, size, size), dtype=np.uint8)
    labels = np.zeros((n, size, size), np.uint8)
    labels[:, 8:20, 8:20] = 1
    return ChipSet(
        images,
        labels,
        np.zeros(n, bool),
        [Window(0, 0, size, size)] * n,
        np.array(["positive"] * n),
    )


@pytest.mark.slow  # builds and trains a (tiny) DeepLabv3+: ~40 s on a loaded 2-core machine
def test_training_epochs_go_through_the_progress_helper(tmp_path, monkeypatch):
    from thawdetect.core import progress
    from thawdetect.plugins.optical_dl import train

    seen: list[tuple[str, int | None, int]] = []

    def recording_track(iterable, description, *, total=None):
        n = 0
        for item in progress.track(iterable, description, total=total):
            n += 1
            yield item
        seen.append((description, total, n))

    monkeypatch.setattr(train, "track", recording_track)
    metrics = train_model(
        _chips(),
        encoder="resnet18",
        decoder_channels=16,
        epochs=2,
        batch_size=2,
        learning_rate=1e-3,
        out_path=tmp_path / "model.pt",
        augment=False,
    )
    assert metrics["epochs"] == 2
    assert seen == [("optical_dl: training epochs", 2, 2)]
