"""Python attribute values as ``otlpx_attribute`` arrays, written into
reusable per-thread buffers.

A call first *collects* every attribute as nine flat numbers (key pointer
and length, type, string pointer and length, int, double, array pointer
and length), then writes them all with one ``struct.pack_into`` of a
format cached per count: one C call for the whole array instead of a
ctypes field write (or a pack) per attribute.

Strings are passed by pointer into the ``bytes`` objects that hold their
UTF-8 (no copy); the caller keeps every such object referenced (its
``keep`` list) until the C call that reads them returns. Keys are encoded
once, cached with their pointer and length, and kept for the process.

What the C ABI can carry: str, bool, int (64-bit), float, bytes, and
homogeneous sequences of one of those. Anything else the OpenTelemetry
SDK allows (``None``, mixed or nested sequences, mappings, ints past 64
bits) has no otlpx type: ``None`` is dropped and counted in the
dropped-attributes count, every other value is sent as its JSON text
(bytes in it as hex, ``str()`` for what JSON cannot say).
"""

from __future__ import annotations

import ctypes
import json
import struct
import threading

from ._ffi import ATTR_ITEM, ATTR_SIZE, BYTES_OFFSET, EVENT_SIZE, LINK_SIZE, SPAN_SIZE, address_of

# otlpx_value_type
STRING, BOOL, INT, DOUBLE, BYTES = 1, 2, 3, 4, 5
STRING_ARRAY, BOOL_ARRAY, INT_ARRAY, DOUBLE_ARRAY, BYTES_ARRAY = 6, 7, 8, 9, 10

# One attribute, every field: 9 values (its layout is checked by _ffi).
_ONE = ATTR_ITEM
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

_CACHE_MAX = 4096
# key -> (pointer, length) of its UTF-8, which _key_bytes keeps alive.
keys: dict = {}
_key_bytes: list = []


def key_entry(key) -> tuple:
    """A key's (pointer, length); cached up to _CACHE_MAX keys, whose
    bytes then live as long as the process."""
    e = keys.get(key)
    if e is None:
        kb = encode_text(key)
        e = (address_of(kb) + BYTES_OFFSET, len(kb), kb)
        if len(keys) < _CACHE_MAX and type(key) is str:
            _key_bytes.append(kb)
            keys[key] = e
    return e


def encode_text(s) -> bytes:
    """UTF-8 of any text; lone surrogates become "?" (otlpx refuses
    invalid UTF-8)."""
    if type(s) is not str:
        s = str(s)
    try:
        return s.encode()
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace")


_formats: dict = {}


def attrs_format(n: int) -> struct.Struct:
    """The format of ``n`` attributes in a row."""
    f = _formats.get(n)
    if f is None:
        f = struct.Struct("@" + _ONE * n)
        if n <= 256:
            _formats[n] = f
    return f


_pair_formats: dict = {}


def _str_array(items, keep) -> bytes:
    """An ``otlpx_str[]`` over the (already encoded) ``items``."""
    n = len(items)
    fmt = _pair_formats.get(n)
    if fmt is None:
        fmt = struct.Struct("@" + "PN" * n)
        if n <= 256:
            _pair_formats[n] = fmt
    flat = []
    for b in items:
        keep(b)
        flat.append(address_of(b) + BYTES_OFFSET)
        flat.append(len(b))
    return fmt.pack(*flat)


# tuple of str -> (array address, array bytes, element bytes), for life.
_str_arrays: dict = {}


class _Unrepresentable(Exception):
    pass


