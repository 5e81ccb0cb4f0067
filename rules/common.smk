# Shared names, input functions and target lists for every rule file, so include order
# does not matter. Rule files hold only rules, each after the made() of its inputs.
#
# How reruns follow content (README "Reruns"): every stage's outputs include a small
# manifest that carries the content hashes of what the stage made, and the next stage
# declares that manifest as input through made(): Snakemake compares its digest, never its
# time, so a touched file reruns nothing, and a stage that made the same bytes again stops
# the cascade there (every rule whose outputs others read is a checkpoint, see made()).
# Fan-out points (ids, dedupe) give each shard job its own slice, so only shards whose
# slice changed rerun. Code reruns by content too: each rule's `code` param digests its
# adapter and every library module that adapter imports (ganflow/digest.py).
import glob as _glob
import re as _re
from pathlib import Path as _Path

from ganflow import ids as _ids
from ganflow.names import (
    CONTACT_STAGES,
    EDIT_METHODS,
    FIGURE_NAMES,
    IMAGE_EXTS,
    VIDEOS,
    WALK_VIDEOS,
)
from ganflow.digest import canonical, files_digest, script_digest

R = f"results/{config['run']}"
LOGS = f"logs/{config['run']}"
SHARDS = [f"{i:04d}" for i in range(config["shards"])]
ROUNDS = range(1, config["rounds"] + 1)
SCRIPTS = _Path(workflow.basedir) / "workflow_scripts"
LIBRARY = _Path(workflow.basedir) / "ganflow"
DEMO_ROOT = f"{R}/mirror"
# The rules' environments under --software-deployment-method conda (pins = pyproject's): the
# GPU one, with CUDA TensorFlow, for the rules that profiles/slurm gives a GPU (gres).
CONDA_ENV = "../envs/ganflow.yaml"
CONDA_GPU_ENV = "../envs/ganflow-gpu.yaml"
IS_DEMO = config["source"]["root"] == DEMO_ROOT


class made:
    """The inputs of a rule that other rules make (anything under results/<run>/; any
    other path is the user's and stays a plain input), declared so that reruns stop at the
    first job whose outputs did not change: `input: unpack(X)` and `params: made=X.digest`.

    Snakemake plans every job after one that will run before knowing whether its outputs
    change, and keeps that plan even when they come out byte-identical. So every rule that
    makes such an input is a checkpoint (once it ran, Snakemake plans its readers again),
    and the readers declare these inputs ancient (never planned because their maker runs,
    never compared by time) with their content's digest as a param, read when the job is
    planned and again after the maker ran: the reader reruns exactly when it changed.
    """

    def __init__(self, **inputs):
        self.inputs = inputs  # name -> path pattern, list of paths, or input function

    @staticmethod
    def _ours(path):
        """Whether a rule makes this path (the rest is the user's)."""
        return path.startswith(f"{R}/")

    def _paths(self, wildcards):
        """name -> the paths (str or list, as given) for one job."""
        fields = dict(wildcards.items())
        fill = lambda p: p.format_map(fields) if self._ours(p) else p
        out = {}
        for name, value in self.inputs.items():
            value = value(wildcards) if callable(value) else value
            out[name] = (
                fill(value) if isinstance(value, str) else [fill(v) for v in value]
            )
        return out

    def __call__(self, wildcards):
        mark = lambda p: ancient(p) if self._ours(p) else p
        return {
            name: mark(p) if isinstance(p, str) else [mark(q) for q in p]
            for name, p in self._paths(wildcards).items()
        }

    def digest(self, wildcards):
        paths = self._paths(wildcards).values()
        flat = [q for p in paths for q in ([p] if isinstance(p, str) else p)]
        return files_digest([q for q in flat if self._ours(q)])


# A user's own cascade file is only ever an input: Snakemake deletes a rule's outputs before
# running it, so no rule may claim a file the user owns. The cascade rule owns resources/.
DOWNLOADED_CASCADE = "resources/lbpcascade_animeface.xml"
CASCADE = config["faces"]["cascade"] or DOWNLOADED_CASCADE

