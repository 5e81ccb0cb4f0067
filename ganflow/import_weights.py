"""Start from a released StyleGAN2: NVIDIA's network pickles, read as data, written as a
ganflow export (what weights.load_export reads, so every later stage takes it as it is).

    python -m ganflow.import_weights SRC OUT

SRC is a stylegan2-ada-pytorch or stylegan3 `.pkl` (a training snapshot or network file
with the StyleGAN2 architecture), the same networks saved by torch.save, or a TensorFlow 1
`.pkl` of NVlabs/stylegan2 (configs e and f, any resolution; stylegan2-ada's TensorFlow
pickles use the same variable names and are read the same way, but no fixture tests
them). OUT receives generator/ (the EMA generator: G_ema, or Gs), discriminator/ and
export.json.

Both formats run code when unpickled the usual way: torch_utils.persistence embeds the
source of the module that built the networks and executes it, dnnlib.tflib.Network
executes its build_module_src, and any pickle can name any importable callable. Here a
restricted unpickler allows only the few functions that rebuild containers, tensors and
arrays, each replaced by one of this module's own that makes plain numpy arrays (neither
PyTorch nor TensorFlow 1 is imported, or needed); the embedded sources are kept as text
and never run. Anything else a file names ends the import with one sentence naming it,
before it is called. Models ganflow cannot run as their authors did (conditional,
StyleGAN3 -T/-R, other architectures) are refused with a sentence too.

Layouts: PyTorch stores convolutions [out, in, kh, kw] and dense layers [out, in], TF1
[kh, kw, in, out] and [in, out], ganflow (NHWC) like TF1; TF1 stores the up-convolution
spatially flipped and the style bias less its initial 1; the 4x4 dense layer reads
features flattened channels-first upstream and channels-last here. The fixtures in
tests/fixtures/stylegan2 prove each mapping numerically against the official code.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import math
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import networks, weights
from .runlog import SetupError, logged

log = logging.getLogger(__name__)

_FILTER = np.outer([1.0, 3.0, 3.0, 1.0], [1.0, 3.0, 3.0, 1.0]) / 64.0  # upstream's normalised [1,3,3,1]
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of torch.save's legacy (non-zip) format
_TORCH_PROTOCOL = 1001


# ----- reading pickles as data ----------------------------------------------------------------

class _Bad(Exception):
    """Why a file cannot be imported, as the end of a sentence that starts with its name."""

class _Persistent:
    """An object saved by torch_utils.persistence: its class name and its state (a torch
    module's __dict__: _parameters, _buffers, _modules, plain attributes, _init_kwargs).
    The module source it carries stays an unexecuted string."""

    def __init__(self, class_name: str, state: dict, module_src: str) -> None:
        self.class_name = class_name
        self.state = state
        self.module_src = module_src

    def child(self, name: str) -> _Persistent | None:
        child = (self.state.get("_modules") or {}).get(name)
        return child if isinstance(child, _Persistent) else None

    def need(self, name: str) -> _Persistent:
        child = self.child(name)
        if child is None:
            raise _Bad(f"has a {self.class_name} without its {name}; it is not a StyleGAN2 ganflow can read")
        return child

    def tensor(self, name: str, required: bool = True) -> np.ndarray | None:
        for group in ("_parameters", "_buffers"):
            value = (self.state.get(group) or {}).get(name)
            if isinstance(value, _Array):  # a numpy array rather than a tensor
                value = value.array
            if value is not None:
                return np.array(value, dtype=np.float32)
        if required:
            raise _Bad(f"has a {self.class_name} without its {name}; it is not a StyleGAN2 ganflow can read")
        return None

    def get(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)

    @property
    def kwargs(self) -> dict:
        return dict(self.state.get("_init_kwargs") or {})


class _TFNetwork:
    """dnnlib.tflib.network.Network as data: its pickled state dict, never built."""

    state: dict = {}

    def __setstate__(self, state: dict) -> None:
        self.state = state if isinstance(state, dict) else {}


class _EasyDict(dict):
    """dnnlib.util.EasyDict: a dict (attribute access is not needed here)."""


class _Marker:
    """What a pickle names but only passes around (a storage type, a tensor class)."""

    def __init__(self, name: str, dtype: Any = None, itemsize: int = 0) -> None:
        self.name, self.dtype, self.itemsize = name, dtype, itemsize


# torch storage classes -> (numpy dtype of the values, bytes per stored element)
_STORAGES = {"FloatStorage": (np.float32, 4), "DoubleStorage": (np.float64, 8), "HalfStorage": (np.float16, 2),
             "BFloat16Storage": ("bfloat16", 2), "LongStorage": (np.int64, 8), "IntStorage": (np.int32, 4),
             "ShortStorage": (np.int16, 2), "CharStorage": (np.int8, 1), "ByteStorage": (np.uint8, 1),
             "BoolStorage": (np.bool_, 1)}
_NUMPY_DTYPES = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}


class _Dtype:
    """numpy.dtype of plain numbers only (never object or structured dtypes)."""

    def __init__(self, name: Any, align: Any = False, copy: Any = False) -> None:
        if name not in _NUMPY_DTYPES:
            raise _Bad(f"holds an array of numpy dtype {name!r}, which a network's weights never "
                             f"use; nothing in it was run")
        self.dtype = np.dtype(name)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """numpy.ndarray as pickled (reconstruct, then the state): rebuilt from its bytes."""

    array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Bad("holds a malformed numpy array; nothing in it was run")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, _Dtype) or not isinstance(raw, (bytes, bytearray)):
            raise _Bad("holds a numpy array that is not plain numbers; nothing in it was run")
        self.array = _from_bytes(raw, dtype.dtype, shape, "F" if fortran else "C")


def _from_bytes(raw: bytes, dtype: np.dtype, shape: Any, order: str = "C") -> np.ndarray:
    shape = tuple(int(s) for s in shape)
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise _Bad("holds a numpy array whose data does not match its shape; it is damaged")
    return np.frombuffer(raw, dtype).reshape(shape, order=order).astype(dtype.newbyteorder("="))


_NDARRAY = _Marker("numpy.ndarray")  # only ever an argument of _np_reconstruct


def _np_reconstruct(subtype: Any, shape: Any, code: Any) -> _Array:
    if subtype is not _NDARRAY:
        raise _Bad("holds a numpy array subclass, which a network's weights never use; "
                         "nothing in it was run")
    return _Array()


def _np_scalar(dtype: Any, raw: Any = None) -> Any:
    if not isinstance(dtype, _Dtype) or not isinstance(raw, bytes):
        raise _Bad("holds a numpy scalar that is not a plain number; nothing in it was run")
    return _from_bytes(raw, dtype.dtype, ()).item()


def _np_frombuffer(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(dtype, _Dtype) or not isinstance(raw, (bytes, bytearray)):
        raise _Bad("holds a numpy array that is not plain numbers; nothing in it was run")
    return _from_bytes(bytes(raw), dtype.dtype, shape, "F" if order == "F" else "C")


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> np.ndarray:
    """torch._utils._rebuild_tensor(_v2): a read-only view of the storage's numbers, after
    checking that every element it addresses lies inside the storage."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise _Bad("holds a tensor without a storage; it is damaged")
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
    if len(size) != len(stride) or offset < 0 or min(stride, default=0) < 0:
        raise _Bad("holds a tensor with an impossible layout; it is damaged")
    if 0 not in size and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= len(storage):
        raise _Bad("holds a tensor reaching past its storage; it is damaged")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], size, [s * itemsize for s in stride])
    view.flags.writeable = False
    return view


