"""``imgret …``: index a folder, add notes, search, inspect, export, check models, evaluate.

The CLI only parses arguments and prints; everything it does is a library call, so the
notebooks and scripts get the same behaviour.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgret.config import SETTING_BOUNDS, Bound
from imgret.errors import BadInputError, ImgretError, escape_controls

if TYPE_CHECKING:
    from imgret.config import Config

DEFAULT_INDEX = Path("tmp/index")
STAGE_HELP = "a hub id, a local folder/file, or 'none' to switch the stage off"
TAGGER_HELP = (
    "an image classifier whose labels join the description: efficientnet-lite0 (…lite2), a "
    "Hugging Face or timm model, an .onnx file with its labels.txt, or 'none'"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a person's mistake ends in one line, a bug keeps its traceback."""
    # Set here, not under __main__, so the `imgret` console script gets it too: tokenizers
    # otherwise warns (and may deadlock) once the decode threads start.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return args.handler(args) or 0
    except ImgretError as exc:
        # The message may quote a path the person typed; escaped, it stays one line.
        print(f"imgret: {escape_controls(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "imgret: interrupted; what was committed is kept, run again to go on", file=sys.stderr
        )
        return 130
    except BrokenPipeError:
        # The reader (`imgret info | head`) left: stop quietly, as other command-line tools
        # do; stdout goes to /dev/null so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """A warning as one line, like the errors, without the source line Python adds."""
    print(f"imgret: warning: {escape_controls(str(message))}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgret", description="Find images by describing them in words."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser("index", help="describe, embed and store every image of a folder")
    index.add_argument("gallery", type=Path, help="folder of images (searched recursively)")
    _index_option(index)
    _model_options(index)
    index.add_argument(
        "--max-image-megapixels",
        type=_number(SETTING_BOUNDS["max_image_megapixels"]),
        metavar="MP",
        help="skip larger images as possible decompression bombs (default 100)",
    )
    index.add_argument(
        "--moved",
        action="store_true",
        help="the index's gallery moved to GALLERY: re-point the index, keeping notes and "
        "vectors (automatic when the old folder is gone and GALLERY holds its files)",
    )
    _wait_option(index)
    index.add_argument(
        "--rehash",
        action="store_true",
        help="hash every file (finds content changed under the same size and mtime) and "
        "check every stored vector; `imgret info` shows when this was last done",
    )
    index.add_argument(
        "--describe-place",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="name where each photo was taken in its description (GPS, extra 'places'; "
        "default off: place: filters work either way)",
    )
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    _ray_options(index)
    index.set_defaults(handler=_cmd_index)

    search = commands.add_parser(
        "search",
        help="rank the indexed images for a query (words, exact words, filters)",
        description="Rank the indexed images for a query.",
        epilog=_query_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument(
        "query",
        nargs="?",
        default="",
        help="what to look for, e.g. 'a bus in the street \"london\" -night ext:jpg'",
    )
    search.add_argument(
        "--image",
        type=Path,
        metavar="PHOTO",
        help="search by a photo, described by the index's own vision stages; the query's "
        "words and filters are added to it",
    )
    search.add_argument(
        "-k", type=_number(Bound(int, 1)), default=10, help="how many hits (default 10)"
    )
    _index_option(search)
    search.add_argument(
        "--min-score",
        type=_number(Bound(float, -1, 1)),
        default=None,
        help="drop hits scoring lower",
    )
    search.add_argument(
        "--sort",
        choices=("score", "date"),
        default="score",
        help="order of the hits: by score (default), or the top k by date taken, newest first",
    )
    search.add_argument("--json", action="store_true", help="print the hits as JSON")
    search.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="save a grid of the hits (.png added when there is no suffix; in a folder: "
        "search.png there)",
    )
    search.add_argument("--device", help="cpu, cuda, cuda:1 … (default: CUDA if present)")
    search.add_argument(
        "--approximate", action="store_true", help="sign-code search (FAISS), for 10^5+ images"
    )
    search.add_argument(
        "--int8", action="store_true", help="encode the query with int8 text models (CPU, faster)"
    )
    search.set_defaults(handler=_cmd_search)

    note = commands.add_parser("note", help="set your own notes for an image (or many from CSV)")
    note.add_argument("image", nargs="?", type=Path, help="the image (path in the gallery)")
    note.add_argument("text", nargs="?", help="the notes; an empty string removes them")
    note.add_argument("--csv", type=Path, help="import many notes: a CSV with columns path,text")
    _index_option(note)
    note.add_argument("--device", help="cpu, cuda, cuda:1 … (default: CUDA if present)")
    _wait_option(note)
    note.set_defaults(handler=_cmd_note)

    serve = commands.add_parser(
        "serve", help="a local web app: search, see why each photo matched, fix it with notes"
    )
    _index_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_number(Bound(int, 0, 65535)), default=8765, help="port (default 8765)"
    )
    serve.add_argument(
        "--token",
        help="secret every request must carry; needed off 127.0.0.1 (default: one is made "
        "and printed there)",
    )
    serve.add_argument("--open", action="store_true", help="open the page in a browser")
    serve.add_argument("--device", help="cpu, cuda, cuda:1 … (default: CUDA if present)")
    serve.add_argument(
        "--int8", action="store_true", help="encode queries with int8 text models (CPU, faster)"
    )
    serve.set_defaults(handler=_cmd_serve)

    check = commands.add_parser(
        "check", help="check the index (SQLite, vectors, search cache, files); --repair mends"
    )
    _index_option(check)
    check.add_argument(
        "--repair",
        action="store_true",
        help="re-embed damaged or pending rows and rebuild the search cache (no vision models)",
    )
    _wait_option(check)
    check.set_defaults(handler=_cmd_check)

    duplicates = commands.add_parser(
        "duplicates", help="groups of exact (same bytes) and near (described alike) duplicates"
    )
    _index_option(duplicates)
    duplicates.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="T",
        help="cosine from which two photos are near duplicates (default 0.98; 1 keeps only "
        "photos described identically)",
    )
    duplicates.add_argument("--json", action="store_true", help="print the groups as JSON")
    duplicates.set_defaults(handler=_cmd_duplicates)

    info = commands.add_parser("info", help="what is in an index")
    _index_option(info)
    info.add_argument("--json", action="store_true", help="print as JSON")
    info.set_defaults(handler=_cmd_info)

    export = commands.add_parser(
        "export", help="write feature_matrix.npy and paths.json (plain arrays)"
    )
    _index_option(export)
    export.add_argument("--out", type=Path, default=None, help="folder (default: the index's)")
    export.set_defaults(handler=_cmd_export)

    doctor = commands.add_parser("doctor", help="load each model and run it on one image")
    doctor.add_argument("image", nargs="?", type=Path, help="default: ultralytics' bus photo")
    _model_options(doctor)
    doctor.set_defaults(handler=_cmd_doctor)
    evaluate = commands.add_parser(
        "eval", help="text→image recall on a captioned dataset (Karpathy split or COCO JSON)"
    )
    evaluate.add_argument("annotations", type=Path, help="dataset_*.json or COCO captions JSON")
    evaluate.add_argument("--images", type=Path, help="image folder (default: beside the JSON)")
    evaluate.add_argument("--split", help="test by default for Karpathy files; all for COCO")
    evaluate.add_argument(
        "--rows",
        help="comma-separated rows, parts joined by '+': caption, counts, tags, text, human "
        "(default: every combination of the stages that are on, and the human oracle)",
    )
    evaluate.add_argument(
        "--instructions",
        choices=("both", "on", "off"),
        default="both",
        help="rows with topic instructions, without, or both (default both)",
    )
    evaluate.add_argument(
        "--gallery-size",
        type=_number(Bound(int, 2)),
        action="append",
        help="images per gallery, repeatable (default 1000 and 5000, as the literature)",
    )
    evaluate.add_argument(
        "--first-caption-only", action="store_true", help="one query per image, not all"
    )
    evaluate.add_argument(
        "--limit", type=_number(Bound(int, 1)), help="keep the first N images, for a quick look"
    )
    evaluate.add_argument("--work-dir", type=Path, help="where the dataset's index is cached")
    evaluate.add_argument("--json", type=Path, metavar="FILE", help="also write the results")
    evaluate.add_argument(
        "--compare", action="store_true", help="show the original's published figures beside"
    )
    _model_options(evaluate)
    _ray_options(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)
    return parser


