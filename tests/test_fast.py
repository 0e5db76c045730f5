"""The fast inference paths give the reference module's outputs."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

from manet_zoo import manet
from manet_zoo.cli import main as cli_main
from manet_zoo.export import export
from manet_zoo.onnx_cache import evict, graph_key, graph_path
from manet_zoo.preprocessing import Preprocessing
from manet_zoo.runtime import OnnxRuntimeRunner, TorchRunner, choose_backend, make_runner
from manet_zoo.weights import CANONICAL_LABELS
from tests.helpers import photo_crops

SIZE = 112


@pytest.fixture(scope="module")
def reference_model(image_set):
    """A random MA-Net whose BatchNorm layers carry real statistics (accumulated on the
    image set) and non-trivial affine parameters, so that folding them is tested and the
    predictions differ from image to image."""
    torch.manual_seed(3)  # a seed whose predictions spread over three classes
    model = manet(num_classes=7)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
            torch.nn.init.normal_(m.weight, 1.0, 0.1)
            torch.nn.init.normal_(m.bias, 0.0, 0.1)
    with torch.no_grad():
        for batch in image_set.split(32):
            model(batch)
    model.eval()
    model.preprocessing = Preprocessing(input_size=(SIZE, SIZE))
    model.labels = CANONICAL_LABELS[:7]
    return model


@pytest.fixture(scope="module")
def image_set() -> torch.Tensor:
    """128 varied inputs: random crops of real photographs shipped by scikit-image."""
    return photo_crops(SIZE, 128)


@pytest.fixture(scope="module")
def reference_logits(reference_model, image_set):
    with torch.no_grad():
        return reference_model.forward_branches(image_set)


def fused(local: torch.Tensor, glob: torch.Tensor) -> torch.Tensor:
    return 0.6 * local + 0.4 * glob


def assert_same_outputs(outputs, reference, rtol=1e-4):
    for got, want in zip(outputs, reference, strict=True):
        scale = want.abs().max()
        torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * scale)
    assert torch.equal(fused(*outputs).argmax(1), fused(*reference).argmax(1))


def test_the_image_set_is_varied(reference_logits):
    """Otherwise an agreement test could not fail."""
    counts = torch.bincount(fused(*reference_logits).argmax(1), minlength=7)
    assert (counts > 0).sum() >= 3 and counts.max() <= 0.8 * counts.sum()


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_fp32_matches_reference(reference_model, image_set, reference_logits, channels_last):
    run = TorchRunner(reference_model, device="cpu", channels_last=channels_last)
    assert run.model.fused and not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in run.model.modules()
    )
    assert_same_outputs(run(image_set), reference_logits)


def test_bf16_agrees_on_top1_with_the_reference_weights(converted_weights, image_set):
    """The parity weights (the official layout filled by the reference formula) on 128
    varied inputs: bf16 keeps every branch's top-1 for at least 99% of them."""
    model = manet(weights=converted_weights)
    with torch.no_grad():
        want = model.forward_branches(image_set)
    got = TorchRunner(model, device="cpu", precision="bf16")(image_set)
    assert got[0].dtype == torch.float32
    for g, w in [*zip(got, want, strict=True), (fused(*got), fused(*want))]:
        assert (g.argmax(1) == w.argmax(1)).float().mean() >= 0.99
        assert (g - w).abs().max() <= 0.02 * w.abs().max()


def test_bf16_error_is_small_on_a_calibrated_random_model(
    reference_logits, image_set, reference_model
):
    """Random weights leave tiny top-2 margins (median ~0.06), so top-1 flips are not a
    fair measure here (docs/benchmarks.md reports them); the logit error is."""
    got = TorchRunner(reference_model, device="cpu", precision="bf16")(image_set)
    for g, w in zip(got, reference_logits, strict=True):
        assert (g - w).abs().max() <= 0.05 * w.abs().max()


def test_onnxruntime_matches_reference(reference_model, image_set, reference_logits):
    run = OnnxRuntimeRunner(reference_model)
    assert_same_outputs(run(image_set[:32]), [t[:32] for t in reference_logits])
    with pytest.raises(ValueError, match="built for 112x112"):
        run(torch.rand(1, 3, 224, 224))