FINAL = f"{R}/round-{config['rounds']}/train"
# `generator:` replaces training: a ganflow export directory as it is, anything else (a
# released .pkl) imported into results/<run>/imported/ first. `train.init_from` may
# name a released file too: it is imported there, and round 1 starts from the import.
GENERATOR = config["generator"]
TRAIN_INIT = config["train"].get("init_from")
# Training over several tasks (one per GPU, nodes x tasks_per_node): the train rule then asks
# SLURM for that many tasks and starts them itself with srun (the plugin's `mpi` jobs).
# tasks_per_gpu 0 keeps the plugin from reading `tasks` as tasks per GPU.
TRAIN_TASKS = config["train"].get("nodes", 1) * config["train"].get("tasks_per_node", 1)
TRAIN_RESOURCES = dict(
    nodes=config["train"].get("nodes", 1), tasks=TRAIN_TASKS, tasks_per_gpu=0
)
if TRAIN_TASKS > 1:
    TRAIN_RESOURCES["mpi"] = "srun"
IMPORTED = f"{R}/imported"


def _released(path):
    """A released model's file (to import), rather than a ganflow run or export directory."""
    return bool(path) and not _Path(path).is_dir()


IMPORT_SOURCE = (
    GENERATOR if GENERATOR else (TRAIN_INIT if _released(TRAIN_INIT) else None)
)
IMPORTING = _released(IMPORT_SOURCE)
if GENERATOR:
    FINAL = IMPORTED if IMPORTING else GENERATOR
# A finished run's exported networks, as later stages declare them: export.json carries the
# sha256 of every exported file, so these stages rerun by content (never by mtime).
FINAL_EXPORT = f"{FINAL}/export.json"

# Projection and edits (rules/project.smk, rules/edit.smk).
DOWNLOADED_VGG16 = "resources/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG16 = config["project"]["vgg16"] or DOWNLOADED_VGG16
# auto: VGG16 when its weights are at hand (a local copy, or one downloaded before), else
# the run's own discriminator, which needs no download.
PROJECT_DISTANCE = (
    config["project"]["distance"]
    if config["project"]["distance"] != "auto"
    else ("vgg16" if _Path(VGG16).is_file() else "discriminator")
)
# The keys of `project` that change a projection's result (the others choose the images,
# the start, the distance and the video, and travel as their own params or inputs).
PROJECT_SETTINGS = [
    "mode",
    "steps",
    "lr",
    "lr_rampup",
    "lr_rampdown",
    "noise_factor",
    "noise_ramp",
    "noise_weight",
    "w_samples",
    "seed",
]
EDIT_TAGS = config["edit"]["tags"] + [
    f"{t}-cond" for t in config["edit"]["conditional"]
]


def project_files():
    """name -> file of every image directly in project.folder (the name is the file name
    without its extension); two files of one name stop the run here."""
    folder = config["project"]["folder"]
    if not folder:
        return {}
    if not _Path(folder).is_dir():
        raise WorkflowError(
            f"config key project.folder: {folder} is not a directory; point it at your images"
        )
    files = {}
    for path in sorted(_Path(folder).iterdir()):
        ext = path.suffix.lower().lstrip(".")
        if path.name.startswith(".") or not path.is_file() or ext not in IMAGE_EXTS:
            continue
        if path.stem in files:
            raise WorkflowError(
                f"config key project.folder: {_Path(files[path.stem]).name} and {path.name} "
                f"would both be projection {path.stem}; rename one"
            )
        files[path.stem] = str(path)
    return files


PROJECT_FILES = project_files()


def project_target(wildcards):
    """A projection's image: its file in project.folder, else final image dataset-<k>."""
    return PROJECT_FILES.get(wildcards.name, f"{R}/project/{wildcards.name}/target.png")


def edit_directions(wildcards):
    """The directions file a direction's name comes from (sefa-0, ganspace-1, tag-smile)."""
    kind = wildcards.direction.split("-")[0]
    return f"{R}/edits/{'tags' if kind == 'tag' else kind}.npz"


def edit_projection(wildcards):
    """A projection's w.npz, unless the edit's source is a seed (seed<N>)."""
    if _re.fullmatch(r"seed\d+", wildcards.source):
        return []
    return f"{R}/project/{wildcards.source}/w.npz"


def project_targets():
    """Every configured projection: each image of project.folder and, unless a `generator:`
    stands in for training (no final images then), dataset-<k>."""
    count = 0 if GENERATOR else config["project"]["dataset_images"]
    return expand(
        f"{R}/project/{{name}}/{{file}}",
        name=[f"dataset-{k}" for k in range(count)] + sorted(PROJECT_FILES),
        file=["w.npz", "sheet.png", "optimisation.mp4"],
    )


