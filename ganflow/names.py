"""Names and paths that the rules and the library share, in one TensorFlow-free module.

The Snakefile imports this at parse time, so it holds only constants and string checks:
what an id may look like before it names a file, which image files a folder source
lists, and the names of the contact sheets, figures, videos and edit methods that rules
expand into targets and the library writes.
"""

from __future__ import annotations

import re

# Files a folder source lists as images (by lower-case extension).
IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"})
# Ids name files (crops, final images), so they hold only these characters, within a limit.
ID_MAX_LENGTH = 80
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,%d}" % (ID_MAX_LENGTH - 1))
# Why a selected file cannot be read (ids.file_problem): the funnel counts these apart.
FILE_PROBLEMS = ("missing_file", "broken_link", "not_a_file", "unreadable")

# report/contact-<stage>.png: one contact sheet per stage of the data funnel.
CONTACT_STAGES = ("no-face", "faces", "over-max-faces", "rejected", "duplicates", "images")
# figures/<name>.png, in the order figures.make_figures draws them.
FIGURE_NAMES = ("uncurated", "style_mixing", "noise_detail", "noise_components", "truncation")
# videos/<name>.mp4 made from a generator, and every video the report shows.
WALK_VIDEOS = ("interpolation-grid", "style-mixing-coarse", "style-mixing-fine")
VIDEOS = ("training-progress",) + WALK_VIDEOS
# edits/<method>.npz: the ways directions in W are found.
EDIT_METHODS = ("sefa", "ganspace", "tags")


def safe_id(text: str) -> bool:
    """Whether an id (or crop id) may become a file name as it is: only [A-Za-z0-9._-], no
    leading dot or dash, no "..", at most ID_MAX_LENGTH characters (ids name crops and images)."""
    return bool(_SAFE_ID.fullmatch(text)) and ".." not in text


def sample_name(seed: int) -> str:
    """samples/seedNNNNNN.png, and the name the explorer gives a seed's download."""
    return f"seed{seed:06d}.png"