def _parameter(data: Any, *_: Any) -> Any:
    return data


def _from_type(func: Any, new_type: Any, args: Any, state: Any = None) -> Any:
    """torch._tensor._rebuild_from_type_v2: only plain tensors and parameters."""
    if not isinstance(new_type, _Marker) or func not in (_tensor, _parameter):
        raise _Bad("holds a tensor of an unknown kind; nothing in it was run")
    return func(*args)


def _persistent(meta: Any) -> _Persistent:
    """torch_utils.persistence._reconstruct_persistent_obj, without running module_src."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise _Bad("holds a torch_utils.persistence object of an unknown kind; nothing in it was run")
    return _Persistent(str(meta.get("class_name")), meta["state"], str(meta.get("module_src", "")))


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Bad("encodes data in a way a network pickle never does; nothing in it was run")
    return text.encode("latin1")


def _ordered_dict(*args: Any) -> dict:
    return dict(*args)


class _Unpickler(pickle.Unpickler):
    """pickle with an allow-list: find_class returns this module's stand-ins, or refuses."""

    def __init__(self, file: Any, source: str, persistent: Callable[[Any], Any] | None = None) -> None:
        super().__init__(file)
        self.source = source
        self.persistent = persistent
        self.globals = dict(_GLOBALS)
        self.globals[("torch.storage", "_load_from_bytes")] = self._load_from_bytes

    def find_class(self, module: str, name: str) -> Any:
        found = self.globals.get((module, name))
        if found is None and module == "torch" and name in _STORAGES:
            found = _Marker(name, *_STORAGES[name])
        if found is None:
            raise SetupError(f"{self.source} is not a plain network file: loading it would call {module}.{name}, "
                             f"which an import of weights never needs, so ganflow refused it (nothing in the file "
                             f"was run)")
        return found

    def persistent_load(self, pid: Any) -> Any:
        if self.persistent is None:
            raise SetupError(f"{self.source} refers to data outside its pickle, which a network pickle never does; "
                             f"nothing in it was run")
        return self.persistent(pid)

    def _load_from_bytes(self, blob: Any) -> Any:
        """torch.storage._load_from_bytes: a storage saved by torch.save inside the pickle."""
        if not isinstance(blob, bytes):
            raise SetupError(f"{self.source} holds a torch storage that is not bytes; it is damaged")
        return _load_torch(blob, self.source)


_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # the name protocol 2 (torch.save's) writes for Python 2
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1,  # how protocol 2 writes bytes
    ("torch._utils", "_rebuild_tensor_v2"): _tensor,
    ("torch._utils", "_rebuild_tensor"): _tensor,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _from_type,
    ("torch", "Tensor"): _Marker("Tensor"),
    ("torch._tensor", "Tensor"): _Marker("Tensor"),
    ("torch.nn.parameter", "Parameter"): _Marker("Parameter"),
    ("torch", "Size"): tuple,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib.tflib.network", "Network"): _TFNetwork,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype,
}
for _core in ("numpy.core", "numpy._core"):
    _GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _np_reconstruct
    _GLOBALS[(f"{_core}.multiarray", "scalar")] = _np_scalar
    _GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _np_frombuffer