def edit_targets():
    """Each method's figure and video; with tags (not for a `generator:` alone, which has
    no tagged images), the tagger's and the directions' tables and a figure per configured
    tag; and the configured single edits."""
    methods = [m for m in config["edit"]["methods"] if not (GENERATOR and m == "tags")]
    out = expand(f"{R}/edits/{{method}}.{{ext}}", method=methods, ext=["png", "mp4"])
    if "tags" in methods:
        out += [f"{R}/edits/tagger.tsv", f"{R}/edits/tags.tsv"]
        out += expand(f"{R}/edits/tags/{{tag}}.png", tag=EDIT_TAGS)
    return out + [f"{R}/edits/apply/{edit}.png" for edit in config["edit"]["apply"]]


REPORT_PAGES = (
    [f"{R}/overview.html", f"{R}/report/funnel.html"]
    + expand(f"{R}/report/round-{{r}}/{{plot}}.png", r=ROUNDS, plot=["losses", "swd"])
    + expand(f"{R}/report/round-{{r}}/scores.png", r=ROUNDS[:-1])
    + expand(f"{R}/report/videos/{{video}}.html", video=VIDEOS)
)


def adapter(name):
    """The adapter of a rule (workflow_scripts/<name>.py)."""
    return str(SCRIPTS / f"{name}.py")


def code_digest(name):
    """A param for the code a job runs (its adapter and every library module it imports)."""
    return script_digest(SCRIPTS / f"{name}.py", LIBRARY)


def section(name):
    """A config section as a param: sorted, so reordering keys reruns nothing."""
    return canonical(config[name])


def user_source_root():
    """source.root of the user's own data, which must exist before anything runs."""
    root = config["source"]["root"]
    if not _Path(root).is_dir():
        raise WorkflowError(
            f"config key source.root: {root} is not a directory; point it at your data"
        )
    return root


# Tag directions need tagged images: a folder source without sidecar .txt files has none,
# which is said here rather than by the tagger job after training.
_TAG_APPLIED = [a for a in config["edit"]["apply"] if a.startswith("tag-")]
if (
    config["source"]["kind"] == "folder"
    and not GENERATOR
    and ("tags" in config["edit"]["methods"] or _TAG_APPLIED)
    and not _ids.has_sidecar_tags(user_source_root())
):
    if EDIT_METHODS_GIVEN or _TAG_APPLIED:
        raise WorkflowError(
            f"config key edit.methods: tags needs tagged images, but source.root "
            f"{config['source']['root']} holds no .txt tag file beside any image; set "
            f"edit.methods: [sefa, ganspace] (and no tag- entries in edit.apply), or add "
            f"a .txt of tags beside each image"
        )
    config["edit"]["methods"] = [m for m in config["edit"]["methods"] if m != "tags"]


def metadata_files():
    """The configured metadata files (globs allowed) under source.root; none for a folder.
    A root or pattern that finds nothing stops the run here, naming the key to change.
    """
    if config["source"]["kind"] != "danbooru":
        return []
    root = config["source"]["root"]
    if IS_DEMO:  # the demo rule makes exactly the configured names
        return [f"{root}/{name}" for name in config["source"]["metadata"]]
    root = user_source_root()
    files = []
    for pattern in config["source"]["metadata"]:
        full = f"{root}/{pattern}"
        found = sorted(_glob.glob(full)) if _glob.has_magic(full) else [full]
        if not any(_Path(f).is_file() for f in found):
            raise WorkflowError(
                f"config key source.metadata: {pattern!r} matches no file under {root}; "
                "fix the pattern or source.root"
            )
        files.extend(found)
    if not files:
        raise WorkflowError(
            "config key source.metadata is empty: list the metadata files of a danbooru source"
        )
    return files


def source_listing():
    """A digest of the source tree's folders (their modification times), so that adding or
    removing files reruns ids without listing every file at parse time; the generated
    demo mirror is tracked through its rule instead (it does not exist yet).
    """
    if IS_DEMO:
        return ""
    return _ids.source_tree(user_source_root(), config["source"]["kind"])


# Per shard: size, times and sha256 of its selected files (ganflow.ids.shard_content).
SOURCE_LISTINGS = f"{R}/ids/sources"
_SHARD_CONTENT = {}


def shard_content(wildcards):
    """A param for the content of the shard's source images (no image is an input, which
    costs Snakemake per image on every run): editing one reruns exactly this shard,
    touching it reruns nothing, and only files whose size or times changed are rehashed.
    Snakemake asks twice per run (it rebuilds the faces jobs once the ids checkpoint is
    known); the answer is kept per version of the shard's id list, which a rerun of ids
    replaces, and ids reruns before any faces job is asked.
    """
    ids = _Path(f"{R}/ids/{wildcards.shard}.tsv")
    try:
        st = ids.stat()
    except OSError:  # not made yet: the job is re-checked once ids ran
        return ""
    key = (wildcards.shard, st.st_ino, st.st_mtime_ns)
    if key not in _SHARD_CONTENT:
        _SHARD_CONTENT[key] = _ids.shard_content(
            ids, _Path(f"{SOURCE_LISTINGS}/{wildcards.shard}.tsv")
        )
    return _SHARD_CONTENT[key]


