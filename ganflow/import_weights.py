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
before it is called. Models ganflow cannot run as their authors did (StyleGAN3 -T/-R,
other architectures, TF1 conditional ones) are refused with a sentence too; conditional
PyTorch models (c_dim > 0) import with their label embedding and projection discriminator.

A file is also read as if hostile: each load gets its own stand-ins, which no pickle
instruction can change; a tensor is copied out of a storage the file stores, index by
checked index; what a file declares (storage and zip entry sizes, resolution, widths,
layer counts) is compared with the bytes it holds, and the weight shapes its claimed
architecture implies with its arrays, before anything is allocated for them or built;
everything reading makes is charged against a few times the file's data; NaN or
infinite weights are refused by name; and any failure is one short sentence.

Layouts: PyTorch stores convolutions [out, in, kh, kw] and dense layers [out, in], TF1
[kh, kw, in, out] and [in, out], ganflow (NHWC) like TF1; TF1 stores the up-convolution
spatially flipped and the style bias less its initial 1; the 4x4 dense layer reads
features flattened channels-first upstream and channels-last here. The fixtures in
tests/fixtures/stylegan2 prove each mapping numerically against the official code.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import logging
import math
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import networks, weights
from .runlog import SetupError, logged

log = logging.getLogger(__name__)

_FILTER = np.outer([1.0, 3.0, 3.0, 1.0], [1.0, 3.0, 3.0, 1.0]) / 64.0  # upstream's normalised [1,3,3,1]
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of torch.save's legacy (non-zip) format
_TORCH_PROTOCOL = 1001


# ----- reading pickles as data ----------------------------------------------------------------
#
# What a file may make is bounded by what it stores: every array, storage and container an
# allowed function builds is charged against a budget of a few times the file's bytes (plus
# what its zip entries honestly unpack to), every instruction costs as much as the largest
# object one instruction can make, and every size a file declares is compared with the bytes
# it holds before anything is allocated.

_QUOTE = 80  # at most this many characters of anything quoted from a file
_OP_COST = 256  # bytes: more than the largest object one pickle instruction makes (an empty set)
_SPEND_FACTOR = 6  # what reading may allocate, in multiples of the data the file stores ...
_SPEND_SLACK = 32 << 20  # ... plus this
_ZIP_RATIO = 10  # torch.save stores its entries uncompressed; weights deflate by about 1.1
_ZIP_SMALL = 1 << 20  # entries up to this size may compress better (zeros), within the budget below
_ZIP_SLACK = 8 << 20  # all entries together unpack to at most _ZIP_RATIO x the file + this
_MAX_NDIM = 16
_MAX_NESTING = 4  # networks within networks (a TF1 Gs holds mapping and synthesis: 2)


class _Bad(Exception):
    """Why a file cannot be imported, as the end of a sentence that starts with its name."""


def _short(value: Any, depth: int = 2) -> str:
    """A bounded, one-line rendering of something read from a file (never a full repr: a file
    can nest values a million deep or hold a number of a million digits)."""
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if -10 ** 30 < value < 10 ** 30 else f"a {value.bit_length()}-bit number"
    if isinstance(value, (np.integer, np.floating)):
        return _short(value.item())
    if isinstance(value, str):
        return repr(value[:_QUOTE + 1])
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value[:_QUOTE + 1]))
    if isinstance(value, (list, tuple)):
        brackets = "[]" if isinstance(value, list) else "()"
        if depth <= 0:
            return brackets[0] + "..." + brackets[1]
        items = [_short(v, depth - 1) for v in value[:8]] + (["..."] if len(value) > 8 else [])
        return brackets[0] + ", ".join(items) + brackets[1]
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {list(value.shape)}"
    return f"a {type(value).__name__.lstrip('_')}"


def _quote(value: Any) -> str:
    """`value` as a message shows it: one line, at most _QUOTE characters."""
    text = _short(value)
    return text if len(text) <= _QUOTE else text[:_QUOTE - 3] + "..."


def _name(value: Any) -> str:
    """A name from a file (a module, class or key) as a message shows it, unquoted."""
    if not isinstance(value, str):
        return _quote(value)
    text = repr(value[:_QUOTE + 1])[1:-1]
    return text if len(text) <= _QUOTE else text[:_QUOTE - 3] + "..."


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.0f} MiB" if nbytes >= 1 << 20 else f"{nbytes} bytes"


class _Load:
    """One import's allowances, shared by the pickles nested in it (storage blobs, zip
    entries): the data the file stores, and what reading it has made so far."""

    def __init__(self, size: int) -> None:
        self.size = size  # bytes of the file
        self.unzipped = 0  # bytes its zip entries unpacked to
        self.spent = 0  # bytes charged to what reading made
        self.nesting = 0  # torch.save data inside torch.save data

    def spend(self, nbytes: int) -> None:
        self.spent += nbytes
        limit = _SPEND_FACTOR * (self.size + self.unzipped) + _SPEND_SLACK
        if self.spent > limit:
            raise _Bad(f"would unpack into more than {_mib(limit)} ({_SPEND_FACTOR} times the "
                       f"{_mib(self.size + self.unzipped)} it stores), more than any network file does; it is "
                       f"damaged or hostile, and ganflow stopped before allocating it")

    def unzip(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, expected: int | None = None) -> bytes:
        """An entry's bytes, after checking what it declares: its size against `expected`
        and against what its compressed bytes can honestly hold."""
        what = _name(info.filename)
        if expected is not None and info.file_size != expected:
            raise _Bad(f"stores {info.file_size} bytes in {what} where its pickle declares {expected}; it is "
                       f"damaged")
        if info.file_size > _ZIP_SMALL and info.file_size > _ZIP_RATIO * max(info.compress_size, 1):
            raise _Bad(f"declares that {what} unpacks to {_mib(info.file_size)} from "
                       f"{_mib(info.compress_size)}, far more than network weights compress (a zip bomb?); "
                       f"ganflow unpacked nothing")
        self.unzipped += info.file_size
        if self.unzipped > _ZIP_RATIO * self.size + _ZIP_SLACK:
            raise _Bad(f"unpacks to more than {_ZIP_RATIO} times its own size, far more than network weights "
                       f"compress (a zip bomb?); ganflow stopped before unpacking {what}")
        raw = archive.read(info)
        if len(raw) != info.file_size:
            raise EOFError
        return raw


class _Persistent:
    """An object saved by torch_utils.persistence: its class name and its state (a torch
    module's __dict__: _parameters, _buffers, _modules, plain attributes, _init_kwargs).
    The module source it carries stays an unexecuted string."""

    def __init__(self, class_name: str, state: dict, module_src: str) -> None:
        self.class_name = class_name
        self.state = state
        self.module_src = module_src

    def child(self, name: str) -> _Persistent | None:
        modules = self.state.get("_modules")
        child = modules.get(name) if isinstance(modules, dict) else None
        return child if isinstance(child, _Persistent) else None

    def need(self, name: str) -> _Persistent:
        child = self.child(name)
        if child is None:
            raise _Bad(f"has a {_name(self.class_name)} without its {name}; it is not a StyleGAN2 ganflow can "
                       f"read")
        return child

    def tensor(self, name: str, required: bool = True) -> np.ndarray | None:
        for group in ("_parameters", "_buffers"):
            values = self.state.get(group)
            value = values.get(name) if isinstance(values, dict) else None
            if isinstance(value, _Array):  # a numpy array rather than a tensor
                value = value.array
                if value is None:
                    raise _Bad(f"has a {_name(self.class_name)} whose {name} is an empty numpy array record; it "
                               f"is damaged")
            if value is not None:
                if not isinstance(value, np.ndarray):
                    raise _Bad(f"has a {_name(self.class_name)} whose {name} is {_quote(value)}, not a tensor; "
                               f"it is damaged")
                return np.array(value, dtype=np.float32)
        if required:
            raise _Bad(f"has a {_name(self.class_name)} without its {name}; it is not a StyleGAN2 ganflow can "
                       f"read")
        return None

    def get(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)

    @property
    def kwargs(self) -> dict:
        kwargs = self.state.get("_init_kwargs")
        if kwargs is not None and not isinstance(kwargs, dict):
            raise _Bad(f"has a {_name(self.class_name)} whose settings (_init_kwargs) are not a dict; it is "
                       f"damaged")
        return dict(kwargs or {})


