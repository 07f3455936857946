// otlpx.hpp: a header-only C++17 RAII wrapper over the C ABI of otlpx
// (otlpx.h, libotlpx_ffi).
//
// Two error styles, by where the call sits:
//
// * Lifecycle calls (Config setters, Engine construction, tracer lookup,
//   flush, shutdown, stats) throw otlpx::Error, which carries the
//   otlpx_status and a message (otlpx_status_str, plus otlpx_last_error
//   where the library sets it). Each has a non-throwing try_* twin where
//   that is useful.
// * Hot-path calls (everything on Span, Tracer::start_span, Tracer::record,
//   Logger::emit) never throw: they are noexcept and return a [[nodiscard]]
//   Status (or leave it in the Span, for start_span), and never allocate
//   for scalar values.
//
// Ownership follows the C ABI: Config owns an otlpx_config until an Engine
// consumes it; Engine owns an otlpx_engine and frees it (shutting it down)
// in its destructor; Tracer and Logger are non-owning views of a tracer or
// logger its engine owns (the C ABI has no per-logger free: the engine
// frees them all); Span owns an open span handle and ends it in its
// destructor. A Span
// may outlive its Engine: the engine's free drops its open spans, and the
// Span's later end is refused (INVALID_HANDLE) and ignored.
//
// Strings go in as std::string_view, never assumed NUL-terminated; they are
// borrowed for the call only. Values of an Attribute, an AnyValue or a
// LogRecord are borrowed too: none may outlive the strings and arrays it
// points to.

#ifndef OTLPX_HPP
#define OTLPX_HPP

#include <otlpx.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace otlpx {

class Span;

// ---------------------------------------------------------------- enums

/// The role of a span (otlpx_span_kind).
enum class SpanKind : std::uint32_t {
  unspecified = OTLPX_SPAN_KIND_UNSPECIFIED,
  internal = OTLPX_SPAN_KIND_INTERNAL,
  server = OTLPX_SPAN_KIND_SERVER,
  client = OTLPX_SPAN_KIND_CLIENT,
  producer = OTLPX_SPAN_KIND_PRODUCER,
  consumer = OTLPX_SPAN_KIND_CONSUMER,
};

/// A span's outcome (otlpx_status_code).
enum class StatusCode : std::uint32_t {
  unset = OTLPX_STATUS_CODE_UNSET,
  ok = OTLPX_STATUS_CODE_OK,
  error = OTLPX_STATUS_CODE_ERROR,
};

/// The OTLP transport (otlpx_protocol).
enum class Protocol : std::uint32_t {
  grpc = OTLPX_PROTOCOL_GRPC,
  http_protobuf = OTLPX_PROTOCOL_HTTP_PROTOBUF,
};

/// Compression of request bodies (otlpx_compression).
enum class Compression : std::uint32_t {
  none = OTLPX_COMPRESSION_NONE,
  gzip = OTLPX_COMPRESSION_GZIP,
  zstd = OTLPX_COMPRESSION_ZSTD,
};

/// A telemetry signal (otlpx_signal), for Engine::stats and Engine::drain.
enum class Signal : std::uint32_t {
  traces = OTLPX_SIGNAL_TRACES,
  logs = OTLPX_SIGNAL_LOGS,
};

/// A log record's severity, an OTLP SeverityNumber: the first number of
/// each of the six ranges is named; any number from 0 to 24 is valid
/// (`static_cast<Severity>(10)` is INFO2).
enum class Severity : std::uint32_t {
  unspecified = 0,
  trace = 1,
  debug = 5,
  info = 9,
  warn = 13,
  error = 17,
  fatal = 21,
};

/// Which spans an engine samples (otlpx_sampler).
enum class Sampler : std::uint32_t {
  always_on = OTLPX_SAMPLER_ALWAYS_ON,
  always_off = OTLPX_SAMPLER_ALWAYS_OFF,
  trace_id_ratio = OTLPX_SAMPLER_TRACE_ID_RATIO,
  parent_based_always_on = OTLPX_SAMPLER_PARENT_BASED_ALWAYS_ON,
  parent_based_always_off = OTLPX_SAMPLER_PARENT_BASED_ALWAYS_OFF,
  parent_based_trace_id_ratio = OTLPX_SAMPLER_PARENT_BASED_TRACE_ID_RATIO,
};

// --------------------------------------------------------------- detail

namespace detail {

/// A string_view as the C ABI's (pointer, length): NULL is fine with 0.
inline otlpx_str to_str(std::string_view s) noexcept {
  otlpx_str out{};
  out.ptr = s.data();
  out.len = s.size();
  return out;
}

/// A C string that may be NULL, as a string_view.
inline std::string_view c_view(const char* s) noexcept {
  return s == nullptr ? std::string_view{} : std::string_view{s};
}

/// Nanoseconds since the Unix epoch; 0 ("now" to the C ABI) for a time
/// at or before the epoch.
template <class Clock, class Duration>
std::uint64_t unix_nanos(std::chrono::time_point<Clock, Duration> t) noexcept {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return ns > 0 ? static_cast<std::uint64_t>(ns) : 0;
}

/// A duration as whole milliseconds, 0 for a negative one.
template <class Rep, class Period>
std::uint64_t millis(std::chrono::duration<Rep, Period> d) noexcept {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return ms > 0 ? static_cast<std::uint64_t>(ms) : 0;
}

/// Whether the library leaves a message in otlpx_last_error for `s`.
inline bool has_last_error(otlpx_status s) noexcept {
  return s == OTLPX_STATUS_CONFIG || s == OTLPX_STATUS_START_FAILED ||
         s == OTLPX_STATUS_TIMEOUT || s == OTLPX_STATUS_NOT_EXPORTING;
}

template <class T>
inline constexpr bool is_char_v =
    std::is_same_v<std::remove_cv_t<T>, char> || std::is_same_v<std::remove_cv_t<T>, wchar_t> ||
    std::is_same_v<std::remove_cv_t<T>, char16_t> || std::is_same_v<std::remove_cv_t<T>, char32_t>;

/// Integers recorded as OTLP int values: not bool, not characters.
template <class T>
inline constexpr bool is_int_v =
    std::is_integral_v<T> && !std::is_same_v<std::remove_cv_t<T>, bool> && !is_char_v<T>;

template <class T>
inline constexpr bool is_string_like_v =
    std::is_same_v<T, std::string_view> || std::is_same_v<T, std::string> ||
    std::is_same_v<T, const char*> || std::is_same_v<T, char*>;

/// The element kinds an array attribute may hold.
template <class T>
inline constexpr bool is_array_element_v =
    is_int_v<T> || std::is_floating_point_v<T> || std::is_same_v<T, bool> || is_string_like_v<T>;

template <class R, class = void>
struct range_element {};
template <class R>
struct range_element<R, std::void_t<decltype(std::data(std::declval<const R&>())),
                                    decltype(std::size(std::declval<const R&>()))>> {
  using type = std::remove_cv_t<std::remove_pointer_t<decltype(std::data(std::declval<const R&>()))>>;
};

/// Contiguous ranges (std::vector, std::array, C arrays, ...) of a
/// supported element type; std::vector<bool> separately (not contiguous).
template <class R, class = void>
inline constexpr bool is_array_range_v = false;
template <class R>
inline constexpr bool is_array_range_v<R, std::void_t<typename range_element<R>::type>> =
    is_array_element_v<typename range_element<R>::type>;

/// A fixed buffer for up to N converted elements, the heap beyond: array
/// attributes of up to N elements that need converting (int32 to int64,
/// std::string to otlpx_str, ...) do not allocate.
template <class T, std::size_t N = 16>
class SmallBuffer {
 public:
  explicit SmallBuffer(std::size_t n) : n_(n) {
    if (n > N) heap_.resize(n);
  }
  T* data() noexcept { return n_ > N ? heap_.data() : inline_.data(); }
  std::size_t size() const noexcept { return n_; }

