"""Training settings (config/schema.yaml's `train` section) as a validated dataclass.

Its own module so that the trainer, the training loop and the config tests share one
definition without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import networks
from .runlog import SetupError

ARCH_KEYS = ("resolution", "z_dim", "w_dim", "mapping_layers", "mapping_lr_mul", "channel_base",
             "channel_max", "conv_clamp", "mbstd_group")
# The architecture keys that shape no weight: a transfer may change them.
WEIGHTLESS_KEYS = ("mbstd_group",)
PER_RESOLUTION_KEYS = ("batch_size", "g_lr", "d_lr")

# stylegan2-ada-pytorch's train.py --cfg presets (its cfg_specs), as the settings they
# set here: mb -> batch_size, mbstd -> mbstd_group, fmaps * 32768 -> channel_base,
# lrate -> g_lr and d_lr, gamma -> r1_gamma, ema -> ema_kimg, ramp -> ema_rampup (None: 0),
# map -> mapping_layers, kimg -> total_kimg. Their fp16 layers and conv_clamp 256 come with
# conv_dtype float16 (see TrainConfig), not with the preset.
PRESETS: dict[str, dict[str, Any]] = {
    "stylegan2": dict(batch_size=32, mbstd_group=4, channel_base=32768, lr=0.002, r1_gamma=10.0, ema_kimg=10.0,
                      ema_rampup=0.0, mapping_layers=8, total_kimg=25000.0),
    "paper256": dict(batch_size=64, mbstd_group=8, channel_base=16384, lr=0.0025, r1_gamma=1.0, ema_kimg=20.0,
                     ema_rampup=0.0, mapping_layers=8, total_kimg=25000.0),
    "paper512": dict(batch_size=64, mbstd_group=8, channel_base=32768, lr=0.0025, r1_gamma=0.5, ema_kimg=20.0,
                     ema_rampup=0.0, mapping_layers=8, total_kimg=25000.0),
    "paper1024": dict(batch_size=32, mbstd_group=4, channel_base=32768, lr=0.002, r1_gamma=2.0, ema_kimg=10.0,
                      ema_rampup=0.0, mapping_layers=8, total_kimg=25000.0),
}
BY_RESOLUTION = {256: "paper256", 512: "paper512", 1024: "paper1024"}
PRESET_NAMES = ("by-resolution", "auto", *PRESETS)
# The settings a preset fills; each stays None until then, so that a given value wins.
PRESET_KEYS = ("batch_size", "mbstd_group", "channel_base", "g_lr", "d_lr", "r1_gamma", "ema_kimg", "ema_rampup",
               "mapping_layers", "total_kimg")
CONV_DTYPES = ("auto", "float32", "bfloat16", "float16")
DATASET_CHANGES = ("continue", "restart", "stop")
# What conv_dtype float16 sets conv_clamp to when it is not given: the official value,
# which keeps float16 activations far from float16's largest number (65504).
FP16_CONV_CLAMP = 256.0
# CPU flags of bfloat16 multiply-adds in hardware (Intel AMX, AVX512-BF16 on Intel and AMD Zen4).
BF16_CPU_FLAGS = {"amx_bf16", "avx512_bf16"}


def auto_preset(resolution: int, devices: int) -> dict[str, Any]:
    """Upstream's 'auto': batch, stddev group, width, learning rate, R1 gamma, EMA and
    mapping depth from the resolution and the number of devices (its formulas)."""
    mb = max(min(devices * min(4096 // resolution, 32), 64), devices)
    return dict(batch_size=mb, mbstd_group=min(mb // devices, 4), channel_base=32768 if resolution >= 512 else 16384,
                lr=0.002 if resolution >= 1024 else 0.0025, r1_gamma=0.0002 * resolution ** 2 / mb,
                ema_kimg=mb * 10 / 32, ema_rampup=0.05, mapping_layers=2, total_kimg=25000.0)


def device_count(devices: list) -> int:
    """What 'auto' counts: the devices named in `devices`, else the GPUs (as
    make_strategy uses them all), at least 1."""
    if devices:
        return len(devices)
    import tensorflow as tf  # only here: listing physical devices does not start TF's runtime
    return max(1, len(tf.config.list_physical_devices("GPU")))


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The first processor's feature flags (Linux); empty where there is no /proc/cpuinfo."""
    try:
        lines = Path(cpuinfo).read_text().splitlines()
    except OSError:
        return set()
    return next((set(line.partition(":")[2].split()) for line in lines if line.startswith("flags")), set())