class _TFNetwork:
    """dnnlib.tflib.network.Network as data: its pickled state dict, never built."""

    state: dict = {}

    def __setstate__(self, state: dict) -> None:
        self.state = state if isinstance(state, dict) else {}


class _EasyDict(dict):
    """dnnlib.util.EasyDict: a dict (attribute access is not needed here), filled by the
    pickle's own dict instructions, whose keys are checked there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise _Bad("makes a dnnlib.util.EasyDict from arguments, which a network pickle never does; nothing "
                       "in it was run")
        super().__init__()


class _Marker:
    """What a pickle names but only passes around (a storage type, a tensor class). Each
    load makes its own, and no pickle instruction can change one."""

    __slots__ = ("name", "dtype", "itemsize")

    def __init__(self, name: str, dtype: Any = None, itemsize: int = 0) -> None:
        self.name, self.dtype, self.itemsize = name, dtype, itemsize


class _Call:
    """An allowed function as one load sees it: made for that load (bound to its
    unpickler), without attributes a pickle could set (BUILD on it is refused anyway)."""

    __slots__ = ("name", "fn")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name, self.fn = name, fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


class _Storage:
    """A torch storage: the numbers a file stores, in an array made here (never a view of
    another tensor or array). Legacy files may view part of a storage (start, numel).
    bfloat16 stays raw uint16 until a tensor takes it."""

    __slots__ = ("load", "kind", "numel", "root", "start", "array")

    def __init__(self, load: _Load, kind: _Marker, numel: int, root: _Storage | None = None, start: int = 0) -> None:
        self.load, self.kind, self.numel = load, kind, numel
        self.root, self.start = root or self, start
        self.array: np.ndarray | None = None

    @property
    def data(self) -> np.ndarray | None:
        return self.root.array

    def fill(self, raw: bytes) -> None:
        if len(raw) != self.numel * self.kind.itemsize:
            raise _Bad(f"holds a torch storage of {self.numel} numbers in {len(raw)} bytes; it is damaged")
        self.load.spend(len(raw))
        stored = np.dtype("<u2") if self.kind.dtype == "bfloat16" else np.dtype(self.kind.dtype).newbyteorder("<")
        self.array = np.frombuffer(raw, stored).astype(stored.newbyteorder("="))

    def view(self, offset: Any, numel: Any) -> _Storage:
        offset, numel = _index(offset), _index(numel)
        if offset + numel > self.numel:
            raise _Bad(f"holds a torch storage view reaching past its storage ({offset} + {numel} of "
                       f"{self.numel} numbers); it is damaged or hostile")
        return _Storage(self.load, self.kind, numel, self, offset)


class _Pending:
    """A tensor of a legacy torch.save file before the storages (stored after the pickle)
    are read: the pickle is read a second time once they are."""

    __slots__ = ()


# torch storage classes -> (numpy dtype of the values, bytes per stored element)
_STORAGES = {"FloatStorage": (np.float32, 4), "DoubleStorage": (np.float64, 8), "HalfStorage": (np.float16, 2),
             "BFloat16Storage": ("bfloat16", 2), "LongStorage": (np.int64, 8), "IntStorage": (np.int32, 4),
             "ShortStorage": (np.int16, 2), "CharStorage": (np.int8, 1), "ByteStorage": (np.uint8, 1),
             "BoolStorage": (np.bool_, 1)}
_NUMPY_DTYPES = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}


def _index(value: Any) -> int:
    """A non-negative count or offset read from a file."""
    if type(value) is not int or value < 0:
        raise _Bad(f"holds {_quote(value)} where a size or offset belongs; it is damaged")
    return value


def _indices(value: Any) -> tuple[int, ...]:
    if type(value) not in (tuple, list) or len(value) > _MAX_NDIM:
        raise _Bad(f"holds {_quote(value)} where the shape of an array belongs; it is damaged")
    return tuple(_index(v) for v in value)


class _Dtype:
    """numpy.dtype of plain numbers only (never object or structured dtypes)."""

    def __init__(self, name: Any, align: Any = False, copy: Any = False) -> None:
        if type(name) is not str or name not in _NUMPY_DTYPES:
            raise _Bad(f"holds an array of numpy dtype {_quote(name)}, which a network's weights never use; "
                       f"nothing in it was run")
        self.dtype = np.dtype(name)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """numpy.ndarray as pickled (reconstruct, then the state): rebuilt from its bytes."""

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Bad("holds a malformed numpy array; nothing in it was run")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, _Dtype) or not isinstance(raw, (bytes, bytearray)):
            raise _Bad("holds a numpy array that is not plain numbers; nothing in it was run")
        self.array = _from_bytes(raw, dtype.dtype, shape, self.load, "F" if fortran is True else "C")


def _from_bytes(raw: bytes | bytearray, dtype: np.dtype, shape: Any, load: _Load, order: str = "C") -> np.ndarray:
    shape = _indices(shape)
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise _Bad("holds a numpy array whose data does not match its shape; it is damaged")
    load.spend(len(raw))
    return np.frombuffer(raw, dtype).reshape(shape, order=order).astype(dtype.newbyteorder("="))


def _check_key(key: Any) -> None:
    """Only plain keys (and tuples of them) are hashed: hashing a tuple nested a million deep
    overflows the C stack, which no exception handler catches."""
    plain = (str, bytes, int, float, bool, type(None))
    if type(key) in plain or (type(key) is tuple and len(key) <= 16 and all(type(k) in plain for k in key)):
        return
    raise _Bad(f"uses {_quote(key)} as a dict key or set member, which a network pickle never does; it is "
               f"damaged or hostile")


# (module, name) -> the _Unpickler method that stands in for it (or a class a pickle instantiates)
_ALLOWED: dict[tuple[str, str], str | type] = {
    ("collections", "OrderedDict"): "_dict",
    ("builtins", "set"): "_set",
    ("builtins", "frozenset"): "_frozenset",
    ("__builtin__", "set"): "_set",  # the name protocol 2 (torch.save's) writes for Python 2
    ("__builtin__", "frozenset"): "_frozenset",
    ("_codecs", "encode"): "_latin1",  # how protocol 2 writes bytes
    ("torch._utils", "_rebuild_tensor_v2"): "_tensor",
    ("torch._utils", "_rebuild_tensor"): "_tensor",
    ("torch._utils", "_rebuild_parameter"): "_parameter",
    ("torch._utils", "_rebuild_parameter_with_state"): "_parameter",
    ("torch._tensor", "_rebuild_from_type_v2"): "_from_type",
    ("torch", "Size"): "_tuple",
    ("torch.storage", "_load_from_bytes"): "_load_from_bytes",
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): "_persistent",
    ("numpy", "dtype"): "_dtype",
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib.tflib.network", "Network"): _TFNetwork,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = "_np_reconstruct"
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = "_np_scalar"
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = "_np_frombuffer"
_MARKERS = {("torch", "Tensor"), ("torch._tensor", "Tensor"), ("torch.nn.parameter", "Parameter")}
_CLASSES = (_TFNetwork, _EasyDict)  # the only classes a pickle gets: instantiated, never changed
_BUILDABLE = (_TFNetwork, _Array, _Dtype)  # instances whose state a pickle sets (through __setstate__ only)


class _Dispatch(dict):
    def __missing__(self, code: int) -> Any:
        raise pickle.UnpicklingError(f"byte {code:#04x} is no pickle instruction")


def _charged(op: Callable[[Any], None]) -> Callable[[Any], None]:
    def run(self: _Unpickler) -> None:
        self.allowance.spend(_OP_COST)
        op(self)
    return run


class _Unpickler(pickle._Unpickler):  # pylint: disable=protected-access
    """pickle with an allow-list, on the pure-Python unpickler so that every instruction
    that builds or changes an object can be checked: find_class returns this load's own
    stand-ins, or refuses; REDUCE calls only those; BUILD sets the state of fresh
    instances of the few data classes only (never of a function, class or marker); dict
    keys and set members are plain values; every instruction and every allocation is
    charged to the load's allowance."""

    dispatch = _Dispatch({code: _charged(op) for code, op in pickle._Unpickler.dispatch.items()})

    def __init__(self, file: Any, allowance: _Load, persistent: Callable[[Any], Any] | None = None,
                 pending_ok: bool = False) -> None:
        super().__init__(file)
        self.allowance = allowance
        self.persistent = persistent
        self.pending_ok = pending_ok  # a legacy file's first reading, before its storages
        self.pending = 0
        self.ndarray = _Marker("numpy.ndarray")  # only ever an argument of _np_reconstruct
        self.calls = {key: _Call(".".join(key), getattr(self, fn)) for key, fn in _ALLOWED.items()
                      if isinstance(fn, str)}
        self.tensor_calls = {id(self.calls[k]) for k in self.calls if self.calls[k].fn.__name__ in
                             ("_tensor", "_parameter")}
        self.names: dict[int, str] = {}

    # --- what a pickle may name ---

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        found: Any = self.calls.get(key)
        if found is None and key == ("numpy", "ndarray"):
            found = self.ndarray
        elif found is None and key in _MARKERS:
            found = _Marker(f"{module}.{name}")
        elif found is None and module == "torch" and name in _STORAGES:
            found = _Marker(name, *_STORAGES[name])
        elif found is None and isinstance(_ALLOWED.get(key), type):
            found = _ALLOWED[key]
        if found is None:
            raise _Bad(f"is not a plain network file: loading it would call {_name(module)}.{_name(name)}, which "
                       f"an import of weights never needs, so ganflow refused it (nothing in the file was run)")
        self.names[id(found)] = f"{module}.{name}"
        return found

    def persistent_load(self, pid: Any) -> Any:
        if self.persistent is None:
            raise _Bad("refers to data outside its pickle, which a network pickle never does; nothing in it was "
                       "run")
        return self.persistent(pid)

    def _what(self, obj: Any) -> str:
        """How a message names something a pickle made or named."""
        if id(obj) in self.names:
            return self.names[id(obj)]
        kinds = {np.ndarray: "an array", _Storage: "a torch storage", _Pending: "a tensor", _Array: "a numpy array",
                 _Persistent: "a torch module", _TFNetwork: "a TensorFlow network"}
        return kinds.get(type(obj), f"a {type(obj).__name__.lstrip('_')}")

    # --- instructions that call, build or change objects ---

    def _op_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        if type(func) is not _Call and not any(func is cls for cls in _CLASSES):
            raise _Bad(f"calls {self._what(func)}, which is not a function; it is damaged or hostile (nothing in "
                       f"it was run)")
        if type(args) is not tuple:
            raise _Bad(f"calls {self._what(func)} with {_quote(args)} as its arguments; it is damaged")
        stack[-1] = func(*args)

    def _op_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self._new(cls, args, {})

    def _op_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._new(cls, args, kwargs)

    def _new(self, cls: Any, args: Any, kwargs: Any) -> None:
        if not any(cls is c for c in _CLASSES) or args != () or kwargs != {}:
            raise _Bad(f"makes an instance of {self._what(cls)} in a way a network pickle never does; nothing in "
                       f"it was run")
        self.append(cls.__new__(cls))

    def _op_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) in _BUILDABLE:
            inst.__setstate__(state)
        elif type(inst) is _EasyDict and (state is None or (type(state) is dict and not state)):
            pass  # older Pythons pickled a dict subclass's empty __dict__
        else:
            raise _Bad(f"sets the state of {self._what(inst)}, which a network pickle never does (it would "
                       f"change what reads the file); nothing in it was run")

    def _target(self, kinds: tuple[type, ...], what: str) -> Any:
        target = self.stack[-1]
        if type(target) not in kinds:
            raise _Bad(f"adds {what} to {self._what(target)}, which a network pickle never does; it is damaged "
                       f"or hostile")
        return target

    def _op_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        _check_key(key)
        self._target((dict, _EasyDict), "an item")[key] = value

    def _op_setitems(self) -> None:
        items = self.pop_mark()
        target = self._target((dict, _EasyDict), "items")
        for i in range(0, len(items) - 1, 2):
            _check_key(items[i])
            target[items[i]] = items[i + 1]

    def _op_dict(self) -> None:
        items = self.pop_mark()
        for key in items[::2]:
            _check_key(key)
        self.append({items[i]: items[i + 1] for i in range(0, len(items) - 1, 2)})

    def _op_additems(self) -> None:
        items = self.pop_mark()
        target = self._target((set,), "set members")
        for item in items:
            _check_key(item)
        target.update(items)

    def _op_frozenset(self) -> None:
        items = self.pop_mark()
        for item in items:
            _check_key(item)
        self.append(frozenset(items))

    def _op_append(self) -> None:
        value = self.stack.pop()
        self._target((list,), "an element").append(value)

    def _op_appends(self) -> None:
        items = self.pop_mark()
        self._target((list,), "elements").extend(items)

    # --- the allowed functions, as this load's own ---

    def _items(self, items: Any, what: str, cost: int) -> list:
        if type(items) not in (list, tuple):
            raise _Bad(f"makes a {what} of {_quote(items)}; it is damaged")
        self.allowance.spend(cost * len(items))
        return list(items)

    def _dict(self, items: Any = ()) -> dict:
        out = {}
        for pair in self._items(items, "dict", 128):
            if type(pair) not in (list, tuple) or len(pair) != 2:
                raise _Bad(f"makes a dict of {_quote(pair)}; it is damaged")
            _check_key(pair[0])
            out[pair[0]] = pair[1]
        return out

    def _set(self, items: Any = ()) -> set:
        items = self._items(items, "set", 128)
        for item in items:
            _check_key(item)
        return set(items)

    def _frozenset(self, items: Any = ()) -> frozenset:
        return frozenset(self._set(items))

    def _tuple(self, items: Any = ()) -> tuple:
        return tuple(self._items(items, "tuple", 16))

    def _latin1(self, text: Any, encoding: Any = "latin1") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise _Bad("encodes data in a way a network pickle never does; nothing in it was run")
        self.allowance.spend(len(text))
        return text.encode("latin1")

    def _dtype(self, name: Any, align: Any = False, copy: Any = False) -> _Dtype:
        return _Dtype(name, align, copy)

    def _np_reconstruct(self, subtype: Any, shape: Any, code: Any) -> _Array:
        if subtype is not self.ndarray:
            raise _Bad("holds a numpy array subclass, which a network's weights never use; nothing in it was run")
        return _Array(self.allowance)

    def _np_scalar(self, dtype: Any, raw: Any = None) -> Any:
        if not isinstance(dtype, _Dtype) or not isinstance(raw, bytes):
            raise _Bad("holds a numpy scalar that is not a plain number; nothing in it was run")
        return _from_bytes(raw, dtype.dtype, (), self.allowance).item()

    def _np_frombuffer(self, raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if not isinstance(dtype, _Dtype) or not isinstance(raw, (bytes, bytearray)):
            raise _Bad("holds a numpy array that is not plain numbers; nothing in it was run")
        return _from_bytes(raw, dtype.dtype, shape, self.allowance, "F" if order == "F" else "C")

    def _tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> np.ndarray | _Pending:
        """torch._utils._rebuild_tensor(_v2): the numbers the tensor addresses, copied out of
        its storage by index after checking that each lies inside it. Only a storage this
        load read from the file will do (a view of another tensor could address memory
        past its data), no number may repeat along a dimension (stride 0), and a tensor
        may not hold more numbers than its storage."""
        if type(storage) is not _Storage or storage.load is not self.allowance:
            raise _Bad(f"holds a tensor built on {self._what(storage)} instead of a torch storage of its own "
                       f"(a view of another tensor or array can reach memory the file does not hold); it is "
                       f"damaged or hostile")
        offset, size, stride = _index(offset), _indices(size), _indices(stride)
        if len(size) != len(stride):
            raise _Bad(f"holds a tensor of shape {list(size)} with strides {list(stride)}; it is damaged")
        if any(n > 1 and s == 0 for n, s in zip(size, stride)):
            raise _Bad(f"holds a tensor of shape {list(size)} that repeats one stored number along a dimension "
                       f"(strides {list(stride)}), which no saved weights do; it is damaged or hostile")
        numel = math.prod(size)
        kind = storage.kind
        if numel == 0:
            return np.zeros(size, np.float32 if kind.dtype == "bfloat16" else kind.dtype)
        if offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel:
            raise _Bad(f"holds a tensor of shape {list(size)} (offset {offset}, strides {list(stride)}) reaching "
                       f"past its storage of {storage.numel} numbers; it is damaged or hostile")
        if numel > storage.numel:
            raise _Bad(f"holds a tensor of {numel} numbers (shape {list(size)}, strides {list(stride)}) read from "
                       f"a storage of {storage.numel}, which no saved weights do; it is damaged or hostile")
        data = storage.data
        if data is None:
            if self.pending_ok:
                self.pending += 1
                return _Pending()
            raise _Bad("holds a tensor whose torch storage the file does not store; it is damaged")
        base = storage.start + offset
        contiguous = [math.prod(size[i + 1:]) for i in range(len(size))]
        in_order = all(s == c or n == 1 for n, s, c in zip(size, stride, contiguous))
        if in_order and base == 0 and numel == data.size and kind.dtype != "bfloat16":
            out = data.reshape(size)  # the whole storage, as saved: shared, so read-only
            out.flags.writeable = False
            return out
        self.allowance.spend(numel * (kind.itemsize + (4 if kind.dtype == "bfloat16" else 0)))
        if in_order:
            out = data[base:base + numel].reshape(size).copy()
        else:
            self.allowance.spend(8 * numel)
            index = np.asarray(base, np.int64)
            for n, s in zip(size, stride):
                index = np.add.outer(index, np.arange(n, dtype=np.int64) * s)
            out = np.take(data, index)  # bounds-checked again by numpy
        if kind.dtype == "bfloat16":  # the upper half of a float32
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out

    def _parameter(self, data: Any, *_: Any) -> Any:
        if type(data) not in (np.ndarray, _Pending):
            raise _Bad(f"holds a parameter made of {self._what(data)}, not a tensor; it is damaged")
        return data

    def _from_type(self, func: Any, new_type: Any, args: Any, state: Any = None) -> Any:
        """torch._tensor._rebuild_from_type_v2: only plain tensors and parameters."""
        if not isinstance(new_type, _Marker) or id(func) not in self.tensor_calls or type(args) is not tuple:
            raise _Bad("holds a tensor of an unknown kind; nothing in it was run")
        return func(*args)

    def _persistent(self, meta: Any) -> _Persistent:
        """torch_utils.persistence._reconstruct_persistent_obj, without running module_src."""
        if (not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict)
                or type(meta.get("class_name")) is not str or type(meta.get("module_src", "")) is not str):
            raise _Bad("holds a torch_utils.persistence object of an unknown kind; nothing in it was run")
        return _Persistent(meta["class_name"], meta["state"], meta.get("module_src", ""))

    def _load_from_bytes(self, blob: Any) -> Any:
        """torch.storage._load_from_bytes: a storage saved by torch.save inside the pickle."""
        if not isinstance(blob, bytes):
            raise _Bad("holds a torch storage that is not bytes; it is damaged")
        if self.allowance.nesting:
            raise _Bad("nests torch.save data inside torch.save data, which torch never writes; it is damaged or "
                       "hostile")
        self.allowance.nesting += 1
        try:
            return _load_torch(blob, self.allowance)
        finally:
            self.allowance.nesting -= 1


