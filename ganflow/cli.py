"""One command line: `ganflow <verb> ...`, each verb a module's own `main` (whose
`python -m ganflow.<module>` form stays), so that the workflow's pieces can be run by hand
on any run or folder: import a released model, rank images, edit, explore, render.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

# verb -> (the module whose main() it runs, one line of help)
VERBS: dict[str, tuple[str, str]] = {
    "import": ("ganflow.import_weights", "import a released StyleGAN2 .pkl as a ganflow export (runs nothing from "
                                         "the file)"),
    "rank": ("ganflow.rank", "score images (a folder or a packed dataset) with a run's discriminator"),
    "project": ("ganflow.project", "project an image file into a run's W (w.npz, reconstruction, sheet, video)"),
    "edit": ("ganflow.edit", "move seeds or a projection along a named direction in W"),
    "explore": ("ganflow.explore", "a generator live in the browser (127.0.0.1)"),
    "render": ("ganflow.explore", "turn a downloaded PNG's (or a JSON's) settings back into the same pixels: "
                                  "ganflow render RUN SETTINGS OUT_PNG"),
}


def usage() -> str:
    width = max(map(len, VERBS))
    verbs = "\n".join(f"  {verb:<{width}}  {text}" for verb, (_, text) in VERBS.items())
    return (f"usage: ganflow <verb> [arguments]   (ganflow <verb> --help for one verb's)\n\nverbs:\n{verbs}\n\n"
            "The workflow itself runs with snakemake (README.md: make demo, snakemake --cores N).\n")


def main(argv: Sequence[str] | None = None) -> int:
    """The `ganflow` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        sys.stderr.write(f"ganflow: unknown verb {verb!r}\n\n{usage()}")
        return 2
    if verb == "render":  # explore's --render, as a verb of its own
        if len(rest) < 3 or len(rest) % 2 == 0 or rest[0].startswith("-"):
            sys.stderr.write("usage: ganflow render RUN SETTINGS OUT_PNG [SETTINGS OUT_PNG ...]\n")
            return 2
        pairs = rest[1:]
        rest = [rest[0], *(a for i in range(0, len(pairs), 2) for a in ("--render", pairs[i], pairs[i + 1]))]
    return importlib.import_module(VERBS[verb][0]).main(rest, prog=f"ganflow {verb}") or 0


if __name__ == "__main__":
    sys.exit(main())