def _number(bound: Bound) -> Callable[[str], int | float]:
    """An argparse ``type`` for a numeric option: a value outside ``bound`` (0 images per
    batch, a NaN score, an infinite wait) stops with the rule, before anything runs or is
    remembered by the index."""

    def parse(text: str) -> int | float:
        try:
            return bound.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _query_help() -> str:
    from imgret.retrieval.query import FILTERS

    lines = [
        "query grammar:",
        "  free words          ranked by meaning: a bus in the street",
        '  "exact words"       must also appear in the description, notes, text read in',
        "                      the image or file name (and are ranked with the free words)",
        '  -word, -"a phrase"  leave out images whose text contains it',
        "  name:value          a filter; -name:value keeps what it drops; quote values with",
        '                      spaces (place:"new york")',
    ]
    lines += [f"  {name + ':':<19} {what}" for name, what in FILTERS.items()]
    lines += [
        "a query of filters alone lists the matching images in path order (score 0)",
        "",
        "example: imgret search 'kids at the beach -\"birthday\" has:person>=2 after:2019'",
    ]
    return "\n".join(lines)


def _index_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index", type=Path, default=DEFAULT_INDEX, help=f"index folder (default {DEFAULT_INDEX})"
    )


def _wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=_number(Bound(float, 0, 10**9)),
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another imgret writing the same index (default: stop at once)",
    )


