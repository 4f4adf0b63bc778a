"""Commands outside pytest: ``python -m pytest_codeeval merge --report-dir=OUT DIR [DIR ...]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_codeeval", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    merge = commands.add_parser(
        "merge", help="merge the report dirs of shards (--shard I/N) into one comparison with every report",
        description="Merge the report dirs of shards (pytest ... --shard=I/N --report-dir=DIR) into one "
                    "comparison (JSON, Markdown, HTML, plots, performance files, sample logs). Shards that "
                    "disagree on data, settings or versions are refused, naming the difference.")
    merge.add_argument("--report-dir", required=True, type=Path, metavar="OUT", help="where the merged reports go")
    merge.add_argument("shards", nargs="+", type=Path, metavar="DIR",
                       help="a shard's report dir (or its comparison JSON)")
    args = parser.parse_args(argv)

    from .merge import MergeError, merge_reports

    try:
        paths, notes = merge_reports(args.report_dir, args.shards)
    except MergeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"merged {len(args.shards)} report dir(s) into {args.report_dir}")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
