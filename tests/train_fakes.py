"""Tiny fakes of the FER datasets in their owners' exact layouts (random pixels, a few
files per class), for the loader and engine tests. Nothing here is real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def image(path: Path, size: tuple[int, int] = (12, 12), value: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if value is None:
        pixels = RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    else:
        pixels = np.clip(RNG.normal(value, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write(path: Path, text: str, crlf: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode())
    return path


def rafdb(root: Path, nested: bool = True) -> Path:
    """basic/basic/ (nested archive) with __MACOSX junk; raw labels 1..7, train 7 / test 3."""
    basic = root / "basic" / "basic" if nested else root / "basic"
    rows = []
    for i, raw in enumerate([1, 2, 3, 4, 5, 6, 7], start=1):
        rows.append(f"train_{i:05d}.jpg {raw}")
    for i, raw in enumerate([4, 7, 6], start=1):
        rows.append(f"test_{i:04d}.jpg {raw}")
    write(basic / "EmoLabel" / "list_patition_label.txt", "\n".join(rows) + "\n", crlf=True)
    for row in rows:
        stem = row.split()[0][:-4]
        image(basic / "Image" / "aligned" / f"{stem}_aligned.jpg")
        image(basic / "Image" / "original" / f"{stem}.jpg", (20, 16))
    write(root / "__MACOSX" / "basic" / "EmoLabel" / "._list_patition_label.txt", "junk")
    return root


def rafdb_folder(root: Path) -> Path:
    """The official MA-Net layout RAF-DB/{train,test}/{0..6}/."""
    for split, per in (("train", 2), ("test", 1)):
        for c in range(7):
            for i in range(per):
                image(root / "RAF-DB" / split / str(c) / f"{split}_{c}_{i}.jpg")
    return root


AFFECTNET_HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"  # noqa: E501


def affectnet_original(root: Path) -> Path:
    """training.csv with a header, validation.csv without; expressions 0..10."""
    lists = root / "Manually_Annotated_file_lists"
    images = root / "Manually_Annotated" / "Manually_Annotated_Images"
    landmarks = ";".join(["1.0"] * 136)
    for name, header, expressions in (
        ("training.csv", True, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ("validation.csv", False, [0, 6, 7, 9]),
    ):
        rows = [AFFECTNET_HEADER] if header else []
        for i, e in enumerate(expressions):
            stem = (f"{'e' if header else 'f'}{i:02d}" + "ab" * 27)[:56]  # 56 hex digits
            rel = f"{100 + i}/{stem}.jpg"
            image(images / rel, (30, 24))
            rows.append(f"{rel},4,3,16,12,{landmarks},{e},0.1,-0.2")
        write(lists / name, "\n".join(rows) + "\n")
    return root


def affectnet_new(root: Path) -> Path:
    for split, expressions in (("train_set", [0, 1, 7, 3]), ("val_set", [6, 7])):
        for i, e in enumerate(expressions):
            image(root / split / "images" / f"{400 + i}.jpg", (16, 16))
            (root / split / "annotations").mkdir(parents=True, exist_ok=True)
            np.save(root / split / "annotations" / f"{400 + i}_exp.npy", np.array(str(e)))
            np.save(root / split / "annotations" / f"{400 + i}_val.npy", np.array("0.1"))
    return root


def caers(root: Path) -> Path:
    names = ("Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
    for split, anger in (("train", "Angry"), ("test", "Anger")):
        for c in (anger, *names):
            image(root / "CAER-S" / split / c / "0001.png")
    return root


def sfew(root: Path) -> Path:
    emotions = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
    for e in emotions:
        image(root / "Train" / e / f"{e}_frame.png", (24, 20))
        image(root / "Val" / e / f"{e}_frame.png", (24, 20))
        image(root / "Train" / "Train_Aligned_Faces" / e / f"{e}_a.png")
        image(root / "Val" / "Val_Aligned_Faces_new" / "Val_Aligned_Faces" / e / f"{e}_a.png")
    image(root / "Train" / "Happy" / "extra.png", (24, 20))
    return root


def _pixels() -> str:
    return " ".join(str(v) for v in RNG.integers(0, 256, 48 * 48))


FER_ROWS = [
    (0, "Training"),
    (3, "Training"),
    (6, "Training"),
    (2, "PublicTest"),
    (5, "PrivateTest"),
]


def fer2013(root: Path, icml: bool = False) -> Path:
    if icml:
        lines = ["emotion, Usage, pixels"] + [f"{e}, {u}, {_pixels()}" for e, u in FER_ROWS]
        return write(root / "icml_face_data.csv", "\n".join(lines) + "\n")
    lines = ["emotion,pixels,Usage"] + [f"{e},{_pixels()},{u}" for e, u in FER_ROWS]
    return write(root / "fer2013" / "fer2013.csv", "\n".join(lines) + "\n")


def ferplus(root: Path) -> Path:
    fer2013(root)
    header = (
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    )
    rows = [
        "Training,fer0000000.png,0,0,0,0,0,0,0,9,1,0",  # contempt
        "Training,,10,0,0,0,0,0,0,0,0,0",  # no image name: dropped
        "Training,fer0000002.png,4,4,0,0,0,0,0,0,2,0",  # tie: dropped
        "PublicTest,fer0000003.png,0,0,0,0,0,0,0,0,3,7",  # NF majority: dropped
        "PrivateTest,fer0000004.png,1,0,8,0,1,0,0,0,0,0",  # surprise
    ]
    write(root / "FERPlus" / "fer2013new.csv", header + "\n" + "\n".join(rows) + "\n")
    return root


def fedro(root: Path) -> Path:
    for c in ("anger", "disgust", "fear", "happy", "neural", "sad", "surprise"):
        image(root / "FED-RO" / c / "occ_img_1.jpg")
    return root


def ran_rafdb_lists(rafdb_root: Path) -> Path:
    """RAN lists next to a fake RAF-DB: CRLF endings, a repeated row, a header."""
    d = rafdb_root / "RAF_DB_dir"
    write(
        d / "rafdb_occlusion_list.txt",
        "test_0001_aligned 3 4\ntest_0002_aligned 5 1\ntest_0001_aligned 3 4\n",
        crlf=True,
    )
    write(
        d / "val_raf_db_list.txt", "0/test_0003_aligned.jpg\n0/test_0001_aligned.jpg\n", crlf=True
    )
    write(d / "val_raf_db_label.txt", "2 7\n5\n3\n", crlf=True)
    write(d / "val_raf_db_list_45.txt", "0/test_0002_aligned.jpg\n")
    write(d / "val_raf_db_label_45.txt", "6\n")
    return d


def ran_affectnet_lists(affectnet_root: Path) -> Path:
    d = affectnet_root / "AffectNet_dir"
    s0, s1 = (
        ("f00" + "ab" * 27)[:56],
        ("f01" + "ab" * 27)[:56],
    )  # validation rows 0 (label 0), 1 (label 6)
    write(d / "occlusion_affectnet_list.txt", f"val/0/{s0}/\nval/6/{s1}/\nval/0/{s0}/\n", crlf=True)
    write(d / "pose_30_affectnet_list.txt", f"0/{s0}.jpg\n")
    write(d / "pose_45_affectnet_list.txt", f"6/{s1}/8.jpg\n")
    return d


def two_class_folder(root: Path, per_class: dict[str, int], size: int = 32) -> Path:
    """A learnable custom ImageFolder: 'happy' images have a bright left half, 'sad'
    ones a bright right half (a spatial cue, which BatchNorm does not normalise away)."""
    for split, n in per_class.items():
        for name, side in (("happy", 0), ("sad", 1)):
            for i in range(n):
                pixels = RNG.integers(0, 80, (size, size, 3), dtype=np.uint8)
                half = slice(0, size // 2) if side == 0 else slice(size // 2, size)
                pixels[:, half] += 150
                path = root / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
    return root
