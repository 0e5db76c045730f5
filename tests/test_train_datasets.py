"""Every dataset loader on a tiny fake in its owner's exact layout."""

from __future__ import annotations

import warnings

import pytest
import torch

from manet_zoo.train.datasets import (
    KINDS,
    DatasetError,
    PartialDatasetWarning,
    SplitNotFoundError,
    UnreadableImagesError,
    load_dataset,
    merge,
)
from manet_zoo.train.datasets.base import CLASSES7, CLASSES8
from manet_zoo.train.datasets.fer2013 import majority_label
from tests import train_fakes as fake


def names(ds):
    return [ds.classes[y] for y in ds.targets]


def load(kind, root, split, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialDatasetWarning)
        return load_dataset(kind, root, split, **kw)


def test_rafdb_label_file_nested_archive_crlf_and_mapping(tmp_path):
    root = fake.rafdb(tmp_path)
    with pytest.warns(PartialDatasetWarning, match="12,271"):
        train = load_dataset("rafdb", root, "train")
    # raw 1..7 = surprise, fear, disgust, happiness, sadness, anger, neutral
    assert names(train) == [
        "surprise",
        "fear",
        "disgust",
        "happiness",
        "sadness",
        "anger",
        "neutral",
    ]
    assert train.classes == CLASSES7
    assert train.items[0].path.endswith("basic/basic/Image/aligned/train_00001_aligned.jpg")
    test = load("rafdb", root, "test")
    assert names(test) == ["happiness", "neutral", "anger"]
    image, label = test[0]
    assert image.mode == "RGB" and label == 1
    original = load("rafdb", root, "test", aligned=False)
    assert original[0][0].size == (20, 16)


def test_rafdb_official_manet_folder_layout(tmp_path):
    root = fake.rafdb_folder(tmp_path)
    train = load("rafdb", root, "train")
    assert len(train) == 14 and train.class_counts() == [2] * 7
    assert names(load("rafdb", root, "test")) == list(CLASSES7)


def test_affectnet_original_csv_header_optional_box_crop_7_and_8(tmp_path):
    root = fake.affectnet_original(tmp_path)
    seven = load("affectnet7", root, "train")
    assert seven.targets == [0, 1, 2, 3, 4, 5, 6]  # 7 contempt, 8-10 dropped
    eight = load("affectnet8", root, "train")
    assert eight.targets == list(range(8)) and eight.classes == CLASSES8
    val = load("affectnet8", root, "val")  # no header row
    assert val.targets == [0, 6, 7]
    crop, _ = val[0]  # box 16x12 at (4, 3) grown by 10% per side: (2.4, 1.8, 21.6, 16.2)
    assert crop.size == (19, 15)
    with pytest.warns(PartialDatasetWarning, match="3,499"):
        load_dataset("affectnet7", root, "val")


def test_affectnet_new_release_npy(tmp_path):
    root = fake.affectnet_new(tmp_path)
    assert load("affectnet7", root, "train").targets == [0, 1, 3]
    assert load("affectnet8", root, "train").targets == [0, 1, 7, 3]
    assert load("affectnet8", root, "val").targets == [6, 7]


def test_caers_angry_and_anger(tmp_path):
    root = fake.caers(tmp_path)
    for split in ("train", "test"):
        ds = load("caers", root, split)
        assert sorted(names(ds)) == sorted(CLASSES7)


def test_sfew_full_frames_and_aligned(tmp_path):
    root = fake.sfew(tmp_path)
    full = load("sfew", root, "train")
    assert len(full) == 8 and full.class_counts()[1] == 2  # Train_Aligned_Faces ignored
    assert full[0][0].size == (24, 20)
    assert len(load("sfew", root, "val")) == 7
    aligned = load("sfew_aligned", root, "val")
    assert len(aligned) == 7 and "Val_Aligned_Faces" in aligned.items[0].path


@pytest.mark.parametrize("icml", [False, True])
def test_fer2013_both_csv_variants(tmp_path, icml):
    written = fake.fer2013(tmp_path, icml=icml)
    root = written if icml else tmp_path  # the CSV file itself, or a folder above it
    train = load("fer2013", root, "train")
    assert names(train) == ["anger", "happiness", "neutral"]
    assert names(load("fer2013", root, "val")) == ["fear"]
    assert names(load("fer2013", root, "PrivateTest")) == ["surprise"]
    image, _ = train[0]
    assert image.size == (48, 48) and image.mode == "RGB"


def test_ferplus_majority_vote(tmp_path):
    root = fake.ferplus(tmp_path)
    assert names(load("ferplus", root, "train")) == ["contempt"]
    assert names(load("ferplus", root, "test")) == ["surprise"]
    with pytest.raises(DatasetError, match="no images"):
        load("ferplus", root, "val")
    assert majority_label([5, 5, 0, 0, 0, 0, 0, 0, 0, 0]) is None


def test_fedro_neural_is_neutral(tmp_path):
    ds = load("fedro", fake.fedro(tmp_path), "test")
    assert sorted(names(ds)) == sorted(CLASSES7)
    with pytest.raises(DatasetError):
        load("fedro", tmp_path, "train")