 private:
  std::size_t n_;
  std::array<T, N> inline_{};
  std::vector<T> heap_;
};

inline otlpx_str element_str(std::string_view s) noexcept { return to_str(s); }
inline otlpx_str element_str(const std::string& s) noexcept { return to_str(s); }
inline otlpx_str element_str(const char* s) noexcept { return to_str(c_view(s)); }

}  // namespace detail

/// A string_view as the C ABI's otlpx_str (borrowed, not NUL-terminated),
/// for filling C structs such as otlpx_span_context::trace_state.
inline otlpx_str to_str(std::string_view s) noexcept { return detail::to_str(s); }

// ---------------------------------------------------------------- errors

/// A failed lifecycle call: its status and a message saying why.
class Error : public std::runtime_error {
 public:
  Error(otlpx_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}

  /// What the C call returned.
  otlpx_status status() const noexcept { return status_; }

 private:
  otlpx_status status_;
};

/// This thread's otlpx_last_error message ("" if none).
inline std::string last_error() {
  std::size_t len = 0;
  otlpx_status s = otlpx_last_error(nullptr, 0, &len);
  if ((s != OTLPX_STATUS_OK && s != OTLPX_STATUS_BUFFER_TOO_SMALL) || len == 0) return {};
  std::string buf(len + 1, '\0');
  s = otlpx_last_error(buf.data(), buf.size(), &len);
  if (s != OTLPX_STATUS_OK && s != OTLPX_STATUS_BUFFER_TOO_SMALL) return {};
  buf.resize(len < buf.size() ? len : buf.size() - 1);
  return buf;
}

namespace detail {

/// Throws Error for a failed `call`: "call: <status text>[: <last error>]".
[[noreturn]] inline void throw_error(otlpx_status status, const char* call) {
  std::string message = call;
  message += ": ";
  message += otlpx_status_str(status);
  if (has_last_error(status)) {
    const std::string detail = last_error();
    if (!detail.empty()) {
      message += ": ";
      message += detail;
    }
  }
  throw Error(status, message);
}

inline void check(otlpx_status status, const char* call) {
  if (status != OTLPX_STATUS_OK) throw_error(status, call);
}

}  // namespace detail

/// The outcome of a hot-path call: never thrown, always to be looked at.
class [[nodiscard]] Status {
 public:
  constexpr Status() noexcept = default;
  constexpr Status(otlpx_status status) noexcept : status_(status) {}  // NOLINT: implicit

  constexpr bool ok() const noexcept { return status_ == OTLPX_STATUS_OK; }
  constexpr explicit operator bool() const noexcept { return ok(); }
  constexpr otlpx_status status() const noexcept { return status_; }
  /// A static English text (otlpx_status_str).
  const char* message() const noexcept { return otlpx_status_str(status_); }

  friend constexpr bool operator==(Status a, Status b) noexcept { return a.status_ == b.status_; }
  friend constexpr bool operator!=(Status a, Status b) noexcept { return a.status_ != b.status_; }

 private:
  otlpx_status status_ = OTLPX_STATUS_OK;
};

