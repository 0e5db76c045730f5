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


def _local_path(record) -> str:
    """Where a record's file is right now, without any network: '-' when nowhere."""
    from manet_zoo import config
    from manet_zoo.hub import cached_file

    if not record.published:
        return "-"
    if config.weights_dir() is not None:
        candidate = config.weights_dir() / record.file.filename
        return str(candidate) if candidate.is_file() else "-"
    hit = cached_file(record)
    return str(hit) if hit else "-"


def _cmd_list(args: argparse.Namespace) -> int:
    from manet_zoo.weights import read_manifest

    records = read_manifest()
    rows = [("name", "classes", "dataset", "paper top-1", "status", "local file")]
    for name in sorted(records):
        w = records[name]
        if args.pretrained and not w.published:
            continue
        paper = f"{w.paper.top1:.2f}" if w.paper else "-"
        status = "published" if w.published else "not published"
        rows.append((name, str(w.num_classes), w.dataset, paper, status, _local_path(w)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import json

    from manet_zoo.weights import get_weights

    record = get_weights(args.name)
    if args.json:
        print(json.dumps({"name": record.name, **record.to_dict()}, indent=2))
        return 0
    p = record.preprocessing
    lines = [
        f"{record.name}: {record.description}",
        f"  status        {'published' if record.published else 'not published yet'}",
        f"  local file    {_local_path(record)}",
        f"  classes       {record.num_classes} (fusion weight {record.fusion_weight})",
        f"  labels        {', '.join(record.labels) if record.labels else '(identities)'}",
        f"  input         {p.input_size[0]}x{p.input_size[1]} {p.resize} resize, "
        f"{p.interpolation}, values in [0, 1], "
        + (f"mean {p.mean} std {p.std}" if p.mean else "no mean/std")
        + f", face: {p.face}",
        f"  dataset       {record.dataset}: {record.protocol}",
        f"  recipe        {record.recipe} (init: {record.init or 'from scratch'})",
    ]
    if record.paper:
        r = record.paper
        counts = f" ({r.correct}/{r.total})" if r.correct else ""
        lines.append(f"  paper top-1   {r.top1:.2f}%{counts} on {r.test_set} (as reported)")
    if record.metrics:
        lines.append(f"  measured      {json.dumps(dict(record.metrics))}")
    f = record.file
    lines.append(
        f"  file          {f.repo_id}/{f.filename}@{f.revision} sha256 {f.sha256} ({f.size} bytes)"
        if record.published
        else f"  file          {f.filename} (no sha256: not published)"
    )
    lines.append(f"  license       {record.license}")
    print("\n".join(lines))
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from manet_zoo.hub import resolve_file
    from manet_zoo.weights import get_weights, read_manifest

    if args.all == bool(args.names):
        print("manet-zoo download: give model names or --all", file=sys.stderr)
        return 2
    names = sorted(read_manifest()) if args.all else args.names
    failed = 0
    for name in names:
        record = get_weights(name)
        if args.all and not record.published:
            print(f"{name}: skipped (not published)")
            continue
        try:
            path = resolve_file(record, force_download=args.force)
        except ManetZooError as exc:
            failed += 1
            print(f"{name}: error: {exc}", file=sys.stderr)
        else:
            print(f"{name}: {path} (sha256 verified)")
    return 1 if failed else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from manet_zoo.checkpoint import sha256_file
    from manet_zoo.hub import cached_file, verify_file
    from manet_zoo.weights import read_manifest

    records = read_manifest()
    target = args.target
    if target is not None and target not in records:
        path = Path(target)
        if not path.is_file():
            raise FileNotFoundError(f"{target} is neither a model name nor a file")
        matches = [w for w in records.values() if w.published and w.file.filename == path.name]
        if not matches:
            print(f"{path}: sha256 {sha256_file(path)} (no manifest record names this file)")
            return 0
        verify_file(path, matches[0])
        print(f"{path}: OK, matches '{matches[0].name}' (sha256 {matches[0].sha256})")
        return 0
    names = [target] if target else sorted(n for n, w in records.items() if w.published)
    if not names:
        print("no published models in the manifest: nothing to verify")
    failed = 0
    for name in names:
        record = records[name]
        hit = cached_file(record) if record.published else None
        if hit is None:
            print(f"{name}: not cached" if record.published else f"{name}: not published")
            failed += target is not None
            continue
        try:
            verify_file(hit, record)
            print(f"{name}: OK {hit}")
        except ManetZooError as exc:
            failed += 1
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from manet_zoo.export import export
    from manet_zoo.factories import load

    model = load(args.model, progress=not args.quiet)
    size = (args.input_size, args.input_size) if args.input_size else None
    out = export(model, args.out, args.format, input_size=size, opset=args.opset)
    h, w = size or model.preprocessing.input_size
    print(
        f"wrote {out} ({args.format}, input N x 3 x {h} x {w} with a dynamic batch axis; "
        "outputs local_logits, global_logits, logits)"
    )
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from manet_zoo import config, onnx_cache

    folder = onnx_cache.graphs_folder()
    if args.clear:
        files, freed = onnx_cache.clear()
        print(f"removed {files} ONNX graph(s), {freed / 1e6:.0f} MB, from {folder}")
        return 0
    graphs = onnx_cache.cached_graphs()
    size = sum(p.stat().st_size for p in graphs)
    state = "on" if config.onnx_cache_enabled() else "off (MANET_ZOO_ONNX_CACHE=0)"
    print(f"ONNX graphs: {folder} ({state})")
    print(
        f"  {len(graphs)} graph(s), {size / 1e6:.0f} MB; the {onnx_cache.MAX_GRAPHS} most "
        "recently used are kept; `manet-zoo cache --clear` removes them"
    )
    print(
        f"weights: huggingface_hub's cache, {config.hf_cache_dir()} (`hf cache ls`, `hf cache rm`)"
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
        backend=args.backend,
        compile=args.compile,
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

    done = publish_run(
        args.run_dir, args.repo_id, dry_run=args.dry_run, private=args.private,
        progress=args.progress,
    )  # fmt: skip
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

    p = sub.add_parser("list", help="the zoo's models, their status and local files")
    p.add_argument("--pretrained", action="store_true", help="only those with published weights")
    p.set_defaults(handler=_cmd_list)

    p = sub.add_parser("info", help="one model's record: labels, preprocessing, file, status")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print the manifest record as JSON")
    p.set_defaults(handler=_cmd_info)

    p = sub.add_parser("download", help="fetch published weights into the cache, verified")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every published model")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.set_defaults(handler=_cmd_download)

    p = sub.add_parser("verify", help="check the sha256 of cached weights (or of a file)")
    p.add_argument("target", nargs="?", metavar="PATH|NAME", help="default: every cached model")
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser(
        "export",
        help="export a model to ONNX, TorchScript or a torch.export program",
        description="Fold BatchNorm and export; the graph takes 'image' (N x 3 x H x W, RGB "
        "in [0, 1]) and returns local_logits, global_logits and logits.",
    )
    p.add_argument("model", metavar="NAME|FILE", help="a zoo name or a .safetensors file")
    p.add_argument("--format", choices=["onnx", "torchscript", "exported-program"], default="onnx")
    p.add_argument("--out", required=True, help="output file (.onnx, .pt, .pt2)")
    p.add_argument("--input-size", type=int, help="H = W of the graph (default: the model's)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--quiet", action="store_true", help="no download progress bar")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("cache", help="where manet-zoo caches exported ONNX graphs; clear them")
    p.add_argument("--clear", action="store_true", help="delete the cached ONNX graphs")
    p.set_defaults(handler=_cmd_cache)

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
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument(
        "--backend",
        choices=["auto", "torch", "onnxruntime"],
        default="auto",
        help="inference backend (default: the fastest measured for the device and precision)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model: faster on long runs, about a minute to compile first",
    )
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
