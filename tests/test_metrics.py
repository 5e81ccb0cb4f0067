"""The metrics rule's library call: FID, KID, precision and recall of a generator against
a packed dataset, the same bytes on a rerun, every real image and the asked-for generated
ones counted, each network's metrics alone when only its file is given; features from
stand-in Inception and VGG16 files (the official files are downloads)."""

from __future__ import annotations

import json
import math

import pytest

from ganflow import metrics, networks, weights
from ganflow.runlog import SetupError
from test_feature_nets import stand_in, vgg16_stand_in
from test_samples import tiny_generator
from test_train import blobs, pack


def test_metrics_count_every_real_image_and_repeat_exactly(tmp_path):
    weights.write_export(tmp_path / "export", tiny_generator(16),
                         networks.Discriminator(resolution=16, channel_base=128, channel_max=16), {})
    data = pack(blobs(10), tmp_path)
    (tmp_path / "inception.pb").write_bytes(stand_in())
    vgg16_stand_in(tmp_path / "vgg16.h5")
    files = dict(inception=tmp_path / "inception.pb", vgg16=tmp_path / "vgg16.h5")
    runs = [metrics.make_metrics(tmp_path / "export", data, tmp_path / f"m{i}.json", **files, images=12,
                                 kid_subsets=3, kid_subset_size=8) for i in range(2)]
    assert (tmp_path / "m0.json").read_bytes() == (tmp_path / "m1.json").read_bytes()
    assert json.loads((tmp_path / "m0.json").read_text()) == runs[0]
    assert runs[0]["real_images"] == 10 and runs[0]["generated_images"] == 12
    assert math.isfinite(runs[0]["fid"]) and runs[0]["fid"] > 0 and math.isfinite(runs[0]["kid"])
    assert 0 <= runs[0]["precision"] <= 1 and 0 <= runs[0]["recall"] <= 1
    alone = metrics.make_metrics(tmp_path / "export", data, tmp_path / "pr.json", vgg16=files["vgg16"], images=12)
    assert alone == {k: runs[0][k] for k in ("precision", "recall", "real_images", "generated_images")}
    with pytest.raises(SetupError, match="need metrics.inception .* or metrics.vgg16"):
        metrics.make_metrics(tmp_path / "export", data, tmp_path / "none.json", images=12)