def _model_options(parser: argparse.ArgumentParser) -> None:
    from imgret.config import PROFILES

    group = parser.add_argument_group("models (defaults: the original framework's, or the index's)")
    group.add_argument("--profile", choices=sorted(PROFILES), help="a preset of stage models")
    from imgret.config import STAGES

    for stage in STAGES:
        group.add_argument(f"--{stage}", help=TAGGER_HELP if stage == "tagger" else STAGE_HELP)
    group.add_argument("--device", help="cpu, cuda, cuda:1 … (default: CUDA if present)")
    group.add_argument("--models-dir", type=Path, help="local model folders (default models/)")
    group.add_argument(
        "--batch-size", type=_number(SETTING_BOUNDS["batch_size"]), help="images per batch"
    )


def _ray_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray (pip install 'imgret[ray]'; docs/scaling.md)")
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the vision stages on Ray Data: a local Ray without ADDRESS, else join the "
        "cluster there ('auto', ray://HEAD:10001); give it after the gallery",
    )
    group.add_argument(
        "--ray-gpus", type=float, default=0.0, metavar="N", help="GPUs per stage actor (0.25 …)"
    )
    group.add_argument(
        "--ray-actors", type=int, default=1, metavar="N", help="actors per vision stage (default 1)"
    )


def _engine(args: argparse.Namespace) -> Any:
    """The engine the Ray options ask for; None (in-process) without --ray."""
    if args.ray is None:
        return None
    from imgret.index.ray_engine import RayEngine

    return RayEngine(address=args.ray or None, num_gpus=args.ray_gpus, actors=args.ray_actors)


def config_from_args(args: argparse.Namespace, stored: dict[str, Any] | None = None) -> Config:
    """Stored config of the index (if any) ← profile ← explicit options, later winning."""
    from imgret.config import PROFILES, STAGES, Config

    base = dict(stored or {})
    if getattr(args, "profile", None):
        base.update(PROFILES[args.profile])
    settings = ("device", "batch_size", "models_dir", "max_image_megapixels", "describe_place")
    for name in (*STAGES, *settings):
        value = getattr(args, name, None)
        if value is not None:
            base[name] = value
    return Config.from_dict(base)


def _stored_config(index: Path) -> dict[str, Any] | None:
    """The options an index was built with; None for a new index, or where the record is
    damaged (the build mends the index and records the options given now)."""
    from imgret.errors import IndexDamagedError, IndexNotFoundError
    from imgret.index.store import Store

    if not Store.exists(index):
        return None
    try:
        with Store.open(index, readonly=True) as store:
            return store.config_dict()
    except (IndexDamagedError, IndexNotFoundError):  # damaged, or a file with no tables yet
        return None


