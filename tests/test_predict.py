"""Predictor: faces -> batched forward -> typed results. The weights are seeded random
ones (no trained checkpoint exists), so no test says which emotion is right; they check
what the pipeline feeds the model and what comes back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import manet_zoo
from manet_zoo import FaceResult, ImageResult, InvalidImageError, Predictor
from manet_zoo.faces import LANDMARK_NAMES, align_face, crop_box
from manet_zoo.preprocessing import Preprocessing
from tests.predict_helpers import (
    ASTRONAUT_EYES,
    ASTRONAUT_MOUTH,
    LABELS,
    astronaut,
    astronaut_result,
    coffee,
    contains,
    lfw_faces,
    model,
    predictor,
    two_faces,
    two_faces_result,
    weights_file,
)


def _probabilities(result: ImageResult) -> list[list[float]]:
    return [list(f.probabilities.values()) for f in result.faces]


def test_astronaut_gives_one_complete_json_serialisable_face():
    result = astronaut_result()
    assert isinstance(result, ImageResult) and result.ok
    assert (result.source, result.width, result.height) == ("<array #0>", 512, 512)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert isinstance(face, FaceResult)
    for point in (*ASTRONAUT_EYES, ASTRONAUT_MOUTH):
        assert contains(face.box, point)
    assert list(face.landmarks) == list(LANDMARK_NAMES)
    assert face.detection_score >= 0.9
    # Labels in the checkpoint's order; probabilities are softmax(0.6 local + 0.4 global).
    assert tuple(face.probabilities) == LABELS
    local, global_ = torch.tensor(face.logits_local), torch.tensor(face.logits_global)
    expected = torch.softmax(0.6 * local + 0.4 * global_, dim=0)
    np.testing.assert_allclose(list(face.probabilities.values()), expected.numpy(), rtol=1e-5)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    assert face.probability == face.probabilities[face.label]
    assert len(face.logits_local) == len(face.logits_global) == 7
    data = json.loads(result.to_json())
    assert data == result.to_dict()
    assert data["faces"][0]["landmarks"]["nose"] == list(face.landmarks["nose"])


def test_the_model_sees_the_aligned_face_with_the_checkpoints_preprocessing():
    face = astronaut_result().faces[0]
    landmarks = [face.landmarks[name] for name in LANDMARK_NAMES]
    crop = align_face(astronaut(), landmarks)
    x = Preprocessing(input_size=(112, 112)).transforms()(crop)[None]
    with torch.inference_mode():
        local, global_ = model().forward_branches(x)
    np.testing.assert_allclose(face.logits_local, local[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(face.logits_global, global_[0].numpy(), rtol=1e-4, atol=1e-5)


def test_box_policy_crops_the_box_and_none_policy_takes_the_whole_image(monkeypatch):
    net = model()
    monkeypatch.setattr(net, "preprocessing", Preprocessing(input_size=(112, 112), face="box"))
    face = Predictor(net, device="cpu").predict(astronaut()).faces[0]
    x = net.preprocessing.transforms()(crop_box(astronaut(), face.box))[None]
    with torch.inference_mode():
        local, _ = net.forward_branches(x)
    np.testing.assert_allclose(face.logits_local, local[0].numpy(), rtol=1e-4, atol=1e-5)

    monkeypatch.setattr(net, "preprocessing", Preprocessing(input_size=(112, 112), face="none"))
    whole = Predictor(net, device="cpu").predict(astronaut())
    assert [f.box for f in whole.faces] == [(0.0, 0.0, 512.0, 512.0)]
    assert whole.faces[0].landmarks is None and whole.faces[0].detection_score is None


def test_an_rgb_array_and_its_bgr_twin_give_identical_results():
    rgb = two_faces()
    from_rgb = two_faces_result()
    from_bgr = predictor().predict(np.ascontiguousarray(rgb[..., ::-1]), color="bgr")
    assert len(from_rgb.faces) == 2
    assert from_rgb.to_dict() == from_bgr.to_dict()
    # The same pixels read in the wrong order give another answer.
    crop = np.ascontiguousarray(astronaut()[60:180, 170:280])
    right = predictor(None).predict(crop)
    wrong = predictor(None).predict(np.ascontiguousarray(crop[..., ::-1]))
    assert right.faces[0].probabilities != wrong.faces[0].probabilities


def test_faces_of_all_images_are_batched_and_match_single_predictions(monkeypatch):
    batches: list[int] = []
    images = [astronaut(), two_faces(), coffee()]
    singles = [astronaut_result(), two_faces_result(), predictor().predict(coffee())]
    assert [len(r.faces) for r in singles] == [1, 2, 0]

    batching = Predictor(model(), device="cpu", batch_size=2, detect_max_size=320)
    run = batching.runner

    def counting(x):
        batches.append(len(x))
        return run(x)

    monkeypatch.setattr(batching, "runner", counting)
    batched = batching.predict(images)
    assert batches == [2, 1], "3 faces of 3 images in batches of 2, not one call per face"
    assert [r.source for r in batched] == [f"<array #{i}>" for i in range(3)]
    for one, many in zip(singles, batched, strict=True):
        assert [f.box for f in one.faces] == [f.box for f in many.faces]
        np.testing.assert_allclose(_probabilities(one), _probabilities(many), atol=1e-5)


def test_no_face_is_an_empty_result_not_an_exception():
    result = predictor().predict(coffee())
    assert result.ok and result.faces == ()
    assert json.loads(result.to_json())["faces"] == []


def test_bad_items_in_a_list_are_reported_and_the_rest_predicted(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    results = predictor().predict([astronaut(), str(broken), b"junk", tmp_path / "nope.png"])
    assert [len(r.faces) for r in results] == [1, 0, 0, 0]
    assert [r.ok for r in results] == [True, False, False, False]
    assert results[1].source == str(broken) and "image" in results[1].error
    assert results[3].error == "no such file"
    with pytest.raises(InvalidImageError, match=r"broken\.jpg"):
        predictor().predict(broken)  # a single input raises


def test_face_crops_without_detector_stream_through_workers(tmp_path, capsys):
    folder = tmp_path / "lfw"
    for i, face in enumerate(lfw_faces()):
        (folder / f"part{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(folder / f"part{i % 2}" / f"face{i}.png")  # grayscale
    in_process = predictor(None).predict(folder, progress=True)
    assert "manet-zoo predict" in capsys.readouterr().err  # the progress bar
    net = model()
    with_workers = Predictor(net, detector=None, device="cpu", batch_size=4, num_workers=1)
    streamed = with_workers.predict(folder)
    expected = sorted(str(p) for p in folder.rglob("*.png"))
    assert [r.source for r in in_process] == expected == [r.source for r in streamed]
    for one, other in zip(in_process, streamed, strict=True):
        assert [f.box for f in one.faces] == [(0.0, 0.0, 25.0, 25.0)]
        assert one.faces[0].landmarks is None
        np.testing.assert_allclose(_probabilities(one), _probabilities(other), atol=1e-5)


def test_tensor_inputs():
    faces = torch.from_numpy(np.stack(lfw_faces(3))).float()[:, None].repeat(1, 3, 1, 1) / 255
    results = predictor(None).predict(faces)
    assert [r.source for r in results] == ["<tensor #0[0]>", "<tensor #0[1]>", "<tensor #0[2]>"]
    single = predictor(None).predict(faces[1])
    assert isinstance(single, ImageResult)
    np.testing.assert_allclose(_probabilities(single), _probabilities(results[1]), atol=1e-5)


def test_bf16_is_close_to_fp32():
    fp32 = astronaut_result()
    bf16 = Predictor(model(), device="cpu", precision="bf16", detect_max_size=320)
    bf16 = bf16.predict(astronaut())
    assert [f.box for f in bf16.faces] == [f.box for f in fp32.faces]
    np.testing.assert_allclose(_probabilities(bf16), _probabilities(fp32), atol=0.02)
    with pytest.raises(ValueError, match="precision"):
        Predictor(model(), device="cpu", precision="fp8")


def test_labels_and_preprocessing_come_from_the_weights_file():
    from_file = Predictor(str(weights_file()), detector=None, device="cpu")
    assert from_file.labels == LABELS
    assert from_file.preprocessing.input_size == (112, 112)
    assert from_file.model.source == str(weights_file())
    result = manet_zoo.predict(lfw_faces()[0], from_file)
    assert tuple(result.faces[0].probabilities) == LABELS
    reference = predictor(None).predict(lfw_faces()[0])
    np.testing.assert_allclose(_probabilities(result), _probabilities(reference), atol=1e-6)


def test_weights_without_labels_get_numbered_classes_and_a_warning(monkeypatch):
    net = model()
    monkeypatch.setattr(net, "labels", None)
    with pytest.warns(UserWarning, match="carries no labels"):
        unnamed = Predictor(net, detector=None, device="cpu")
    assert unnamed.labels == tuple(f"class_{i}" for i in range(7))


def test_retinaface_detector_in_the_predictor():
    result = Predictor(model(), detector="retinaface", device="cpu").predict(two_faces())
    assert len(result.faces) == 2 and all(f.landmarks for f in result.faces)
    np.testing.assert_allclose(
        [f.box for f in result.faces], [f.box for f in two_faces_result().faces], atol=15
    )
