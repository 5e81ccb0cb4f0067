"""The metrics rule's library call: FID and KID of a generator against a packed dataset,
the same bytes on a rerun, every real image and the asked-for generated ones counted;
features from a stand-in Inception graph (the official file is a download)."""

from __future__ import annotations

import json
import math

from ganflow import metrics, networks, weights
from test_feature_nets import stand_in
from test_samples import tiny_generator
from test_train import blobs, pack


def test_metrics_count_every_real_image_and_repeat_exactly(tmp_path):
    weights.write_export(tmp_path / "export", tiny_generator(16),
                         networks.Discriminator(resolution=16, channel_base=128, channel_max=16), {})
    data = pack(blobs(10), tmp_path)
    (tmp_path / "inception.pb").write_bytes(stand_in())
    runs = [metrics.make_metrics(tmp_path / "export", data, tmp_path / f"m{i}.json", inception=tmp_path / "inception.pb",
                                 images=12, kid_subsets=3, kid_subset_size=8) for i in range(2)]
    assert (tmp_path / "m0.json").read_bytes() == (tmp_path / "m1.json").read_bytes()
    assert json.loads((tmp_path / "m0.json").read_text()) == runs[0]
    assert runs[0]["real_images"] == 10 and runs[0]["generated_images"] == 12
    assert math.isfinite(runs[0]["fid"]) and runs[0]["fid"] > 0 and math.isfinite(runs[0]["kid"])
