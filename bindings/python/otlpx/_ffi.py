"""The C ABI of otlpx (``otlpx.h``) through ctypes: finding the library,
the structs' layouts, the function prototypes and the error type.

Calls that never block (recording, handle spans, tracers, stats) go
through a :class:`ctypes.PyDLL` view of the library, which keeps the GIL:
cheaper for calls this short, and it makes them mutually exclusive with
``otlpx_engine_free`` (also called that way), which must not run
concurrently with calls on the same engine. Calls that may block (engine
build, flush, shutdown) go through a :class:`ctypes.CDLL` view, which
releases the GIL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import os
import struct
import sys
from ctypes import (
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_double,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

__all__ = ["OtlpxError", "Status", "lib", "blocking", "library_path"]

# ---------------------------------------------------------------------------
# Statuses and errors
# ---------------------------------------------------------------------------


class Status(enum.IntEnum):
    """``otlpx_status``: what a call did (0 is success)."""

    OK = 0
    NULL_POINTER = 1
    INVALID_UTF8 = 2
    INVALID_ARGUMENT = 3
    INVALID_HANDLE = 4
    CONFIG = 5
    START_FAILED = 6
    RING_FULL = 7
    TOO_LARGE = 8
    TIMEOUT = 9
    NOT_EXPORTING = 10
    SHUT_DOWN = 11
    SPAN_BUSY = 12
    TOO_MANY_SPANS = 13
    PANIC = 14
    BUFFER_TOO_SMALL = 15
    EXPORT_FAILED = 16


class OtlpxError(Exception):
    """A call into libotlpx failed.

    ``status`` is the ``otlpx_status`` number (an :class:`Status` when
    known), ``message`` says what failed and why: the call, the status's
    text (``otlpx_status_str``) and, for the calls that set one, the
    library's own message (``otlpx_last_error``).
    """

    def __init__(self, status: int, message: str) -> None:
        try:
            status = Status(status)
        except ValueError:
            pass
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        name = self.status.name if isinstance(self.status, Status) else str(self.status)
        return f"{self.message} [otlpx status {int(self.status)}: {name}]"


# ---------------------------------------------------------------------------
# Finding the library
# ---------------------------------------------------------------------------

if sys.platform == "darwin":
    _FILE = "libotlpx_ffi.dylib"
elif sys.platform == "win32":
    _FILE = "otlpx_ffi.dll"
else:
    _FILE = "libotlpx_ffi.so"


def _candidates() -> list[tuple[str, str]]:
    """Where to look, in order, each with how it was chosen."""
    found = []
    env = os.environ.get("OTLPX_LIBRARY")
    if env:
        return [(env, "$OTLPX_LIBRARY")]
    # A checkout: bindings/python/otlpx/_ffi.py -> the repository's target/.
    root = Path(__file__).resolve().parents[3]
    for profile in ("release", "debug"):
        found.append((str(root / "target" / profile / _FILE), f"the checkout's target/{profile}"))
    name = ctypes.util.find_library("otlpx_ffi")
    found.append((name or "otlpx_ffi", 'ctypes.util.find_library("otlpx_ffi")'))
    return found


def library_path() -> str:
    """The path of the libotlpx_ffi this process uses (or would load)."""
    return _load()[1]


def _load() -> tuple[ctypes.CDLL, str]:
    tried = []
    for path, how in _candidates():
        if how.startswith("the checkout") and not os.path.exists(path):
            tried.append(f"{path} ({how}): not there")
            continue
        if how.startswith("ctypes.util") and path == "otlpx_ffi":
            tried.append(f"{how}: found nothing")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(f"{path} ({how}): {e}")
    raise ImportError(
        "otlpx: cannot load the otlpx C library (libotlpx_ffi); tried:\n  "
        + "\n  ".join(tried)
        + "\nBuild it with `cargo build --release -p otlpx-ffi`, or set OTLPX_LIBRARY"
        " to its path."
    )


blocking, _path = _load()
"""The library, releasing the GIL during calls (for calls that block)."""
lib = ctypes.PyDLL(_path)
"""The library, keeping the GIL during calls (for calls that never block)."""

# ---------------------------------------------------------------------------
# Structs (otlpx.h)
# ---------------------------------------------------------------------------


class otlpx_str(Structure):  # noqa: N801 - C names
    _fields_ = [("ptr", c_void_p), ("len", c_size_t)]


class otlpx_attribute(Structure):  # noqa: N801
    _fields_ = [
        ("key", otlpx_str),
        ("type", c_uint32),
        ("string", otlpx_str),
        ("int_value", c_int64),
        ("double_value", c_double),
        ("array", c_void_p),
        ("array_len", c_size_t),
    ]


class otlpx_span_context(Structure):  # noqa: N801
    _fields_ = [
        ("trace_id", c_uint8 * 16),
        ("span_id", c_uint8 * 8),
        ("trace_flags", c_uint8),
        ("is_remote", c_uint8),
        ("trace_state", otlpx_str),
    ]


class otlpx_event(Structure):  # noqa: N801
    _fields_ = [
        ("name", otlpx_str),
        ("time_unix_nano", c_uint64),
        ("attributes", c_void_p),
        ("attributes_len", c_size_t),
        ("dropped_attributes_count", c_uint32),
    ]


class otlpx_link(Structure):  # noqa: N801
    _fields_ = [
        ("context", otlpx_span_context),
        ("attributes", c_void_p),
        ("attributes_len", c_size_t),
        ("dropped_attributes_count", c_uint32),
    ]


class otlpx_finished_span(Structure):  # noqa: N801
    _fields_ = [
        ("trace_id", c_uint8 * 16),
        ("span_id", c_uint8 * 8),
        ("trace_flags", c_uint8),
        ("parent_is_remote", c_uint8),
        ("parent_span_id", c_uint8 * 8),
        ("trace_state", otlpx_str),
        ("name", otlpx_str),
        ("kind", c_uint32),
        ("start_time_unix_nano", c_uint64),
        ("end_time_unix_nano", c_uint64),
        ("status_code", c_uint32),
        ("status_message", otlpx_str),
        ("attributes", c_void_p),
        ("attributes_len", c_size_t),
        ("events", c_void_p),
        ("events_len", c_size_t),
        ("links", c_void_p),
        ("links_len", c_size_t),
        ("dropped_attributes_count", c_uint32),
        ("dropped_events_count", c_uint32),
        ("dropped_links_count", c_uint32),
    ]


class otlpx_any_value(Structure):  # noqa: N801
    _fields_ = [
        ("type", c_uint32),
        ("string", otlpx_str),
        ("int_value", c_int64),
        ("double_value", c_double),
        ("array", c_void_p),
        ("array_len", c_size_t),
    ]


class otlpx_any_key_value(Structure):  # noqa: N801
    _fields_ = [("key", otlpx_str), ("value", otlpx_any_value)]


class otlpx_log_record(Structure):  # noqa: N801
    _fields_ = [
        ("time_unix_nano", c_uint64),
        ("observed_time_unix_nano", c_uint64),
        ("severity_number", c_uint32),
        ("severity_text", otlpx_str),
        ("body", otlpx_any_value),
        ("attributes", c_void_p),
        ("attributes_len", c_size_t),
        ("event_name", otlpx_str),
        ("trace_id", c_uint8 * 16),
        ("span_id", c_uint8 * 8),
        ("trace_flags", c_uint8),
        ("has_span_context", c_uint8),
    ]


# otlpx.h's bounds on a log body (OTLPX_MAX_BODY_DEPTH, OTLPX_MAX_BODY_VALUES).
MAX_BODY_DEPTH = 16
MAX_BODY_VALUES = 1 << 20


class otlpx_span_options(Structure):  # noqa: N801
    _fields_ = [
        ("kind", c_uint32),
        ("start_time_unix_nano", c_uint64),
        ("parent_span", c_uint64),
        ("parent_context", c_void_p),
    ]


STATS_FIELDS = (
    "recorded",
    "exported",
    "in_flight",
    "in_rings",
    "dropped_ring_full",
    "dropped_too_large",
    "dropped_invalid",
    "dropped_aborted",
    "dropped_rejected",
    "dropped_export_failed",
    "dropped_shutdown",
    "export_requests",
    "export_failures",
    "export_bytes_uncompressed",
    "export_bytes_sent",
    "ring_bytes_used",
    "ring_bytes_capacity",
    "values_truncated",
    "calls_refused",
    "export_retries",
    "dropped_evicted",
    "export_in_flight_bytes",
    "spooled",
    "spool_restored",
    "dropped_spool_full",
    "dropped_spool_corrupt",
)


class otlpx_stats(Structure):  # noqa: N801
    _fields_ = [(name, c_uint64) for name in STATS_FIELDS]


# ---------------------------------------------------------------------------
# struct formats for the hot path
# ---------------------------------------------------------------------------
#
# Filling a ctypes Structure field by field costs a descriptor call per
# field; struct.pack_into writes a whole struct (or the part a value type
# reads) in one call. The formats are built from the ctypes layouts above,
# so they follow the platform's C layout; `_check` proves it at import.


# key (ptr, len), type, string (ptr, len), int, double, array (ptr, len).
ATTR_ITEM = "PNIPNqdPN"
ATTR_SIZE = ctypes.sizeof(otlpx_attribute)
# name (ptr, len), time, attributes (ptr, len), dropped.
EVENT = struct.Struct("@PNQPNI")
EVENT_SIZE = ctypes.sizeof(otlpx_event)
# One event with its trailing padding, to repeat for an array.
EVENT_ITEM = "PNQPNI" + f"{EVENT_SIZE - EVENT.size}x"
# trace id, span id, flags, is_remote, trace state (ptr, len), attributes
# (ptr, len), dropped.
LINK = struct.Struct("@16s8sBBPNPNI")
LINK_SIZE = ctypes.sizeof(otlpx_link)
LINK_ITEM = "16s8sBBPNPNI" + f"{LINK_SIZE - LINK.size}x"
SPAN = struct.Struct("@16s8sBB8sPNPNIQQIPNPNPNPNIII")
SPAN_SIZE = ctypes.sizeof(otlpx_finished_span)
# type, string (ptr, len), int, double, array (ptr, len): an
# otlpx_any_value; with a key (ptr, len) before it, an otlpx_any_key_value
# (the layout of an attribute).
ANY_ITEM = "IPNqdPN"
ANY_SIZE = ctypes.sizeof(otlpx_any_value)
ENTRY_ITEM = "PN" + ANY_ITEM
# times, severity, text (ptr, len), body, attributes (ptr, len), event name
# (ptr, len), trace id, span id, flags, has_span_context.
LOG_RECORD = struct.Struct("@QQIPN" + ANY_ITEM + "PNPN16s8sBB")
LOG_RECORD_SIZE = ctypes.sizeof(otlpx_log_record)


def _need(ok: bool) -> None:
    if not ok:  # pragma: no cover - a platform whose C layout differs
        raise ImportError("otlpx: the struct layouts do not match this platform's C ABI")


def _check() -> None:
    """Each struct format matches the ctypes layout (asserts; run at
    import)."""

    def at(fmt: str) -> int:
        return struct.calcsize(fmt)

    A = otlpx_attribute
    P = ctypes.sizeof(c_void_p)
    _need(at("@PNIP") == A.string.offset + P)
    _need(at("@PNIPNq") == A.int_value.offset + 8)
    _need(at("@PNIPNqd") == A.double_value.offset + 8)
    _need(at("@PNIPNqdP") == A.array.offset + P)
    _need(at("@" + ATTR_ITEM * 3) == 3 * ATTR_SIZE)
    _need(EVENT.size == otlpx_event.dropped_attributes_count.offset + 4)
    _need(at("@16s8sBBP") == otlpx_span_context.trace_state.offset + ctypes.sizeof(c_void_p))
    _need(at("@16s8sBBPN") == otlpx_link.attributes.offset)
    _need(LINK.size == otlpx_link.dropped_attributes_count.offset + 4)
    F = otlpx_finished_span
    _need(at("@16s8sBB8s") == F.parent_span_id.offset + 8)
    _need(at("@16s8sBB8sP") == F.trace_state.offset + ctypes.sizeof(c_void_p))
    _need(at("@16s8sBB8sPNPNI") == F.kind.offset + 4)
    _need(at("@16s8sBB8sPNPNIQQIP") == F.status_message.offset + ctypes.sizeof(c_void_p))
    _need(SPAN.size == F.dropped_links_count.offset + 4)
    _need(at("@" + EVENT_ITEM * 3) == 3 * EVENT_SIZE)
    _need(at("@" + LINK_ITEM * 3) == 3 * LINK_SIZE)
    V = otlpx_any_value
    _need(at("@IP") == V.string.offset + P)
    _need(at("@IPNqdP") == V.array.offset + P)
    _need(at("@" + ANY_ITEM * 3) == 3 * ANY_SIZE)
    _need(at("@" + ENTRY_ITEM * 3) == 3 * ctypes.sizeof(otlpx_any_key_value))
    _need(ENTRY_ITEM == ATTR_ITEM and ctypes.sizeof(otlpx_any_key_value) == ATTR_SIZE)
    R = otlpx_log_record
    _need(at("@QQIP") == R.severity_text.offset + P)
    _need(at("@QQIPNI") == R.body.offset + 4)
    _need(at("@QQIPN" + ANY_ITEM + "P") == R.attributes.offset + P)
    _need(at("@QQIPN" + ANY_ITEM + "PNPN") == R.trace_id.offset)
    _need(LOG_RECORD.size == R.has_span_context.offset + 1)
    _need(at("@" + LOG_RECORD.format.lstrip("@") + "0Q") == LOG_RECORD_SIZE)


_check()


def _bytes_data_offset() -> int | None:
    """Where a bytes object's data starts, from its ``id()``, on CPython;
    None elsewhere (``id`` is not an address there)."""
    if sys.implementation.name != "cpython":
        return None
    offsets = set()
    for probe in (b"otlpx", b"x" * 100, bytes(range(7))):
        offsets.add(ctypes.cast(c_char_p(probe), c_void_p).value - id(probe))
    return offsets.pop() if len(offsets) == 1 else None


_BYTES_OFFSET = _bytes_data_offset()

if _BYTES_OFFSET is not None:
    BYTES_OFFSET = _BYTES_OFFSET
    address_of = id
else:  # pragma: no cover - not CPython

    def address_of(b: bytes) -> int:
        return ctypes.cast(c_char_p(b), c_void_p).value or 0

    BYTES_OFFSET = 0

# ``address_of(b) + BYTES_OFFSET`` is where the bytes of ``b`` are. The
# caller keeps ``b`` referenced until the C call that reads them returns.

# ---------------------------------------------------------------------------
# Prototypes
# ---------------------------------------------------------------------------

_P = c_void_p
_U32 = c_uint32


def _proto(target, name: str, argtypes, restype=_U32):
    f = getattr(target, name)
    f.argtypes = argtypes
    f.restype = restype
    return f


otlpx_version = _proto(lib, "otlpx_version", [], c_char_p)
otlpx_status_str = _proto(lib, "otlpx_status_str", [_U32], c_char_p)
otlpx_last_error = _proto(lib, "otlpx_last_error", [c_char_p, c_size_t, POINTER(c_size_t)])
otlpx_config_new = _proto(lib, "otlpx_config_new", [POINTER(c_void_p)])
otlpx_config_free = _proto(lib, "otlpx_config_free", [_P])
_STR_SETTERS = {}
for _name in (
    "otlpx_config_set_toml",
    "otlpx_config_set_service_name",
    "otlpx_config_set_endpoint",
    "otlpx_config_set_admin_address",
):
    _STR_SETTERS[_name] = _proto(lib, _name, [_P, c_char_p, c_size_t])
otlpx_config_add_header = _proto(
    lib, "otlpx_config_add_header", [_P, c_char_p, c_size_t, c_char_p, c_size_t]
)
otlpx_config_add_resource_attribute = _proto(lib, "otlpx_config_add_resource_attribute", [_P, _P])
_NUM_SETTERS = {
    "otlpx_config_set_protocol": c_uint32,
    "otlpx_config_set_compression": c_uint32,
    "otlpx_config_set_export_timeout_ms": c_uint64,
    "otlpx_config_set_schedule_delay_ms": c_uint64,
    "otlpx_config_set_max_batch_spans": c_size_t,
    "otlpx_config_set_ring_bytes_per_cpu": c_size_t,
    "otlpx_config_set_disabled": c_uint8,
    "otlpx_config_set_export": c_uint8,
    "otlpx_config_set_shutdown_timeout_ms": c_uint64,
    "otlpx_config_ignore_environment": c_uint8,
}
for _name, _t in _NUM_SETTERS.items():
    _STR_SETTERS[_name] = _proto(lib, _name, [_P, _t])
otlpx_config_set_sampler = _proto(lib, "otlpx_config_set_sampler", [_P, c_uint32, c_double])
CONFIG_SETTERS = _STR_SETTERS

# Building an engine starts threads and may bind sockets: GIL released.
otlpx_engine_new = _proto(blocking, "otlpx_engine_new", [_P, POINTER(c_void_p)])
otlpx_engine_tracer = _proto(
    lib, "otlpx_engine_tracer", [_P, c_char_p, c_size_t, c_char_p, c_size_t, POINTER(c_void_p)]
)
otlpx_engine_flush = _proto(blocking, "otlpx_engine_flush", [_P, c_uint64])
otlpx_engine_shutdown = _proto(blocking, "otlpx_engine_shutdown", [_P, c_uint64])
otlpx_engine_free = _proto(lib, "otlpx_engine_free", [_P])
otlpx_engine_stats = _proto(lib, "otlpx_engine_stats", [_P, _P, c_size_t])
otlpx_tracer_record_span = _proto(lib, "otlpx_tracer_record_span", [_P, _P])
# The same without argtypes, for the hot path: a little cheaper per call;
# callers pass c_void_p objects only.
record_span_raw = ctypes.PyDLL(_path).otlpx_tracer_record_span
record_span_raw.restype = c_uint32
otlpx_span_begin = _proto(lib, "otlpx_span_begin", [_P, c_char_p, c_size_t, _P, POINTER(c_uint64)])
otlpx_span_set_attributes = _proto(lib, "otlpx_span_set_attributes", [c_uint64, _P, c_size_t])
otlpx_span_add_event = _proto(
    lib, "otlpx_span_add_event", [c_uint64, c_char_p, c_size_t, c_uint64, _P, c_size_t]
)
otlpx_span_add_link = _proto(lib, "otlpx_span_add_link", [c_uint64, _P, _P, c_size_t])
otlpx_span_set_status = _proto(lib, "otlpx_span_set_status", [c_uint64, c_uint32, c_char_p, c_size_t])
otlpx_span_update_name = _proto(lib, "otlpx_span_update_name", [c_uint64, c_char_p, c_size_t])
otlpx_span_get_context = _proto(lib, "otlpx_span_get_context", [c_uint64, _P])
otlpx_span_end = _proto(lib, "otlpx_span_end", [c_uint64, c_uint64])
otlpx_span_discard = _proto(lib, "otlpx_span_discard", [c_uint64])
otlpx_engine_signal_stats = _proto(lib, "otlpx_engine_signal_stats", [_P, _U32, _P, c_size_t])
# Takes the engine's drain lock and copies, but never waits on I/O.
otlpx_engine_drain = _proto(
    lib, "otlpx_engine_drain", [_P, _U32, c_size_t, _P, c_size_t, POINTER(c_size_t), POINTER(c_size_t)]
)
otlpx_engine_logger = _proto(
    lib, "otlpx_engine_logger", [_P, c_char_p, c_size_t, c_char_p, c_size_t, POINTER(c_void_p)]
)
otlpx_logger_enabled = _proto(lib, "otlpx_logger_enabled", [_P, _U32], c_bool)
otlpx_logger_emit = _proto(lib, "otlpx_logger_emit", [_P, _P])


def version() -> str:
    """The version of libotlpx, e.g. ``"0.1.0"``."""
    return otlpx_version().decode()


def status_text(status: int) -> str:
    """``otlpx_status_str``: what a status means."""
    return (otlpx_status_str(status) or b"").decode("utf-8", "replace")


def last_error() -> str:
    """``otlpx_last_error``: this thread's message of the last failed
    lifecycle call ('' if none)."""
    n = c_size_t(0)
    otlpx_last_error(None, 0, ctypes.byref(n))
    if n.value == 0:
        return ""
    buf = ctypes.create_string_buffer(n.value + 1)
    otlpx_last_error(buf, len(buf), ctypes.byref(n))
    return buf.value.decode("utf-8", "replace")


# Statuses after which the library has set otlpx_last_error (lifecycle
# calls only; other calls leave a stale message there).
_DETAILED = frozenset({Status.CONFIG, Status.START_FAILED, Status.TIMEOUT, Status.NOT_EXPORTING})


def error(status: int, what: str) -> OtlpxError:
    """The exception for ``status`` returned by the call ``what``."""
    message = f"{what}: {status_text(status)}"
    if status in _DETAILED:
        detail = last_error()
        if detail:
            message = f"{message}: {detail}"
    return OtlpxError(status, message)


def check(status: int, what: str) -> None:
    if status:
        raise error(status, what)