def _unpickle(file: Any, source: str, persistent: Callable[[Any], Any] | None = None) -> Any:
    try:
        return _Unpickler(file, source, persistent).load()
    except SetupError:
        raise
    except _Bad as e:
        raise SetupError(f"{source} {e}") from None
    except Exception as e:  # a damaged or foreign file: say so in one sentence
        raise SetupError(f"cannot read {source} as a network pickle ({type(e).__name__}: {e})") from e


def _storage_array(storage_type: Any, numel: Any, source: str) -> tuple[np.ndarray, _Marker]:
    if not isinstance(storage_type, _Marker) or storage_type.dtype is None:
        raise SetupError(f"{source} holds a torch storage of an unknown type; nothing in it was run")
    dtype = np.float32 if storage_type.dtype == "bfloat16" else storage_type.dtype
    return np.zeros(int(numel), dtype), storage_type


def _fill(array: np.ndarray, raw: bytes, storage_type: _Marker, source: str) -> None:
    if len(raw) != array.size * storage_type.itemsize:
        raise SetupError(f"{source} holds a truncated torch storage; it is damaged")
    if storage_type.dtype == "bfloat16":  # the upper half of a float32
        array[...] = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        array[...] = np.frombuffer(raw, np.dtype(storage_type.dtype).newbyteorder("<"))


def _load_torch(blob: bytes, source: str) -> Any:
    """torch.save's legacy format: pickles of its magic number, protocol version and system
    info, the object (storages as persistent ids), the storage keys, then each storage's
    element count and bytes. Tensors are views of their storages, filled in at the end."""
    f = io.BytesIO(blob)
    if blob.startswith(b"PK\x03\x04"):
        try:
            archive = zipfile.ZipFile(f)
        except zipfile.BadZipFile as e:
            raise SetupError(f"cannot read {source}: it starts like a zip file but is not one ({e})") from e
        return _load_torch_zip(archive, source)
    if _unpickle(f, source) != _TORCH_MAGIC or _unpickle(f, source) != _TORCH_PROTOCOL:
        raise SetupError(f"{source} holds torch data in a format this importer does not know")
    info = _unpickle(f, source)
    if not isinstance(info, dict) or not info.get("little_endian", True):
        raise SetupError(f"{source} was saved on a big-endian machine, which this importer does not read")
    storages: dict[str, tuple[np.ndarray, _Marker]] = {}

    def persistent(pid: Any) -> np.ndarray:
        if not isinstance(pid, tuple) or len(pid) != 6 or pid[0] != "storage":
            raise SetupError(f"{source} refers to something other than a torch storage; nothing in it was run")
        _, storage_type, key, _location, numel, view = pid
        if key not in storages:
            storages[key] = _storage_array(storage_type, numel, source)
        root = storages[key][0]
        if view is not None:
            _view_key, offset, view_size = view
            return root[int(offset):int(offset) + int(view_size)]
        return root

    obj = _unpickle(f, source, persistent)
    keys = _unpickle(f, source)
    for key in keys if isinstance(keys, list) else []:
        if key not in storages:
            raise SetupError(f"{source} lists a torch storage it never used; it is damaged")
        array, storage_type = storages[key]
        numel = int.from_bytes(f.read(8), "little")
        if numel != array.size:
            raise SetupError(f"{source} holds a torch storage of the wrong size; it is damaged")
        _fill(array, f.read(numel * storage_type.itemsize), storage_type, source)
    return obj


def _load_torch_zip(archive: zipfile.ZipFile, source: str) -> Any:
    """torch.save's zip format: <root>/data.pkl with storages in <root>/data/<key>."""
    names = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if not names:
        raise SetupError(f"{source} is a zip file but not one that torch.save wrote (no data.pkl)")
    root = names[0][: -len("data.pkl")]
    if root + "byteorder" in archive.namelist() and archive.read(root + "byteorder") != b"little":
        raise SetupError(f"{source} was saved big-endian, which this importer does not read")
    storages: dict[str, np.ndarray] = {}

    def persistent(pid: Any) -> np.ndarray:
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
            raise SetupError(f"{source} refers to something other than a torch storage; nothing in it was run")
        _, storage_type, key, _location, numel = pid
        if key not in storages:
            array, storage_type = _storage_array(storage_type, numel, source)
            try:
                raw = archive.read(f"{root}data/{key}")
            except KeyError as e:
                raise SetupError(f"{source} misses the torch storage {key}; it is damaged") from e
            _fill(array, raw, storage_type, source)
            storages[key] = array
        return storages[key]

    with archive.open(names[0]) as f:
        return _unpickle(f, source, persistent)


def read_pickle(path: Path) -> Any:
    """The contents of a network pickle (plain pickle or torch.save), as data."""
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise SetupError(f"cannot read {path} ({e.strerror or e})") from e
    if _is_torch_save(blob):
        return _load_torch(blob, str(path))
    return _unpickle(io.BytesIO(blob), str(path))


def _is_torch_save(blob: bytes) -> bool:
    """torch.save's zip format (a zip's first local header) or its legacy one (which
    starts with the magic number pickled at protocol 2)."""
    return blob.startswith(b"PK\x03\x04") or blob.startswith(pickle.dumps(_TORCH_MAGIC, protocol=2))