for _op, _method in ((pickle.REDUCE, "_op_reduce"), (pickle.NEWOBJ, "_op_newobj"), (pickle.NEWOBJ_EX, "_op_newobj_ex"),
                     (pickle.BUILD, "_op_build"), (pickle.SETITEM, "_op_setitem"), (pickle.SETITEMS, "_op_setitems"),
                     (pickle.DICT, "_op_dict"), (pickle.ADDITEMS, "_op_additems"),
                     (pickle.FROZENSET, "_op_frozenset"), (pickle.APPEND, "_op_append"),
                     (pickle.APPENDS, "_op_appends")):
    _Unpickler.dispatch[_op[0]] = _charged(getattr(_Unpickler, _method))


class _Exact(io.BytesIO):
    """Bytes a pickle is read from, where a read the data cannot fill means the file was cut
    short (the pure-Python unpickler would otherwise go on with fewer bytes)."""

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if size is not None and 0 <= size != len(data):
            raise EOFError
        return data

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        if not line.endswith(b"\n"):
            raise EOFError
        return line


def _unpickle(file: Any, allowance: _Load, persistent: Callable[[Any], Any] | None = None,
              pending_ok: bool = False) -> tuple[Any, int]:
    unpickler = _Unpickler(file, allowance, persistent, pending_ok)
    return unpickler.load(), unpickler.pending


