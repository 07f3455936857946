/*
 * check.h: the few helpers the C tests share. No framework: a failed
 * check prints where and what, the test goes on, and main returns
 * check_exit() (non-zero if anything failed).
 */
#ifndef OTLPX_TEST_CHECK_H
#define OTLPX_TEST_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlpx.h"

static int check_failures;

/* A condition that must hold. */
#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

/* A call that must return status `want`. */
#define CHECK_STATUS(call, want)                                           \
    do {                                                                   \
        otlpx_status got_ = (call);                                        \
        otlpx_status want_ = (want);                                       \
        if (got_ != want_) {                                               \
            fprintf(stderr,                                                \
                    "%s:%d: %s\n  returned %u (%s), expected %u (%s)\n",   \
                    __FILE__, __LINE__, #call, (unsigned)got_,             \
                    otlpx_status_str(got_), (unsigned)want_,               \
                    otlpx_status_str(want_));                              \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

/* A call that must succeed, or the test cannot go on. */
#define REQUIRE_OK(call)                                                   \
    do {                                                                   \
        otlpx_status got_ = (call);                                        \
        if (got_ != OTLPX_STATUS_OK) {                                     \
            char msg_[512];                                                \
            size_t len_ = 0;                                               \
            msg_[0] = '\0';                                                \
            (void)otlpx_last_error(msg_, sizeof msg_, &len_);              \
            fprintf(stderr, "%s:%d: %s\n  returned %u (%s); last error: %s\n", \
                    __FILE__, __LINE__, #call, (unsigned)got_,             \
                    otlpx_status_str(got_), msg_);                         \
            exit(2);                                                       \
        }                                                                  \
    } while (0)

/* An (pointer, length) pair for a string literal. */
#define S(lit) (lit), (sizeof(lit) - 1)
/* The same, as an otlpx_str. */
#define OS(lit) ((otlpx_str){(lit), sizeof(lit) - 1})

/* Three bytes that are not UTF-8 (0xff never occurs in UTF-8). */
static const char BAD_UTF8[] = "a\xff" "b";
#define BAD S(BAD_UTF8)
#define BAD_STR OS(BAD_UTF8)

/* A length past PTRDIFF_MAX: refused before anything is read. */
#define HUGE_LEN ((size_t)PTRDIFF_MAX + 1)

static inline otlpx_stats stats_of(const otlpx_engine *engine) {
    otlpx_stats s;
    memset(&s, 0, sizeof s);
    REQUIRE_OK(otlpx_engine_stats(engine, &s, sizeof s));
    return s;
}

/*
 * A configuration that reads nothing from the environment, samples every
 * span, and exports to `endpoint` (NULL: records without exporting, set
 * explicitly: with no endpoint an engine would export to localhost:4317),
 * with optional TOML.
 */
static inline otlpx_config *test_config(const char *endpoint, const char *toml) {
    otlpx_config *config = NULL;
    REQUIRE_OK(otlpx_config_new(&config));
    REQUIRE_OK(otlpx_config_ignore_environment(config, 1));
    REQUIRE_OK(otlpx_config_set_sampler(config, OTLPX_SAMPLER_ALWAYS_ON, 0.0));
    REQUIRE_OK(otlpx_config_set_service_name(config, S("otlpx-c-tests")));
    if (endpoint != NULL) {
        REQUIRE_OK(otlpx_config_set_endpoint(config, endpoint, strlen(endpoint)));
        REQUIRE_OK(otlpx_config_set_export_timeout_ms(config, 2000));
    } else {
        REQUIRE_OK(otlpx_config_set_export(config, 0));
    }
    if (toml != NULL) {
        REQUIRE_OK(otlpx_config_set_toml(config, toml, strlen(toml)));
    }
    return config;
}

static inline otlpx_engine *test_engine(const char *endpoint, const char *toml) {
    otlpx_engine *engine = NULL;
    REQUIRE_OK(otlpx_engine_new(test_config(endpoint, toml), &engine));
    return engine;
}

static inline const otlpx_tracer *test_tracer(const otlpx_engine *engine) {
    const otlpx_tracer *tracer = NULL;
    REQUIRE_OK(otlpx_engine_tracer(engine, S("otlpx-c-tests"), S("1.0"), &tracer));
    return tracer;
}

/* A valid finished span: only the ids and a name set. */
static inline otlpx_finished_span minimal_span(void) {
    otlpx_finished_span s;
    memset(&s, 0, sizeof s);
    memset(s.trace_id, 0x11, sizeof s.trace_id);
    memset(s.span_id, 0x22, sizeof s.span_id);
    s.trace_flags = 1;
    s.name = OS("minimal");
    s.start_time_unix_nano = 1700000000000000000u;
    s.end_time_unix_nano = 1700000000000001000u;
    return s;
}

/* A zeroed attribute with a key and a type. */
static inline otlpx_attribute attr(const char *key, uint32_t type) {
    otlpx_attribute a;
    memset(&a, 0, sizeof a);
    a.key.ptr = key;
    a.key.len = strlen(key);
    a.type = type;
    return a;
}

static inline const otlpx_logger *test_logger(const otlpx_engine *engine) {
    const otlpx_logger *logger = NULL;
    REQUIRE_OK(otlpx_engine_logger(engine, S("otlpx-c-logs"), S("2.0"), &logger));
    return logger;
}

/* A zeroed value of a type (no body, when the type is 0). */
static inline otlpx_any_value any_value(uint32_t type) {
    otlpx_any_value v;
    memset(&v, 0, sizeof v);
    v.type = type;
    return v;
}

static inline otlpx_any_value any_string(otlpx_str s) {
    otlpx_any_value v = any_value(OTLPX_VALUE_TYPE_STRING);
    v.string = s;
    return v;
}

static inline otlpx_any_value any_int(int64_t n) {
    otlpx_any_value v = any_value(OTLPX_VALUE_TYPE_INT);
    v.int_value = n;
    return v;
}

/* An array or map value over `n` elements at `items`. */
static inline otlpx_any_value any_array(uint32_t type, const void *items, size_t n) {
    otlpx_any_value v = any_value(type);
    v.array = items;
    v.array_len = n;
    return v;
}

/* A record of a severity, with a string body. */
static inline otlpx_log_record log_record(uint32_t severity, otlpx_str body) {
    otlpx_log_record r;
    memset(&r, 0, sizeof r);
    r.severity_number = severity;
    r.body = any_string(body);
    return r;
}

/* The engine's counters for a signal. */
static inline otlpx_stats signal_stats(const otlpx_engine *engine, uint32_t signal) {
    otlpx_stats s;
    memset(&s, 0, sizeof s);
    REQUIRE_OK(otlpx_engine_signal_stats(engine, signal, &s, sizeof s));
    return s;
}

static inline int check_exit(const char *name) {
    if (check_failures != 0) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif /* OTLPX_TEST_CHECK_H */