/// A value or the status saying why there is none (expected-like).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) noexcept(std::is_nothrow_move_constructible_v<T>)  // NOLINT: implicit
      : value_(std::move(value)) {}
  /// A failure; `status` must not be OK.
  Result(Status status) noexcept  // NOLINT: implicit
      : status_(status.ok() ? Status(OTLPX_STATUS_INVALID_ARGUMENT) : status) {}

  bool ok() const noexcept { return status_.ok(); }
  explicit operator bool() const noexcept { return ok(); }
  otlpx_status status() const noexcept { return status_.status(); }
  const char* message() const noexcept { return status_.message(); }

  /// The value; throws Error if there is none.
  T& value() & {
    if (!ok()) detail::throw_error(status(), "otlpx::Result::value");
    return *value_;
  }
  const T& value() const& {
    if (!ok()) detail::throw_error(status(), "otlpx::Result::value");
    return *value_;
  }
  T&& value() && {
    if (!ok()) detail::throw_error(status(), "otlpx::Result::value");
    return std::move(*value_);
  }
  /// The value, or `fallback` if there is none.
  T value_or(T fallback) const& { return ok() ? *value_ : std::move(fallback); }

  /// Unchecked access: only after ok().
  T& operator*() & noexcept { return *value_; }
  const T& operator*() const& noexcept { return *value_; }
  T* operator->() noexcept { return &*value_; }
  const T* operator->() const noexcept { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

// ------------------------------------------------------------ attributes

/// An otlpx_attribute built from C++ values; layout-identical to it, so an
/// array of Attributes is an array of otlpx_attributes. Borrows its key
/// and value: use it within the statement that builds it, or keep what it
/// points to alive.
class Attribute : public otlpx_attribute {
 public:
  Attribute(std::string_view key, std::string_view value) noexcept : otlpx_attribute{} {
    init(key, OTLPX_VALUE_TYPE_STRING);
    string = detail::to_str(value);
  }
  Attribute(std::string_view key, const std::string& value) noexcept
      : Attribute(key, std::string_view{value}) {}
  Attribute(std::string_view key, const char* value) noexcept
      : Attribute(key, detail::c_view(value)) {}
  Attribute(std::string_view key, bool value) noexcept : otlpx_attribute{} {
    init(key, OTLPX_VALUE_TYPE_BOOL);
    int_value = value ? 1 : 0;
  }
  /// Integers are OTLP int64 values; an unsigned value above INT64_MAX
  /// wraps as a C cast does (Span::set_attribute refuses it instead).
  template <class T, std::enable_if_t<detail::is_int_v<T>, int> = 0>
  Attribute(std::string_view key, T value) noexcept : otlpx_attribute{} {
    init(key, OTLPX_VALUE_TYPE_INT);
    int_value = static_cast<std::int64_t>(value);
  }
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Attribute(std::string_view key, T value) noexcept : otlpx_attribute{} {
    init(key, OTLPX_VALUE_TYPE_DOUBLE);
    double_value = static_cast<double>(value);
  }

  /// Any bytes (not UTF-8 checked).
  static Attribute bytes(std::string_view key, std::string_view value) noexcept {
    Attribute a(key, value);
    a.type = OTLPX_VALUE_TYPE_BYTES;
    return a;
  }
  static Attribute int_array(std::string_view key, const std::int64_t* values,
                             std::size_t n) noexcept {
    return make_array(key, OTLPX_VALUE_TYPE_INT_ARRAY, values, n);
  }
  static Attribute double_array(std::string_view key, const double* values,
                                std::size_t n) noexcept {
    return make_array(key, OTLPX_VALUE_TYPE_DOUBLE_ARRAY, values, n);
  }
  /// `values` are bytes 0 (false) or 1 (true), as a bool array is.
  static Attribute bool_array(std::string_view key, const std::uint8_t* values,
                              std::size_t n) noexcept {
    return make_array(key, OTLPX_VALUE_TYPE_BOOL_ARRAY, values, n);
  }
  static Attribute bool_array(std::string_view key, const bool* values, std::size_t n) noexcept {
    static_assert(sizeof(bool) == 1, "a bool array is passed as bytes");
    return make_array(key, OTLPX_VALUE_TYPE_BOOL_ARRAY, values, n);
  }
  static Attribute string_array(std::string_view key, const otlpx_str* values,
                                std::size_t n) noexcept {
    return make_array(key, OTLPX_VALUE_TYPE_STRING_ARRAY, values, n);
  }
  static Attribute bytes_array(std::string_view key, const otlpx_str* values,
                               std::size_t n) noexcept {
    return make_array(key, OTLPX_VALUE_TYPE_BYTES_ARRAY, values, n);
  }

  const otlpx_attribute& raw() const noexcept { return *this; }

 private:
  Attribute() noexcept : otlpx_attribute{} {}
  void init(std::string_view k, otlpx_value_type t) noexcept {
    key = detail::to_str(k);
    type = t;
  }
  static Attribute make_array(std::string_view k, otlpx_value_type t, const void* values,
                              std::size_t n) noexcept {
    Attribute a;
    a.init(k, t);
    a.array = values;
    a.array_len = n;
    return a;
  }
};

static_assert(std::is_standard_layout_v<Attribute>, "Attribute is an otlpx_attribute");
static_assert(sizeof(Attribute) == sizeof(otlpx_attribute), "Attribute is an otlpx_attribute");
static_assert(alignof(Attribute) == alignof(otlpx_attribute), "Attribute is an otlpx_attribute");

namespace detail {
inline const otlpx_attribute* raw(const Attribute* a) noexcept {
  return static_cast<const otlpx_attribute*>(a);
}
}  // namespace detail

// -------------------------------------------------------------- log bodies

class AnyKeyValue;

/// Any OTLP value, for a log record's body: an otlpx_any_value built from
/// C++ values, layout-identical to it (so an array of AnyValues is an array
/// of otlpx_any_values). Default-constructed it is no value (a record
/// without a body). Borrows what it points to, as Attribute does: the
/// elements of array_of() and map_of() must outlive every use of it.
class AnyValue : public otlpx_any_value {
 public:
  /// No value.
  AnyValue() noexcept : otlpx_any_value{} {}
  AnyValue(std::string_view value) noexcept : otlpx_any_value{} {  // NOLINT: implicit
    type = OTLPX_VALUE_TYPE_STRING;
    string = detail::to_str(value);
  }
  AnyValue(const std::string& value) noexcept  // NOLINT: implicit
      : AnyValue(std::string_view{value}) {}
  AnyValue(const char* value) noexcept : AnyValue(detail::c_view(value)) {}  // NOLINT: implicit
  AnyValue(bool value) noexcept : otlpx_any_value{} {  // NOLINT: implicit
    type = OTLPX_VALUE_TYPE_BOOL;
    int_value = value ? 1 : 0;
  }
  /// Integers are int64 values; an unsigned value above INT64_MAX wraps,
  /// as for Attribute.
  template <class T, std::enable_if_t<detail::is_int_v<T>, int> = 0>
  AnyValue(T value) noexcept : otlpx_any_value{} {  // NOLINT: implicit
    type = OTLPX_VALUE_TYPE_INT;
    int_value = static_cast<std::int64_t>(value);
  }
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  AnyValue(T value) noexcept : otlpx_any_value{} {  // NOLINT: implicit
    type = OTLPX_VALUE_TYPE_DOUBLE;
    double_value = static_cast<double>(value);
  }
  /// A character is not a string: say "c" or (int)'c'.
  AnyValue(char) = delete;

  /// Any bytes (not UTF-8 checked).
  static AnyValue bytes(std::string_view value) noexcept {
    AnyValue v(value);
    v.type = OTLPX_VALUE_TYPE_BYTES;
    return v;
  }
  /// A heterogeneous array of `n` values at `items`. (Not `array`: that
  /// is the C struct's field.)
  static AnyValue array_of(const AnyValue* items, std::size_t n) noexcept {
    return make(OTLPX_VALUE_TYPE_ARRAY, items, n);
  }
  /// A map: `n` entries at `entries`, in order.
  static AnyValue map_of(const AnyKeyValue* entries, std::size_t n) noexcept;
  /// array_of() and map_of() over a contiguous range: a C array,
  /// std::array, std::vector of AnyValue (or AnyKeyValue).
  template <class R>
  static auto array_of(const R& items) noexcept
      -> std::enable_if_t<std::is_same_v<typename detail::range_element<R>::type, AnyValue>,
                          AnyValue> {
    return array_of(std::data(items), std::size(items));
  }
  template <class R>
  static auto map_of(const R& entries) noexcept
      -> std::enable_if_t<std::is_same_v<typename detail::range_element<R>::type, AnyKeyValue>,
                          AnyValue>;
  /// Homogeneous arrays, as the Attribute factories of the same names.
  static AnyValue int_array(const std::int64_t* values, std::size_t n) noexcept {
    return make(OTLPX_VALUE_TYPE_INT_ARRAY, values, n);
  }
  static AnyValue double_array(const double* values, std::size_t n) noexcept {
    return make(OTLPX_VALUE_TYPE_DOUBLE_ARRAY, values, n);
  }
  static AnyValue bool_array(const bool* values, std::size_t n) noexcept {
    static_assert(sizeof(bool) == 1, "a bool array is passed as bytes");
    return make(OTLPX_VALUE_TYPE_BOOL_ARRAY, values, n);
  }
  static AnyValue string_array(const otlpx_str* values, std::size_t n) noexcept {
    return make(OTLPX_VALUE_TYPE_STRING_ARRAY, values, n);
  }
  static AnyValue bytes_array(const otlpx_str* values, std::size_t n) noexcept {
    return make(OTLPX_VALUE_TYPE_BYTES_ARRAY, values, n);
  }

  /// Whether it holds a value (type 0 is none).
  bool has_value() const noexcept { return type != 0; }
  const otlpx_any_value& raw() const noexcept { return *this; }

 private:
  static AnyValue make(otlpx_value_type t, const void* items, std::size_t n) noexcept {
    AnyValue v;
    v.type = t;
    v.array = items;
    v.array_len = n;
    return v;
  }
};

/// One entry of a map value: a key and an AnyValue, layout-identical to
/// otlpx_any_key_value. Borrows its key and value.
class AnyKeyValue : public otlpx_any_key_value {
 public:
  AnyKeyValue(std::string_view k, const AnyValue& v) noexcept : otlpx_any_key_value{} {
    key = detail::to_str(k);
    value = v.raw();
  }
};

inline AnyValue AnyValue::map_of(const AnyKeyValue* entries, std::size_t n) noexcept {
  return make(OTLPX_VALUE_TYPE_MAP, entries, n);
}

template <class R>
auto AnyValue::map_of(const R& entries) noexcept
    -> std::enable_if_t<std::is_same_v<typename detail::range_element<R>::type, AnyKeyValue>,
                        AnyValue> {
  return map_of(std::data(entries), std::size(entries));
}

static_assert(std::is_standard_layout_v<AnyValue>, "AnyValue is an otlpx_any_value");
static_assert(sizeof(AnyValue) == sizeof(otlpx_any_value), "AnyValue is an otlpx_any_value");
static_assert(std::is_standard_layout_v<AnyKeyValue>, "AnyKeyValue is an otlpx_any_key_value");
static_assert(sizeof(AnyKeyValue) == sizeof(otlpx_any_key_value),
              "AnyKeyValue is an otlpx_any_key_value");

/// A log record for Logger::emit: an otlpx_log_record with chained
/// setters, zero-initialised (severity unspecified, no body, times now, no
/// trace context) but for what is set. Borrows every string, value and
/// array it is given: emit it within the statement that builds it, or keep
/// them alive.
class LogRecord : public otlpx_log_record {
 public:
  explicit LogRecord(Severity severity = Severity::unspecified) noexcept : otlpx_log_record{} {
    severity_number = static_cast<std::uint32_t>(severity);
  }

  LogRecord& with_severity(Severity s) noexcept {
    severity_number = static_cast<std::uint32_t>(s);
    return *this;
  }
  /// The severity as the source wrote it; empty: the severity's name.
  LogRecord& with_severity_text(std::string_view text) noexcept {
    severity_text = detail::to_str(text);
    return *this;
  }
  LogRecord& with_body(const AnyValue& value) noexcept {
    body = value.raw();
    return *this;
  }
  /// `n` attributes at `a` (plain values only: no array_of() or map_of()).
  LogRecord& with_attributes(const Attribute* a, std::size_t n) noexcept {
    attributes = detail::raw(a);
    attributes_len = n;
    return *this;
  }
  template <std::size_t N>
  LogRecord& with_attributes(const Attribute (&a)[N]) noexcept {
    return with_attributes(a, N);
  }
  LogRecord& with_event_name(std::string_view name) noexcept {
    event_name = detail::to_str(name);
    return *this;
  }
  /// When it happened, in nanoseconds since the Unix epoch (0: now).
  LogRecord& with_time(std::uint64_t unix_nano) noexcept {
    time_unix_nano = unix_nano;
    return *this;
  }
  template <class Clock, class Duration>
  LogRecord& with_time(std::chrono::time_point<Clock, Duration> t) noexcept {
    return with_time(detail::unix_nanos(t));
  }
  /// When it was observed (0: now).
  LogRecord& with_observed_time(std::uint64_t unix_nano) noexcept {
    observed_time_unix_nano = unix_nano;
    return *this;
  }
  template <class Clock, class Duration>
  LogRecord& with_observed_time(std::chrono::time_point<Clock, Duration> t) noexcept {
    return with_observed_time(detail::unix_nanos(t));
  }
  /// Correlates the record with a span (e.g. Span::context()). There is no
  /// current span: without this, a record has no trace context.
  LogRecord& with_span_context(const otlpx_span_context& c) noexcept {
    for (std::size_t i = 0; i < 16; ++i) trace_id[i] = c.trace_id[i];
    for (std::size_t i = 0; i < 8; ++i) span_id[i] = c.span_id[i];
    trace_flags = c.trace_flags;
    has_span_context = 1;
    return *this;
  }
  LogRecord& with_span_context(const std::array<std::uint8_t, 16>& trace,
                               const std::array<std::uint8_t, 8>& span,
                               std::uint8_t flags = 1) noexcept {
    for (std::size_t i = 0; i < 16; ++i) trace_id[i] = trace[i];
    for (std::size_t i = 0; i < 8; ++i) span_id[i] = span[i];
    trace_flags = flags;
    has_span_context = 1;
    return *this;
  }
};

/// A non-owning, copyable view of a logger its Engine owns (valid until
/// the engine is destroyed; calls through it afterwards return
/// INVALID_HANDLE). Thread-safe. Nothing to free: it is a view, as Tracer
/// is.
class Logger {
 public:
  Logger() noexcept = default;
  explicit Logger(const otlpx_logger* raw) noexcept : raw_(raw) {}

  /// Whether a record of `severity` would be emitted (false for an empty
  /// Logger, a freed or shut-down engine). Check it before a costly body.
  bool enabled(Severity severity) const noexcept {
    return otlpx_logger_enabled(raw_, static_cast<std::uint32_t>(severity));
  }

  /// Emits a record (a LogRecord or any otlpx_log_record). RING_FULL and
  /// TOO_LARGE: dropped and counted; SHUT_DOWN; bad input is refused
  /// (INVALID_ARGUMENT, INVALID_UTF8, NULL_POINTER) and counted.
  Status emit(const otlpx_log_record& record) const noexcept {
    return otlpx_logger_emit(raw_, &record);
  }
  /// A record of `severity` with `body` and `attributes`, emitted now.
  Status emit(Severity severity, const AnyValue& body,
              std::initializer_list<Attribute> attributes = {}) const noexcept {
    return emit(LogRecord(severity).with_body(body).with_attributes(attributes.begin(),
                                                                    attributes.size()));
  }

  const otlpx_logger* get() const noexcept { return raw_; }
  explicit operator bool() const noexcept { return raw_ != nullptr; }

 private:
  const otlpx_logger* raw_ = nullptr;
};

// ---------------------------------------------------------------- config

/// An engine configuration (builder): owns an otlpx_config until an Engine
/// consumes it. Setters throw Error (NULL_POINTER on a moved-from Config,
/// INVALID_UTF8, INVALID_ARGUMENT); values are validated together when the
/// Engine is built. Setters chain on lvalues and rvalues alike:
/// `Engine engine(Config().service_name("svc").endpoint(url));`.
class Config {
 public:
  Config() { detail::check(otlpx_config_new(&raw_), "otlpx_config_new"); }
  ~Config() {
    if (raw_ != nullptr) (void)otlpx_config_free(raw_);
  }
  Config(Config&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Config& operator=(Config&& other) noexcept {
    if (this != &other) {
      if (raw_ != nullptr) (void)otlpx_config_free(raw_);
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  Config(const Config&) = delete;
  Config& operator=(const Config&) = delete;

  /// A TOML document (the otlpx.toml format), checked when the engine is
  /// built.
  Config& toml(std::string_view document) & {
    return set(otlpx_config_set_toml(raw_, document.data(), document.size()),
               "otlpx_config_set_toml");
  }
  Config& service_name(std::string_view name) & {
    return set(otlpx_config_set_service_name(raw_, name.data(), name.size()),
               "otlpx_config_set_service_name");
  }
  Config& endpoint(std::string_view url) & {
    return set(otlpx_config_set_endpoint(raw_, url.data(), url.size()),
               "otlpx_config_set_endpoint");
  }
  Config& admin_address(std::string_view address) & {
    return set(otlpx_config_set_admin_address(raw_, address.data(), address.size()),
               "otlpx_config_set_admin_address");
  }
  Config& header(std::string_view name, std::string_view value) & {
    return set(otlpx_config_add_header(raw_, name.data(), name.size(), value.data(), value.size()),
               "otlpx_config_add_header");
  }
  Config& resource_attribute(const Attribute& attribute) & {
    return set(otlpx_config_add_resource_attribute(raw_, &attribute.raw()),
               "otlpx_config_add_resource_attribute");
  }
  template <class V>
  Config& resource_attribute(std::string_view key, const V& value) & {
    return resource_attribute(Attribute(key, value));
  }
  Config& protocol(Protocol p) & {
    return set(otlpx_config_set_protocol(raw_, static_cast<std::uint32_t>(p)),
               "otlpx_config_set_protocol");
  }
  Config& compression(Compression c) & {
    return set(otlpx_config_set_compression(raw_, static_cast<std::uint32_t>(c)),
               "otlpx_config_set_compression");
  }
  template <class Rep, class Period>
  Config& export_timeout(std::chrono::duration<Rep, Period> timeout) & {
    return set(otlpx_config_set_export_timeout_ms(raw_, detail::millis(timeout)),
               "otlpx_config_set_export_timeout_ms");
  }
  template <class Rep, class Period>
  Config& schedule_delay(std::chrono::duration<Rep, Period> delay) & {
    return set(otlpx_config_set_schedule_delay_ms(raw_, detail::millis(delay)),
               "otlpx_config_set_schedule_delay_ms");
  }
  Config& max_batch_spans(std::size_t spans) & {
    return set(otlpx_config_set_max_batch_spans(raw_, spans), "otlpx_config_set_max_batch_spans");
  }
  Config& ring_bytes_per_cpu(std::size_t bytes) & {
    return set(otlpx_config_set_ring_bytes_per_cpu(raw_, bytes),
               "otlpx_config_set_ring_bytes_per_cpu");
  }
  Config& disabled(bool disabled = true) & {
    return set(otlpx_config_set_disabled(raw_, disabled ? 1 : 0), "otlpx_config_set_disabled");
  }
  Config& ignore_environment(bool ignore = true) & {
    return set(otlpx_config_ignore_environment(raw_, ignore ? 1 : 0),
               "otlpx_config_ignore_environment");
  }
  /// false: record without exporting (`otlpx_config_set_export`; `export`
  /// is a C++ keyword). Without an endpoint an engine exports to
  /// http://localhost:4317.
  Config& export_enabled(bool enabled = true) & {
    return set(otlpx_config_set_export(raw_, enabled ? 1 : 0), "otlpx_config_set_export");
  }
  /// How long destroying the engine may flush (default 5 s).
  template <class Rep, class Period>
  Config& shutdown_timeout(std::chrono::duration<Rep, Period> timeout) & {
    return set(otlpx_config_set_shutdown_timeout_ms(raw_, detail::millis(timeout)),
               "otlpx_config_set_shutdown_timeout_ms");
  }
  /// `ratio` (0.0 to 1.0) is used by the ratio samplers only.
  Config& sampler(Sampler s, double ratio = 1.0) & {
    return set(otlpx_config_set_sampler(raw_, static_cast<std::uint32_t>(s), ratio),
               "otlpx_config_set_sampler");
  }

  // The same setters on a temporary, so that a chain stays an rvalue.
  Config&& toml(std::string_view d) && { return std::move(toml(d)); }
  Config&& service_name(std::string_view n) && { return std::move(service_name(n)); }
  Config&& endpoint(std::string_view u) && { return std::move(endpoint(u)); }
  Config&& admin_address(std::string_view a) && { return std::move(admin_address(a)); }
  Config&& header(std::string_view n, std::string_view v) && { return std::move(header(n, v)); }
  Config&& resource_attribute(const Attribute& a) && { return std::move(resource_attribute(a)); }
  template <class V>
  Config&& resource_attribute(std::string_view k, const V& v) && {
    return std::move(resource_attribute(k, v));
  }
  Config&& protocol(Protocol p) && { return std::move(protocol(p)); }
  Config&& compression(Compression c) && { return std::move(compression(c)); }
  template <class Rep, class Period>
  Config&& export_timeout(std::chrono::duration<Rep, Period> t) && {
    return std::move(export_timeout(t));
  }
  template <class Rep, class Period>
  Config&& schedule_delay(std::chrono::duration<Rep, Period> d) && {
    return std::move(schedule_delay(d));
  }
  Config&& max_batch_spans(std::size_t n) && { return std::move(max_batch_spans(n)); }
  Config&& ring_bytes_per_cpu(std::size_t n) && { return std::move(ring_bytes_per_cpu(n)); }
  Config&& disabled(bool d = true) && { return std::move(disabled(d)); }
  Config&& ignore_environment(bool i = true) && { return std::move(ignore_environment(i)); }
  Config&& export_enabled(bool e = true) && { return std::move(export_enabled(e)); }
  template <class Rep, class Period>
  Config&& shutdown_timeout(std::chrono::duration<Rep, Period> t) && {
    return std::move(shutdown_timeout(t));
  }
  Config&& sampler(Sampler s, double r = 1.0) && { return std::move(sampler(s, r)); }

  /// The handle (NULL once moved from or released).
  otlpx_config* get() const noexcept { return raw_; }
  /// Gives the handle up: the caller frees or consumes it.
  otlpx_config* release() noexcept { return std::exchange(raw_, nullptr); }

 private:
  Config& set(otlpx_status status, const char* call) {
    detail::check(status, call);
    return *this;
  }

  otlpx_config* raw_ = nullptr;
};

// ---------------------------------------------------------------- tracer

/// How Tracer::start_span begins a span: kind, start time, parent.
struct SpanOptions {
  SpanKind kind = SpanKind::internal;
  /// Nanoseconds since the Unix epoch; 0 for now.
  std::uint64_t start_time_unix_nano = 0;
  /// An open span of the same engine (a handle); 0 for none.
  otlpx_span parent_span = 0;
  /// A parent from elsewhere; ignored when parent_span is set. Its
  /// trace_state is borrowed until start_span returns.
  std::optional<otlpx_span_context> parent_context;
  /// Set when with_parent was given a Span that is not open: start_span
  /// then refuses with INVALID_HANDLE rather than begin a root span.
  bool parent_missing = false;

  SpanOptions& with_kind(SpanKind k) noexcept {
    kind = k;
    return *this;
  }
  template <class Clock, class Duration>
  SpanOptions& with_start_time(std::chrono::time_point<Clock, Duration> t) noexcept {
    start_time_unix_nano = detail::unix_nanos(t);
    return *this;
  }
  SpanOptions& with_start_time_unix_nano(std::uint64_t t) noexcept {
    start_time_unix_nano = t;
    return *this;
  }
  inline SpanOptions& with_parent(const Span& parent) noexcept;
  SpanOptions& with_parent(const otlpx_span_context& parent) noexcept {
    parent_context = parent;
    return *this;
  }
};

/// An open span, ended (and recorded) when it goes out of scope. Move-only;
/// a moved-from, ended or discarded Span is empty and does nothing. Every
/// call is noexcept and returns a Status; a Span that failed to start is
/// empty and keeps why in start_status().
class Span {
 public:
  /// An empty span.
  Span() noexcept = default;
  /// Adopts an open span handle from the C ABI.
  explicit Span(otlpx_span handle) noexcept
      : handle_(handle),
        start_(handle == 0 ? OTLPX_STATUS_INVALID_HANDLE : OTLPX_STATUS_OK) {}
  ~Span() { (void)end(); }
  Span(Span&& other) noexcept
      : handle_(std::exchange(other.handle_, 0)), start_(other.start_) {}
  /// Ends this span (if open), then takes `other`'s.
  Span& operator=(Span&& other) noexcept {
    if (this != &other) {
      (void)end();
      handle_ = std::exchange(other.handle_, 0);
      start_ = other.start_;
    }
    return *this;
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

  /// Whether this holds a span handle (it may still have been dropped by
  /// its engine's free).
  bool is_open() const noexcept { return handle_ != 0; }
  explicit operator bool() const noexcept { return is_open(); }
  /// How otlpx_span_begin went (OK for a span that started).
  Status start_status() const noexcept { return start_; }
  otlpx_span handle() const noexcept { return handle_; }
  /// Gives the handle up without ending the span: the caller ends it.
  otlpx_span release() noexcept { return std::exchange(handle_, 0); }

  // Attributes. Scalars never allocate.
  Status set_attribute(std::string_view key, std::string_view value) noexcept {
    return set_one(Attribute(key, value));
  }
  Status set_attribute(std::string_view key, const std::string& value) noexcept {
    return set_one(Attribute(key, value));
  }
  Status set_attribute(std::string_view key, const char* value) noexcept {
    return set_one(Attribute(key, value));
  }
  Status set_attribute(std::string_view key, bool value) noexcept {
    return set_one(Attribute(key, value));
  }
  /// Integers; an unsigned value above INT64_MAX is INVALID_ARGUMENT.
  template <class T, std::enable_if_t<detail::is_int_v<T>, int> = 0>
  Status set_attribute(std::string_view key, T value) noexcept {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
      if (value > static_cast<T>(std::numeric_limits<std::int64_t>::max())) {
        return handle_ == 0 ? Status(OTLPX_STATUS_INVALID_HANDLE)
                            : Status(OTLPX_STATUS_INVALID_ARGUMENT);
      }
    }
    return set_one(Attribute(key, value));
  }
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Status set_attribute(std::string_view key, T value) noexcept {
    return set_one(Attribute(key, value));
  }
  /// A character is not a string: say "c" or (int)'c'.
  Status set_attribute(std::string_view key, char value) noexcept = delete;
  /// Arrays: any contiguous range (std::vector, std::array, C array) of
  /// integers, floating point, bool or strings. int64_t and double ranges
  /// are passed as they are; others are converted, without allocating up
  /// to 16 elements.
  template <class R, std::enable_if_t<detail::is_array_range_v<R>, int> = 0>
  Status set_attribute(std::string_view key, const R& values) noexcept {
    return set_array(key, std::data(values), std::size(values));
  }
  Status set_attribute(std::string_view key, const std::vector<bool>& values) noexcept {
    if (handle_ == 0) return Status(OTLPX_STATUS_INVALID_HANDLE);
    try {
      detail::SmallBuffer<std::uint8_t> buf(values.size());
      for (std::size_t i = 0; i < values.size(); ++i) buf.data()[i] = values[i] ? 1 : 0;
      return set_one(Attribute::bool_array(key, buf.data(), buf.size()));
    } catch (...) {
      return Status(OTLPX_STATUS_INVALID_ARGUMENT);
    }
  }
  template <class T, std::enable_if_t<detail::is_array_element_v<T>, int> = 0>
  Status set_attribute(std::string_view key, std::initializer_list<T> values) noexcept {
    return set_array(key, values.begin(), values.size());
  }

  /// Sets several attributes at once: all or none.
  Status set_attributes(const Attribute* attributes, std::size_t n) noexcept {
    if (handle_ == 0) return Status(OTLPX_STATUS_INVALID_HANDLE);
    return otlpx_span_set_attributes(handle_, detail::raw(attributes), n);
  }
  Status set_attributes(std::initializer_list<Attribute> attributes) noexcept {
    return set_attributes(attributes.begin(), attributes.size());
  }

  /// Adds an event at `time_unix_nano` (0: now).
  Status add_event(std::string_view name, std::initializer_list<Attribute> attributes = {},
                   std::uint64_t time_unix_nano = 0) noexcept {
    return add_event(name, attributes.begin(), attributes.size(), time_unix_nano);
  }
  template <class Clock, class Duration>
  Status add_event(std::string_view name, std::chrono::time_point<Clock, Duration> time,
                   std::initializer_list<Attribute> attributes = {}) noexcept {
    return add_event(name, attributes.begin(), attributes.size(), detail::unix_nanos(time));
  }
  Status add_event(std::string_view name, const Attribute* attributes, std::size_t n,
                   std::uint64_t time_unix_nano = 0) noexcept {
    if (handle_ == 0) return Status(OTLPX_STATUS_INVALID_HANDLE);
    return otlpx_span_add_event(handle_, name.data(), name.size(), time_unix_nano,
                                detail::raw(attributes), n);
  }

  /// Adds a link to the span `context` names.
  Status add_link(const otlpx_span_context& context,
                  std::initializer_list<Attribute> attributes = {}) noexcept {
    return add_link(context, attributes.begin(), attributes.size());
  }
  Status add_link(const otlpx_span_context& context, const Attribute* attributes,
                  std::size_t n) noexcept {
    if (handle_ == 0) return Status(OTLPX_STATUS_INVALID_HANDLE);
    return otlpx_span_add_link(handle_, &context, detail::raw(attributes), n);
  }

  /// OK is final, UNSET never overrides, ERROR (with `description`)
  /// replaces UNSET or an earlier error.
  Status set_status(StatusCode code, std::string_view description = {}) noexcept {
    if (handle_ == 0) return Status(OTLPX_STATUS_INVALID_HANDLE);
    return otlpx_span_set_status(handle_, static_cast<std::uint32_t>(code), description.data(),
                                 description.size());
  }

  Status update_name(std::string_view name) noexcept {
    if (handle_ == 0) return Status(OTLPX_STATUS_INVALID_HANDLE);
    return otlpx_span_update_name(handle_, name.data(), name.size());
  }

  /// The span's context, to propagate or to parent spans elsewhere. Its
  /// trace_state points into the span: valid until the span ends.
  Result<otlpx_span_context> context() const noexcept {
    if (handle_ == 0) return Status(OTLPX_STATUS_INVALID_HANDLE);
    otlpx_span_context out{};
    const otlpx_status s = otlpx_span_get_context(handle_, &out);
    if (s != OTLPX_STATUS_OK) return Status(s);
    return out;
  }

  /// Ends and records the span at `end_time_unix_nano` (0: now). The Span
  /// is empty afterwards, whatever the status, except SPAN_BUSY (another
  /// thread is inside a call on it: it stays open).
  Status end(std::uint64_t end_time_unix_nano = 0) noexcept {
    if (handle_ == 0) return Status(OTLPX_STATUS_INVALID_HANDLE);
    const otlpx_status s = otlpx_span_end(handle_, end_time_unix_nano);
    if (s != OTLPX_STATUS_SPAN_BUSY) handle_ = 0;
    return s;
  }
  template <class Clock, class Duration>
  Status end(std::chrono::time_point<Clock, Duration> time) noexcept {
    return end(detail::unix_nanos(time));
  }

  /// Ends the span without recording it; empty afterwards (as end()).
  Status discard() noexcept {
    if (handle_ == 0) return Status(OTLPX_STATUS_INVALID_HANDLE);
    const otlpx_status s = otlpx_span_discard(handle_);
    if (s != OTLPX_STATUS_SPAN_BUSY) handle_ = 0;
    return s;
  }

 private:
  friend class Tracer;
  explicit Span(Status failed) noexcept : start_(failed) {}

  Status set_one(const Attribute& attribute) noexcept { return set_attributes(&attribute, 1); }

  // int64_t and double: passed through; the rest converted.
  template <class T>
  Status set_array(std::string_view key, const T* values, std::size_t n) noexcept {
    if (handle_ == 0) return Status(OTLPX_STATUS_INVALID_HANDLE);
    if constexpr (std::is_same_v<T, std::int64_t>) {
      return set_one(Attribute::int_array(key, values, n));
    } else if constexpr (std::is_same_v<T, double>) {
      return set_one(Attribute::double_array(key, values, n));
    } else if constexpr (std::is_same_v<T, bool>) {
      return set_one(Attribute::bool_array(key, values, n));
    } else {
      try {
        if constexpr (detail::is_int_v<T>) {
          detail::SmallBuffer<std::int64_t> buf(n);
          for (std::size_t i = 0; i < n; ++i) {
            if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
              if (values[i] > static_cast<T>(std::numeric_limits<std::int64_t>::max())) {
                return Status(OTLPX_STATUS_INVALID_ARGUMENT);
              }
            }
            buf.data()[i] = static_cast<std::int64_t>(values[i]);
          }
          return set_one(Attribute::int_array(key, buf.data(), n));
        } else if constexpr (std::is_floating_point_v<T>) {
          detail::SmallBuffer<double> buf(n);
          for (std::size_t i = 0; i < n; ++i) buf.data()[i] = static_cast<double>(values[i]);
          return set_one(Attribute::double_array(key, buf.data(), n));
        } else {
          detail::SmallBuffer<otlpx_str> buf(n);
          for (std::size_t i = 0; i < n; ++i) buf.data()[i] = detail::element_str(values[i]);
          return set_one(Attribute::string_array(key, buf.data(), n));
        }
      } catch (...) {
        // Only a large array's buffer can throw (std::bad_alloc).
        return Status(OTLPX_STATUS_INVALID_ARGUMENT);
      }
    }
  }

  otlpx_span handle_ = 0;
  Status start_ = Status(OTLPX_STATUS_INVALID_HANDLE);
};

inline SpanOptions& SpanOptions::with_parent(const Span& parent) noexcept {
  parent_span = parent.handle();
  parent_missing = parent_span == 0;
  return *this;
}

/// A finished span described in full, for Tracer::record (one call, from
/// another SDK's span processor). Zero-initialised: set what you have.
/// Borrows every string and array it is given.
struct FinishedSpan : otlpx_finished_span {
  FinishedSpan() noexcept : otlpx_finished_span{} {}

  FinishedSpan& ids(const std::array<std::uint8_t, 16>& trace, const std::array<std::uint8_t, 8>& span,
                    std::uint8_t flags = 1) noexcept {
    for (std::size_t i = 0; i < 16; ++i) trace_id[i] = trace[i];
    for (std::size_t i = 0; i < 8; ++i) span_id[i] = span[i];
    trace_flags = flags;
    return *this;
  }
  FinishedSpan& with_name(std::string_view n) noexcept {
    name = detail::to_str(n);
    return *this;
  }
  FinishedSpan& with_kind(SpanKind k) noexcept {
    kind = static_cast<std::uint32_t>(k);
    return *this;
  }
  FinishedSpan& times(std::uint64_t start_unix_nano, std::uint64_t end_unix_nano) noexcept {
    start_time_unix_nano = start_unix_nano;
    end_time_unix_nano = end_unix_nano;
    return *this;
  }
  FinishedSpan& with_status(StatusCode code, std::string_view message = {}) noexcept {
    status_code = static_cast<std::uint32_t>(code);
    status_message = detail::to_str(message);
    return *this;
  }
  FinishedSpan& with_attributes(const Attribute* a, std::size_t n) noexcept {
    attributes = detail::raw(a);
    attributes_len = n;
    return *this;
  }
};

/// A non-owning, copyable view of a tracer its Engine owns (valid until
/// the engine is destroyed). Thread-safe.
class Tracer {
 public:
  Tracer() noexcept = default;
  explicit Tracer(const otlpx_tracer* raw) noexcept : raw_(raw) {}

  /// Begins a span. Never throws: a span that could not begin is empty,
  /// its start_status() saying why (SHUT_DOWN, INVALID_UTF8, ...).
  Span start_span(std::string_view name, const SpanOptions& options = {}) const noexcept {
    if (options.parent_missing) return Span(Status(OTLPX_STATUS_INVALID_HANDLE));
    otlpx_span_options o{};
    o.kind = static_cast<std::uint32_t>(options.kind);
    o.start_time_unix_nano = options.start_time_unix_nano;
    o.parent_span = options.parent_span;
    o.parent_context = options.parent_context ? &*options.parent_context : nullptr;
    otlpx_span handle = 0;
    const otlpx_status s = otlpx_span_begin(raw_, name.data(), name.size(), &o, &handle);
    if (s != OTLPX_STATUS_OK) return Span(Status(s));
    return Span(handle);
  }

  /// Records a span finished elsewhere, in one call.
  Status record(const otlpx_finished_span& span) const noexcept {
    return otlpx_tracer_record_span(raw_, &span);
  }

  const otlpx_tracer* get() const noexcept { return raw_; }
  explicit operator bool() const noexcept { return raw_ != nullptr; }

 private:
  const otlpx_tracer* raw_ = nullptr;
};

// ---------------------------------------------------------------- engine

/// An otlpx engine: rings, workers, exporter. Move-only; its destructor
/// frees it (shutting it down first, with the export timeout, unless
/// shutdown() did). Thread-safe, except that nothing may use it, its
/// tracers or its spans while it is destroyed.
class Engine {
 public:
  /// Builds an engine from `config`, which is consumed whether or not the
  /// build succeeds. Throws Error (CONFIG or START_FAILED, with the
  /// library's explanation; NULL_POINTER for a moved-from Config).
  explicit Engine(Config&& config) {
    if (config.get() == nullptr) {
      // otlpx_engine_new(NULL) would mean "the environment": refuse instead.
      throw Error(OTLPX_STATUS_NULL_POINTER,
                  "otlpx::Engine: the Config was moved from or released");
    }
    detail::check(otlpx_engine_new(config.release(), &raw_), "otlpx_engine_new");
  }
  /// An engine from the standard OTEL_* environment alone.
  static Engine from_env() {
    otlpx_engine* raw = nullptr;
    detail::check(otlpx_engine_from_env(&raw), "otlpx_engine_from_env");
    return Engine(raw);
  }
  /// Builds an engine without throwing.
  static Result<Engine> try_create(Config&& config) noexcept {
    if (config.get() == nullptr) return Status(OTLPX_STATUS_NULL_POINTER);
    otlpx_engine* raw = nullptr;
    const otlpx_status s = otlpx_engine_new(config.release(), &raw);
    if (s != OTLPX_STATUS_OK) return Status(s);
    return Engine(raw);
  }

  ~Engine() {
    if (raw_ != nullptr) (void)otlpx_engine_free(raw_);
  }
  Engine(Engine&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Engine& operator=(Engine&& other) noexcept {
    if (this != &other) {
      if (raw_ != nullptr) (void)otlpx_engine_free(raw_);
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// The tracer for an instrumentation scope (the same one for the same
  /// name and version). Throws Error.
  Tracer tracer(std::string_view name, std::string_view version = {}) const {
    const otlpx_tracer* t = nullptr;
    detail::check(otlpx_engine_tracer(raw_, name.data(), name.size(), version.data(),
                                      version.size(), &t),
                  "otlpx_engine_tracer");
    return Tracer(t);
  }

  /// Sends everything recorded so far, waiting at most `timeout`. Throws
  /// Error (TIMEOUT; NOT_EXPORTING without an exporter or after shutdown).
  template <class Rep, class Period>
  void flush(std::chrono::duration<Rep, Period> timeout) const {
    detail::check(try_flush(timeout).status(), "otlpx_engine_flush");
  }
  template <class Rep, class Period>
  Status try_flush(std::chrono::duration<Rep, Period> timeout) const noexcept {
    return otlpx_engine_flush(raw_, detail::millis(timeout));
  }

  /// Flushes for at most `timeout`, then stops; spans begun or ended
  /// afterwards get SHUT_DOWN. Throws Error (TIMEOUT: stopped all the same).
  template <class Rep, class Period>
  void shutdown(std::chrono::duration<Rep, Period> timeout) const {
    detail::check(try_shutdown(timeout).status(), "otlpx_engine_shutdown");
  }
  template <class Rep, class Period>
  Status try_shutdown(std::chrono::duration<Rep, Period> timeout) const noexcept {
    return otlpx_engine_shutdown(raw_, detail::millis(timeout));
  }

  /// The logger for an instrumentation scope (the same one for the same
  /// name and version). Throws Error.
  Logger logger(std::string_view name, std::string_view version = {}) const {
    const otlpx_logger* l = nullptr;
    detail::check(otlpx_engine_logger(raw_, name.data(), name.size(), version.data(),
                                      version.size(), &l),
                  "otlpx_engine_logger");
    return Logger(l);
  }

  /// The engine's counters for `signal` (spans by default). Throws Error
  /// (NULL_POINTER once moved from).
  otlpx_stats stats(Signal signal = Signal::traces) const {
    otlpx_stats out{};
    if (signal == Signal::traces) {
      detail::check(otlpx_engine_stats(raw_, &out, sizeof out), "otlpx_engine_stats");
    } else {
      detail::check(
          otlpx_engine_signal_stats(raw_, static_cast<std::uint32_t>(signal), &out, sizeof out),
          "otlpx_engine_signal_stats");
    }
    return out;
  }

  /// For an engine that does not export (Config::export_enabled(false)):
  /// takes up to `max_items` of `signal`'s items out of the rings, framed
  /// as one OTLP Export*ServiceRequest (protobuf bytes); empty when there
  /// is nothing to take. Allocates; not for the hot path. Throws Error.
  std::vector<std::uint8_t> drain(Signal signal, std::size_t max_items = 512) const {
    std::vector<std::uint8_t> out(4096);
    std::size_t len = 0;
    std::size_t items = 0;
    otlpx_status s = otlpx_engine_drain(raw_, static_cast<std::uint32_t>(signal), max_items,
                                        out.data(), out.size(), &len, &items);
    if (s == OTLPX_STATUS_BUFFER_TOO_SMALL) {
      // The engine kept the request: the next call returns it.
      out.resize(len);
      s = otlpx_engine_drain(raw_, static_cast<std::uint32_t>(signal), max_items, out.data(),
                             out.size(), &len, &items);
    }
    detail::check(s, "otlpx_engine_drain");
    out.resize(len);
    return out;
  }

  otlpx_engine* get() const noexcept { return raw_; }
  /// Gives the handle up: the caller frees it with otlpx_engine_free.
  otlpx_engine* release() noexcept { return std::exchange(raw_, nullptr); }

 private:
  explicit Engine(otlpx_engine* raw) noexcept : raw_(raw) {}

  otlpx_engine* raw_ = nullptr;
};

/// The library's version, e.g. "0.1.0".
inline std::string_view version() noexcept { return detail::c_view(otlpx_version()); }

}  // namespace otlpx

#endif  // OTLPX_HPP