def _storage_kind(kind: Any) -> _Marker:
    if not isinstance(kind, _Marker) or kind.dtype is None:
        raise _Bad(f"holds a torch storage of an unknown type ({_quote(kind)}); nothing in it was run")
    return kind


def _load_torch(blob: bytes, allowance: _Load) -> Any:
    """torch.save's legacy format: pickles of its magic number, protocol version and system
    info, the object (storages as persistent ids), the storage keys, then each storage's
    element count and bytes. The storages are read after the object, so a pickle whose
    tensors need them is read twice: first to learn which storages it declares (nothing
    is allocated for them), then, once they are read, for its tensors."""
    if blob.startswith(b"PK\x03\x04"):
        return _load_torch_zip(blob, allowance)
    f = _Exact(blob)
    if _unpickle(f, allowance)[0] != _TORCH_MAGIC or _unpickle(f, allowance)[0] != _TORCH_PROTOCOL:
        raise _Bad("holds torch data in a format this importer does not know")
    info = _unpickle(f, allowance)[0]
    if not isinstance(info, dict):
        raise _Bad("holds torch data without the system information torch.save writes first; it is damaged")
    if info.get("little_endian", True) is False:
        raise _Bad("was saved on a big-endian machine, which this importer does not read")
    if info.get("little_endian", True) is not True:
        raise _Bad(f"holds torch data whose byte order is {_quote(info.get('little_endian'))}; it is damaged")
    storages: dict[str, _Storage] = {}

    def persistent(pid: Any) -> _Storage:
        if type(pid) is not tuple or len(pid) != 6 or pid[0] != "storage":
            raise _Bad("refers to something other than a torch storage; nothing in it was run")
        _, kind, key, _location, numel, view = pid
        kind, numel = _storage_kind(kind), _index(numel)
        if type(key) is not str:
            raise _Bad(f"names a torch storage {_quote(key)}; it is damaged")
        if key not in storages:
            if numel * kind.itemsize > len(blob):
                raise _Bad(f"declares a torch storage of {numel} numbers ({_mib(numel * kind.itemsize)}), more "
                           f"than the whole file holds; it is damaged or hostile")
            storages[key] = _Storage(allowance, kind, numel)
        storage = storages[key]
        if storage.kind.name != kind.name or storage.numel != numel:
            raise _Bad(f"declares the torch storage {_name(key)} twice, differently; it is damaged")
        if view is not None:
            if type(view) is not tuple or len(view) != 3:
                raise _Bad("holds a torch storage view of an unknown kind; it is damaged")
            return storage.view(view[1], view[2])
        return storage

    start, before = f.tell(), allowance.spent
    obj, pending = _unpickle(f, allowance, persistent, pending_ok=True)
    first = allowance.spent - before  # what the first reading made (its tensors wait for the storages)
    keys = _unpickle(f, allowance)[0]
    if type(keys) is not list:
        raise _Bad("lists its torch storages in a format this importer does not know; it is damaged")
    for key in keys:
        storage = storages.get(key) if type(key) is str else None
        if storage is None or storage.array is not None:
            raise _Bad(f"lists a torch storage {_name(key)} it never declared (or twice); it is damaged")
        head = f.read(8)
        if int.from_bytes(head, "little") != storage.numel:
            raise _Bad(f"stores {int.from_bytes(head, 'little')} numbers for a torch storage that declares "
                       f"{storage.numel}; it is damaged")
        nbytes = storage.numel * storage.kind.itemsize
        if len(blob) - f.tell() < nbytes:
            raise EOFError
        storage.fill(f.read(nbytes))
    if pending:
        del obj  # what the first reading made, before the second one makes it again
        allowance.spent -= first
        f.seek(start)
        obj = _unpickle(f, allowance, persistent)[0]
    return obj


