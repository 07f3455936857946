//! `otlpx_config`: an engine's configuration, built up by calls and
//! consumed by `otlpx_engine_new`.
//!
//! It is the core's `EngineBuilder`: the same precedence (these calls beat
//! the `OTEL_*` environment, which beats a TOML document, which beats the
//! defaults), the same validation at build, the same errors, naming the
//! call that set a bad value (`otlpx_last_error`). Setters only check what
//! C could get wrong (NULL, UTF-8, enum numbers); values are validated
//! together when the engine is built.

use crate::convert::{str_arg, with_attribute_slice};
use crate::handle::Handle;
use crate::types::{otlpx_attribute, otlpx_compression, otlpx_protocol, otlpx_sampler};
use crate::{ffi_guard, otlpx_status};
use otlpx::sample::Sampler;
use otlpx::{Compression, EngineBuilder, Protocol};
use std::ffi::c_char;
use std::sync::Mutex;
use std::time::Duration;

/// An engine configuration under construction (opaque). Create with
/// `otlpx_config_new`, give to `otlpx_engine_new` (which consumes it), or
/// free with `otlpx_config_free`.
///
/// Not thread-safe: configure it from one thread at a time.
pub struct otlpx_config {
    _private: [u8; 0],
}

const CONFIG_MAGIC: u64 = 0x6f74_6c70_785f_6366;
/// The builder behind the opaque pointer. The mutex makes the handle
/// `Sync` (a caller breaking the one-thread rule waits, rather than racing).
pub(crate) type ConfigHandle = Handle<Mutex<Option<EngineBuilder>>, CONFIG_MAGIC>;

/// Applies `f` to the builder behind `config`.
///
/// # Safety
///
/// `config` is NULL or from `otlpx_config_new`, not freed concurrently.
unsafe fn update(
    config: *mut otlpx_config,
    f: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> Result<(), otlpx_status> {
    // SAFETY: forwarded from the caller.
    let cell = unsafe { ConfigHandle::get(config.cast())? };
    let mut slot = cell
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let builder = slot.take().ok_or(otlpx_status::InvalidHandle)?;
    *slot = Some(f(builder));
    Ok(())
}

/// Takes the builder out of `config`, leaving its tombstone. NULL gives
/// the default builder (which reads the `OTEL_*` environment).
///
/// # Safety
///
/// As [`update`].
pub(crate) unsafe fn take(config: *mut otlpx_config) -> Result<EngineBuilder, otlpx_status> {
    // SAFETY: forwarded from the caller.
    let cell = unsafe { ConfigHandle::free(config.cast())? };
    Ok(match cell {
        Some(m) => m
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .unwrap_or_else(otlpx::Engine::builder),
        None => otlpx::Engine::builder(),
    })
}

/// Creates a configuration with nothing set: an engine built from it reads
/// the standard `OTEL_*` environment (and `OTLPX_CONFIG`), as the
/// OpenTelemetry SDKs do.
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER` if `out` is NULL.
///
/// # Safety
///
/// `out` must point to a writable `otlpx_config *`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_new(out: *mut *mut otlpx_config) -> otlpx_status {
    ffi_guard! {
        if out.is_null() {
            return Err(otlpx_status::NullPointer);
        }
        let handle = ConfigHandle::into_raw(Mutex::new(Some(otlpx::Engine::builder())));
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { *out = handle.cast() };
        Ok(())
    }
}

/// Frees a configuration that was not given to `otlpx_engine_new`. NULL is
/// fine.
///
/// # Errors
///
/// `OTLPX_STATUS_INVALID_HANDLE` if it was already freed or consumed.
///
/// # Safety
///
/// `config` is NULL or from `otlpx_config_new`; no other call on it may run
/// concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_free(config: *mut otlpx_config) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        unsafe { ConfigHandle::free(config.cast())? };
        Ok(())
    }
}

/// Adds a TOML configuration document: the format of the `otlpx.toml`
/// file (sections `exporter`, `batch`, `sampling`, `limits`, `workers`,
/// `admin`, `resource`), read when the engine is built. Errors then name
/// `<otlpx_config_set_toml>:LINE`.
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`,
/// `OTLPX_STATUS_INVALID_HANDLE`. The document itself is checked by
/// `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile; `toml` points to `toml_len` readable bytes (NULL if 0),
/// borrowed for the call only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_toml(
    config: *mut otlpx_config,
    toml: *const c_char,
    toml_len: usize,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let text = unsafe { str_arg(toml, toml_len)? };
        // SAFETY: forwarded from the caller.
        unsafe { update(config, |b| b.config_toml("<otlpx_config_set_toml>", text)) }
    }
}

