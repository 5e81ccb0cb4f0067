"""The README's framing sheet (docs/framing.png): the same faces cropped with
`faces.framing: face` (top row) and `portrait` (bottom row).

Each picture is a 512px tile of the real test art (../shared/resources/testdata/
tadne-grid-6x6.jpg) pasted onto a larger canvas of its own edge colour, so that the
portrait framing has room above, below and beside the face, as it has in a whole
illustration. The crops come from the faces stage itself (make_faces), so the sheet
shows what the workflow does.

    .venv/bin/python docs/framing_sheet.py            # rewrites docs/framing.png
    .venv/bin/python docs/framing_sheet.py OUT.png    # writes elsewhere
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ganflow import faces
from ganflow.contact import contact_sheet
from ganflow.ids import ID_COLUMNS
from ganflow.tables import read_tsv, write_tsv

REPO = Path(__file__).resolve().parents[1]
RESOURCES = Path(os.environ.get("GANFLOW_SHARED", REPO.parent / "shared")) / "resources"
TILES = (2, 9, 12, 14, 20, 26, 31, 35)  # tiles of the 6x6 grid with one face each, found on any canvas
CANVAS = 1024
THUMB = 112


def framing_sheet(out_png: Path, grid: Path = RESOURCES / "testdata/tadne-grid-6x6.jpg",
                  cascade: Path = RESOURCES / "lbpcascade_animeface.xml") -> None:
    """Write the sheet, a 256-colour PNG: the face framing's crops above the portrait ones."""
    art = Image.open(grid).convert("RGB")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ids = []
        for k in TILES:
            r, c = divmod(k, 6)
            tile = art.crop((c * 512, r * 512, c * 512 + 512, r * 512 + 512))
            pixels = np.asarray(tile)
            edge = np.concatenate([pixels[[0, -1]].reshape(-1, 3), pixels[:, [0, -1]].reshape(-1, 3)])
            canvas = Image.new("RGB", (CANVAS, CANVAS), tuple(int(v) for v in np.median(edge, axis=0)))
            canvas.paste(tile, ((CANVAS - 512) // 2, (CANVAS - 512) // 2))
            canvas.save(work / f"tile{k}.png")
            ids.append({"id": f"tile{k}", "path": str(work / f"tile{k}.png")})
        write_tsv(work / "ids.tsv", ids, ID_COLUMNS)
        rows = []
        for framing in faces.FRAMINGS:
            faces.make_faces(work / "ids.tsv", work / framing, work / f"{framing}.tsv",
                             faces.FaceParams(framing=framing, max_faces=1), cascade_path=cascade)
            rows += [dict(r, framing=framing) for r in read_tsv(work / f"{framing}.tsv") if r["status"] == "face"]
        contact_sheet([(r["path"], f"{r['framing']} {r['id']}") for r in rows], work / "sheet.png", thumb=THUMB,
                      cols=len(rows) // 2, title="faces.framing: face (top) and portrait (bottom)")
        # 256 colours keep the sheet small enough for a repository and a README
        Image.open(work / "sheet.png").quantize(256, method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.FLOYDSTEINBERG).save(out_png, optimize=True)


if __name__ == "__main__":
    framing_sheet(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs/framing.png")