# ----- official networks -> ganflow layouts ----------------------------------------------------

def _hwio(weight: np.ndarray) -> np.ndarray:
    """PyTorch [out, in, kh, kw] -> [kh, kw, in, out]."""
    return weight.transpose(2, 3, 1, 0)


def _fc_nhwc(weight: np.ndarray, channels: int) -> np.ndarray:
    """The 4x4 dense layer's [in, out] weight, its inputs flattened channels-first (c, h, w)
    upstream, reordered for ganflow's channels-last flattening (h, w, c)."""
    out = weight.shape[1]
    return weight.reshape(channels, 4, 4, out).transpose(1, 2, 0, 3).reshape(16 * channels, out)


class _Params(dict):
    """Weights in ganflow's layouts, keyed by the official (PyTorch) names."""

    def __init__(self, source: str, what: str) -> None:
        super().__init__()
        self.source, self.what = source, what

    def take(self, key: str) -> np.ndarray:
        if key not in self:
            raise SetupError(f"{self.source}: its {self.what} has no {key}; it is not a StyleGAN2 ganflow can read")
        return self[key]


def _refuse(source: str, why: str) -> SetupError:
    return SetupError(f"{source} {why}")


def _one_value(values: set, source: str, what: str) -> Any:
    if len(values) > 1:
        raise _refuse(source, f"clamps its layers differently ({what}: {sorted(values, key=str)}), which ganflow "
                              f"cannot express")
    return next(iter(values)) if values else None


def _check_filter(rec: _Persistent, source: str) -> None:
    f = rec.tensor("resample_filter", required=False)
    if f is not None and (f.shape != _FILTER.shape or not np.allclose(f, _FILTER, atol=1e-6)):
        raise _refuse(source, "resamples with a filter other than [1,3,3,1], which ganflow does not support")


def _torch_generator(G: _Persistent, source: str) -> tuple[dict, _Params]:
    """A persistence-pickled StyleGAN2 Generator -> (ganflow architecture, weights)."""
    mapping, synthesis = G.child("mapping"), G.child("synthesis")
    if G.get("c_dim", 0):
        raise _refuse(source, f"is a conditional model (c_dim {G.get('c_dim')}: images depend on a class label), "
                              f"which ganflow does not support")
    if synthesis is not None and synthesis.child("b4") is None and (synthesis.child("input") or "SynthesisInput"
                                                                    in synthesis.module_src):
        raise _refuse(source, "is a StyleGAN3 (alias-free, -T or -R) generator, not StyleGAN2; ganflow only runs "
                              "StyleGAN2")
    if G.class_name != "Generator" or mapping is None or synthesis is None or synthesis.child("b4") is None:
        raise _refuse(source, f"holds a {G.class_name} that is not a StyleGAN2 generator")
    if G.get("img_channels", 3) != 3:
        raise _refuse(source, f"makes {G.get('img_channels')}-channel images; ganflow makes RGB")
    resolution = int(G.get("img_resolution"))
    p = _Params(source, "generator")

    num_layers = int(mapping.get("num_layers", 0))
    lr_muls = set()
    for i in range(num_layers):
        fc = mapping.child(f"fc{i}")
        if fc is None or fc.get("activation", "lrelu") != "lrelu":
            raise _refuse(source, f"has a mapping layer fc{i} that is missing or not leaky-ReLU")
        p[f"mapping.fc{i}.weight"], p[f"mapping.fc{i}.bias"] = fc.tensor("weight").T, fc.tensor("bias")
        lr_muls.add(float(fc.get("bias_gain", 1.0)))
    if len(lr_muls) != 1:
        raise _refuse(source, "has mapping layers with different learning-rate multipliers")
    w_avg = mapping.tensor("w_avg", required=False)
    if w_avg is None:
        log.warning("%s tracks no average w: truncation (psi < 1) will pull towards zero", source)
        w_avg = np.zeros(int(G.get("w_dim")), np.float32)
    p["mapping.w_avg"] = w_avg

    clamps = set()
    res = 4
    while res <= resolution:
        block = synthesis.child(f"b{res}")
        if block is None:
            raise _refuse(source, f"has no synthesis block at {res}px")
        if block.get("architecture", "skip") != "skip":
            raise _refuse(source, f"uses the '{block.get('architecture')}' generator architecture; ganflow runs "
                                  f"StyleGAN2's default 'skip' (configs e and f)")
        _check_filter(block, source)
        if res == 4:
            p["b4.const"] = block.tensor("const").transpose(1, 2, 0)[None]
        for name in ("conv0", "conv1") if res > 4 else ("conv1",):
            layer = block.child(name)
            if layer is None or layer.get("activation", "lrelu") != "lrelu":
                raise _refuse(source, f"has a {res}px {name} that is missing or not leaky-ReLU")
            _check_filter(layer, source)
            key = f"b{res}.{name}"
            p[f"{key}.weight"] = _hwio(layer.tensor("weight"))
            p[f"{key}.affine.weight"] = layer.need("affine").tensor("weight").T
            p[f"{key}.affine.bias"] = layer.need("affine").tensor("bias")
            p[f"{key}.bias"] = layer.tensor("bias")
            if layer.get("use_noise", True):
                p[f"{key}.noise_strength"] = layer.tensor("noise_strength")
                p[f"{key}.noise_const"] = layer.tensor("noise_const")
            else:  # no noise input: a zero strength does exactly that
                p[f"{key}.noise_strength"] = np.zeros((), np.float32)
                p[f"{key}.noise_const"] = np.zeros((res, res), np.float32)
            clamps.add(layer.get("conv_clamp"))
        torgb = block.child("torgb")
        if torgb is None:
            raise _refuse(source, f"has no toRGB at {res}px")
        p[f"b{res}.torgb.weight"] = _hwio(torgb.tensor("weight"))
        p[f"b{res}.torgb.affine.weight"] = torgb.need("affine").tensor("weight").T
        p[f"b{res}.torgb.affine.bias"] = torgb.need("affine").tensor("bias")
        p[f"b{res}.torgb.bias"] = torgb.tensor("bias")
        clamps.add(torgb.get("conv_clamp"))
        res *= 2

    skw = synthesis.kwargs
    arch = dict(resolution=resolution, z_dim=int(G.get("z_dim")), w_dim=int(G.get("w_dim")),
                mapping_layers=num_layers, mapping_lr_mul=lr_muls.pop(),
                channel_base=int(skw.get("channel_base", 32768)), channel_max=int(skw.get("channel_max", 512)),
                conv_clamp=_number(_one_value(clamps, source, "conv_clamp")))
    return arch, p


