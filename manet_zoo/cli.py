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


def _cmd_train(args: argparse.Namespace) -> int:
    import json

    from manet_zoo.train.cli_args import options_from_args, recipe_from_args

    if args.show_recipe:
        from manet_zoo.train.recipes import get_recipe

        print(get_recipe(args.show_recipe).to_json())
        return 0
    if not args.recipe or not args.data:
        print("manet-zoo train: error: --recipe and --data are required", file=sys.stderr)
        return 2
    from manet_zoo.train.engine import train, train_seeds

    recipe, options = recipe_from_args(args), options_from_args(args)
    out = args.out or f"runs/{recipe.name}"
    if args.seeds:
        result = train_seeds(recipe, args.data, out, args.seeds, options)
        print(json.dumps(result, indent=2))
    else:
        train(recipe, args.data, out, options)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from manet_zoo.train.evaluate import run_evaluate

    result = run_evaluate(
        kind=args.dataset,
        data=args.data,
        model=args.model,
        weights=args.weights,
        split=args.split,
        list_file=args.list,
        input_size=args.input_size,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        bad_images=args.bad_images,
        out=args.out,
    )
    print(result.format())
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    import json

    from manet_zoo.train.publish import publish_run

    done = publish_run(args.run_dir, args.repo_id, dry_run=args.dry_run, private=args.private)
    if done["uploaded"]:
        print(f"uploaded {', '.join(done['files'])} to {args.repo_id}")
    else:
        print(f"dry run: would upload {', '.join(done['files'])} to {args.repo_id} in one commit")
        print("(the record's file.revision is the commit hash the real upload prints)")
    print("record for manet_zoo/weights_manifest.json:")
    print(json.dumps({done["name"]: done["record"]}, indent=2))
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

    from manet_zoo.train.cli_args import add_evaluate_parser, add_publish_parser, add_train_parser

    add_train_parser(sub).set_defaults(handler=_cmd_train)
    add_evaluate_parser(sub).set_defaults(handler=_cmd_evaluate)
    add_publish_parser(sub).set_defaults(handler=_cmd_publish)
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