def test_ran_rafdb_lists_crlf_duplicates_header(tmp_path):
    root = fake.rafdb(tmp_path)
    fake.ran_rafdb_lists(root)
    occlusion = load("rafdb_occlusion", root, "test")
    assert occlusion.keys == [
        "rafdb_occlusion/test_0001_aligned",
        "rafdb_occlusion/test_0002_aligned",
    ]
    assert names(occlusion) == ["happiness", "anger"]  # RAN labels are RAF-DB's minus one
    pose = load("rafdb_pose30", root, "test")
    assert names(pose) == ["anger", "happiness"]
    assert names(load("rafdb_pose45", root, "test")) == ["neutral"]


def test_ran_affectnet_lists(tmp_path):
    root = fake.affectnet_original(tmp_path)
    lists = fake.ran_affectnet_lists(root)
    occ = load("affectnet_occlusion", root, "test")
    assert names(occ) == ["neutral", "anger"] and occ.items[0].box is not None
    assert names(load("affectnet_pose30", root, "test")) == ["neutral"]
    assert names(
        load("affectnet_pose45", root, "test", list_file=lists / "pose_45_affectnet_list.txt")
    ) == ["anger"]


def test_custom_folder_with_and_without_splits_and_canonical_names(tmp_path):
    root = fake.two_class_folder(tmp_path / "split", {"train": 2, "test": 1})
    train = load("custom", root, "train")
    assert train.classes == ("happiness", "sadness")  # synonyms -> canonical order
    assert len(load("custom", root, "test")) == 2
    with pytest.raises(SplitNotFoundError):
        load("custom", root, "val")
    plain = tmp_path / "plain"
    fake.image(plain / "zebra" / "a.png")
    fake.image(plain / "apple" / "b.png")
    ds = load("custom", plain, "train")
    assert ds.classes == ("apple", "zebra") and names(ds) == ["apple", "zebra"]


@pytest.mark.parametrize("header", [True, False])
def test_custom_csv_header_optional_relative_paths(tmp_path, header):
    fake.image(tmp_path / "img" / "a.png")
    fake.image(tmp_path / "img" / "b.png")
    rows = ["img/a.png,cat,train", "img/b.png,dog,test"]
    csv = fake.write(
        tmp_path / "labels.csv", "\n".join((["path,label,split"] if header else []) + rows)
    )
    assert names(load("custom", csv, "train")) == ["cat"]
    assert names(load("custom", csv, "test")) == ["dog"]


def test_bad_images_fail_with_list_or_skip_and_count(tmp_path):
    root = fake.rafdb(tmp_path)
    aligned = root / "basic" / "basic" / "Image" / "aligned"
    (aligned / "train_00001_aligned.jpg").unlink()  # listed but missing
    (aligned / "train_00002_aligned.jpg").write_bytes(b"not a jpeg")  # undecodable
    with pytest.raises(UnreadableImagesError) as info:  # missing: found up front
        load("rafdb", root, "train")
    assert [p.rsplit("/", 1)[-1] for p in info.value.paths] == ["train_00001_aligned.jpg"]
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = load_dataset("rafdb", root, "train", bad_images="skip")
    assert len(ds) == 6 and len(ds.skipped) == 1
    assert ds[0] is None  # undecodable: None, dropped and counted by the training collate
    with pytest.raises(UnreadableImagesError, match=r"train_00002_aligned\.jpg"):
        ds.replace(bad_images="fail")[0]
    with pytest.raises(UnreadableImagesError) as info:  # verify: both found up front
        load_dataset("rafdb", root, "train", verify=True)
    assert len(info.value.paths) == 2


def test_merge_and_registry(tmp_path):
    a = load("rafdb", fake.rafdb(tmp_path / "a"), "train")
    b = load("affectnet7", fake.affectnet_original(tmp_path / "b"), "train")
    both = merge([a, b])
    assert len(both) == len(a) + len(b) and both.keys[0].startswith("RAF-DB/")
    with pytest.raises(DatasetError, match="cannot merge"):
        merge([a, load("affectnet8", tmp_path / "b", "train")])
    assert {
        "rafdb",
        "affectnet7",
        "affectnet8",
        "caers",
        "sfew",
        "fer2013",
        "ferplus",
        "fedro",
        "custom",
    } <= set(KINDS)
    with pytest.raises(DatasetError, match="unknown dataset kind"):
        load_dataset("imagenet", tmp_path, "train")


def test_transform_gets_the_seed(tmp_path):
    from manet_zoo.train.sampling import TrainAugment

    ds = load("fedro", fake.fedro(tmp_path), "test").with_transform(TrainAugment(32))
    x1, _ = ds[(0, 123)]
    x2, _ = ds[(0, 123)]
    x3, _ = ds[(0, 124)]
    assert x1.shape == (3, 32, 32) and torch.equal(x1, x2) and not torch.equal(x1, x3)