def _number(x: Any) -> float | None:
    return None if x is None else float(x)


def _torch_discriminator(D: _Persistent, source: str) -> tuple[dict, _Params]:
    """A persistence-pickled StyleGAN2 Discriminator -> (ganflow architecture, weights)."""
    if D.class_name != "Discriminator" or D.child("b4") is None:
        raise _refuse(source, f"holds a {D.class_name} that is not a StyleGAN2 discriminator")
    if D.get("c_dim", 0):
        raise _refuse(source, f"is a conditional model (c_dim {D.get('c_dim')}: images depend on a class label), "
                              f"which ganflow does not support")
    resolution = int(D.get("img_resolution"))
    p = _Params(source, "discriminator")
    clamps = set()
    res = resolution
    while res > 4:
        block = D.child(f"b{res}")
        if block is None or block.get("architecture", "resnet") != "resnet":
            raise _refuse(source, f"has a {res}px discriminator block that is missing or not residual; ganflow runs "
                                  f"StyleGAN2's default 'resnet' discriminator (configs e and f)")
        _check_filter(block, source)
        names = ("fromrgb", "conv0", "conv1", "skip") if res == resolution else ("conv0", "conv1", "skip")
        for name in names:
            layer = block.child(name)
            if layer is None or layer.get("activation") != ("linear" if name == "skip" else "lrelu"):
                raise _refuse(source, f"has a {res}px {name} that is missing or of an unknown kind")
            p[f"b{res}.{name}.weight"] = _hwio(layer.tensor("weight"))
            if name != "skip":
                p[f"b{res}.{name}.bias"] = layer.tensor("bias")
                clamps.add(layer.get("conv_clamp"))
        res //= 2
    epilogue = D.child("b4")
    mbstd = epilogue.child("mbstd")
    if mbstd is None or mbstd.get("num_channels", 1) != 1 or epilogue.get("cmap_dim", 0):
        raise _refuse(source, "has a 4x4 epilogue other than StyleGAN2's (one minibatch-stddev feature, no labels)")
    group = mbstd.get("group_size")
    if group is None:
        log.warning("%s takes the minibatch stddev over the whole batch; ganflow uses groups of 4 "
                    "(scores of batches larger than 4 differ from upstream's)", source)
        group = 4
    conv = epilogue.need("conv")
    p["b4.conv.weight"], p["b4.conv.bias"] = _hwio(conv.tensor("weight")), conv.tensor("bias")
    clamps.add(conv.get("conv_clamp"))
    channels = conv.tensor("bias").shape[0]
    p["b4.fc.weight"] = _fc_nhwc(epilogue.need("fc").tensor("weight").T, channels)
    p["b4.fc.bias"] = epilogue.need("fc").tensor("bias")
    p["b4.out.weight"], p["b4.out.bias"] = epilogue.need("out").tensor("weight").T, epilogue.need("out").tensor("bias")
    kw = D.kwargs
    arch = dict(resolution=resolution, channel_base=int(kw.get("channel_base", 32768)),
                channel_max=int(kw.get("channel_max", 512)), mbstd_group=int(group), mbstd_grouping="strided",
                conv_clamp=_number(_one_value(clamps, source, "conv_clamp")))
    return arch, p


# TF1 static kwargs: those that change nothing at inference, and those that must have one value.
_TF_IGNORED = {"truncation_psi", "truncation_cutoff", "truncation_psi_val", "truncation_cutoff_val",
               "dlatent_avg_beta", "w_avg_beta", "style_mixing_prob", "structure", "randomize_noise",
               "fused_modconv", "dtype", "num_fp16_res", "is_template_graph", "freeze_layers", "augment_strength",
               "pagan_num", "pagan_fade", "score_size", "dlatent_broadcast"}
_TF_REQUIRED = {"label_size": 0, "num_channels": 3, "nonlinearity": "lrelu", "mapping_nonlinearity": "lrelu",
                "resample_kernel": [1, 3, 3, 1], "fmap_decay": 1, "normalize_latents": True, "fmap_const": None,
                "use_pagan": False, "score_max": 1, "use_spectral_norm": False, "adaptive_dropout": 0,
                "mbstd_num_features": 1}
