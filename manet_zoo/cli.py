"""The ``manet-zoo`` command line.

Each subcommand is a small function that parses nothing itself and calls the library;
errors of manet-zoo's own types print one clear line and exit with status 1.
"""

from __future__ import annotations

import argparse
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
