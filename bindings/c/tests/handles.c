/*
 * handles.c: handles used wrongly, and engines past their prime.
 *
 * Freed configs, engines, tracers and loggers, ended and made-up span
 * handles, and handles of one type passed as another are refused with
 * OTLPX_STATUS_INVALID_HANDLE, never a crash (ASan would see one). After
 * otlpx_engine_shutdown, recording spans and emitting log records is
 * refused with OTLPX_STATUS_SHUT_DOWN and flushing with
 * OTLPX_STATUS_NOT_EXPORTING. A full ring is OTLPX_STATUS_RING_FULL,
 * counted in `dropped_ring_full` (of the logs signal, for log records).
 *
 * Usage: handles ENDPOINT DEAD_ENDPOINT
 */
#include "check.h"

static void double_free(void) {
    otlpx_config *c = NULL;
    REQUIRE_OK(otlpx_config_new(&c));
    CHECK_STATUS(otlpx_config_free(c), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_config_free(c), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_config_set_service_name(c, S("late")), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_config_set_protocol(c, OTLPX_PROTOCOL_GRPC), OTLPX_STATUS_INVALID_HANDLE);
    otlpx_engine *e = NULL;
    CHECK_STATUS(otlpx_engine_new(c, &e), OTLPX_STATUS_INVALID_HANDLE);
    CHECK(e == NULL);

    /* A config given to otlpx_engine_new is consumed. */
    c = test_config(NULL, NULL);
    REQUIRE_OK(otlpx_engine_new(c, &e));
    CHECK_STATUS(otlpx_config_free(c), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_config_set_sampler(c, OTLPX_SAMPLER_ALWAYS_OFF, 0),
                 OTLPX_STATUS_INVALID_HANDLE);
    otlpx_engine *e2 = NULL;
    CHECK_STATUS(otlpx_engine_new(c, &e2), OTLPX_STATUS_INVALID_HANDLE);
    CHECK(e2 == NULL);

    /* Even a config the engine refused. */
    otlpx_config *bad = test_config("not a url", NULL);
    CHECK_STATUS(otlpx_engine_new(bad, &e2), OTLPX_STATUS_CONFIG);
    CHECK(e2 == NULL);
    CHECK_STATUS(otlpx_config_free(bad), OTLPX_STATUS_INVALID_HANDLE);

    /* One handle type passed as another. */
    CHECK_STATUS(otlpx_config_free((otlpx_config *)e), OTLPX_STATUS_INVALID_HANDLE);
    const otlpx_tracer *t = test_tracer(e);
    CHECK_STATUS(otlpx_engine_flush((const otlpx_engine *)t, 1), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_engine_free((otlpx_engine *)t), OTLPX_STATUS_INVALID_HANDLE);
    otlpx_span span = 0;
    CHECK_STATUS(otlpx_span_begin((const otlpx_tracer *)e, S("x"), NULL, &span),
                 OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_span_begin(t, S("x"), NULL, &span), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_end(span, 0), OTLPX_STATUS_OK);

    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_INVALID_HANDLE);
    otlpx_stats s;
    CHECK_STATUS(otlpx_engine_stats(e, &s, sizeof s), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_engine_flush(e, 1), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_engine_shutdown(e, 1), OTLPX_STATUS_INVALID_HANDLE);
    const otlpx_tracer *t2 = NULL;
    CHECK_STATUS(otlpx_engine_tracer(e, S("x"), S(""), &t2), OTLPX_STATUS_INVALID_HANDLE);
    CHECK(t2 == NULL);

    /* Its tracer went with it. */
    otlpx_finished_span fs = minimal_span();
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_span_begin(t, S("x"), NULL, &span), OTLPX_STATUS_INVALID_HANDLE);
}