def keep_list(wildcards):
    """Round 1 packs every final image; later rounds only what ranking kept."""
    return [f"{R}/round-{wildcards.r}/keep.tsv"] if int(wildcards.r) > 1 else []


def previous_rank(wildcards):
    """Round r's keep list comes from round r-1's ranking."""
    return f"{R}/round-{int(wildcards.r) - 1}/rank.tsv"


def next_keep(wildcards):
    """Round r's score histogram marks what round r+1 kept."""
    return f"{R}/round-{int(wildcards.r) + 1}/keep.tsv"


LATER = config["later_rounds"]


def init_from(wildcards):
    """Round 1 may start from another run (train.init_from); later rounds from the last
    (later_rounds.start: previous) or from random weights (scratch)."""
    r = int(wildcards.r)
    if r > 1:
        return f"{R}/round-{r - 1}/train" if LATER["start"] == "previous" else ""
    return IMPORTED if IMPORTING else (TRAIN_INIT or "")


def init_inputs(wildcards):
    """What init_from reads, so that a retrained earlier round retrains this one."""
    r = int(wildcards.r)
    if r > 1:
        return (
            [f"{R}/round-{r - 1}/train/export.json"]
            if LATER["start"] == "previous"
            else []
        )
    if not TRAIN_INIT:
        return []
    if IMPORTING:
        return [f"{IMPORTED}/export.json"]
    manifest = (
        _Path(TRAIN_INIT) / "export.json"
    )  # a run's export: by content, not mtime
    return [str(manifest) if manifest.is_file() else TRAIN_INIT]


def train_params(wildcards):
    """Round r's training settings less init_from, which travels as its own param: later
    rounds train later_rounds.total_kimg when it is set."""
    settings = {k: v for k, v in config["train"].items() if k != "init_from"}
    if int(wildcards.r) > 1 and LATER["total_kimg"] is not None:
        settings["total_kimg"] = LATER["total_kimg"]
    return canonical(settings)


def train_metrics():
    """The metrics section when training measures its snapshots (train.metrics_ticks)."""
    return section("metrics") if config["train"].get("metrics_ticks") else {}


def train_metric_files():
    """The feature networks' files training reads when it measures its snapshots."""
    metrics = train_metrics()
    return [metrics[k] for k in ("inception", "vgg16") if metrics.get(k)]


def data_targets():
    """The data stages' results: final images, the funnel and contact sheets."""
    return (
        expand(f"{R}/images/{{shard}}.tsv", shard=SHARDS)
        + [f"{R}/report/funnel.tsv"]
        + expand(f"{R}/report/contact-{{stage}}.png", stage=CONTACT_STAGES)
    )


def generator_outputs():
    """What a generator alone makes: samples, figures, the latent-walk videos,
    projections and edits."""
    return (
        [f"{R}/samples/grid.png"]
        + expand(f"{R}/figures/{{figure}}.png", figure=FIGURE_NAMES)
        + expand(f"{R}/videos/{{video}}.mp4", video=WALK_VIDEOS)
        + project_targets()
        + edit_targets()
    )


def pngs(paths):
    """The images among targets (for the overview page)."""
    return [path for path in paths if path.endswith(".png")]


def metrics_targets():
    """Each round's metrics.json, when metrics names a feature network's file."""
    if config["metrics"]["inception"] or config["metrics"]["vgg16"]:
        return expand(f"{R}/round-{{r}}/metrics.json", r=ROUNDS)
    return []


def get_final_output():
    """Everything `snakemake` builds by default: every round trains, each round but the
    last is ranked for the next one, then samples, figures, videos and report pages; with
    `generator:` set, only what that generator makes."""
    if GENERATOR:
        return generator_outputs()
    return (
        data_targets()
        + expand(f"{R}/round-{{r}}/train/export.json", r=ROUNDS)
        + expand(f"{R}/round-{{r}}/keep.tsv", r=ROUNDS[1:])
        + metrics_targets()
        + generator_outputs()
        + [f"{R}/videos/training-progress.mp4"]
        + REPORT_PAGES
    )