def test_onnx_graph_cache_exports_once_and_recovers(
    reference_model, image_set, reference_logits, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MANET_ZOO_CACHE", str(tmp_path / "cache"))
    key = graph_key(reference_model, (SIZE, SIZE))
    path = graph_path(key)
    assert not path.exists()
    OnnxRuntimeRunner(reference_model)
    assert path.is_file() and list(path.parent.iterdir()) == [path]  # no temporary left
    written = path.stat()
    os.utime(path, ns=(written.st_atime_ns, written.st_mtime_ns - 10**9))

    same = copy.deepcopy(reference_model)  # another object, the same weights: same graph
    run = OnnxRuntimeRunner(same)
    assert path.stat().st_ino == written.st_ino  # read, not exported again (a new file)
    assert path.stat().st_mtime_ns > written.st_mtime_ns - 10**9  # marked as used
    assert_same_outputs(run(image_set[:8]), [t[:8] for t in reference_logits])

    other = copy.deepcopy(reference_model)
    with torch.no_grad():
        other.head_local.bias[0] += 1.0
    assert graph_key(other, (SIZE, SIZE)) != key
    assert graph_key(reference_model, (SIZE + 16, SIZE)) != key

    path.write_bytes(path.read_bytes()[: 1 << 20])  # a truncated graph: exported again
    run = OnnxRuntimeRunner(reference_model)
    assert path.stat().st_size > 1 << 20
    assert_same_outputs(run(image_set[:8]), [t[:8] for t in reference_logits])

    capsys.readouterr()
    assert cli_main(["cache"]) == 0
    assert f"{path.parent} (on)" in capsys.readouterr().out
    assert cli_main(["cache", "--clear"]) == 0
    assert "removed 1 ONNX graph(s), 202 MB" in capsys.readouterr().out and not path.exists()

    monkeypatch.setenv("MANET_ZOO_ONNX_CACHE", "0")
    monkeypatch.setenv("MANET_ZOO_CACHE", str(tmp_path / "unused"))
    OnnxRuntimeRunner(reference_model)
    assert not (tmp_path / "unused").exists()


def test_onnx_graph_cache_evicts_the_least_recently_used(tmp_path):
    for age, name in enumerate("abcdefghij"):  # a.onnx is the newest, j.onnx the oldest
        graph = tmp_path / f"{name}.onnx"
        graph.write_bytes(b"x")
        os.utime(graph, (1e9 - age, 1e9 - age))
    (tmp_path / "notes.txt").write_text("not a graph")
    evict(tmp_path, keep=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        *(f"{n}.onnx" for n in "abcdefgh"),
        "notes.txt",
    ]


def test_onnx_graph_cache_in_a_read_only_folder_warns_and_works(
    reference_model, image_set, reference_logits, tmp_path, monkeypatch
):
    (tmp_path / "cache").touch()  # a file where the folder should be: nothing can be written
    monkeypatch.setenv("MANET_ZOO_CACHE", str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match="MANET_ZOO_CACHE"):
        run = OnnxRuntimeRunner(reference_model)
    assert_same_outputs(run(image_set[:4]), [t[:4] for t in reference_logits])


def test_compiled_runner_matches_the_reference():
    """``compile=True`` (torch.compile of the fused model; about 20 s of compiling here,
    so on a small model and input)."""
    torch.manual_seed(0)
    model = manet(num_classes=3).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        want, flipped = model.forward_branches(x), model.forward_branches(x.flip(-1))
    compiled = TorchRunner(model, device="cpu", compile=True)
    assert_same_outputs(compiled(x), want)
    assert_same_outputs(compiled(x.flip(-1)), flipped)  # the compiled graph, run again


def test_fuse_refused_in_training_mode_and_fused_cannot_train():
    model = manet(num_classes=7)
    with pytest.raises(RuntimeError, match="eval mode"):
        model.fuse()
    fast = model.eval().fuse()
    assert not model.fused and fast.fused  # the original is untouched
    with pytest.raises(RuntimeError, match="fused for inference"):
        fast.train()


def test_auto_backend_rule():
    cpu = torch.device("cpu")
    assert choose_backend(cpu, "bf16") == "torch"
    assert choose_backend(torch.device("cuda"), "fp32") == "torch"
    assert choose_backend(cpu, "fp32") == "onnxruntime"  # in the dev extra
    with pytest.raises(ValueError, match="fp16 runs on GPUs only"):
        make_runner(manet().eval(), backend="torch", precision="fp16", device="cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        make_runner(manet().eval(), backend="tensorrt")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "exported-program"])
def test_exported_graphs_match_pytorch(tmp_path, reference_model, image_set, reference_logits, fmt):
    path = export(reference_model, tmp_path / f"model.{fmt}", fmt)
    x = image_set[:3]  # another batch size than the export's example: the batch axis is dynamic
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs = [torch.from_numpy(o) for o in session.run(None, {"image": x.numpy()})]
        meta = session.get_modelmeta().custom_metadata_map
        assert meta["manet_zoo.num_classes"] == "7"
        assert '"input_size": [112, 112]' in meta["manet_zoo.preprocessing"]
    elif fmt == "torchscript":
        outputs = torch.jit.load(str(path))(x)
    else:
        outputs = torch.export.load(str(path)).module()(x)
    local, glob, logits = outputs
    reference = [t[:3] for t in reference_logits]
    assert_same_outputs((local, glob), reference)
    torch.testing.assert_close(logits, fused(local, glob), rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob("*incomplete*"))


def test_cli_export_onnx_from_a_weights_file(tmp_path, capsys):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = manet(num_classes=5).eval()
    weights = tmp_path / "five.safetensors"
    from manet_zoo import save_weights

    save_weights(model.state_dict(), weights, preprocessing=Preprocessing(input_size=(112, 112)))
    out = tmp_path / "five.onnx"
    assert cli_main(["export", str(weights), "--format", "onnx", "--out", str(out)]) == 0
    assert "N x 3 x 112 x 112" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 112, 112)
    *_, logits = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        want = model(x)
    torch.testing.assert_close(torch.from_numpy(logits), want, rtol=1e-4, atol=1e-4)
    assert cli_main(["export", "no_such_model", "--out", str(out)]) == 1


def test_predictor_backends_give_the_same_results(reference_model, image_set):
    from manet_zoo import Predictor

    faces = [image_set[i] for i in range(0, 128, 16)]  # already-cropped faces, 3 x 112 x 112
    default = Predictor(reference_model, detector=None, device="cpu", batch_size=3)
    pytorch = Predictor(reference_model, detector=None, device="cpu", backend="torch")
    assert (default.backend, pytorch.backend) == ("onnxruntime", "torch")
    a, b = default.predict(faces), pytorch.predict(faces)
    for one, other in zip(a, b, strict=True):
        [fa], [fb] = one.faces, other.faces
        assert fa.label == fb.label
        np.testing.assert_allclose(
            list(fa.probabilities.values()), list(fb.probabilities.values()), atol=1e-4
        )