def _cmd_index(args: argparse.Namespace) -> int:
    from imgret.index.build import build_index

    config = config_from_args(args, _stored_config(args.index))
    report = build_index(
        args.gallery,
        args.index,
        config,
        progress=not args.quiet,
        wait=args.wait,
        moved=args.moved,
        rehash=args.rehash,
        engine=_engine(args),
    )
    print(report.summary())
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from imgret.images import printable
    from imgret.retrieval.searcher import Searcher

    searcher = Searcher(
        args.index, device=args.device, approximate=args.approximate, int8=args.int8
    )
    if not args.query.strip() and args.image is None:
        raise BadInputError('give a query ("a bus in the street") or --image PHOTO')
    hits = searcher.search(
        args.query, k=args.k, min_score=args.min_score, sort=args.sort, image=args.image
    )
    if args.json:
        print(json.dumps([hit.to_dict() for hit in hits], indent=2, ensure_ascii=False))
    else:
        if not hits:
            print("no hits" + (" above --min-score" if args.min_score is not None else ""))
        for hit in hits:
            facts = "  ".join(f for f in (hit.taken.replace("T", " "), hit.place) if f)
            print(
                f"{hit.rank:>3}  {hit.score:.3f}  {printable(hit.relpath)}"
                + (f"  ({printable(facts)})" if facts else "")
            )
            print(f"       {printable(hit.description)}")
    if args.plot and hits:
        from imgret.plot import plot_hits, plot_target

        target = plot_target(args.plot)
        title = args.query or (f"like {args.image.name}" if args.image else "")
        plot_hits(hits, target, query=title)
        print(f"saved a grid of the hits to {target}", file=sys.stderr)
    return 0


def _cmd_note(args: argparse.Namespace) -> int:
    from imgret.index.notes import read_notes_csv, set_notes

    if args.csv:
        notes = read_notes_csv(args.csv)
    elif args.image is not None and args.text is not None:
        notes = {str(args.image): args.text}
    else:
        raise BadInputError('give an image and its text (imgret note IMAGE "text") or --csv FILE')
    count = set_notes(args.index, notes, device=args.device, wait=args.wait)
    print(f"saved notes for {len(notes)} image(s); re-embedded {count}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from imgret.serve.run import serve

    serve(
        args.index,
        args.host,
        args.port,
        token=args.token,
        open_browser=args.open,
        device=args.device,
        int8=args.int8,
    )
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from imgret.index.check import check_index

    report = check_index(args.index, repair=args.repair, wait=args.wait, progress=True)
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_duplicates(args: argparse.Namespace) -> int:
    from imgret.images import printable
    from imgret.retrieval.duplicates import DEFAULT_THRESHOLD, find_duplicates

    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    groups = find_duplicates(args.index, threshold, progress=not args.json)
    if args.json:
        print(json.dumps([g.to_dict() for g in groups], indent=2, ensure_ascii=False))
        return 0
    if not groups:
        print(f"no duplicates (near: cosine {threshold:g} and above)")
    for group in groups:
        print(f"{group.kind}  {len(group.paths)} files  (similarity {group.similarity:.3f})")
        for path in group.paths:
            print(f"  {printable(path)}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from imgret.index.info import index_info
    from imgret.index.store import Store

    with Store.open(args.index, readonly=True) as store:
        info = index_info(store)
    print(json.dumps(info.to_dict(), indent=2, default=str) if args.json else info.summary())
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from imgret.index.export import export_arrays
    from imgret.index.store import Store

    with Store.open(args.index, readonly=True) as store:
        written = export_arrays(store, args.out or args.index)
    for path in written:
        print(path)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from imgret.evaluation.protocol import DEFAULT_GALLERY_SIZES, evaluate_dataset

    report = evaluate_dataset(
        args.annotations,
        config_from_args(args),
        images=args.images,
        split=args.split,
        rows=args.rows.split(",") if args.rows else None,
        instructions=args.instructions,
        gallery_sizes=args.gallery_size or DEFAULT_GALLERY_SIZES,
        first_caption_only=args.first_caption_only,
        limit=args.limit,
        work_dir=args.work_dir,
        engine=_engine(args),
    )
    print(report.to_markdown(args.compare))
    if args.json:
        args.json.write_text(report.to_json(args.compare), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from imgret.doctor import run_doctor

    image = args.image
    if image is None:
        from imgret.models.loading import quiet_ultralytics

        quiet_ultralytics()
        from ultralytics.utils import ASSETS

        image = Path(ASSETS) / "bus.jpg"
    report = run_doctor(image, config_from_args(args))
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
