// Tests of otlpx.hpp against a live OTLP receiver (no framework).
//
//   test_otlpx <grpc-endpoint> <http-endpoint> <logs-file>
//
// Built with -fsanitize=address,undefined and run with leak detection by
// ffi/tests/cpp_bindings.rs, which starts the receiver, then checks that it
// received exactly the spans this program says it sent ("SENT <n>") and
// the fields of the named ones (cpp-typed, cpp-remote-child, ...), and
// decodes the log requests test_logs drained into <logs-file>.

#include "otlpx.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

int g_checks = 0;

#define CHECK(cond)                                                               \
  do {                                                                            \
    ++g_checks;                                                                   \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

#define CHECK_EQ(a, b)                                                                      \
  do {                                                                                      \
    ++g_checks;                                                                             \
    const auto a_ = (a);                                                                    \
    const auto b_ = (b);                                                                    \
    if (!(a_ == b_)) {                                                                      \
      std::fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%llu vs %llu)\n", __FILE__, \
                   __LINE__, #a, #b, static_cast<unsigned long long>(a_),                 \
                   static_cast<unsigned long long>(b_));                                    \
      std::exit(1);                                                                         \
    }                                                                                       \
  } while (0)

// A hot-path call's Status, compared with the wanted otlpx_status.
#define CHECK_STATUS(expr, want)                                                           \
  do {                                                                                     \
    ++g_checks;                                                                            \
    const otlpx::Status s_ = (expr);                                                       \
    if (s_.status() != (want)) {                                                           \
      std::fprintf(stderr, "%s:%d: %s gave %u (%s), want %s\n", __FILE__, __LINE__, #expr, \
                   static_cast<unsigned>(s_.status()), s_.message(), #want);               \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

// `f` must throw otlpx::Error with status `want`, its message containing
// `needle`.
template <class F>
void expect_error(const char* what, F&& f, otlpx_status want, std::string_view needle) {
  ++g_checks;
  try {
    f();
  } catch (const otlpx::Error& e) {
    const std::string_view message = e.what();
    std::printf("  %s threw (%u): %s\n", what, static_cast<unsigned>(e.status()), e.what());
    if (e.status() != want || message.find(needle) == std::string_view::npos) {
      std::fprintf(stderr, "%s: wrong Error: status %u, message \"%s\"; want %u with \"%.*s\"\n",
                   what, static_cast<unsigned>(e.status()), e.what(), static_cast<unsigned>(want),
                   static_cast<int>(needle.size()), needle.data());
      std::exit(1);
    }
    return;
  } catch (...) {
    std::fprintf(stderr, "%s: threw something other than otlpx::Error\n", what);
    std::exit(1);
  }
  std::fprintf(stderr, "%s: did not throw\n", what);
  std::exit(1);
}

std::uint64_t recorded(const otlpx::Engine& engine) { return engine.stats().recorded; }

// Spans the receiver must have, summed over the exporting engines.
std::uint64_t g_sent = 0;

constexpr std::uint64_t kFixedTime = 1'700'000'000'000'000'000ULL;

// The hot path never throws: everything a Span does is noexcept.
static_assert(noexcept(std::declval<otlpx::Span&>().set_attribute("k", "v")));
static_assert(noexcept(std::declval<otlpx::Span&>().set_attribute("k", 1)));
static_assert(noexcept(std::declval<otlpx::Span&>().set_attribute("k", 1.5)));
static_assert(noexcept(std::declval<otlpx::Span&>().set_attribute("k", true)));
static_assert(noexcept(std::declval<otlpx::Span&>().set_attribute("k", std::vector<int>{})));
static_assert(noexcept(std::declval<otlpx::Span&>().end()));
static_assert(noexcept(std::declval<otlpx::Span&>().context()));
static_assert(noexcept(std::declval<const otlpx::Tracer&>().start_span("x")));
static_assert(noexcept(std::declval<const otlpx::Tracer&>().record(otlpx_finished_span{})));
static_assert(std::is_nothrow_destructible_v<otlpx::Span>);
static_assert(std::is_nothrow_destructible_v<otlpx::Engine>);
static_assert(std::is_nothrow_move_constructible_v<otlpx::Span>);
static_assert(std::is_nothrow_move_assignable_v<otlpx::Span>);
static_assert(!std::is_copy_constructible_v<otlpx::Span>);
static_assert(!std::is_copy_constructible_v<otlpx::Engine>);
static_assert(!std::is_copy_constructible_v<otlpx::Config>);
static_assert(std::is_copy_constructible_v<otlpx::Tracer>);
static_assert(std::is_copy_constructible_v<otlpx::Logger>);
static_assert(noexcept(std::declval<const otlpx::Logger&>().emit(otlpx::LogRecord())));
static_assert(noexcept(std::declval<const otlpx::Logger&>().emit(otlpx::Severity::info, "x")));
static_assert(noexcept(std::declval<const otlpx::Logger&>().enabled(otlpx::Severity::info)));
static_assert(std::is_nothrow_constructible_v<otlpx::AnyValue, const char*>);
static_assert(!std::is_constructible_v<otlpx::AnyValue, char>);

// ------------------------------------------------------------------ tests

void test_config_errors() {
  std::puts("config errors");
  expect_error(
      "bad endpoint",
      [] { otlpx::Engine e(otlpx::Config().ignore_environment().endpoint("::bad::")); },
      OTLPX_STATUS_CONFIG, "::bad::");
  expect_error(
      "bad TOML",
      [] { otlpx::Engine e(otlpx::Config().ignore_environment().toml("[exporter\nx = ")); },
      OTLPX_STATUS_CONFIG, "<otlpx_config_set_toml>:1");
  expect_error(
      "bad sampler ratio",
      [] {
        otlpx::Engine e(otlpx::Config().ignore_environment().sampler(
            otlpx::Sampler::trace_id_ratio, 2.0));
      },
      OTLPX_STATUS_CONFIG, "invalid configuration");
  // Setters check what C can get wrong, at once.
  expect_error(
      "invalid UTF-8 service name",
      [] { otlpx::Config().service_name(std::string_view("\xff\xfe", 2)); },
      OTLPX_STATUS_INVALID_UTF8, "otlpx_config_set_service_name");
  expect_error(
      "unknown protocol", [] { otlpx::Config().protocol(static_cast<otlpx::Protocol>(7)); },
      OTLPX_STATUS_INVALID_ARGUMENT, "otlpx_config_set_protocol");
  // A moved-from Config is refused, not mistaken for "the environment".
  otlpx::Config a;
  a.ignore_environment();
  otlpx::Config b = std::move(a);
  CHECK(a.get() == nullptr && b.get() != nullptr);
  expect_error("setter on moved-from Config", [&] { a.endpoint("http://x"); },
               OTLPX_STATUS_NULL_POINTER, "otlpx_config_set_endpoint");
  expect_error("Engine from moved-from Config", [&] { otlpx::Engine e(std::move(a)); },
               OTLPX_STATUS_NULL_POINTER, "moved from");
  // The non-throwing way.
  auto r = otlpx::Engine::try_create(otlpx::Config().ignore_environment().endpoint("::bad::"));
  CHECK(!r.ok());
  CHECK_EQ(r.status(), OTLPX_STATUS_CONFIG);
  CHECK(std::strlen(r.message()) > 0);
  CHECK(otlpx::last_error().find("::bad::") != std::string::npos);
  // `b` is freed unused by its destructor (LeakSanitizer checks).
}

// Invalid input on the hot path: a Status, never an exception.
void test_hot_path_status(const otlpx::Engine& engine, const otlpx::Tracer& tracer) {
  std::puts("hot-path statuses");
  const std::uint64_t refused_before = engine.stats().calls_refused;
  const std::uint64_t recorded_before = recorded(engine);
  const std::string_view bad("\xc3\x28", 2);

  otlpx::Span none = tracer.start_span(bad);
  CHECK(!none);
  CHECK_STATUS(none.start_status(), OTLPX_STATUS_INVALID_UTF8);
  CHECK_STATUS(none.end(), OTLPX_STATUS_INVALID_HANDLE);
  CHECK_STATUS(none.set_attribute("k", 1), OTLPX_STATUS_INVALID_HANDLE);

  otlpx::Span span = tracer.start_span("cpp-discarded");
  CHECK(span);
  CHECK_STATUS(span.start_status(), OTLPX_STATUS_OK);
  CHECK_STATUS(span.set_attribute("k", bad), OTLPX_STATUS_INVALID_UTF8);
  CHECK_STATUS(span.set_attribute(bad, 1), OTLPX_STATUS_INVALID_UTF8);
  CHECK_STATUS(span.update_name(bad), OTLPX_STATUS_INVALID_UTF8);
  CHECK_STATUS(span.add_event(bad), OTLPX_STATUS_INVALID_UTF8);
  CHECK_STATUS(span.set_status(static_cast<otlpx::StatusCode>(9)), OTLPX_STATUS_INVALID_ARGUMENT);
  otlpx_span_context link{};
  link.trace_id[0] = 1;
  link.span_id[0] = 1;
  link.trace_state = otlpx::to_str(bad);
  CHECK_STATUS(span.add_link(link), OTLPX_STATUS_INVALID_UTF8);
  // Refused by the wrapper: OTLP integers are int64.
  CHECK_STATUS(span.set_attribute("big", std::numeric_limits<std::uint64_t>::max()),
               OTLPX_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(span.set_attribute("bigs", std::vector<std::uint64_t>{1, ~0ULL}),
               OTLPX_STATUS_INVALID_ARGUMENT);
  // The span is still fine after all that; discarding records nothing.
  CHECK_STATUS(span.set_attribute("fine", true), OTLPX_STATUS_OK);
  const otlpx_span stale = span.handle();
  CHECK_STATUS(span.discard(), OTLPX_STATUS_OK);
  CHECK(!span);
  CHECK_STATUS(span.discard(), OTLPX_STATUS_INVALID_HANDLE);
  // The raw handle is generation-checked: stale, never another span's.
  otlpx::Span reused = tracer.start_span("cpp-reuse");
  CHECK_EQ(otlpx_span_end(stale, 0), OTLPX_STATUS_INVALID_HANDLE);
  CHECK(reused);
  CHECK_STATUS(reused.discard(), OTLPX_STATUS_OK);
  // Result: value() on an error throws, the rest does not.
  auto ctx = span.context();
  CHECK(!ctx.ok());
  CHECK_EQ(ctx.status(), OTLPX_STATUS_INVALID_HANDLE);
  expect_error("Result::value on an error", [&] { (void)ctx.value(); },
               OTLPX_STATUS_INVALID_HANDLE, "otlpx::Result::value");

  CHECK_EQ(recorded(engine), recorded_before);
  // The seven refusals the library saw (bad name, value, key, new name,
  // event name, status code, trace state); the wrapper's own and stale
  // handles are not counted.
  CHECK_EQ(engine.stats().calls_refused - refused_before, 7u);
}

otlpx::Span make_span(const otlpx::Tracer& tracer, std::string_view name) {
  otlpx::Span s = tracer.start_span(name);
  (void)s.set_attribute("made.by", "make_span");
  return s;  // moved (or elided), never ended here
}

void test_raii_and_moves(const otlpx::Engine& engine, const otlpx::Tracer& tracer) {
  std::puts("RAII and moves");
  std::uint64_t before = recorded(engine);
  {
    otlpx::Span s = tracer.start_span("cpp-raii");
    CHECK(s);
    CHECK_STATUS(s.set_attribute("scope", "block"), OTLPX_STATUS_OK);
    CHECK_EQ(recorded(engine), before);
  }
  CHECK_EQ(recorded(engine), before + 1);  // ended at scope exit

  // Move construction: the moved-from Span is empty and does nothing.
  before = recorded(engine);
  {
    otlpx::Span a = tracer.start_span("cpp-move");
    const otlpx_span h = a.handle();
    otlpx::Span b(std::move(a));
    CHECK(!a);  // NOLINT: testing the moved-from state
    CHECK_EQ(a.handle(), 0u);
    CHECK_EQ(b.handle(), h);
    CHECK_STATUS(a.end(), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(a.set_attribute("x", 1), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_EQ(recorded(engine), before);
    CHECK_STATUS(b.end(), OTLPX_STATUS_OK);
    CHECK_EQ(recorded(engine), before + 1);
    CHECK_STATUS(b.end(), OTLPX_STATUS_INVALID_HANDLE);  // no double end
  }
  CHECK_EQ(recorded(engine), before + 1);

  // Move assignment ends the target's span first.
  before = recorded(engine);
  {
    otlpx::Span c = tracer.start_span("cpp-move-assign-old");
    otlpx::Span d = tracer.start_span("cpp-move-assign-new");
    const otlpx_span dh = d.handle();
    c = std::move(d);
    CHECK_EQ(recorded(engine), before + 1);
    CHECK_EQ(c.handle(), dh);
    CHECK(!d);  // NOLINT
  }
  CHECK_EQ(recorded(engine), before + 2);

  // Returned from a function, and through a reallocating vector.
  before = recorded(engine);
  {
    otlpx::Span r = make_span(tracer, "cpp-returned");
    CHECK(r);
    std::vector<otlpx::Span> spans;
    for (int i = 0; i < 100; ++i) spans.push_back(tracer.start_span("cpp-vector"));
    CHECK_EQ(recorded(engine), before);
    spans.clear();
    CHECK_EQ(recorded(engine), before + 100);
  }
  CHECK_EQ(recorded(engine), before + 101);

  // A Span moved to another thread ends there.
  before = recorded(engine);
  otlpx::Span travelling = tracer.start_span("cpp-thread-moved");
  std::thread([s = std::move(travelling)]() mutable {
    CHECK_STATUS(s.set_attribute("moved", true), OTLPX_STATUS_OK);
  }).join();
  CHECK(!travelling);  // NOLINT
  CHECK_EQ(recorded(engine), before + 1);
}

// One span with every kind of value, checked field by field by the driver.
void test_typed_span(const otlpx::Engine& engine, const otlpx::Tracer& tracer) {
  std::puts("typed span");
  const std::uint64_t before = recorded(engine);
  otlpx::Span parent = tracer.start_span(
      "cpp-parent", otlpx::SpanOptions().with_kind(otlpx::SpanKind::server));
  auto pctx = parent.context();
  CHECK(pctx.ok());
  bool nonzero = false;
  for (std::uint8_t b : pctx->trace_id) nonzero = nonzero || b != 0;
  CHECK(nonzero);

  otlpx::Span child = tracer.start_span(
      "cpp-child-old-name", otlpx::SpanOptions()
                                .with_parent(parent)
                                .with_kind(otlpx::SpanKind::client)
                                .with_start_time_unix_nano(kFixedTime));
  CHECK_STATUS(child.start_status(), OTLPX_STATUS_OK);
  auto cctx = child.context();
  CHECK(cctx.ok());
  CHECK(std::memcmp(cctx->trace_id, pctx->trace_id, 16) == 0);
  CHECK(std::memcmp(cctx->span_id, pctx->span_id, 8) != 0);
  CHECK_STATUS(child.update_name("cpp-typed"), OTLPX_STATUS_OK);

  // Not NUL-terminated: only the first five bytes are the value.
  const char buffer[] = {'v', 'a', 'l', 'u', 'e', 'X', 'Y', 'Z'};
  const std::string owned = "owned";
  CHECK_STATUS(child.set_attribute("s.view", std::string_view(buffer, 5)), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("s.cstr", "literal"), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("s.string", owned), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("b", true), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("i.int", -42), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("i.unsigned", 7u), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("i.max", std::numeric_limits<std::int64_t>::max()),
               OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("i.u8", std::uint8_t{200}), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("d", 2.5), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("d.float", 0.5f), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("a.i64", std::vector<std::int64_t>{1, 2, 3}), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("a.int", std::vector<int>{4, 5}), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("a.double", std::vector<double>{1.5, -2.5}), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("a.bool", std::vector<bool>{true, false}), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("a.barr", std::array<bool, 3>{false, true, true}),
               OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("a.string", std::vector<std::string>{"a", "bc"}),
               OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("a.cstr", std::array<const char*, 2>{"x", "y"}),
               OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("a.view", std::vector<std::string_view>{"p", "q"}),
               OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("a.init", {7, 8, 9}), OTLPX_STATUS_OK);
  const double c_array[2] = {0.25, 0.75};
  CHECK_STATUS(child.set_attribute("a.carray", c_array), OTLPX_STATUS_OK);
  std::vector<int> many(20);
  for (int i = 0; i < 20; ++i) many[static_cast<std::size_t>(i)] = i;
  CHECK_STATUS(child.set_attribute("a.many", many), OTLPX_STATUS_OK);  // past the inline buffer
  CHECK_STATUS(child.set_attributes({{"m.one", 1}, {"m.two", "two"}}), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("replaced", 1), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_attribute("replaced", 2), OTLPX_STATUS_OK);

  CHECK_STATUS(child.add_event("checkpoint", {{"n", 1}, {"why", "test"}}, kFixedTime + 10),
               OTLPX_STATUS_OK);
  CHECK_STATUS(child.add_event("now"), OTLPX_STATUS_OK);
  otlpx_span_context target{};
  for (int i = 0; i < 16; ++i) target.trace_id[i] = static_cast<std::uint8_t>(0xa0 + i);
  for (int i = 0; i < 8; ++i) target.span_id[i] = static_cast<std::uint8_t>(0xb0 + i);
  target.trace_flags = 1;
  CHECK_STATUS(child.add_link(target, {{"link.why", "retry"}}), OTLPX_STATUS_OK);
  CHECK_STATUS(child.set_status(otlpx::StatusCode::error, "boom"), OTLPX_STATUS_OK);
  CHECK_STATUS(child.end(kFixedTime + 500), OTLPX_STATUS_OK);

  // A parent from elsewhere (a traceparent header, say).
  otlpx_span_context remote{};
  for (int i = 0; i < 16; ++i) remote.trace_id[i] = static_cast<std::uint8_t>(i + 1);
  for (int i = 0; i < 8; ++i) remote.span_id[i] = static_cast<std::uint8_t>(0x10 + i);
  remote.trace_flags = 1;
  remote.is_remote = 1;
  {
    otlpx::Span r = tracer.start_span("cpp-remote-child",
                                      otlpx::SpanOptions().with_parent(remote).with_kind(
                                          otlpx::SpanKind::consumer));
    CHECK_STATUS(r.start_status(), OTLPX_STATUS_OK);
    auto rctx = r.context();
    CHECK(rctx.ok() && std::memcmp(rctx->trace_id, remote.trace_id, 16) == 0);
  }
  // An ended Span as parent is refused, not turned into a root span.
  otlpx::Span ended;
  otlpx::Span orphan = tracer.start_span("cpp-orphan", otlpx::SpanOptions().with_parent(ended));
  CHECK(!orphan);
  CHECK_STATUS(orphan.start_status(), OTLPX_STATUS_INVALID_HANDLE);

  CHECK_STATUS(parent.set_status(otlpx::StatusCode::ok), OTLPX_STATUS_OK);
  CHECK_STATUS(parent.end(), OTLPX_STATUS_OK);
  CHECK_EQ(recorded(engine), before + 3);

  // One call for a span finished elsewhere.
  const otlpx::Attribute attrs[] = {{"src", "finished"}, {"n", 3}};
  otlpx::FinishedSpan fs;
  std::array<std::uint8_t, 16> tid{};
  std::array<std::uint8_t, 8> sid{};
  tid[15] = 0x42;
  sid[7] = 0x43;
  fs.ids(tid, sid)
      .with_name("cpp-recorded")
      .with_kind(otlpx::SpanKind::producer)
      .times(kFixedTime, kFixedTime + 1000)
      .with_status(otlpx::StatusCode::ok)
      .with_attributes(attrs, 2);
  CHECK_STATUS(tracer.record(fs), OTLPX_STATUS_OK);
  CHECK_EQ(recorded(engine), before + 4);
}

constexpr int kThreads = 4;
constexpr int kPerThread = 2500;

void test_threads(const otlpx::Engine& engine) {
  std::puts("threads");
  const std::uint64_t before = recorded(engine);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&engine, &failures, t] {
      // The same name and version give the same tracer, from any thread.
      const otlpx::Tracer tracer = engine.tracer("cpp-mt", "1.0");
      for (int i = 0; i < kPerThread; ++i) {
        otlpx::Span outer = tracer.start_span("mt");
        bool ok = outer.set_attribute("thread", t).ok() && outer.set_attribute("seq", i).ok();
        {
          otlpx::Span inner = tracer.start_span("mt", otlpx::SpanOptions().with_parent(outer));
          ok = ok && inner.add_event("tick", {{"i", i}}).ok();
        }
        ok = ok && outer.end().ok();
        if (!ok) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK_EQ(failures.load(), 0);
  CHECK_EQ(recorded(engine), before + 2u * kThreads * kPerThread);
}

void flush_and_account(const otlpx::Engine& engine) {
  engine.flush(std::chrono::seconds(20));
  const otlpx_stats s = engine.stats();
  std::printf("  recorded %llu exported %llu requests %llu\n",
              static_cast<unsigned long long>(s.recorded),
              static_cast<unsigned long long>(s.exported),
              static_cast<unsigned long long>(s.export_requests));
  CHECK_EQ(s.recorded, s.exported);
  CHECK_EQ(s.in_flight + s.in_rings, 0u);
  CHECK_EQ(s.dropped_ring_full + s.dropped_too_large + s.dropped_invalid + s.dropped_aborted +
               s.dropped_rejected + s.dropped_export_failed + s.dropped_shutdown + s.dropped_evicted,
           0u);
  CHECK_EQ(s.export_failures, 0u);
  g_sent += s.exported;
}

// A second engine, over OTLP/HTTP with gzip, then its shutdown.
void test_http_and_shutdown(const char* endpoint) {
  std::puts("http engine and shutdown");
  // The service name from a buffer that is not NUL-terminated.
  const char name[] = {'c', 'p', 'p', '-', 'h', 't', 't', 'p', '!', '!'};
  otlpx::Config config;
  config.ignore_environment()
      .service_name(std::string_view(name, 8))
      .endpoint(endpoint)
      .protocol(otlpx::Protocol::http_protobuf)
      .compression(otlpx::Compression::gzip)
      .header("x-cpp", "yes")
      .export_timeout(std::chrono::seconds(5))
      .schedule_delay(20ms);
  otlpx::Engine engine(std::move(config));
  const otlpx::Tracer tracer = engine.tracer("cpp-http");
  for (int i = 0; i < 100; ++i) {
    otlpx::Span s = tracer.start_span("cpp-http-span");
    CHECK_STATUS(s.set_attribute("i", i), OTLPX_STATUS_OK);
  }
  otlpx::Span late = tracer.start_span("cpp-late");
  flush_and_account(engine);

  engine.shutdown(std::chrono::seconds(5));
  otlpx::Span after = tracer.start_span("cpp-after-shutdown");
  CHECK(!after);
  CHECK_STATUS(after.start_status(), OTLPX_STATUS_SHUT_DOWN);
  CHECK_STATUS(late.end(), OTLPX_STATUS_SHUT_DOWN);  // not recorded
  CHECK(!late);
  CHECK_STATUS(engine.try_flush(1s), OTLPX_STATUS_NOT_EXPORTING);
  expect_error("flush after shutdown", [&] { engine.flush(1s); }, OTLPX_STATUS_NOT_EXPORTING,
               "otlpx_engine_flush: the engine has no exporter: ");
  CHECK_EQ(engine.stats().recorded, engine.stats().exported);
}

void test_lifetimes() {
  std::puts("lifetimes");
  otlpx::Span survivor;
  otlpx::Tracer stale_tracer;
  {
    // Export off: it records, exports nothing.
    otlpx::Engine engine(
        otlpx::Config().ignore_environment().export_enabled(false).service_name("lifetime"));
    stale_tracer = engine.tracer("lifetime");
    survivor = stale_tracer.start_span("outlives-its-engine");
    CHECK(survivor);
    otlpx::Span ended_in_time = stale_tracer.start_span("ended-in-time");
    expect_error("flush without exporter", [&] { engine.flush(1s); },
                 OTLPX_STATUS_NOT_EXPORTING, "otlpx_engine_flush");
    // Moving engines: the moved-from one is empty, the old target freed.
    otlpx::Engine other(otlpx::Config().ignore_environment());
    otlpx::Engine third = std::move(other);
    expect_error("stats of a moved-from Engine", [&] { (void)other.stats(); },
                 OTLPX_STATUS_NULL_POINTER, "otlpx_engine_stats");
    third = otlpx::Engine(otlpx::Config().ignore_environment().disabled());
    CHECK(third.get() != nullptr);
    // A finished span with all-zero ids: refused, counted as invalid.
    otlpx::FinishedSpan zero;
    zero.with_name("zero-ids");
    CHECK_STATUS(engine.tracer("lifetime").record(zero), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_EQ(engine.stats().dropped_invalid, 1u);
  }  // the engine is freed here, with `survivor` still open
  CHECK(survivor);
  CHECK_STATUS(survivor.set_attribute("late", 1), OTLPX_STATUS_INVALID_HANDLE);
  CHECK_STATUS(survivor.end(), OTLPX_STATUS_INVALID_HANDLE);
  CHECK(!survivor);
  otlpx::Span none = stale_tracer.start_span("through-a-freed-tracer");
  CHECK_STATUS(none.start_status(), OTLPX_STATUS_INVALID_HANDLE);

  // The environment alone (the driver clears it), saying record only for
  // every signal: no exporter.
  CHECK(::setenv("OTEL_TRACES_EXPORTER", "none", 1) == 0);
  CHECK(::setenv("OTEL_LOGS_EXPORTER", "none", 1) == 0);
  CHECK(::setenv("OTEL_METRICS_EXPORTER", "none", 1) == 0);
  otlpx::Engine env = otlpx::Engine::from_env();
  CHECK(::unsetenv("OTEL_TRACES_EXPORTER") == 0);
  CHECK(::unsetenv("OTEL_LOGS_EXPORTER") == 0);
  CHECK(::unsetenv("OTEL_METRICS_EXPORTER") == 0);
  CHECK_STATUS(env.try_flush(100ms), OTLPX_STATUS_NOT_EXPORTING);
  auto created = otlpx::Engine::try_create(otlpx::Config().ignore_environment());
  CHECK(created.ok());
  otlpx::Engine moved_out = std::move(created).value();
  CHECK(moved_out.get() != nullptr);
}

// Writes one drained request to `out`: its length (4 bytes, little
// endian), then its bytes.
void write_request(std::FILE* out, const std::vector<std::uint8_t>& request) {
  const std::size_t n = request.size();
  const unsigned char prefix[4] = {static_cast<unsigned char>(n), static_cast<unsigned char>(n >> 8),
                                   static_cast<unsigned char>(n >> 16),
                                   static_cast<unsigned char>(n >> 24)};
  CHECK(std::fwrite(prefix, 1, 4, out) == 4);
  CHECK(std::fwrite(request.data(), 1, n, out) == n);
}

// Log records on a record-only engine, drained into `dump` for the driver
// (which checks every field of the "cpp-*" cases).
void test_logs(const char* dump) {
  std::puts("logs");
  otlpx::Engine engine(
      otlpx::Config().ignore_environment().export_enabled(false).service_name("cpp-logs"));
  const otlpx::Logger logger = engine.logger("cpp-logger", "3.1");
  CHECK(logger);
  CHECK(logger.get() == engine.logger("cpp-logger", "3.1").get());
  CHECK(logger.enabled(otlpx::Severity::info));
  CHECK(logger.enabled(static_cast<otlpx::Severity>(24)));
  CHECK(!logger.enabled(static_cast<otlpx::Severity>(25)));
  CHECK(!otlpx::Logger().enabled(otlpx::Severity::info));

  // The shorthand: severity, body, attributes.
  CHECK_STATUS(logger.emit(otlpx::Severity::info, "cpp plain", {{"case", "cpp-plain"}, {"n", 1}}),
               OTLPX_STATUS_OK);

  // Every kind of value, nested; the record's every field.
  const std::int64_t ints[] = {1, 2, 3};
  const bool flags[] = {true, false};
  const otlpx_str names[] = {otlpx::to_str("a"), otlpx::to_str("b")};
  const std::string owned = "owned";
  const otlpx::AnyValue inner[] = {1, "two", 3.5, true, owned,
                                   otlpx::AnyValue::bytes(std::string_view("\0\xff", 2))};
  const otlpx::AnyKeyValue deeper[] = {{"ints", otlpx::AnyValue::int_array(ints, 3)}};
  const std::vector<otlpx::AnyKeyValue> entries = {
      {"inner", otlpx::AnyValue::array_of(inner)},
      {"deeper", otlpx::AnyValue::map_of(deeper)},
      {"flags", otlpx::AnyValue::bool_array(flags, 2)},
      {"names", otlpx::AnyValue::string_array(names, 2)},
      {"empty", otlpx::AnyValue::array_of(static_cast<const otlpx::AnyValue*>(nullptr), 0)},
  };
  const otlpx::Attribute attrs[] = {{"case", "cpp-structured"}, {"user", "u-7"}};
  std::array<std::uint8_t, 16> trace{};
  trace[15] = 0x51;
  std::array<std::uint8_t, 8> span{};
  span[7] = 0x52;
  CHECK_STATUS(logger.emit(otlpx::LogRecord(otlpx::Severity::warn)
                               .with_body(otlpx::AnyValue::map_of(entries))
                               .with_attributes(attrs)
                               .with_severity_text("warning")
                               .with_event_name("cpp.event")
                               .with_time(kFixedTime)
                               .with_observed_time(kFixedTime + 1)
                               .with_span_context(trace, span)),
               OTLPX_STATUS_OK);

  // Correlated with a span of the engine, through its context.
  const otlpx::Tracer tracer = engine.tracer("cpp-logs");
  otlpx::Span parent = tracer.start_span("cpp-log-parent");
  const auto ctx = parent.context();
  CHECK(ctx.ok());
  const otlpx::Attribute correlated[] = {{"case", "cpp-correlated"}};
  CHECK_STATUS(logger.emit(otlpx::LogRecord(otlpx::Severity::error)
                               .with_attributes(correlated)
                               .with_span_context(*ctx)),
               OTLPX_STATUS_OK);
  CHECK_STATUS(parent.end(), OTLPX_STATUS_OK);

  // OTLPX_MAX_BODY_DEPTH levels are fine, one more is refused.
  std::vector<otlpx::AnyValue> chain(OTLPX_MAX_BODY_DEPTH + 1);
  chain[0] = 42;
  for (std::size_t i = 1; i < chain.size(); ++i) {
    chain[i] = otlpx::AnyValue::array_of(&chain[i - 1], 1);
  }
  const otlpx::Attribute deep[] = {{"case", "cpp-max-depth"}};
  CHECK_STATUS(logger.emit(otlpx::LogRecord(otlpx::Severity::debug)
                               .with_body(chain[OTLPX_MAX_BODY_DEPTH - 1])
                               .with_attributes(deep)),
               OTLPX_STATUS_OK);

  // Bad input: a status, never an exception, counted in the logs stats.
  CHECK_STATUS(logger.emit(otlpx::LogRecord(static_cast<otlpx::Severity>(25))),
               OTLPX_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(logger.emit(otlpx::Severity::info, std::string_view("\xc3\x28", 2)),
               OTLPX_STATUS_INVALID_UTF8);
  CHECK_STATUS(logger.emit(otlpx::LogRecord().with_body(chain[OTLPX_MAX_BODY_DEPTH])),
               OTLPX_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(otlpx::Logger().emit(otlpx::Severity::info, "x"), OTLPX_STATUS_NULL_POINTER);

  const otlpx_stats logs = engine.stats(otlpx::Signal::logs);
  CHECK_EQ(logs.recorded, 4u);
  CHECK_EQ(logs.calls_refused, 3u);
  CHECK_EQ(engine.stats().recorded, 1u);  // the parent span, apart
  CHECK_EQ(engine.stats().calls_refused, 0u);

  std::FILE* out = std::fopen(dump, "wb");
  CHECK(out != nullptr);
  std::uint64_t drained = 0;
  for (;;) {
    const std::vector<std::uint8_t> request = engine.drain(otlpx::Signal::logs, 2);
    if (request.empty()) break;
    write_request(out, request);
    ++drained;
  }
  CHECK(std::fclose(out) == 0);
  CHECK_EQ(drained, 2u);  // 4 records, 2 a request
  CHECK_EQ(engine.stats(otlpx::Signal::logs).in_rings, 0u);
  CHECK(!engine.drain(otlpx::Signal::traces).empty());
  CHECK(engine.drain(otlpx::Signal::traces).empty());
}

// Log records through an exporting engine: all acknowledged.
void emit_and_flush_logs(const otlpx::Engine& engine) {
  std::puts("exported logs");
  const otlpx::Logger logger = engine.logger("cpp-test");
  for (int i = 0; i < 50; ++i) {
    CHECK_STATUS(logger.emit(otlpx::Severity::info, "exported", {{"i", i}}), OTLPX_STATUS_OK);
  }
  engine.flush(std::chrono::seconds(20));
  const otlpx_stats s = engine.stats(otlpx::Signal::logs);
  CHECK_EQ(s.recorded, 50u);
  CHECK_EQ(s.exported, 50u);
  std::printf("LOGS_EXPORTED %llu\n", static_cast<unsigned long long>(s.exported));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <grpc-endpoint> <http-endpoint> <logs-file>\n", argv[0]);
    return 2;
  }
  std::printf("libotlpx %.*s\n", static_cast<int>(otlpx::version().size()),
              otlpx::version().data());
  test_config_errors();
  test_lifetimes();
  test_logs(argv[3]);
  {
    const char service[] = {'c', 'p', 'p', '-', 't', 'e', 's', 't', '#'};
    otlpx::Engine engine(otlpx::Config()
                             .ignore_environment()
                             .service_name(std::string_view(service, 8))
                             .endpoint(argv[1])
                             .protocol(otlpx::Protocol::grpc)
                             .compression(otlpx::Compression::zstd)
                             .resource_attribute("deployment.environment", "test")
                             .resource_attribute("cpp.answer", 42)
                             .max_batch_spans(512)
                             .ring_bytes_per_cpu(std::size_t{8} << 20)
                             .export_timeout(std::chrono::seconds(10))
                             .sampler(otlpx::Sampler::always_on));
    const otlpx::Tracer tracer = engine.tracer("cpp-test", "1.2.3");
    CHECK(tracer.get() == engine.tracer("cpp-test", "1.2.3").get());
    test_hot_path_status(engine, tracer);
    test_raii_and_moves(engine, tracer);
    test_typed_span(engine, tracer);
    test_threads(engine);
    flush_and_account(engine);
    emit_and_flush_logs(engine);
  }  // freed (and shut down) here
  test_http_and_shutdown(argv[2]);
  std::printf("OK %d checks\nSENT %llu\n", g_checks, static_cast<unsigned long long>(g_sent));
  return 0;
}
