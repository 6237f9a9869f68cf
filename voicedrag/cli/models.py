"""`voicedrag models`: the checkpoints voicedrag knows by name, and downloading them."""

from __future__ import annotations

import argparse

from voicedrag.cli.output import json_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the checkpoints voicedrag knows by name, or download one",
        description="The checkpoints of DragGAN's download list and StyleGAN-Human; "
        "`--model NAME` takes these names everywhere.",
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(run=run_list)
    actions = p.add_subparsers(dest="models_action", metavar="download")
    d = actions.add_parser("download", help="download a checkpoint into the cache (resumes a cut download)")
    d.add_argument("name", help="a name from `voicedrag models`")
    d.set_defaults(run=run_download)


def run_list(args: argparse.Namespace) -> int:
    from voicedrag.registry import cache_dir, default_registry

    rows = default_registry().listing()
    if args.json:
        print(json_line({"cache": str(cache_dir()), "models": rows}))
        return 0
    print(f"{'name':<14}{'res':>9}  {'domain':<20}{'family':<11}{'rules':<8}{'cached':<8}source")
    for r in rows:
        print(
            f"{r['name']:<14}{r['resolution']:>9}  {r['domain']:<20}{r['family']:<11}{r['rules'] or '-':<8}"
            f"{'yes' if r['cached'] else 'no':<8}{r['url'] or r['page']}"
        )
    print(f"\ncache: {cache_dir()} (set VOICEDRAG_CACHE to move it)")
    for r in rows:
        print(f"  {r['name']}: {r['licence']}" + (f"; {r['note']}" if r["note"] else ""))
    return 0


def run_download(args: argparse.Namespace) -> int:
    from voicedrag.registry import default_registry, progress_bar

    path = default_registry().download(args.name, progress_bar(args.name))
    print(f"{args.name}: {path}")
    return 0