static void loggers(void) {
    otlpx_engine *e = test_engine(NULL, NULL);
    const otlpx_logger *l = test_logger(e);
    const otlpx_tracer *t = test_tracer(e);
    otlpx_log_record r = log_record(9, OS("x"));
    CHECK_STATUS(otlpx_logger_emit(l, &r), OTLPX_STATUS_OK);

    /* A logger is not a tracer, nor an engine, and the other way round. */
    CHECK_STATUS(otlpx_logger_emit((const otlpx_logger *)t, &r), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_logger_emit((const otlpx_logger *)e, &r), OTLPX_STATUS_INVALID_HANDLE);
    CHECK(!otlpx_logger_enabled((const otlpx_logger *)t, 9));
    otlpx_finished_span fs = minimal_span();
    CHECK_STATUS(otlpx_tracer_record_span((const otlpx_tracer *)l, &fs),
                 OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_engine_flush((const otlpx_engine *)l, 1), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_engine_free((otlpx_engine *)l), OTLPX_STATUS_INVALID_HANDLE);
    CHECK(signal_stats(e, OTLPX_SIGNAL_LOGS).recorded == 1);

    /* Its engine freed, the logger is a tombstone. */
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_logger_emit(l, &r), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_logger_emit(l, NULL), OTLPX_STATUS_INVALID_HANDLE);
    CHECK(!otlpx_logger_enabled(l, 9));
    const otlpx_logger *l2 = NULL;
    CHECK_STATUS(otlpx_engine_logger(e, S("x"), S(""), &l2), OTLPX_STATUS_INVALID_HANDLE);
    CHECK(l2 == NULL);
    otlpx_stats s;
    CHECK_STATUS(otlpx_engine_signal_stats(e, OTLPX_SIGNAL_LOGS, &s, sizeof s),
                 OTLPX_STATUS_INVALID_HANDLE);
    size_t len = 0, n = 0;
    CHECK_STATUS(otlpx_engine_drain(e, OTLPX_SIGNAL_LOGS, 1, NULL, 0, &len, &n),
                 OTLPX_STATUS_INVALID_HANDLE);
}

/* Every call taking a span handle, on a handle that names no open span. */
static void refused_everywhere(otlpx_span span, const char *what) {
    otlpx_attribute a = attr("k", OTLPX_VALUE_TYPE_INT);
    otlpx_span_context ctx;
    memset(&ctx, 0, sizeof ctx);
    memset(ctx.trace_id, 1, 16);
    memset(ctx.span_id, 1, 8);
    otlpx_span_context out;
    memset(&out, 0xee, sizeof out);
    int before = check_failures;
    CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_span_add_event(span, S("e"), 0, NULL, 0), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_span_add_link(span, &ctx, NULL, 0), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_span_set_status(span, OTLPX_STATUS_CODE_OK, NULL, 0),
                 OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_span_update_name(span, S("n")), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_span_get_context(span, &out), OTLPX_STATUS_INVALID_HANDLE);
    CHECK(out.trace_flags == 0xee);
    CHECK_STATUS(otlpx_span_end(span, 0), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_span_discard(span), OTLPX_STATUS_INVALID_HANDLE);
    if (check_failures != before) {
        fprintf(stderr, "  (the span handle was %s: %#llx)\n", what, (unsigned long long)span);
    }
}

