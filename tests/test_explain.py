"""Class activation maps of both branches."""

from __future__ import annotations

import numpy as np
import pytest

import manet_zoo
from manet_zoo.explanations import render
from tests.predict_helpers import LABELS, astronaut, coffee, model, predictor


@pytest.fixture(scope="module")
def explanations():
    return manet_zoo.explain(astronaut(), predictor())


def test_one_explanation_per_face_with_maps_at_the_input_size(explanations):
    assert len(explanations) == 1
    e = explanations[0]
    assert e.image.shape == (112, 112, 3) and e.image.dtype == np.uint8
    for heat in (e.local_map, e.global_map):
        assert heat.shape == (112, 112)
        assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    # 112 px: the local mosaic is 2 x 4 = 8 cells wide, the global map 4.
    assert e.local_raw.shape == (8, 8) and e.global_raw.shape == (4, 4)
    assert e.target == e.face.label  # by default the predicted class
    assert e.face.box == predictor().predict(astronaut()).faces[0].box


def test_maps_add_up_to_each_branchs_logit(explanations):
    # GAP + linear head: the mean of the map plus the bias is the branch's logit.
    e = explanations[0]
    k = LABELS.index(e.target)
    local_bias = float(model().head_local.bias[k].detach())
    global_bias = float(model().head_global.bias[k].detach())
    assert e.local_raw.mean() + local_bias == pytest.approx(e.face.logits_local[k], abs=1e-4)
    assert e.global_raw.mean() + global_bias == pytest.approx(e.face.logits_global[k], abs=1e-4)


def test_target_chooses_the_class_explained(explanations):
    other = next(label for label in LABELS if label != explanations[0].target)
    e = manet_zoo.explain(astronaut(), predictor(), target=other)[0]
    assert e.target == other
    k = LABELS.index(other)
    assert e.local_raw.mean() + float(model().head_local.bias[k].detach()) == pytest.approx(
        e.face.logits_local[k], abs=1e-4
    )
    assert not np.allclose(e.local_raw, explanations[0].local_raw)
    with pytest.raises(ValueError, match="unknown target 'joy'"):
        manet_zoo.explain(astronaut(), predictor(), target="joy")


def test_picture_shows_the_face_and_both_overlays(explanations):
    picture = np.asarray(render(explanations))
    assert picture.shape[1] == 3 * 112 and picture.shape[0] > 112
    face, local, global_ = (picture[:112, i * 112 : (i + 1) * 112] for i in range(3))
    np.testing.assert_array_equal(face, explanations[0].image)
    for overlay in (local, global_):
        assert np.abs(overlay.astype(int) - face.astype(int)).mean() > 10
    assert not np.array_equal(local, global_)


def test_no_face_no_explanation():
    assert manet_zoo.explain(coffee(), predictor()) == []
    with pytest.raises(ValueError, match="no face"):
        render([])