def array_value(v, keep) -> tuple:
    """(type, pointer, length) of a sequence's elements as a C array, or
    raises :class:`_Unrepresentable` (mixed, nested, None in it)."""
    n = len(v)
    if n == 0:
        return STRING_ARRAY, 0, 0
    if type(v) is tuple:
        # Tuples of strings repeat (the SDK makes each value a tuple): their
        # arrays are cached. Only str ones: no other type equals a str, so
        # an equal tuple is the same strings (1 == True == 1.0 otherwise).
        try:
            hit = _str_arrays.get(v)
        except TypeError:  # unhashable elements
            hit = None
        if hit is not None:
            return STRING_ARRAY, hit[0], n
    t = type(v[0])
    for x in v:
        if type(x) is not t:
            raise _Unrepresentable
    if t is str:
        encoded = [encode_text(x) for x in v]
        arr = _str_array(encoded, keep)
        at = STRING_ARRAY
        if type(v) is tuple and n <= 64 and len(_str_arrays) < _CACHE_MAX:
            # The entry keeps the array and the strings it points into.
            _str_arrays[v] = (address_of(arr) + BYTES_OFFSET, arr, encoded)
    elif t is bool:
        arr, at = bytes(v), BOOL_ARRAY
    elif t is int:
        arr, at = struct.pack(f"@{n}q", *v), INT_ARRAY
    elif t is float:
        arr, at = struct.pack(f"@{n}d", *v), DOUBLE_ARRAY
    elif t is bytes:
        arr, at = _str_array(v, keep), BYTES_ARRAY
    else:
        raise _Unrepresentable
    keep(arr)
    return at, address_of(arr) + BYTES_OFFSET, n


def _json_default(o):
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    if isinstance(o, (tuple, list, set, frozenset)):
        return list(o)
    return str(o)