static void span_handles(void) {
    otlpx_engine *e = test_engine(NULL, NULL);
    const otlpx_tracer *t = test_tracer(e);

    otlpx_span span = 0;
    REQUIRE_OK(otlpx_span_begin(t, S("once"), NULL, &span));
    CHECK_STATUS(otlpx_span_end(span, 0), OTLPX_STATUS_OK);
    refused_everywhere(span, "ended");

    REQUIRE_OK(otlpx_span_begin(t, S("discarded"), NULL, &span));
    CHECK_STATUS(otlpx_span_discard(span), OTLPX_STATUS_OK);
    refused_everywhere(span, "discarded");

    /* The slot is reused, but the old handle still names nothing. */
    otlpx_span next = 0;
    REQUIRE_OK(otlpx_span_begin(t, S("next"), NULL, &next));
    CHECK(next != span);
    refused_everywhere(span, "reused");

    refused_everywhere(0, "zero");
    refused_everywhere(UINT64_MAX, "all ones");
    refused_everywhere(12345, "made up");
    refused_everywhere(next + 1, "next + 1");
    refused_everywhere(next ^ ((uint64_t)1 << 40), "another slot");

    /* An ended or made-up parent. */
    otlpx_span_options opts;
    memset(&opts, 0, sizeof opts);
    otlpx_span child = 0;
    opts.parent_span = span;
    CHECK_STATUS(otlpx_span_begin(t, S("c"), &opts, &child), OTLPX_STATUS_INVALID_HANDLE);
    opts.parent_span = UINT64_MAX;
    CHECK_STATUS(otlpx_span_begin(t, S("c"), &opts, &child), OTLPX_STATUS_INVALID_HANDLE);
    CHECK(child == 0);
    opts.parent_span = next;
    CHECK_STATUS(otlpx_span_begin(t, S("c"), &opts, &child), OTLPX_STATUS_OK);

    /* Spans open when their engine is freed go with it. */
    CHECK(stats_of(e).recorded == 1);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
    refused_everywhere(next, "of a freed engine");
    refused_everywhere(child, "of a freed engine");
}

static void after_shutdown(const char *endpoint) {
    otlpx_engine *e = test_engine(endpoint, NULL);
    const otlpx_tracer *t = test_tracer(e);
    otlpx_span open = 0;
    REQUIRE_OK(otlpx_span_begin(t, S("open across shutdown"), NULL, &open));
    otlpx_finished_span fs = minimal_span();
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_OK);
    const otlpx_logger *l = test_logger(e);
    otlpx_log_record r = log_record(9, OS("before shutdown"));
    CHECK_STATUS(otlpx_logger_emit(l, &r), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_engine_shutdown(e, 5000), OTLPX_STATUS_OK);
    otlpx_stats s = stats_of(e);
    CHECK(s.recorded == 1 && s.exported == 1);
    otlpx_stats ls = signal_stats(e, OTLPX_SIGNAL_LOGS);
    CHECK(ls.recorded == 1 && ls.exported == 1);
    CHECK_STATUS(otlpx_logger_emit(l, &r), OTLPX_STATUS_SHUT_DOWN);
    CHECK_STATUS(otlpx_logger_emit(l, NULL), OTLPX_STATUS_SHUT_DOWN);
    CHECK(!otlpx_logger_enabled(l, 9));
    ls = signal_stats(e, OTLPX_SIGNAL_LOGS);
    CHECK(ls.recorded == 1 && ls.calls_refused == 0); /* shut down is not bad input */

    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_SHUT_DOWN);
    otlpx_span span = 0;
    CHECK_STATUS(otlpx_span_begin(t, S("late"), NULL, &span), OTLPX_STATUS_SHUT_DOWN);
    CHECK(span == 0);
    /* An open span can still be described, but not recorded. */
    CHECK_STATUS(otlpx_span_set_status(open, OTLPX_STATUS_CODE_OK, NULL, 0), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_end(open, 0), OTLPX_STATUS_SHUT_DOWN);
    CHECK_STATUS(otlpx_span_end(open, 0), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_engine_flush(e, 100), OTLPX_STATUS_NOT_EXPORTING);
    CHECK_STATUS(otlpx_engine_shutdown(e, 100), OTLPX_STATUS_OK);
    const otlpx_tracer *t2 = NULL;
    CHECK_STATUS(otlpx_engine_tracer(e, S("after"), S(""), &t2), OTLPX_STATUS_OK);
    s = stats_of(e);
    CHECK(s.recorded == 1 && s.exported == 1);
    CHECK(s.calls_refused == 0); /* shut down is not bad input */
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);

    /* An engine that does not export (otlpx_config_set_export(c, 0), as
     * test_config sets it without an endpoint) has nothing to flush. */
    e = test_engine(NULL, NULL);
    CHECK_STATUS(otlpx_engine_flush(e, 100), OTLPX_STATUS_NOT_EXPORTING);
    CHECK_STATUS(otlpx_engine_shutdown(e, 100), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
}