def _load_torch_zip(blob: bytes, allowance: _Load) -> Any:
    """torch.save's zip format: <root>/data.pkl with storages in <root>/data/<key>. Every
    entry's declared size is checked (against its storage, its compressed size, and what
    the whole file may unpack to) before it is read."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile as e:
        raise _Bad(f"starts like a zip file but is not a complete one ({_name(str(e))}); it is damaged or cut "
                   f"short") from e
    entries = {info.filename: info for info in archive.infolist()}
    names = [n for n in entries if n.endswith("/data.pkl") and n.count("/") == 1]
    if not names:
        raise _Bad("is a zip file but not one that torch.save wrote (no data.pkl)")
    root = names[0][: -len("data.pkl")]
    if root + "byteorder" in entries:
        info = entries[root + "byteorder"]
        order = allowance.unzip(archive, info) if info.file_size <= 16 else b"?"
        if order == b"big":
            raise _Bad("was saved big-endian, which this importer does not read")
        if order != b"little":
            raise _Bad(f"records its byte order as {_quote(order)}, neither little nor big; it is damaged")
    storages: dict[str, _Storage] = {}

    def persistent(pid: Any) -> _Storage:
        if type(pid) is not tuple or len(pid) != 5 or pid[0] != "storage":
            raise _Bad("refers to something other than a torch storage; nothing in it was run")
        _, kind, key, _location, numel = pid
        kind, numel = _storage_kind(kind), _index(numel)
        if type(key) is not str:
            raise _Bad(f"names a torch storage {_quote(key)}; it is damaged")
        if key not in storages:
            info = entries.get(f"{root}data/{key}")
            if info is None:
                raise _Bad(f"misses the torch storage {_name(key)}; it is damaged")
            storage = _Storage(allowance, kind, numel)
            storage.fill(allowance.unzip(archive, info, expected=numel * kind.itemsize))
            storages[key] = storage
        storage = storages[key]
        if storage.kind.name != kind.name or storage.numel != numel:
            raise _Bad(f"declares the torch storage {_name(key)} twice, differently; it is damaged")
        return storage

    pickled = allowance.unzip(archive, entries[names[0]])
    return _unpickle(_Exact(pickled), allowance, persistent)[0]


def _is_torch_save(blob: bytes) -> bool:
    """torch.save's zip format (a zip's first local header) or its legacy one (which
    starts with the magic number pickled at protocol 2)."""
    return blob.startswith(b"PK\x03\x04") or blob.startswith(pickle.dumps(_TORCH_MAGIC, protocol=2))


def _read(blob: bytes) -> Any:
    if not blob:
        raise _Bad("is empty (0 bytes); it is damaged or incompletely copied")
    allowance = _Load(len(blob))
    if _is_torch_save(blob):
        return _load_torch(blob, allowance)
    return _unpickle(_Exact(blob), allowance)[0]


def _refusal(source: str, e: BaseException) -> str:
    """Any failure while reading a file, as the one sentence a user sees."""
    try:
        detail = str(e)
    except Exception:  # noqa: BLE001 - a message that cannot even be made
        detail = ""
    if isinstance(e, _Bad):
        return f"{source} {detail}"
    if isinstance(e, RecursionError):
        return (f"{source} is nested too deeply to be a network file (a damaged or hostile pickle); ganflow "
                f"stopped reading it, and nothing in it was run")
    if isinstance(e, MemoryError) or type(e).__name__ == "ResourceExhaustedError":
        return (f"{source} would need more memory than this machine could give to import it; it is damaged, or "
                f"a model too large to import here")
    if isinstance(e, EOFError):
        return f"{source} is cut short (it ends in the middle of its data); it is damaged or incompletely copied"
    what = type(e).__name__ + (f": {_name(detail)}" if detail else "")
    if isinstance(e, zipfile.BadZipFile):
        return f"{source} holds a damaged zip archive ({what})"
    return f"cannot read {source} as a network pickle ({what})"


@contextlib.contextmanager
def _refusals(source: str) -> Iterator[None]:
    """Every error reading, converting and building a file's networks becomes one short
    SetupError sentence (no traceback, nothing quoted at length, no empty detail)."""
    try:
        yield
    except SetupError as e:
        message = " ".join(str(e).split())
        limit = len(source) + 400
        if len(message) > limit:  # a last guard: every sentence here quotes at most _QUOTE characters
            raise SetupError(message[:limit - 3] + "...") from None
        if message != str(e):
            raise SetupError(message) from None
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or hostile file: say so in one sentence
        raise SetupError(" ".join(_refusal(source, e).split())) from (None if isinstance(e, _Bad) else e)


def read_pickle(path: Path) -> Any:
    """The contents of a network pickle (plain pickle or torch.save), as data."""
    blob = _read_file(Path(path))
    with _refusals(str(path)):
        return _read(blob)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SetupError(f"cannot read {path} ({e.strerror or e})") from e


# ----- official networks -> ganflow layouts ----------------------------------------------------
#
# What a file claims about its architecture is capped and checked before anything is built:
# each setting is a number in a range ganflow can run, and the weight shapes those settings
# imply (_generator_shapes, _discriminator_shapes, mirroring networks.py) must equal the
# arrays the file holds, so that the networks built afterwards hold no more numbers than
# the file stores.

_MAX_RESOLUTION = 4096
_MAX_CHANNELS = 4096
_MAX_DIM = 4096  # z and w
_MAX_MAPPING_LAYERS = 32
_MAX_MBSTD_GROUP = 256


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


def _count(value: Any, setting: str, low: int, high: int, source: str) -> int:
    """A whole number a file claims (a width, a layer count), within what ganflow imports."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise _refuse(source, f"claims {setting} {_quote(value)}, where ganflow imports {setting} from {low} to "
                              f"{high}")
    return int(value)


def _resolution(value: Any, setting: str, source: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 8 <= value <= _MAX_RESOLUTION
            or value & (value - 1)):
        raise _refuse(source, f"claims {setting} {_quote(value)}, where ganflow imports powers of two from 8 to "
                              f"{_MAX_RESOLUTION}")
    return int(value)


def _positive(value: Any, setting: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            math.isfinite(value) and value > 0):
        raise _refuse(source, f"claims {setting} {_quote(value)}, where ganflow needs a positive finite number")
    return float(value)