/// Applies `f` to the builder with the UTF-8 string at (`ptr`, `len`).
///
/// # Safety
///
/// As [`update`]; the string as in [`str_arg`].
unsafe fn set_str(
    config: *mut otlpx_config,
    ptr: *const c_char,
    len: usize,
    f: impl FnOnce(EngineBuilder, &str) -> EngineBuilder,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let v = unsafe { str_arg(ptr, len)? };
        // SAFETY: forwarded from the caller.
        unsafe { update(config, |b| f(b, v)) }
    }
}

/// Sets `service.name` (`OTEL_SERVICE_NAME`).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`,
/// `OTLPX_STATUS_INVALID_HANDLE`; the value is validated by
/// `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile; `name` is `name_len` readable bytes (NULL if 0), borrowed
/// for the call only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_service_name(
    config: *mut otlpx_config,
    name: *const c_char,
    name_len: usize,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe { set_str(config, name, name_len, |b, v| b.service_name(v)) }
}

/// Sets the OTLP endpoint, e.g. `http://collector:4317`
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`; over HTTP, `/v1/traces` is added;
/// without a scheme, `https://` unless `insecure` is set). Without one
/// (anywhere) the engine exports to the OpenTelemetry default,
/// `http://localhost:4317` (gRPC) or `http://localhost:4318/v1/traces`
/// (HTTP); `otlpx_config_set_export(config, 0)` records without
/// exporting.
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`,
/// `OTLPX_STATUS_INVALID_HANDLE`; the value is validated by
/// `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile; `endpoint` is `endpoint_len` readable bytes (NULL if 0), borrowed
/// for the call only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_endpoint(
    config: *mut otlpx_config,
    endpoint: *const c_char,
    endpoint_len: usize,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe { set_str(config, endpoint, endpoint_len, |b, v| b.endpoint(v)) }
}

/// Serves `/metrics`, `/health`, `/ready` and `/stats` on this address,
/// e.g. `127.0.0.1:9464` (`OTLPX_ADMIN_ADDRESS`).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`,
/// `OTLPX_STATUS_INVALID_HANDLE`; the value is validated by
/// `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile; `address` is `address_len` readable bytes (NULL if 0), borrowed
/// for the call only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_admin_address(
    config: *mut otlpx_config,
    address: *const c_char,
    address_len: usize,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe { set_str(config, address, address_len, |b, v| b.admin_address(v)) }
}