static void ring_full(const char *dead_endpoint) {
    /* One 1 KiB ring, exporting to a port nobody listens on. */
    otlpx_config *c = test_config(dead_endpoint, "[workers]\nrings = 1\nring_bytes_per_cpu = 1024\n");
    REQUIRE_OK(otlpx_config_set_export_timeout_ms(c, 200));
    otlpx_engine *e = NULL;
    REQUIRE_OK(otlpx_engine_new(c, &e));
    const otlpx_tracer *t = test_tracer(e);
    otlpx_finished_span fs = minimal_span();
    uint64_t ok = 0, full = 0;
    for (int i = 0; i < 200000 && full < 100; i++) {
        otlpx_status st = otlpx_tracer_record_span(t, &fs);
        if (st == OTLPX_STATUS_OK) {
            ok++;
        } else if (st == OTLPX_STATUS_RING_FULL) {
            full++;
        } else {
            CHECK_STATUS(st, OTLPX_STATUS_OK);
            break;
        }
    }
    printf("ring_full: %llu recorded, %llu refused as full\n", (unsigned long long)ok,
           (unsigned long long)full);
    CHECK(full > 0);
    otlpx_stats s = stats_of(e);
    CHECK(s.dropped_ring_full == full);
    CHECK(s.recorded == ok + full);
    CHECK(s.calls_refused == 0); /* a full ring is not bad input */
    CHECK(s.ring_bytes_capacity == 1024);
    /* A handle span hits the same wall (the ring is still full: no exporter). */
    otlpx_span span = 0;
    REQUIRE_OK(otlpx_span_begin(t, S("late"), NULL, &span));
    otlpx_status st = otlpx_span_end(span, 0);
    CHECK(st == OTLPX_STATUS_RING_FULL || st == OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_end(span, 0), OTLPX_STATUS_INVALID_HANDLE);
    st = otlpx_engine_shutdown(e, 300);
    CHECK(st == OTLPX_STATUS_OK || st == OTLPX_STATUS_TIMEOUT);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);

    /* Log records have rings of their own, and fill them the same way. */
    c = test_config(dead_endpoint, "[workers]\nrings = 1\nring_bytes_per_cpu = 1024\n");
    REQUIRE_OK(otlpx_config_set_export_timeout_ms(c, 200));
    REQUIRE_OK(otlpx_engine_new(c, &e));
    const otlpx_logger *l = test_logger(e);
    otlpx_log_record r = log_record(9, OS("filling"));
    ok = 0;
    full = 0;
    for (int i = 0; i < 200000 && full < 100; i++) {
        st = otlpx_logger_emit(l, &r);
        if (st == OTLPX_STATUS_OK) {
            ok++;
        } else if (st == OTLPX_STATUS_RING_FULL) {
            full++;
        } else {
            CHECK_STATUS(st, OTLPX_STATUS_OK);
            break;
        }
    }
    printf("ring_full (logs): %llu emitted, %llu refused as full\n", (unsigned long long)ok,
           (unsigned long long)full);
    CHECK(full > 0);
    s = signal_stats(e, OTLPX_SIGNAL_LOGS);
    CHECK(s.dropped_ring_full == full && s.recorded == ok + full);
    CHECK(s.calls_refused == 0);
    CHECK(stats_of(e).recorded == 0);
    st = otlpx_engine_shutdown(e, 300);
    CHECK(st == OTLPX_STATUS_OK || st == OTLPX_STATUS_TIMEOUT);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ENDPOINT DEAD_ENDPOINT\n", argv[0]);
        return 2;
    }
    double_free();
    loggers();
    span_handles();
    after_shutdown(argv[1]);
    ring_full(argv[2]);
    return check_exit("handles");
}