def _clamp(value: Any, source: str) -> float | None:
    return None if value is None else _positive(value, "conv_clamp", source)


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
    if synthesis is not None and synthesis.child("b4") is None and (synthesis.child("input") or "SynthesisInput"
                                                                    in synthesis.module_src):
        raise _refuse(source, "is a StyleGAN3 (alias-free, -T or -R) generator, not StyleGAN2; ganflow only runs "
                              "StyleGAN2")
    if G.class_name != "Generator" or mapping is None or synthesis is None or synthesis.child("b4") is None:
        raise _refuse(source, f"holds a {_name(G.class_name)} that is not a StyleGAN2 generator")
    if G.get("img_channels", 3) != 3:
        raise _refuse(source, f"makes {_quote(G.get('img_channels'))}-channel images; ganflow makes RGB")
    resolution = _resolution(G.get("img_resolution"), "img_resolution", source)
    z_dim = _count(G.get("z_dim"), "z_dim", 1, _MAX_DIM, source)
    w_dim = _count(G.get("w_dim"), "w_dim", 1, _MAX_DIM, source)
    c_dim = _count(G.get("c_dim", 0), "c_dim", 0, _MAX_DIM, source)
    p = _Params(source, "generator")

    num_layers = _count(mapping.get("num_layers", 0), "num_layers", 1, _MAX_MAPPING_LAYERS, source)
    if c_dim:
        _embedding(mapping, p, source)
    lr_muls = set()
    for i in range(num_layers):
        fc = mapping.child(f"fc{i}")
        if fc is None or fc.get("activation", "lrelu") != "lrelu":
            raise _refuse(source, f"has a mapping layer fc{i} that is missing or not leaky-ReLU")
        p[f"mapping.fc{i}.weight"], p[f"mapping.fc{i}.bias"] = fc.tensor("weight").T, fc.tensor("bias")
        lr_muls.add(_positive(fc.get("bias_gain", 1.0), "a mapping bias_gain", source))
    if len(lr_muls) != 1:
        raise _refuse(source, "has mapping layers with different learning-rate multipliers")
    w_avg = mapping.tensor("w_avg", required=False)
    if w_avg is None:
        log.warning("%s tracks no average w: truncation (psi < 1) will pull towards zero", source)
        w_avg = np.broadcast_to(np.float32(0), (w_dim,))
    p["mapping.w_avg"] = w_avg

    clamps = set()
    res = 4
    while res <= resolution:
        block = synthesis.child(f"b{res}")
        if block is None:
            raise _refuse(source, f"has no synthesis block at {res}px")
        if block.get("architecture", "skip") != "skip":
            raise _refuse(source, f"uses the {_quote(block.get('architecture'))} generator architecture; ganflow "
                                  f"runs StyleGAN2's default 'skip' (configs e and f)")
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
            else:  # no noise input: a zero strength does exactly that (zeros that take no memory)
                p[f"{key}.noise_strength"] = np.zeros((), np.float32)
                p[f"{key}.noise_const"] = np.broadcast_to(np.float32(0), (res, res))
            clamps.add(_clamp(layer.get("conv_clamp"), source))
        torgb = block.child("torgb")
        if torgb is None:
            raise _refuse(source, f"has no toRGB at {res}px")
        p[f"b{res}.torgb.weight"] = _hwio(torgb.tensor("weight"))
        p[f"b{res}.torgb.affine.weight"] = torgb.need("affine").tensor("weight").T
        p[f"b{res}.torgb.affine.bias"] = torgb.need("affine").tensor("bias")
        p[f"b{res}.torgb.bias"] = torgb.tensor("bias")
        clamps.add(_clamp(torgb.get("conv_clamp"), source))
        res *= 2

    skw = synthesis.kwargs
    arch = dict(resolution=resolution, z_dim=z_dim, w_dim=w_dim, mapping_layers=num_layers,
                mapping_lr_mul=lr_muls.pop(),
                channel_base=_count(skw.get("channel_base", 32768), "channel_base", 1, 1 << 24, source),
                channel_max=_count(skw.get("channel_max", 512), "channel_max", 1, _MAX_CHANNELS, source),
                conv_clamp=_one_value(clamps, source, "conv_clamp"))
    if c_dim:
        arch["c_dim"] = c_dim
    return arch, p


def _embedding(mapping: _Persistent, p: _Params, source: str) -> None:
    """A conditional mapping's label embedding (a linear dense layer at the full learning
    rate, as upstream's), into p as mapping.embed."""
    embed = mapping.child("embed")
    if embed is None or embed.get("activation", "linear") != "linear" or embed.get("bias_gain", 1.0) != 1:
        raise _refuse(source, "has a conditional mapping without a plain label embedding (embed)")
    p["mapping.embed.weight"], p["mapping.embed.bias"] = embed.tensor("weight").T, embed.tensor("bias")


