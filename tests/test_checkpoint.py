"""Converting the authors' checkpoint format and loading manet-zoo's safetensors."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from manet_zoo import (
    CheckpointError,
    StateDictMismatchError,
    UnsafeCheckpointError,
    convert_official_checkpoint,
    manet,
    save_weights,
)
from manet_zoo.checkpoint import (
    load_weights,
    native_to_official,
    official_to_native,
    read_metadata,
    read_official_checkpoint,
    sha256_file,
)
from manet_zoo.cli import main as cli_main


def test_round_trip_official_ours_official_is_exact(official_checkpoint, converted_weights):
    original = torch.load(official_checkpoint, weights_only=True)["state_dict"]
    native, _ = load_weights(converted_weights)
    back = native_to_official(native, data_parallel=True)
    assert list(back) == list(original)  # same keys, same order
    for key, tensor in original.items():
        assert back[key].dtype == tensor.dtype, key
        assert torch.equal(back[key], tensor), key


def test_converted_file_records_classes_and_source(official_checkpoint, converted_weights):
    meta = read_metadata(converted_weights)
    assert meta["manet_zoo.num_classes"] == "7"
    assert meta["manet_zoo.source"] == f"official:{official_checkpoint.name}"
    assert meta["manet_zoo.source_sha256"] == sha256_file(official_checkpoint)
    keys = load_file(converted_weights)
    assert "local_branch.regions.top_left.layer3.0.cbam.channel_gate.fc1.weight" in keys
    assert not any(k.startswith("module.") or k.startswith("layer3_1") for k in keys)


def test_bare_state_dict_without_prefix_converts(tmp_path, official_state_dict):
    src = tmp_path / "bare.pth"
    torch.save(official_state_dict, src)
    out = convert_official_checkpoint(src, tmp_path / "bare.safetensors")
    native, _ = load_weights(out)
    assert torch.equal(native["head_local.weight"], official_state_dict["fc_1.weight"])
    assert torch.equal(native["stem.conv.weight"], official_state_dict["conv1.weight"])


def test_msceleb_sized_heads_convert_and_load(tmp_path, official_state_dict):
    """The released backbone has 12,666-identity heads."""
    sd = {f"module.{k}": v for k, v in official_state_dict.items()}
    for head in ("fc_1", "fc_2"):
        sd[f"module.{head}.weight"] = torch.randn(12666, 512) * 0.01
        sd[f"module.{head}.bias"] = torch.zeros(12666)
    src = tmp_path / "Pretrained_on_MSCeleb.pth.tar"
    torch.save({"state_dict": sd}, src)
    out = convert_official_checkpoint(src, tmp_path / "msceleb.safetensors")
    assert read_metadata(out)["manet_zoo.num_classes"] == "12666"
    model = manet(weights=out)
    assert model.num_classes == 12666
    assert torch.equal(model.head_global.weight, sd["module.fc_2.weight"])
    with pytest.warns(UserWarning, match="12666 classes; replaced both heads"):
        finetune = manet(weights=out, num_classes=7)
    assert finetune.head_local.out_features == 7
    assert torch.equal(finetune.stem.conv.weight, sd["module.conv1.weight"])


def test_cli_convert(tmp_path, official_checkpoint, capsys):
    out = tmp_path / "cli.safetensors"
    assert cli_main(["convert", str(official_checkpoint), str(out)]) == 0
    assert "7 classes" in capsys.readouterr().out
    assert load_file(out).keys() == load_file(out).keys()  # readable
    assert read_metadata(out)["manet_zoo.source_sha256"] == sha256_file(official_checkpoint)


def test_corrupted_file_is_a_clear_error(tmp_path, official_checkpoint):
    data = official_checkpoint.read_bytes()
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        read_official_checkpoint(truncated)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_official_checkpoint(garbage)


def test_cli_reports_a_bad_file_and_writes_nothing(tmp_path, capsys):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00" * 64)
    out = tmp_path / "out.safetensors"
    assert cli_main(["convert", str(garbage), str(out)]) == 1
    assert "not a readable PyTorch checkpoint" in capsys.readouterr().err
    assert not out.exists()
    assert not list(tmp_path.glob("*.incomplete"))


def test_arbitrary_pickles_are_refused(tmp_path, official_state_dict):
    src = tmp_path / "with_args.pth.tar"
    torch.save({"args": argparse.Namespace(lr=0.01), "state_dict": official_state_dict}, src)
    with pytest.raises(UnsafeCheckpointError, match=r"weights_only=True.*If you trust the file"):
        read_official_checkpoint(src)


def test_unknown_and_missing_keys_are_listed(tmp_path, official_state_dict):
    sd = dict(official_state_dict)
    del sd["layer4_2.1.bn2_2_3.running_var"]
    sd["layer5.0.conv1.weight"] = torch.zeros(1)
    src = tmp_path / "keys.pth"
    torch.save({"state_dict": sd}, src)
    with pytest.raises(StateDictMismatchError) as info:
        read_official_checkpoint(src)
    assert info.value.missing == ["layer4_2.1.bn2_2_3.running_var"]
    assert info.value.unexpected == ["layer5.0.conv1.weight"]
    assert "layer4_2.1.bn2_2_3.running_var" in str(info.value)


def test_wrong_shapes_are_listed(tmp_path, official_state_dict):
    sd = dict(official_state_dict)
    sd["layer3_1_p2.0.conv1.weight"] = torch.zeros(256, 128, 5, 5)
    src = tmp_path / "shapes.pth"
    torch.save(sd, src)
    with pytest.raises(StateDictMismatchError) as info:
        read_official_checkpoint(src)
    [(key, in_file, in_model)] = info.value.shape_mismatches
    assert key == "local_branch.regions.top_right.layer3.0.conv1.weight"
    assert in_file == (256, 128, 5, 5) and in_model == (256, 128, 3, 3)


def test_heads_of_different_sizes_are_refused(official_state_dict):
    sd = dict(official_state_dict)
    sd["fc_2.weight"] = torch.zeros(8, 512)
    sd["fc_2.bias"] = torch.zeros(8)
    with pytest.raises(CheckpointError, match="heads of different shapes"):
        official_to_native(sd)


def test_loading_pickles_directly_is_refused_with_the_fix(official_checkpoint):
    with pytest.raises(CheckpointError, match="manet-zoo convert"):
        manet(weights=official_checkpoint)


def test_safetensors_with_wrong_shapes_is_refused(tmp_path, converted_weights):
    tensors = load_file(converted_weights)
    tensors["global_branch.layer4.1.right.2.bn.weight"] = torch.ones(64)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, bad)
    with pytest.raises(StateDictMismatchError, match=r"right\.2\.bn\.weight"):
        manet(weights=bad)


def test_truncated_safetensors_is_refused(tmp_path, converted_weights):
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(converted_weights.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        manet(weights=bad)


def test_safetensors_in_official_layout_loads(tmp_path, official_state_dict, converted_weights):
    path = tmp_path / "official_layout.safetensors"
    save_file({k: v.contiguous() for k, v in official_state_dict.items()}, path)
    a = manet(weights=path).state_dict()
    b = manet(weights=converted_weights).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_save_weights_round_trip_with_labels(tmp_path):
    torch.manual_seed(3)
    model = manet(num_classes=3).eval()
    out = save_weights(model.state_dict(), tmp_path / "m.safetensors", labels=["a", "b", "c"])
    loaded = manet(weights=out)
    assert loaded.labels == ("a", "b", "c")
    assert not loaded.training
    x = torch.rand(1, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-6, atol=1e-6)
    assert json.loads(read_metadata(out)["manet_zoo.labels"]) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="2 labels given for a 3-class model"):
        save_weights(model.state_dict(), tmp_path / "x.safetensors", labels=["a", "b"])


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        manet(weights=tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError):
        read_official_checkpoint(tmp_path / "nope.pth")


def test_checkpoint_without_weights_is_refused(tmp_path):
    src = tmp_path / "optimizer_only.pth"
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, src)
    with pytest.raises(CheckpointError, match="neither a state_dict"):
        read_official_checkpoint(src)