def auto_conv_dtype(devices: list) -> tuple[str, str]:
    """(what conv_dtype 'auto' computes in, why): bfloat16 where every training device
    multiplies it in hardware (GPUs of compute capability 8.0+, CPUs with AMX or
    AVX512-BF16), float16 on Volta/Turing GPUs (7.x: tensor cores multiply float16 but not
    bfloat16), else float32 (emulated bfloat16 was 2.7x slower than float32 on an AVX2 CPU)."""
    import tensorflow as tf  # only here, as in device_count
    gpus = tf.config.list_physical_devices("GPU")
    on_gpu = any("gpu" in d.lower() for d in devices) if devices else bool(gpus)
    if on_gpu and gpus:
        caps = [tf.config.experimental.get_device_details(g).get("compute_capability", (0, 0)) for g in gpus]
        shown = ", ".join(".".join(map(str, c)) for c in caps)
        if min(caps) >= (8, 0):
            return "bfloat16", f"GPUs of compute capability {shown} multiply bfloat16 in their tensor cores"
        if min(caps) >= (7, 0):
            return "float16", (f"GPUs of compute capability {shown} multiply float16, not bfloat16, in their "
                               f"tensor cores")
        return "float32", f"GPUs of compute capability {shown} have no tensor cores"
    if on_gpu:
        return "float32", "a GPU was named but none is seen"
    native = sorted(cpu_flags() & BF16_CPU_FLAGS)
    if native:
        return "bfloat16", f"this CPU multiplies bfloat16 in hardware ({', '.join(native)})"
    return "float32", "this CPU has no bfloat16 multiply-adds (no AMX, no AVX512-BF16): emulated is slower"


def resolve_preset(name: str, resolution: int, devices: int) -> tuple[str, dict[str, Any]]:
    """(concrete preset name, its values as TrainConfig settings)."""
    if name == "by-resolution":
        name = BY_RESOLUTION.get(resolution, "auto")
    if name == "auto":
        values = auto_preset(resolution, devices)
    elif name in PRESETS:
        values = dict(PRESETS[name])
    else:
        raise SetupError(f"training setting 'preset' must be one of {', '.join(PRESET_NAMES)}, got {name!r}")
    lr = values.pop("lr")
    return name, {**values, "g_lr": lr, "d_lr": lr}