def _torch_discriminator(D: _Persistent, source: str) -> tuple[dict, _Params]:
    """A persistence-pickled StyleGAN2 Discriminator -> (ganflow architecture, weights)."""
    if D.class_name != "Discriminator" or D.child("b4") is None:
        raise _refuse(source, f"holds a {_name(D.class_name)} that is not a StyleGAN2 discriminator")
    resolution = _resolution(D.get("img_resolution"), "img_resolution", source)
    c_dim = _count(D.get("c_dim", 0), "c_dim", 0, _MAX_DIM, source)
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
                clamps.add(_clamp(layer.get("conv_clamp"), source))
        res //= 2
    epilogue = D.child("b4")
    mbstd = epilogue.child("mbstd")
    cmap_dim = _count(epilogue.get("cmap_dim", 0), "cmap_dim", 0, _MAX_DIM, source)
    if mbstd is None or mbstd.get("num_channels", 1) != 1 or bool(cmap_dim) != bool(c_dim):
        raise _refuse(source, "has a 4x4 epilogue other than StyleGAN2's (one minibatch-stddev feature, and a "
                              "label projection exactly when the model is conditional)")
    group = mbstd.get("group_size")
    if group is None:
        log.warning("%s takes the minibatch stddev over the whole batch; ganflow uses groups of 4 "
                    "(scores of batches larger than 4 differ from upstream's)", source)
        group = 4
    conv = epilogue.need("conv")
    p["b4.conv.weight"], p["b4.conv.bias"] = _hwio(conv.tensor("weight")), conv.tensor("bias")
    clamps.add(_clamp(conv.get("conv_clamp"), source))
    channels = conv.tensor("bias").shape[0]
    p["b4.fc.weight"] = _fc_nhwc(epilogue.need("fc").tensor("weight").T, channels)
    p["b4.fc.bias"] = epilogue.need("fc").tensor("bias")
    p["b4.out.weight"], p["b4.out.bias"] = epilogue.need("out").tensor("weight").T, epilogue.need("out").tensor("bias")
    kw = D.kwargs
    arch = dict(resolution=resolution,
                channel_base=_count(kw.get("channel_base", 32768), "channel_base", 1, 1 << 24, source),
                channel_max=_count(kw.get("channel_max", 512), "channel_max", 1, _MAX_CHANNELS, source),
                mbstd_group=_count(group, "mbstd group_size", 1, _MAX_MBSTD_GROUP, source),
                mbstd_grouping="strided", conv_clamp=_one_value(clamps, source, "conv_clamp"))
    if c_dim:  # the projection discriminator's mapping of the labels: embed, then fc0.. at lr 0.01
        mapping = D.child("mapping")
        if mapping is None:
            raise _refuse(source, "is a conditional discriminator without a mapping of its labels")
        layers = _count(mapping.get("num_layers", 0), "the label mapping's num_layers", 1, _MAX_MAPPING_LAYERS,
                        source)
        _embedding(mapping, p, source)
        for i in range(layers):
            fc = mapping.child(f"fc{i}")
            if fc is None or fc.get("activation", "lrelu") != "lrelu" or fc.get("bias_gain") != 0.01:
                raise _refuse(source, f"has a label mapping layer fc{i} that is missing, not leaky-ReLU or not at "
                                      "the official learning rate 0.01")
            p[f"mapping.fc{i}.weight"], p[f"mapping.fc{i}.bias"] = fc.tensor("weight").T, fc.tensor("bias")
        arch.update(c_dim=c_dim, cmap_dim=cmap_dim, c_mapping_layers=layers)
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
    kwargs = net.state.get("static_kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise _refuse(source, "holds a TensorFlow network whose settings (static_kwargs) are not a dict")
    kwargs = dict(kwargs or {})
    for key, value in kwargs.items():
        if key == "label_size" and value:
            raise _refuse(source, f"is a conditional model (label_size {_quote(value)}: images depend on a class "
                                  f"label), which ganflow does not support")
        if key in _TF_REQUIRED and (list(value) if isinstance(value, tuple) else value) != _TF_REQUIRED[key]:
            raise _refuse(source, f"was built with {key}={_quote(value)}; ganflow runs StyleGAN2 with "
                                  f"{key}={_TF_REQUIRED[key]!r}")
        if key not in _TF_REQUIRED and key not in _TF_IGNORED and key not in known:
            raise _refuse(source, f"was built with an option this importer does not know ({_name(key)}="
                                  f"{_quote(value)}), so it cannot promise the same images")
    return kwargs


def _tf_variables(net: _TFNetwork, source: str, prefix: str = "", depth: int = 0) -> dict[str, np.ndarray]:
    """Every variable of a TF1 network and its components, named as legacy paths."""
    if depth > _MAX_NESTING:
        raise _refuse(source, f"is nested too deeply: its TensorFlow networks hold networks more than "
                              f"{_MAX_NESTING} levels down, where StyleGAN2's go 1 level down")
    out = {}
    variables = net.state.get("variables") or []
    if not isinstance(variables, list):
        raise _refuse(source, "holds a TensorFlow network whose variables are not a list")
    for item in variables:
        if not isinstance(item, (tuple, list)) or len(item) != 2 or type(item[0]) is not str:
            raise _refuse(source, "holds a TensorFlow network whose variables are not (name, value) pairs")
        name, value = item
        if isinstance(value, _Array):
            value = value.array
        if isinstance(value, (int, float)):
            value = np.asarray(value, np.float32)
        if not isinstance(value, np.ndarray):
            raise _refuse(source, f"holds a variable {_name(prefix + name)} that is not an array")
        out[prefix + name] = value.astype(np.float32)
    components = net.state.get("components") or {}
    if not isinstance(components, dict):
        raise _refuse(source, "holds a TensorFlow network whose components are not a dict")
    for cname, comp in components.items():
        if not isinstance(comp, _TFNetwork) or type(cname) is not str:
            raise _refuse(source, f"holds a component {_name(cname)} that is not a network")
        out.update(_tf_variables(comp, source, f"{prefix}{cname}/", depth + 1))
    return out


def _tf_check_funcs(net: _TFNetwork, funcs: set, source: str, what: str) -> None:
    func = net.state.get("build_func_name")
    if type(func) is not str or func not in funcs:
        hint = " (StyleGAN2 configs a-d or the original StyleGAN)" if func in (
            "G_synthesis_stylegan_revised", "D_stylegan", "G_style", "D_basic") else ""
        raise _refuse(source, f"holds a TensorFlow {what} built by {_name(func)}{hint}; ganflow imports StyleGAN2 "
                              f"configs e and f")


def _tf_generator(Gs: _TFNetwork, source: str) -> tuple[dict, _Params]:
    _tf_check_funcs(Gs, _TF_G_FUNCS, source, "generator")
    comps = Gs.state.get("components") or {}
    if (not isinstance(comps, dict) or not isinstance(comps.get("mapping"), _TFNetwork)
            or not isinstance(comps.get("synthesis"), _TFNetwork)):
        raise _refuse(source, "holds a TensorFlow generator without mapping and synthesis networks")
    _tf_check_funcs(comps["mapping"], _TF_MAPPING_FUNCS, source, "mapping network")
    _tf_check_funcs(comps["synthesis"], _TF_SYNTHESIS_FUNCS, source, "synthesis network")
    kw = _tf_kwargs(Gs, source, {"resolution", "latent_size", "dlatent_size", "mapping_layers", "mapping_fmaps",
                                 "mapping_lrmul", "label_fmaps", "fmap_base", "fmap_max", "fmap_min", "architecture",
                                 "use_noise", "conv_clamp"})
    if kw.get("architecture", "skip") != "skip":
        raise _refuse(source, f"uses the {_quote(kw['architecture'])} generator architecture; ganflow runs "
                              f"StyleGAN2's default 'skip' (configs e and f)")
    resolution = _resolution(kw.get("resolution", 1024), "resolution", source)
    num_layers = _count(kw.get("mapping_layers", 8), "mapping_layers", 1, _MAX_MAPPING_LAYERS, source)
    arch = dict(resolution=resolution,
                z_dim=_count(kw.get("latent_size", 512), "latent_size", 1, _MAX_DIM, source),
                w_dim=_count(kw.get("dlatent_size", 512), "dlatent_size", 1, _MAX_DIM, source),
                mapping_layers=num_layers,
                mapping_lr_mul=_positive(kw.get("mapping_lrmul", 0.01), "mapping_lrmul", source),
                channel_base=2 * _count(kw.get("fmap_base", 16 << 10), "fmap_base", 1, 1 << 23, source),
                channel_max=_count(kw.get("fmap_max", 512), "fmap_max", 1, _MAX_CHANNELS, source),
                conv_clamp=_clamp(kw.get("conv_clamp"), source))
    v = _tf_variables(Gs, source)
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
                p[f"{key}.noise_const"] = np.broadcast_to(np.float32(0), (res, res))
            index += 1
        p[f"b{res}.torgb.weight"] = v.get(f"{scope}/ToRGB/weight")
        p[f"b{res}.torgb.affine.weight"] = v.get(f"{scope}/ToRGB/mod_weight")
        mod_bias = v.get(f"{scope}/ToRGB/mod_bias")
        p[f"b{res}.torgb.affine.bias"] = None if mod_bias is None else mod_bias + 1
        p[f"b{res}.torgb.bias"] = v.get(f"{scope}/ToRGB/bias")
        res *= 2
    for key in [k for k, value in p.items() if value is None]:
        del p[key]  # reported by take() with the official name
    return arch, p


def _tf_discriminator(D: _TFNetwork, source: str) -> tuple[dict, _Params]:
    _tf_check_funcs(D, _TF_D_FUNCS, source, "discriminator")
    kw = _tf_kwargs(D, source, {"resolution", "fmap_base", "fmap_max", "fmap_min", "architecture",
                                "mbstd_group_size", "conv_clamp", "mapping_layers", "mapping_fmaps",
                                "mapping_lrmul"})
    if kw.get("architecture", "resnet") != "resnet":
        raise _refuse(source, f"uses the {_quote(kw['architecture'])} discriminator architecture; ganflow runs "
                              f"StyleGAN2's default 'resnet' (configs e and f)")
    resolution = _resolution(kw.get("resolution", 1024), "resolution", source)
    # D_stylegan2 (NVlabs/stylegan2) groups 4 by default; D_main (stylegan2-ada) the whole batch.
    group = kw.get("mbstd_group_size", 4 if D.state.get("build_func_name") == "D_stylegan2" else None)
    if group is None:
        log.warning("%s takes the minibatch stddev over the whole batch; ganflow uses groups of 4 "
                    "(scores of batches larger than 4 differ from upstream's)", source)
        group = 4
    arch = dict(resolution=resolution,
                channel_base=2 * _count(kw.get("fmap_base", 16 << 10), "fmap_base", 1, 1 << 23, source),
                channel_max=_count(kw.get("fmap_max", 512), "fmap_max", 1, _MAX_CHANNELS, source),
                mbstd_group=_count(group, "mbstd group_size", 1, _MAX_MBSTD_GROUP, source),
                mbstd_grouping="strided", conv_clamp=_clamp(kw.get("conv_clamp"), source))
    v = _tf_variables(D, source)
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
    return arch, p


# ----- checked against the architecture, then built ----------------------------------------------

def _generator_shapes(arch: dict) -> dict[str, tuple[int, ...]]:
    """The shape of every weight a ganflow Generator of `arch` holds, by official name (the
    variables networks.Generator makes, computed without making them)."""
    z, w, r = arch["z_dim"], arch["w_dim"], int(math.log2(arch["resolution"]))
    ch = [networks.channels_at(2 ** i, arch["channel_base"], arch["channel_max"]) for i in range(r + 1)]
    shapes = _mapping_shapes(z, arch.get("c_dim", 0), w, arch["mapping_layers"])
    shapes["mapping.w_avg"] = (w,)
    shapes["b4.const"] = (1, 4, 4, ch[2])
    for i in range(2, r + 1):
        res, cin, cout = 2 ** i, ch[max(i - 1, 2)], ch[i]
        for name, c in (("conv0", cin), ("conv1", cout)) if res > 4 else (("conv1", cout),):
            key = f"b{res}.{name}"
            shapes.update({f"{key}.weight": (3, 3, c, cout), f"{key}.affine.weight": (w, c),
                           f"{key}.affine.bias": (c,), f"{key}.bias": (cout,), f"{key}.noise_strength": (),
                           f"{key}.noise_const": (res, res)})
        shapes.update({f"b{res}.torgb.weight": (1, 1, cout, 3), f"b{res}.torgb.affine.weight": (w, cout),
                       f"b{res}.torgb.affine.bias": (cout,), f"b{res}.torgb.bias": (3,)})
    return shapes


def _mapping_shapes(z: int, c: int, w: int, layers: int) -> dict[str, tuple[int, ...]]:
    """A mapping's dense layers (and, with labels, its embedding), as networks.Mapping makes them."""
    dims = [z + (w if c else 0)] + [w] * layers
    shapes = {"mapping.embed.weight": (c, w), "mapping.embed.bias": (w,)} if c else {}
    for i in range(layers):
        shapes[f"mapping.fc{i}.weight"], shapes[f"mapping.fc{i}.bias"] = (dims[i], dims[i + 1]), (dims[i + 1],)
    return shapes


def _discriminator_shapes(arch: dict) -> dict[str, tuple[int, ...]]:
    """The shape of every weight a ganflow Discriminator of `arch` holds, by official name."""
    r = int(math.log2(arch["resolution"]))
    ch = [networks.channels_at(2 ** i, arch["channel_base"], arch["channel_max"]) for i in range(r + 1)]
    top = 2 ** r
    shapes: dict[str, tuple[int, ...]] = {f"b{top}.fromrgb.weight": (1, 1, 3, ch[r]), f"b{top}.fromrgb.bias": (ch[r],)}
    for i in range(r, 2, -1):
        res, cin, cout = 2 ** i, ch[i], ch[i - 1]
        shapes.update({f"b{res}.conv0.weight": (3, 3, cin, cin), f"b{res}.conv0.bias": (cin,),
                       f"b{res}.conv1.weight": (3, 3, cin, cout), f"b{res}.conv1.bias": (cout,),
                       f"b{res}.skip.weight": (1, 1, cin, cout)})
    shapes.update({"b4.conv.weight": (3, 3, ch[2] + 1, ch[2]), "b4.conv.bias": (ch[2],),
                   "b4.fc.weight": (16 * ch[2], ch[2]), "b4.fc.bias": (ch[2],)})
    out = arch.get("cmap_dim") or 1
    shapes.update({"b4.out.weight": (ch[2], out), "b4.out.bias": (out,)})
    if arch.get("c_dim"):
        shapes.update(_mapping_shapes(0, arch["c_dim"], out, arch["c_mapping_layers"]))
    return shapes


def _check_weights(p: _Params, shapes: dict[str, tuple[int, ...]]) -> None:
    """Before anything is built: the file holds every weight the claimed architecture has,
    each of that shape (so the network holds no more numbers than the file stores), and
    none is NaN or infinite (which would make blank images without a word)."""
    for key, shape in shapes.items():
        value = p.take(key)
        if value.shape != shape:
            raise SetupError(f"{p.source}: its {p.what}'s {key} has shape {list(value.shape)} where a ganflow "
                             f"StyleGAN2 of the same settings has {list(shape)}; ganflow cannot run it")
        finite = np.isfinite(value)
        if not finite.all():
            raise SetupError(f"{p.source}: its {p.what}'s {key} holds {value.size - int(finite.sum())} NaN or "
                             f"infinite values of {value.size}; a network with them makes blank images, so ganflow "
                             f"refused it")


def _set(variable: Any, value: np.ndarray, name: str, params: _Params) -> None:
    value = np.asarray(value, np.float32)
    if tuple(variable.shape) != value.shape:
        raise SetupError(f"{params.source}: its {params.what}'s {name} has shape {list(value.shape)} where a "
                         f"ganflow StyleGAN2 of the same settings has {list(variable.shape)}; ganflow cannot run it")
    variable.assign(value)


def _fill_mapping(mapping: Any, p: _Params) -> None:
    for name, layer in ([("embed", mapping.embed)] if mapping.embed is not None else []) + [
            (f"fc{i}", fc) for i, fc in enumerate(mapping.fcs)]:
        _set(layer.weight, p.take(f"mapping.{name}.weight"), f"mapping.{name}.weight", p)
        _set(layer.bias, p.take(f"mapping.{name}.bias"), f"mapping.{name}.bias", p)


def _fill_generator(G: Any, p: _Params) -> None:
    _fill_mapping(G.mapping, p)
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
    if D.mapping is not None:
        _fill_mapping(D.mapping, p)


def _build(cls: Any, arch: dict, params: _Params, fill: Callable, source: str) -> Any:
    try:
        net = cls(**arch)
    except ValueError as e:  # e.g. a resolution ganflow does not build
        raise SetupError(f"{source}: ganflow cannot build its {params.what} ({_name(str(e))})") from e
    fill(net, params)
    return net


def import_networks(src: str | Path) -> tuple[Any, Any, dict]:
    """(Generator, Discriminator, info) from an official StyleGAN2 pickle, without running
    anything in it. Every failure is one SetupError sentence, and the networks are built
    only after the file's arrays match the architecture it claims."""
    src = Path(src)
    source = str(src)
    blob = _read_file(src)
    with _refusals(source):
        data = _read(blob)
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
        del data
        _check_weights(g_params, _generator_shapes(g_arch))
        _check_weights(d_params, _discriminator_shapes(d_arch))
        G = _build(networks.Generator, g_arch, g_params, _fill_generator, source)
        D = _build(networks.Discriminator, d_arch, d_params, _fill_discriminator, source)
    info = {"imported_from": src.name, "source_sha256": hashlib.sha256(blob).hexdigest(), "source_format": fmt}
    return G, D, info


def import_weights(src: str | Path, out_dir: str | Path) -> dict:
    """Import SRC and write it as a ganflow export in out_dir; returns the info it wrote."""
    G, D, info = import_networks(src)
    weights.write_export(Path(out_dir), G, D, info)
    log.info("imported %s: %dpx, z %d, w %d, conv_clamp %s -> %s", src, G.resolution, G.z_dim, G.w_dim,
             G.architecture["conv_clamp"], out_dir)
    return info


def main(argv: Sequence[str] | None = None, prog: str = "python -m ganflow.import_weights") -> int:
    """python -m ganflow.import_weights SRC OUT"""
    parser = argparse.ArgumentParser(
        prog=prog,
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