_TF_G_FUNCS = {"G_main"}
_TF_MAPPING_FUNCS = {"G_mapping"}
_TF_SYNTHESIS_FUNCS = {"G_synthesis_stylegan2", "G_synthesis"}
_TF_D_FUNCS = {"D_stylegan2", "D_main"}


def _tf_kwargs(net: _TFNetwork, source: str, known: set) -> dict:
    kwargs = dict(net.state.get("static_kwargs") or {})
    for key, value in kwargs.items():
        if key == "label_size" and value:
            raise _refuse(source, f"is a conditional model (label_size {value}: images depend on a class label), "
                                  f"which ganflow does not support")
        if key in _TF_REQUIRED and (list(value) if isinstance(value, tuple) else value) != _TF_REQUIRED[key]:
            raise _refuse(source, f"was built with {key}={value!r}; ganflow runs StyleGAN2 with "
                                  f"{key}={_TF_REQUIRED[key]!r}")
        if key not in _TF_REQUIRED and key not in _TF_IGNORED and key not in known:
            raise _refuse(source, f"was built with an option this importer does not know ({key}={value!r}), so it "
                                  f"cannot promise the same images")
    return kwargs


def _tf_variables(net: _TFNetwork, source: str, prefix: str = "") -> dict[str, np.ndarray]:
    """Every variable of a TF1 network and its components, named as legacy paths."""
    out = {}
    for item in net.state.get("variables") or []:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise _refuse(source, "holds a TensorFlow network whose variables are not (name, value) pairs")
        name, value = item
        if isinstance(value, _Array):
            value = value.array
        if isinstance(value, (int, float)):
            value = np.asarray(value, np.float32)
        if not isinstance(value, np.ndarray):
            raise _refuse(source, f"holds a variable {prefix}{name} that is not an array")
        out[prefix + str(name)] = value.astype(np.float32)
    for cname, comp in (net.state.get("components") or {}).items():
        if not isinstance(comp, _TFNetwork):
            raise _refuse(source, f"holds a component {cname} that is not a network")
        out.update(_tf_variables(comp, source, f"{prefix}{cname}/"))
    return out


def _tf_check_funcs(net: _TFNetwork, funcs: set, source: str, what: str) -> None:
    func = net.state.get("build_func_name")
    if func not in funcs:
        hint = " (StyleGAN2 configs a-d or the original StyleGAN)" if func in (
            "G_synthesis_stylegan_revised", "D_stylegan", "G_style", "D_basic") else ""
        raise _refuse(source, f"holds a TensorFlow {what} built by {func}{hint}; ganflow imports StyleGAN2 configs "
                              f"e and f")


def _tf_generator(Gs: _TFNetwork, source: str) -> tuple[dict, _Params]:
    _tf_check_funcs(Gs, _TF_G_FUNCS, source, "generator")
    comps = Gs.state.get("components") or {}
    if not isinstance(comps.get("mapping"), _TFNetwork) or not isinstance(comps.get("synthesis"), _TFNetwork):
        raise _refuse(source, "holds a TensorFlow generator without mapping and synthesis networks")
    _tf_check_funcs(comps["mapping"], _TF_MAPPING_FUNCS, source, "mapping network")
    _tf_check_funcs(comps["synthesis"], _TF_SYNTHESIS_FUNCS, source, "synthesis network")
    kw = _tf_kwargs(Gs, source, {"resolution", "latent_size", "dlatent_size", "mapping_layers", "mapping_fmaps",
                                 "mapping_lrmul", "label_fmaps", "fmap_base", "fmap_max", "fmap_min", "architecture",
                                 "use_noise", "conv_clamp"})
    if kw.get("architecture", "skip") != "skip":
        raise _refuse(source, f"uses the '{kw['architecture']}' generator architecture; ganflow runs StyleGAN2's "
                              f"default 'skip' (configs e and f)")
    v = _tf_variables(Gs, source)
    resolution = int(kw.get("resolution", 1024))
    num_layers = int(kw.get("mapping_layers", 8))
    p = _Params(source, "generator")
    for i in range(num_layers):
        p[f"mapping.fc{i}.weight"] = v.get(f"mapping/Dense{i}/weight")
        p[f"mapping.fc{i}.bias"] = v.get(f"mapping/Dense{i}/bias")
    p["mapping.w_avg"] = v.get("dlatent_avg")
    p["b4.const"] = v["synthesis/4x4/Const/const"].transpose(0, 2, 3, 1) if "synthesis/4x4/Const/const" in v else None
    use_noise = kw.get("use_noise", True)
    index = 0
    res = 4
    while res <= resolution:
        scope = f"synthesis/{res}x{res}"
        for name, tf_name in ((("conv1", "Conv"),) if res == 4 else (("conv0", "Conv0_up"), ("conv1", "Conv1"))):
            key, tf_key = f"b{res}.{name}", f"{scope}/{tf_name}"
            weight = v.get(f"{tf_key}/weight")
            # TF1 runs the up-convolution as a transposed convolution of the flipped kernel.
            p[f"{key}.weight"] = weight[::-1, ::-1] if weight is not None and name == "conv0" else weight
            p[f"{key}.affine.weight"] = v.get(f"{tf_key}/mod_weight")
            mod_bias = v.get(f"{tf_key}/mod_bias")
            p[f"{key}.affine.bias"] = None if mod_bias is None else mod_bias + 1  # TF1 adds the 1 at run time
            p[f"{key}.bias"] = v.get(f"{tf_key}/bias")
            if use_noise:
                p[f"{key}.noise_strength"] = v.get(f"{tf_key}/noise_strength")
                noise = v.get(f"synthesis/noise{index}")
                p[f"{key}.noise_const"] = None if noise is None else noise[0, 0]
            else:
                p[f"{key}.noise_strength"] = np.zeros((), np.float32)
                p[f"{key}.noise_const"] = np.zeros((res, res), np.float32)
            index += 1
        p[f"b{res}.torgb.weight"] = v.get(f"{scope}/ToRGB/weight")
        p[f"b{res}.torgb.affine.weight"] = v.get(f"{scope}/ToRGB/mod_weight")
        mod_bias = v.get(f"{scope}/ToRGB/mod_bias")
        p[f"b{res}.torgb.affine.bias"] = None if mod_bias is None else mod_bias + 1
        p[f"b{res}.torgb.bias"] = v.get(f"{scope}/ToRGB/bias")
        res *= 2
    for key in [k for k, value in p.items() if value is None]:
        del p[key]  # reported by take() with the official name
    arch = dict(resolution=resolution, z_dim=int(kw.get("latent_size", 512)), w_dim=int(kw.get("dlatent_size", 512)),
                mapping_layers=num_layers, mapping_lr_mul=float(kw.get("mapping_lrmul", 0.01)),
                channel_base=2 * int(kw.get("fmap_base", 16 << 10)), channel_max=int(kw.get("fmap_max", 512)),
                conv_clamp=_number(kw.get("conv_clamp")))
    return arch, p