@dataclass
class TrainConfig:
    """Training settings; the defaults are the official StyleGAN2 (stylegan2-ada-pytorch).

    `preset` fills the settings of PRESET_KEYS that are not given, with the values of
    upstream's --cfg: 'stylegan2' (its FFHQ-1024 config), 'paper256', 'paper512',
    'paper1024', or 'auto' (formulas of the resolution and device count); the default
    'by-resolution' takes paper256/512/1024 at those resolutions and 'auto' at any other.
    Once resolved, `preset` names the concrete preset and every setting holds its value
    (what snapshots, exports and the log record).
    `batch_size`, `g_lr` and `d_lr` take a number or a dict keyed by resolution (the
    classic presets' per-resolution schedules); the entry for `resolution` is used.
    `batch_size` is images per optimiser step over all devices, split into
    `accum_steps` micro-batches per device. `mirror` flips reals inside the step (give
    the dataset mirror=False). With `augment`, ADA starts at `augment_p` and adapts it
    towards `ada_target` (0 keeps p fixed); p may go from 0 to 1 in `ada_kimg`.
    `ema_kimg` is the EMA generator's half-life; `ema_rampup` (0: off) caps it at
    ema_rampup x the images seen so far. Regularisation is lazy, in passes of its own as
    upstream: R1 (`r1_gamma`) every `r1_interval` D steps, path length (`pl_weight`,
    `pl_decay`, on batch / `pl_batch_shrink` images) every `pl_interval` G steps, each
    optimiser's learning rate x c and Adam betas ^ c, c = interval / (interval + 1).
    `conv_clamp` (None: off) clips every convolution's output as the official code does
    for float16-trained models; set it to a released model's value (256) to fine-tune it.
    `devices` names tf.distribute devices; empty means all GPUs (or the CPU).
    `conv_dtype` "bfloat16" runs convolutions in bfloat16 (weights stay float32);
    "float16" runs those of the highest `num_fp16_res` resolutions of both networks in
    float16 with dynamic loss scaling, and sets conv_clamp to 256 unless given (the
    official mixed precision); "auto" resolves per device (auto_conv_dtype) and
    `conv_dtype_reason` says why. `require_gpu` (None: when a GPU was requested, by SLURM,
    CUDA_VISIBLE_DEVICES or `devices`) stops a job that sees no GPU. `nodes` and
    `tasks_per_node` (one per GPU) start training as that many tf.distribute workers
    under SLURM (srun); the batch stays the global batch. `on_dataset_change` says what a
    run does when its dataset changed since its newest snapshot (images added, removed or
    re-cleaned): "continue" its weights on the new data (logged), "restart" from scratch
    (the old snapshots kept aside), or "stop" with a sentence.
    `xla` compiles the gradient computation (slower on CPU: see benchmarks/); it pads
    augmented images by a fixed margin (see augment.py). Every `metrics_ticks` ticks (0:
    never) the log gets the field's metrics of the EMA generator (upstream's --metrics at
    its snapshots), from the files of the config's metrics: section (train.run).
    """

    preset: str = "by-resolution"
    resolution: int = 512
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int | None = None
    mapping_lr_mul: float = 0.01
    channel_base: int | None = None
    channel_max: int = 512
    conv_clamp: float | None = None
    mbstd_group: int | None = None
    batch_size: int | dict | None = None
    accum_steps: int = 1
    g_lr: float | dict | None = None
    d_lr: float | dict | None = None
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    adam_eps: float = 1e-8
    r1_gamma: float | None = None
    r1_interval: int = 16
    pl_weight: float = 2.0
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    pl_interval: int = 4
    style_mixing: float = 0.9
    ema_kimg: float | None = None
    ema_rampup: float | None = None
    d_repeats: int = 1
    mirror: bool = True
    augment: bool = True
    augment_p: float = 0.0
    ada_target: float = 0.6
    ada_kimg: float = 500.0
    total_kimg: float | None = None
    tick_kimg: float = 4.0
    snapshot_ticks: int = 10
    metrics_ticks: int = 0
    keep_snapshots: int = 3
    grid: list = field(default_factory=lambda: [6, 4])
    grid_cell_px: int = 256
    swd_images: int = 1024
    swd_patches: int = 64
    seed: int = 0
    conv_dtype: str = "auto"
    num_fp16_res: int = 4
    xla: bool = False
    devices: list = field(default_factory=list)
    require_gpu: bool | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    on_dataset_change: str = "continue"
    freeze_d: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a plain dict (the config YAML), refusing keys it does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                raise SetupError(f"unknown training setting {key!r}; known settings are: "
                                 f"{', '.join(sorted(known))}")
        return cls(**d)

    def __post_init__(self) -> None:
        try:
            networks.num_ws_for(self.resolution)
        except ValueError as e:
            raise SetupError(f"training setting 'resolution': {e}") from e
        self.devices = list(self.devices)
        self.preset, values = resolve_preset(self.preset, self.resolution, device_count(self.devices))
        # Which settings the preset gave (the rest were given): for the log.
        self.from_preset = [k for k in PRESET_KEYS if getattr(self, k) is None]
        for key in self.from_preset:
            setattr(self, key, values[key])
        for key in PER_RESOLUTION_KEYS:
            value = getattr(self, key)
            if isinstance(value, dict):
                setattr(self, key, {int(k): v for k, v in value.items()})
            self.at_resolution(key)
        self.grid = list(self.grid)
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise SetupError(f"training setting 'grid' must be [columns, rows], got {self.grid}")
        if self.on_dataset_change not in DATASET_CHANGES:
            raise SetupError(f"training setting 'on_dataset_change' must be one of {', '.join(DATASET_CHANGES)}, "
                             f"got {self.on_dataset_change!r}")
        if self.conv_dtype not in CONV_DTYPES:
            raise SetupError(f"training setting 'conv_dtype' must be one of {', '.join(CONV_DTYPES)}, "
                             f"got {self.conv_dtype!r}")
        self.conv_dtype_reason = "set in the config"
        if self.conv_dtype == "auto":
            self.conv_dtype, self.conv_dtype_reason = auto_conv_dtype(self.devices)
        if self.conv_dtype == "float16" and self.conv_clamp is None:
            self.conv_clamp = FP16_CONV_CLAMP
            self.conv_dtype_reason += f"; conv_clamp {FP16_CONV_CLAMP:g} as float16 needs"
        for key in ("accum_steps", "d_repeats", "r1_interval", "pl_interval", "pl_batch_shrink", "snapshot_ticks",
                    "keep_snapshots", "mbstd_group", "num_fp16_res", "nodes", "tasks_per_node"):
            if getattr(self, key) < 1:
                raise SetupError(f"training setting {key!r} must be at least 1, got {getattr(self, key)}")
        layers = networks.discriminator_layer_count(self.resolution)
        if not 0 <= self.freeze_d <= layers:
            raise SetupError(f"training setting 'freeze_d' must lie in 0..{layers} (the discriminator layers of a "
                             f"{self.resolution}px model outside its 4x4 end), got {self.freeze_d}")
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise SetupError(f"training setting 'conv_clamp' must be a positive number or null, got {self.conv_clamp}")

    def at_resolution(self, key: str) -> Any:
        """The value of a per-resolution setting for this model's resolution."""
        value = getattr(self, key)
        if not isinstance(value, dict):
            return value
        if self.resolution not in value:
            raise SetupError(f"training setting {key!r} has no entry for resolution {self.resolution} "
                             f"(it lists {sorted(value)}); add one or give a single number")
        return value[self.resolution]

    def architecture(self) -> dict[str, Any]:
        """The settings both networks are built from: a snapshot only resumes under equal ones."""
        return {k: getattr(self, k) for k in ARCH_KEYS}

    def generator_kwargs(self) -> dict[str, Any]:
        """The Generator's arguments: the architecture and how its convolutions compute."""
        return {**{k: getattr(self, k) for k in ARCH_KEYS if k != "mbstd_group"}, **self.precision()}

    def discriminator_kwargs(self) -> dict[str, Any]:
        keys = ("resolution", "channel_base", "channel_max", "conv_clamp", "mbstd_group")
        return {**{k: getattr(self, k) for k in keys}, **self.precision()}

    def precision(self) -> dict[str, Any]:
        return {"conv_dtype": self.conv_dtype, "num_fp16_res": self.num_fp16_res}

    def to_dict(self) -> dict[str, Any]:
        """Every setting, resolved (the preset's values filled in)."""
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line for the log: the preset and what it set, then the other settings."""
        preset = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.from_preset) or "every value given"
        given = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()
                          if k not in self.from_preset and k != "preset")
        return f"preset {self.preset} ({preset}); {given}"