def as_text(v) -> str:
    """What a value with no otlpx type is sent as."""
    try:
        return json.dumps(v, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(v)


def _text_value(text: str, keep) -> tuple:
    vb = encode_text(text)
    keep(vb)
    return (STRING, address_of(vb) + BYTES_OFFSET, len(vb), 0, 0.0, 0, 0)


def value_fields(v, keep):
    """The 7 value fields (type .. array length) for any value; None when
    it is dropped (``None``)."""
    t = type(v)
    try:
        if t is str or isinstance(v, str):
            return _text_value(v, keep)
        if t is bool:
            return (BOOL, 0, 0, 1 if v else 0, 0.0, 0, 0)
        if t is int or (isinstance(v, int) and not isinstance(v, bool)):
            v = int(v)
            if _INT_MIN <= v <= _INT_MAX:
                return (INT, 0, 0, v, 0.0, 0, 0)
            return _text_value(str(v), keep)
        if t is float or isinstance(v, float):
            return (DOUBLE, 0, 0, 0, float(v), 0, 0)
        if t is bytes or isinstance(v, (bytes, bytearray)):
            vb = bytes(v)
            keep(vb)
            return (BYTES, address_of(vb) + BYTES_OFFSET, len(vb), 0, 0.0, 0, 0)
        if v is None:
            return None
        if isinstance(v, (tuple, list)):
            at, ap, n = array_value(v, keep)
            return (at, 0, 0, 0, 0.0, ap, n)
    except (_Unrepresentable, struct.error, OverflowError):
        pass
    return _text_value(as_text(v), keep)


def collect(items, out: list, keep) -> tuple:
    """Appends the 9 fields of each (key, value) of ``items`` to ``out``;
    returns (written, dropped). Values are checked only as far as
    :func:`pack_attrs` needs: an int past 64 bits makes it fail, and
    :func:`fix_ints` then mends ``out``."""
    ext = out.extend
    keyed = keys.get
    off = BYTES_OFFSET
    addr = address_of
    n = 0
    dropped = 0
    for k, v in items:
        e = keyed(k)
        if e is None:
            e = key_entry(k)
            keep(e[2])
        t = type(v)
        if t is str:
            try:
                vb = v.encode()
            except UnicodeEncodeError:
                vb = encode_text(v)
            keep(vb)
            ext((e[0], e[1], 1, addr(vb) + off, len(vb), 0, 0.0, 0, 0))
        elif t is int:
            ext((e[0], e[1], 3, 0, 0, v, 0.0, 0, 0))
        elif t is float:
            ext((e[0], e[1], 4, 0, 0, 0, v, 0, 0))
        elif t is bool:
            ext((e[0], e[1], 2, 0, 0, v, 0.0, 0, 0))
        else:
            f = value_fields(v, keep)
            if f is None:
                dropped += 1
                continue
            ext((e[0], e[1]) + f)
        n += 1
    return n, dropped


def fix_ints(out: list, keep) -> None:
    """Turns every INT value out of 64-bit range in ``out`` into its text."""
    for i in range(0, len(out), 9):
        if out[i + 2] == INT and not _INT_MIN <= out[i + 5] <= _INT_MAX:
            out[i + 2 : i + 9] = _text_value(str(out[i + 5]), keep)


def pack_attrs(buf, out: list, n: int, keep) -> None:
    """Writes the ``n`` collected attributes ``out`` at the start of
    ``buf`` (which must hold them)."""
    fmt = attrs_format(n)
    try:
        fmt.pack_into(buf, 0, *out)
    except struct.error:
        fix_ints(out, keep)
        fmt.pack_into(buf, 0, *out)


def items_of(attributes) -> tuple:
    """(items, dropped) of an SDK attribute container: a
    ``BoundedAttributes`` (read without its lock: a finished span's are
    immutable), a mapping, or None."""
    if not attributes:
        return (), getattr(attributes, "dropped", 0) or 0
    d = getattr(attributes, "_dict", None)
    if d is not None:
        return d.items(), attributes.dropped
    return attributes.items(), 0


class Scratch:
    """One thread's reusable buffers: the span struct, and arrays of
    attributes, events and links that grow as needed (never shrink)."""

    __slots__ = (
        "span",
        "span_addr",
        "attrs",
        "attrs_addr",
        "attrs_cap",
        "events",
        "events_addr",
        "events_cap",
        "links",
        "links_addr",
        "links_cap",
        "busy",
        "trace_id",
        "trace_id_bytes",
    )

    def __init__(self) -> None:
        self.span = (ctypes.c_char * SPAN_SIZE)()
        self.span_addr = ctypes.c_void_p(ctypes.addressof(self.span))
        self.attrs_cap = self.events_cap = self.links_cap = 0
        self.grow_attrs(32)
        self.grow_events(4)
        self.grow_links(4)
        self.busy = False
        self.trace_id = None
        self.trace_id_bytes = b""

    def grow_attrs(self, need: int) -> None:
        cap = max(need, self.attrs_cap * 2)
        self.attrs = (ctypes.c_char * (cap * ATTR_SIZE))()
        self.attrs_addr, self.attrs_cap = ctypes.addressof(self.attrs), cap

    def grow_events(self, need: int) -> None:
        cap = max(need, self.events_cap * 2)
        self.events = (ctypes.c_char * (cap * EVENT_SIZE))()
        self.events_addr, self.events_cap = ctypes.addressof(self.events), cap

    def grow_links(self, need: int) -> None:
        cap = max(need, self.links_cap * 2)
        self.links = (ctypes.c_char * (cap * LINK_SIZE))()
        self.links_addr, self.links_cap = ctypes.addressof(self.links), cap


_local = threading.local()


def scratch() -> Scratch:
    """This thread's scratch buffers, or fresh ones if they are in use (a
    signal handler re-entering a call on this thread)."""
    try:
        s = _local.s
    except AttributeError:
        s = _local.s = Scratch()
    if s.busy:
        return Scratch()
    return s


def attribute_array(attributes, keep) -> tuple:
    """A standalone ``otlpx_attribute[]`` for the calls off the SDK path:
    (address or None, count, buffer to keep alive)."""
    items = attributes.items() if hasattr(attributes, "items") else attributes
    out: list = []
    n, _ = collect(items, out, keep)
    if not n:
        return None, 0, None
    buf = (ctypes.c_char * (n * ATTR_SIZE))()
    pack_attrs(buf, out, n, keep)
    return ctypes.addressof(buf), n, buf