def _tf_discriminator(D: _TFNetwork, source: str) -> tuple[dict, _Params]:
    _tf_check_funcs(D, _TF_D_FUNCS, source, "discriminator")
    kw = _tf_kwargs(D, source, {"resolution", "fmap_base", "fmap_max", "fmap_min", "architecture",
                                "mbstd_group_size", "conv_clamp", "mapping_layers", "mapping_fmaps",
                                "mapping_lrmul"})
    if kw.get("architecture", "resnet") != "resnet":
        raise _refuse(source, f"uses the '{kw['architecture']}' discriminator architecture; ganflow runs "
                              f"StyleGAN2's default 'resnet' (configs e and f)")
    v = _tf_variables(D, source)
    resolution = int(kw.get("resolution", 1024))
    p = _Params(source, "discriminator")
    res = resolution
    while res > 4:
        scope = f"{res}x{res}"
        names = [("fromrgb", "FromRGB")] if res == resolution else []
        for name, tf_name in names + [("conv0", "Conv0"), ("conv1", "Conv1_down"), ("skip", "Skip")]:
            for kind in ("weight", "bias"):
                if f"{scope}/{tf_name}/{kind}" in v:
                    p[f"b{res}.{name}.{kind}"] = v[f"{scope}/{tf_name}/{kind}"]
        res //= 2
    for name, tf_name in (("conv", "4x4/Conv"), ("fc", "4x4/Dense0"), ("out", "Output")):
        for kind in ("weight", "bias"):
            if f"{tf_name}/{kind}" in v:
                p[f"b4.{name}.{kind}"] = v[f"{tf_name}/{kind}"]
    if "b4.fc.weight" in p:
        p["b4.fc.weight"] = _fc_nhwc(p["b4.fc.weight"], p["b4.fc.weight"].shape[0] // 16)
    # D_stylegan2 (NVlabs/stylegan2) groups 4 by default; D_main (stylegan2-ada) the whole batch.
    group = kw.get("mbstd_group_size", 4 if D.state.get("build_func_name") == "D_stylegan2" else None)
    if group is None:
        log.warning("%s takes the minibatch stddev over the whole batch; ganflow uses groups of 4 "
                    "(scores of batches larger than 4 differ from upstream's)", source)
        group = 4
    arch = dict(resolution=resolution, channel_base=2 * int(kw.get("fmap_base", 16 << 10)),
                channel_max=int(kw.get("fmap_max", 512)), mbstd_group=int(group), mbstd_grouping="strided",
                conv_clamp=_number(kw.get("conv_clamp")))
    return arch, p


# ----- ganflow networks from the weights --------------------------------------------------------

def _set(variable: Any, value: np.ndarray, name: str, params: _Params) -> None:
    value = np.asarray(value, np.float32)
    if tuple(variable.shape) != value.shape:
        raise SetupError(f"{params.source}: its {params.what}'s {name} has shape {list(value.shape)} where a "
                         f"ganflow StyleGAN2 of the same settings has {list(variable.shape)}; ganflow cannot run it")
    variable.assign(value)


def _fill_generator(G: Any, p: _Params) -> None:
    for i, fc in enumerate(G.mapping.fcs):
        _set(fc.weight, p.take(f"mapping.fc{i}.weight"), f"mapping.fc{i}.weight", p)
        _set(fc.bias, p.take(f"mapping.fc{i}.bias"), f"mapping.fc{i}.bias", p)
    _set(G.mapping.w_avg, p.take("mapping.w_avg"), "mapping.w_avg", p)
    for block in G.synthesis.blocks:
        res = block.resolution
        if block.const is not None:
            _set(block.const, p.take(f"b{res}.const"), f"b{res}.const", p)
        for name in ("conv0", "conv1"):
            layer = getattr(block, name)
            if layer is None:
                continue
            key = f"b{res}.{name}"
            for variable, part in ((layer.conv.weight, "weight"), (layer.conv.affine.weight, "affine.weight"),
                                   (layer.conv.affine.bias, "affine.bias"), (layer.bias, "bias"),
                                   (layer.noise_strength, "noise_strength")):
                _set(variable, p.take(f"{key}.{part}"), f"{key}.{part}", p)
            _set(layer.noise_const, p.take(f"{key}.noise_const")[None, :, :, None], f"{key}.noise_const", p)
        for variable, part in ((block.torgb.conv.weight, "weight"), (block.torgb.conv.affine.weight, "affine.weight"),
                               (block.torgb.conv.affine.bias, "affine.bias"), (block.torgb.bias, "bias")):
            _set(variable, p.take(f"b{res}.torgb.{part}"), f"b{res}.torgb.{part}", p)


def _fill_discriminator(D: Any, p: _Params) -> None:
    top = D.resolution
    _set(D.from_rgb.weight, p.take(f"b{top}.fromrgb.weight"), f"b{top}.fromrgb.weight", p)
    _set(D.from_rgb.bias, p.take(f"b{top}.fromrgb.bias"), f"b{top}.fromrgb.bias", p)
    res = top
    for block in D.blocks:
        for name in ("conv0", "conv1", "skip"):
            layer = getattr(block, name)
            _set(layer.weight, p.take(f"b{res}.{name}.weight"), f"b{res}.{name}.weight", p)
            if layer.bias is not None:
                _set(layer.bias, p.take(f"b{res}.{name}.bias"), f"b{res}.{name}.bias", p)
        res //= 2
    for layer, name in ((D.conv, "conv"), (D.fc, "fc"), (D.out, "out")):
        _set(layer.weight, p.take(f"b4.{name}.weight"), f"b4.{name}.weight", p)
        _set(layer.bias, p.take(f"b4.{name}.bias"), f"b4.{name}.bias", p)


def _build(cls: Any, arch: dict, params: _Params, fill: Callable, source: str) -> Any:
    try:
        net = cls(**arch)
    except ValueError as e:  # e.g. a resolution ganflow does not build
        raise SetupError(f"{source}: ganflow cannot build its {params.what} ({e})") from e
    fill(net, params)
    return net


def import_networks(src: str | Path) -> tuple[Any, Any, dict]:
    """(Generator, Discriminator, info) from an official StyleGAN2 pickle, without running
    anything in it."""
    src = Path(src)
    source = str(src)
    data = read_pickle(src)
    try:
        if isinstance(data, dict) and isinstance(data.get("G_ema"), _Persistent):
            if not isinstance(data.get("D"), _Persistent):
                raise _Bad("holds a generator but no discriminator (D); ganflow imports both")
            g_arch, g_params = _torch_generator(data["G_ema"], source)
            d_arch, d_params = _torch_discriminator(data["D"], source)
            fmt = "torch_utils.persistence (stylegan2-ada-pytorch / stylegan3)"
        elif isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, _TFNetwork) for n in data):
            _, D_tf, Gs = data
            g_arch, g_params = _tf_generator(Gs, source)
            d_arch, d_params = _tf_discriminator(D_tf, source)
            fmt = "dnnlib.tflib (NVlabs/stylegan2, TensorFlow 1)"
        else:
            raise _Bad("holds neither a stylegan2-ada-pytorch / stylegan3 snapshot (a dict with G_ema and D) nor "
                       "a TensorFlow StyleGAN2 pickle (G, D, Gs)")
    except _Bad as e:
        raise SetupError(f"{source} {e}") from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:  # fields of unexpected kinds
        raise SetupError(f"{source} does not hold StyleGAN2 networks ganflow can read ({type(e).__name__}: {e})") from e
    G = _build(networks.Generator, g_arch, g_params, _fill_generator, source)
    D = _build(networks.Discriminator, d_arch, d_params, _fill_discriminator, source)
    info = {"imported_from": src.name, "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
            "source_format": fmt}
    return G, D, info


def import_weights(src: str | Path, out_dir: str | Path) -> dict:
    """Import SRC and write it as a ganflow export in out_dir; returns the info it wrote."""
    G, D, info = import_networks(src)
    weights.write_export(Path(out_dir), G, D, info)
    log.info("imported %s: %dpx, z %d, w %d, conv_clamp %s -> %s", src, G.resolution, G.z_dim, G.w_dim,
             G.architecture["conv_clamp"], out_dir)
    return info


def main(argv: Sequence[str] | None = None) -> int:
    """python -m ganflow.import_weights SRC OUT"""
    parser = argparse.ArgumentParser(
        prog="python -m ganflow.import_weights",
        description="Import an official StyleGAN2 pickle (stylegan2-ada-pytorch, stylegan3's StyleGAN2, or "
                    "TensorFlow NVlabs/stylegan2) as a ganflow export, without running anything in the file.")
    parser.add_argument("src", help="the .pkl (or torch.save file) to import")
    parser.add_argument("out", help="the export directory to write (generator/, discriminator/, export.json)")
    parser.add_argument("--log", help="also log to this file")
    args = parser.parse_args(argv)
    with logged(args.log):
        import_weights(args.src, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
