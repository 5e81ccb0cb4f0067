"""Training settings (config/schema.yaml's `train` section) as a validated dataclass.

Its own module so that the trainer, the training loop and the config tests share one
definition without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ganflow import networks
from ganflow.runlog import SetupError

ARCH_KEYS = ("resolution", "z_dim", "w_dim", "mapping_layers", "mapping_lr_mul", "channel_base",
             "channel_max", "mbstd_group")
PER_RESOLUTION_KEYS = ("batch_size", "g_lr", "d_lr")


@dataclass
class TrainConfig:
    """Training settings; the defaults are the documented 512px model for real data.

    `batch_size`, `g_lr` and `d_lr` take a number or a dict keyed by resolution (the
    classic presets' per-resolution schedules); the entry for `resolution` is used.
    `batch_size` is images per optimiser step over all devices, split into
    `accum_steps` micro-batches per device. `mirror` flips reals inside the step (give
    the dataset mirror=False). With `augment`, ADA starts at `augment_p` and adapts it
    towards `ada_target` (0 keeps p fixed); p may go from 0 to 1 in `ada_kimg`.
    `ema_kimg` is the EMA generator's half-life (the classic G_smoothing_kimg).
    `devices` names tf.distribute devices; empty means all GPUs (or the CPU).
    `conv_dtype` "bfloat16" runs convolutions in bfloat16 (weights stay float32).
    `xla` compiles the gradient computation (slower on CPU: see benchmarks/).
    """

    resolution: int = 512
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    channel_base: int = 32768
    channel_max: int = 512
    mbstd_group: int = 4
    batch_size: int | dict = 32
    accum_steps: int = 1
    g_lr: float | dict = 0.002
    d_lr: float | dict = 0.002
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    adam_eps: float = 1e-8
    r1_gamma: float = 10.0
    r1_interval: int = 16
    style_mixing: float = 0.9
    ema_kimg: float = 10.0
    d_repeats: int = 1
    mirror: bool = True
    augment: bool = True
    augment_p: float = 0.0
    ada_target: float = 0.6
    ada_kimg: float = 500.0
    total_kimg: float = 25000.0
    tick_kimg: float = 4.0
    snapshot_ticks: int = 10
    keep_snapshots: int = 3
    grid: list = field(default_factory=lambda: [6, 4])
    grid_cell_px: int = 256
    swd_images: int = 1024
    swd_patches: int = 64
    seed: int = 0
    conv_dtype: str = "float32"
    xla: bool = False
    devices: list = field(default_factory=list)

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
        for key in PER_RESOLUTION_KEYS:
            value = getattr(self, key)
            if isinstance(value, dict):
                setattr(self, key, {int(k): v for k, v in value.items()})
            self.at_resolution(key)
        self.grid = list(self.grid)
        self.devices = list(self.devices)
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise SetupError(f"training setting 'grid' must be [columns, rows], got {self.grid}")
        if self.conv_dtype not in ("float32", "bfloat16"):
            raise SetupError(f"training setting 'conv_dtype' must be float32 or bfloat16, got {self.conv_dtype!r}")
        for key in ("accum_steps", "d_repeats", "r1_interval", "snapshot_ticks", "keep_snapshots"):
            if getattr(self, key) < 1:
                raise SetupError(f"training setting {key!r} must be at least 1, got {getattr(self, key)}")

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
        return {k: getattr(self, k) for k in ARCH_KEYS if k != "mbstd_group"}

    def discriminator_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("resolution", "channel_base", "channel_max", "mbstd_group")}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