/// Adds a header sent with every export request
/// (`OTEL_EXPORTER_OTLP_HEADERS`). Its value is never shown in errors.
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`,
/// `OTLPX_STATUS_INVALID_HANDLE`.
///
/// # Safety
///
/// `config` as in `otlpx_config_set_toml`; both strings are readable for
/// their lengths (NULL if 0), borrowed for the call only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_add_header(
    config: *mut otlpx_config,
    name: *const c_char,
    name_len: usize,
    value: *const c_char,
    value_len: usize,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        let (name, value) = unsafe { (str_arg(name, name_len)?, str_arg(value, value_len)?) };
        // SAFETY: forwarded from the caller.
        unsafe { update(config, |b| b.header(name, value)) }
    }
}

/// Adds a resource attribute (`OTEL_RESOURCE_ATTRIBUTES`), of any type.
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_UTF8`,
/// `OTLPX_STATUS_INVALID_ARGUMENT` (unknown value type),
/// `OTLPX_STATUS_INVALID_HANDLE`.
///
/// # Safety
///
/// `config` as in `otlpx_config_set_toml`; `attribute` points to a valid
/// `otlpx_attribute` whose pointers are readable, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_add_resource_attribute(
    config: *mut otlpx_config,
    attribute: *const otlpx_attribute,
) -> otlpx_status {
    ffi_guard! {
        if attribute.is_null() {
            return Err(otlpx_status::NullPointer);
        }
        let unused = std::sync::atomic::AtomicU64::new(0);
        // SAFETY: checked non-NULL; the caller promises a valid attribute
        // whose pointers are readable.
        let attribute = unsafe { std::slice::from_ref(&*attribute) };
        // SAFETY: as above.
        unsafe {
            with_attribute_slice(attribute, None, &unused, |kvs| {
                let kv = kvs[0];
                // SAFETY: forwarded from the caller.
                update(config, |b| b.resource_attribute(kv.key, kv.value))
            })
        }
    }
}

/// Applies `f` to the builder behind `config`, as a status.
///
/// # Safety
///
/// As [`update`].
unsafe fn set(
    config: *mut otlpx_config,
    f: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> otlpx_status {
    ffi_guard! {
        // SAFETY: forwarded from the caller.
        unsafe { update(config, f) }
    }
}

/// Sets the OTLP transport: an `otlpx_protocol`
/// (`OTEL_EXPORTER_OTLP_PROTOCOL`).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`,
/// `OTLPX_STATUS_INVALID_ARGUMENT` for an unknown number.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_protocol(
    config: *mut otlpx_config,
    protocol: u32,
) -> otlpx_status {
    if config.is_null() {
        return otlpx_status::NullPointer;
    }
    let p = match protocol {
        p if p == otlpx_protocol::Grpc as u32 => Protocol::Grpc,
        p if p == otlpx_protocol::HttpProtobuf as u32 => Protocol::HttpProtobuf,
        _ => return otlpx_status::InvalidArgument,
    };
    // SAFETY: forwarded from the caller.
    unsafe { set(config, |b| b.protocol(p)) }
}

/// Sets the compression: an `otlpx_compression`
/// (`OTEL_EXPORTER_OTLP_COMPRESSION`).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`,
/// `OTLPX_STATUS_INVALID_ARGUMENT` for an unknown number.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_compression(
    config: *mut otlpx_config,
    compression: u32,
) -> otlpx_status {
    if config.is_null() {
        return otlpx_status::NullPointer;
    }
    let c = match compression {
        c if c == otlpx_compression::None as u32 => Compression::None,
        c if c == otlpx_compression::Gzip as u32 => Compression::Gzip,
        c if c == otlpx_compression::Zstd as u32 => Compression::Zstd,
        _ => return otlpx_status::InvalidArgument,
    };
    // SAFETY: forwarded from the caller.
    unsafe { set(config, |b| b.compression(c)) }
}

/// Sets the timeout of one export request, in milliseconds
/// (`OTEL_EXPORTER_OTLP_TIMEOUT`).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`; the value is
/// validated by `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_export_timeout_ms(
    config: *mut otlpx_config,
    timeout_ms: u64,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        set(config, |b| {
            b.export_timeout(Duration::from_millis(timeout_ms))
        })
    }
}

/// Sets how long a span may wait before its batch is sent, in
/// milliseconds (`OTEL_BSP_SCHEDULE_DELAY`).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`; the value is
/// validated by `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_schedule_delay_ms(
    config: *mut otlpx_config,
    delay_ms: u64,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        set(config, |b| {
            b.schedule_delay(Duration::from_millis(delay_ms))
        })
    }
}

