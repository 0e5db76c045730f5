"""The ``manet-zoo`` command line.

Each subcommand is a small function that parses nothing itself and calls the library;
errors of manet-zoo's own types print one clear line and exit with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from manet_zoo import __version__
from manet_zoo.errors import ManetZooError

Handler = Callable[[argparse.Namespace], int]


def _cmd_summary(args: argparse.Namespace) -> int:
    from manet_zoo.factories import manet
    from manet_zoo.summary import summarize

    if args.weights:
        model = manet(weights=args.weights)
    else:
        import torch

        with torch.device("meta"):
            model = manet(num_classes=args.num_classes)
    print(summarize(model, input_size=args.input_size))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from manet_zoo.checkpoint import convert_official_checkpoint, read_metadata

    out = convert_official_checkpoint(args.src, args.dst)
    meta = read_metadata(out)
    print(
        f"wrote {out} ({meta['manet_zoo.num_classes']} classes, "
        f"source sha256 {meta['manet_zoo.source_sha256']})"
    )
    return 0


def _model_spec(args: argparse.Namespace) -> str:
    return args.weights or args.model


def _cmd_predict(args: argparse.Namespace) -> int:
    from manet_zoo.output import Annotator, make_writer
    from manet_zoo.predictor import Predictor

    predictor = Predictor(
        _model_spec(args),
        detector=args.detector,
        device=args.device,
        batch_size=args.batch_size,
        precision=args.precision,
        min_confidence=args.min_confidence,
        num_workers=args.workers,
    )
    writer = make_writer(args.format, sys.stdout, predictor)
    annotator = Annotator(args.annotate, args.paths) if args.annotate else None
    images = faces = failed = 0
    for result in predictor.iter_predict(args.paths, progress=sys.stderr.isatty()):
        writer.write(result)
        images, faces, failed = images + 1, faces + len(result.faces), failed + (not result.ok)
        if not result.ok and args.format != "text":
            print(f"{result.source}: error: {result.error}", file=sys.stderr)
        elif result.ok and annotator is not None:
            annotator.save(result)
    writer.close()
    if not images:
        print(
            "manet-zoo predict: error: no image found in " + " ".join(args.paths), file=sys.stderr
        )
        return 1
    print(f"{images} image(s), {faces} face(s), {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from manet_zoo.explanations import explain, save_explanations
    from manet_zoo.images import load_image

    image = load_image(args.image)  # a bad file fails before the model loads
    explanations = explain(
        image,
        _model_spec(args),
        target=args.target,
        detector=args.detector,
        device=args.device,
    )
    if not explanations:
        print(f"manet-zoo explain: no face found in {args.image}", file=sys.stderr)
        return 1
    out = save_explanations(explanations, args.out)
    print(f"wrote {out} ({len(explanations)} face(s))")
    return 0


def _add_model_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--model",
        default="manet_rafdb",
        help="zoo name, local .safetensors or hf-hub:org/repo[@rev] (default manet_rafdb)",
    )
    group.add_argument("--weights", help="a local .safetensors file (same as --model FILE)")
    p.add_argument(
        "--detector",
        default="mtcnn",
        choices=["mtcnn", "retinaface", "none"],
        help="face detector; 'none' treats each image as a face crop (default mtcnn; "
        "retinaface needs the retinaface extra)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manet-zoo",
        description="MA-Net for facial expression recognition: models, weights, tools.",
    )
    parser.add_argument("--version", action="version", version=f"manet-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("summary", help="build MA-Net and print its stages, parameters and cost")
    p.add_argument("--num-classes", type=int, default=7, help="classes of both heads (default 7)")
    p.add_argument(
        "--input-size", type=int, default=224, help="input height and width (default 224)"
    )
    p.add_argument("--weights", help="summarise the model in this .safetensors file instead")
    p.set_defaults(handler=_cmd_summary)

    p = sub.add_parser(
        "convert",
        help="convert the authors' .pth/.pth.tar checkpoint to safetensors",
        description="Read an official MA-Net checkpoint with torch.load(weights_only=True) "
        "and write it as safetensors in manet-zoo's layout.",
    )
    p.add_argument("src", help="official checkpoint, e.g. Pretrained_on_MSCeleb.pth.tar")
    p.add_argument("dst", help="output file, ending in .safetensors")
    p.set_defaults(handler=_cmd_convert)

    p = sub.add_parser(
        "predict",
        help="find faces in images and predict their expressions",
        description="Predict the expression of every face in each PATH (files or folders, "
        "walked recursively). Unreadable items are reported and the rest goes on; the exit "
        "status is 1 when any item failed.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    _add_model_options(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="format", action="store_const", const="json",
                     help="one JSON document with every result")  # fmt: skip
    fmt.add_argument("--csv", dest="format", action="store_const", const="csv",
                     help="CSV, one row per face")  # fmt: skip
    p.set_defaults(format="text")
    p.add_argument("--batch-size", type=int, default=32, help="faces per forward pass (32)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument(
        "--min-confidence", type=float, default=0.9, help="smallest detection probability (0.9)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=min(2, max(0, (os.cpu_count() or 1) - 1)),
        help="processes that decode and detect while the model runs",
    )
    p.add_argument("--annotate", metavar="OUTDIR", help="write each image with faces drawn here")
    p.set_defaults(handler=_cmd_predict)

    p = sub.add_parser(
        "explain",
        help="draw class activation maps of both branches over each face",
        description="Write IMG's faces with the local-attention and multi-scale class "
        "activation maps laid over them, side by side, one row per face.",
    )
    p.add_argument("image", metavar="IMG", help="an image file")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the picture to write")
    p.add_argument("--target", help="the label to explain (default: each face's prediction)")
    _add_model_options(p)
    p.set_defaults(handler=_cmd_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``manet-zoo`` console script."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (ManetZooError, FileNotFoundError, ValueError) as exc:
        print(f"manet-zoo {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
