"""Writing prediction results as they stream in: plain text, one JSON document, or CSV
(one row per face)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, TextIO

from manet_zoo.draw import annotate, output_path, save_image
from manet_zoo.faces import LANDMARK_NAMES
from manet_zoo.images import load_image
from manet_zoo.predictor import ImageResult, Predictor

FORMATS = ("text", "json", "csv")


class TextWriter:
    """One line per image: its faces (label, probability, box), "no face found" or the error."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, result: ImageResult) -> None:
        if not result.ok:
            line = f"error: {result.error}"
        elif not result.faces:
            line = "no face found"
        else:
            faces = "; ".join(
                f"{f.label} {f.probability:.3f} at ({', '.join(f'{v:.0f}' for v in f.box)})"
                for f in result.faces
            )
            line = f"{len(result.faces)} face(s): {faces}"
        print(f"{result.source}: {line}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class JsonWriter:
    """One JSON object: ``model``, ``labels``, ``preprocessing``, ``detector`` and
    ``results`` (a list of :meth:`ImageResult.to_dict`), written as results arrive."""

    def __init__(self, stream: TextIO, header: dict[str, Any]) -> None:
        self.stream, self.count = stream, 0
        head = json.dumps(header, indent=2)[:-2]  # drop the closing "\n}"
        stream.write(head + ',\n  "results": [')

    def write(self, result: ImageResult) -> None:
        self.stream.write(("," if self.count else "") + "\n    " + result.to_json())
        self.stream.flush()
        self.count += 1

    def close(self) -> None:
        self.stream.write("\n  ]\n}\n")
        self.stream.flush()


class CsvWriter:
    """One row per face (one row with empty face columns for an image without faces or
    with an error). Columns: source, width, height, face, x1, y1, x2, y2,
    detection_score, ``<landmark>_x``/``_y``, label, probability, ``p_<label>``,
    ``local_<label>``, ``global_<label>``, error."""

    def __init__(self, stream: TextIO, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.writer = csv.writer(stream, lineterminator="\n")
        self.stream = stream
        marks = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy"]
        self.columns = [
            *("source", "width", "height", "face", "x1", "y1", "x2", "y2", "detection_score"),
            *marks,
            "label",
            "probability",
            *(f"p_{label}" for label in labels),
            *(f"local_{label}" for label in labels),
            *(f"global_{label}" for label in labels),
            "error",
        ]
        self.writer.writerow(self.columns)

    def write(self, result: ImageResult) -> None:
        head = [result.source, result.width, result.height]
        if not result.faces:
            blank = [""] * (len(self.columns) - len(head) - 1)
            self.writer.writerow([*head, *blank, result.error or ""])
        for index, face in enumerate(result.faces):
            marks = [""] * (2 * len(LANDMARK_NAMES))
            if face.landmarks is not None:
                marks = [v for name in LANDMARK_NAMES for v in face.landmarks[name]]
            score = "" if face.detection_score is None else face.detection_score
            self.writer.writerow(
                [
                    *head,
                    index,
                    *face.box,
                    score,
                    *marks,
                    face.label,
                    face.probability,
                    *face.probabilities.values(),
                    *face.logits_local,
                    *face.logits_global,
                    "",
                ]
            )
        self.stream.flush()

    def close(self) -> None:
        pass


def make_writer(kind: str, stream: TextIO, predictor: Predictor) -> Any:
    """A writer of ``kind`` (:data:`FORMATS`) for ``predictor``'s results."""
    if kind == "json":
        detector = predictor.detector
        header = {
            "model": predictor.model.source,
            "labels": list(predictor.labels),
            "preprocessing": predictor.preprocessing.to_dict(),
            "detector": None if detector is None else getattr(detector, "name", repr(detector)),
        }
        return JsonWriter(stream, header)
    if kind == "csv":
        return CsvWriter(stream, predictor.labels)
    if kind == "text":
        return TextWriter(stream)
    raise ValueError(f"unknown output format {kind!r}; choose one of {FORMATS}")


class Annotator:
    """Writes each image with its faces drawn under ``out_dir``, at its path relative to
    the common folder of ``inputs`` (so folder structure is kept and names never collide)."""

    def __init__(self, out_dir: str | os.PathLike[str], inputs: list[str]) -> None:
        self.out_dir = Path(out_dir)
        parents = [str(Path(p).resolve().parent) for p in inputs]
        self.base = Path(os.path.commonpath(parents)) if parents else Path.cwd()

    def save(self, result: ImageResult) -> Path:
        image = load_image(result.source)
        return save_image(
            annotate(image, result), output_path(result.source, self.out_dir, self.base)
        )