/// Sets the most spans one request carries
/// (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`; the value is
/// validated by `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_max_batch_spans(
    config: *mut otlpx_config,
    spans: usize,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe { set(config, |b| b.max_batch_spans(spans)) }
}

/// Sets each CPU's ring size in bytes (a power of two, 64 B to 1 GiB).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`; the value is
/// validated by `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_ring_bytes_per_cpu(
    config: *mut otlpx_config,
    bytes: usize,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe { set(config, |b| b.ring_bytes_per_cpu(bytes)) }
}

/// Non-zero: every span is a no-op and nothing is exported
/// (`OTEL_SDK_DISABLED`).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`; the value is
/// validated by `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_disabled(
    config: *mut otlpx_config,
    disabled: u8,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe { set(config, |b| b.disabled(disabled != 0)) }
}

/// Zero: the engine records but does not export (no workers, no
/// connections), whatever endpoint is configured; `otlpx_engine_flush`
/// then returns `OTLPX_STATUS_NOT_EXPORTING`. Non-zero (the default):
/// it exports, to the configured endpoint or the default one
/// (every signal's: `OTEL_TRACES_EXPORTER` and `OTEL_LOGS_EXPORTER` both
/// `none` is zero).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_export(
    config: *mut otlpx_config,
    export: u8,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe { set(config, |b| b.export(export != 0)) }
}

/// Sets how long freeing the engine (`otlpx_engine_free` without a
/// prior `otlpx_engine_shutdown`) may flush, in milliseconds, before
/// abandoning what is still unanswered (`OTLPX_SHUTDOWN_TIMEOUT_MS`;
/// default 5000).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_shutdown_timeout_ms(
    config: *mut otlpx_config,
    timeout_ms: u64,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        set(config, |b| {
            b.shutdown_timeout(Duration::from_millis(timeout_ms))
        })
    }
}

/// Non-zero: the engine ignores the process's `OTEL_*` variables and
/// `OTLPX_CONFIG` (for tests, and embedders that configure everything).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`; the value is
/// validated by `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_ignore_environment(
    config: *mut otlpx_config,
    ignore: u8,
) -> otlpx_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        set(config, |b| {
            if ignore != 0 {
                b.environment(std::iter::empty::<(String, String)>())
            } else {
                b
            }
        })
    }
}

/// Sets the sampler: an `otlpx_sampler`, with `ratio` (0.0 to 1.0) for the
/// ratio samplers and ignored otherwise (`OTEL_TRACES_SAMPLER`,
/// `OTEL_TRACES_SAMPLER_ARG`).
///
/// # Errors
///
/// `OTLPX_STATUS_NULL_POINTER`, `OTLPX_STATUS_INVALID_HANDLE`,
/// `OTLPX_STATUS_INVALID_ARGUMENT` for an unknown sampler. The ratio is
/// checked by `otlpx_engine_new`.
///
/// # Safety
///
/// `config` is from `otlpx_config_new` and not used by another thread
/// meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otlpx_config_set_sampler(
    config: *mut otlpx_config,
    sampler: u32,
    ratio: f64,
) -> otlpx_status {
    ffi_guard! {
        use otlpx_sampler as S;
        let s = match sampler {
            s if s == S::AlwaysOn as u32 => Sampler::AlwaysOn,
            s if s == S::AlwaysOff as u32 => Sampler::AlwaysOff,
            s if s == S::TraceIdRatio as u32 => Sampler::TraceIdRatio(ratio),
            s if s == S::ParentBasedAlwaysOn as u32 => Sampler::ParentBasedAlwaysOn,
            s if s == S::ParentBasedAlwaysOff as u32 => Sampler::ParentBasedAlwaysOff,
            s if s == S::ParentBasedTraceIdRatio as u32 => Sampler::ParentBasedTraceIdRatio(ratio),
            _ => return Err(otlpx_status::InvalidArgument),
        };
        // SAFETY: forwarded from the caller.
        unsafe { update(config, |b| b.sampler(s)) }
    }
}
