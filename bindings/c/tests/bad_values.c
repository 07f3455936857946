/*
 * bad_values.c: input that is there but wrong.
 *
 * Invalid UTF-8 anywhere text is required → OTLPX_STATUS_INVALID_UTF8;
 * lengths past PTRDIFF_MAX, unknown enum numbers, all-zero ids and bool
 * array bytes other than 0 and 1 → OTLPX_STATUS_INVALID_ARGUMENT; and in
 * every case nothing recorded (the stats say so) but the drop the docs
 * name (`dropped_invalid` for zero ids). Oversized values: truncated to
 * the configured length and counted (`values_truncated`), or a span too
 * large for its ring refused with OTLPX_STATUS_TOO_LARGE and counted.
 * Log records likewise, and their bodies: severities past 24, value types
 * past MAP (or 0 nested), ARRAY and MAP as attribute types, nesting past
 * OTLPX_MAX_BODY_DEPTH, more than OTLPX_MAX_BODY_VALUES values (however
 * the pointers share), a context flagged but all zeros, unknown signals.
 */
#include "check.h"

static const otlpx_engine *engine;
static const otlpx_tracer *tracer;
static uint64_t refused; /* hot-path calls refused so far */

/* Records `span`, expecting `want`; the span must not have been recorded. */
static void refuse_record(const otlpx_finished_span *span, otlpx_status want, int line) {
    otlpx_stats before = stats_of(engine);
    otlpx_status got = otlpx_tracer_record_span(tracer, span);
    refused++;
    otlpx_stats after = stats_of(engine);
    if (got != want) {
        fprintf(stderr, "line %d: otlpx_tracer_record_span returned %u (%s), expected %u (%s)\n",
                line, (unsigned)got, otlpx_status_str(got), (unsigned)want,
                otlpx_status_str(want));
        check_failures++;
    }
    if (after.recorded != before.recorded) {
        fprintf(stderr, "line %d: a refused span was recorded\n", line);
        check_failures++;
    }
}
#define REFUSE_RECORD(span, want) refuse_record(&(span), (want), __LINE__)

/* A refused hot-path call (counted in calls_refused). */
#define REFUSE(call, want)                                                 \
    do {                                                                   \
        CHECK_STATUS(call, want);                                          \
        refused++;                                                         \
    } while (0)

static void utf8(void) {
    /* Tracer names. */
    const otlpx_tracer *t = NULL;
    CHECK_STATUS(otlpx_engine_tracer(engine, BAD, S("1"), &t), OTLPX_STATUS_INVALID_UTF8);
    CHECK_STATUS(otlpx_engine_tracer(engine, S("n"), BAD, &t), OTLPX_STATUS_INVALID_UTF8);
    CHECK(t == NULL);

    /* Handle spans: the name, the parent's trace state. */
    otlpx_span span = 0;
    REFUSE(otlpx_span_begin(tracer, BAD, NULL, &span), OTLPX_STATUS_INVALID_UTF8);
    otlpx_span_context ctx;
    memset(&ctx, 0, sizeof ctx);
    memset(ctx.trace_id, 1, 16);
    memset(ctx.span_id, 2, 8);
    ctx.trace_flags = 1;
    ctx.trace_state = BAD_STR;
    otlpx_span_options opts;
    memset(&opts, 0, sizeof opts);
    opts.parent_context = &ctx;
    REFUSE(otlpx_span_begin(tracer, S("x"), &opts, &span), OTLPX_STATUS_INVALID_UTF8);
    CHECK(span == 0);

    /* ... and everything set on an open one. */
    REQUIRE_OK(otlpx_span_begin(tracer, S("utf8"), NULL, &span));
    otlpx_attribute a = attr("k", OTLPX_VALUE_TYPE_STRING);
    a.key = BAD_STR;
    a.string = OS("v");
    REFUSE(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_INVALID_UTF8);
    a = attr("k", OTLPX_VALUE_TYPE_STRING);
    a.string = BAD_STR;
    REFUSE(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_INVALID_UTF8);
    otlpx_str elems[2] = {OS("fine"), BAD_STR};
    a = attr("k", OTLPX_VALUE_TYPE_STRING_ARRAY);
    a.array = elems;
    a.array_len = 2;
    REFUSE(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_INVALID_UTF8);
    /* Bytes are any bytes. */
    a.type = OTLPX_VALUE_TYPE_BYTES_ARRAY;
    CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_OK);
    a = attr("k", OTLPX_VALUE_TYPE_BYTES);
    a.string = BAD_STR;
    CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_OK);
    REFUSE(otlpx_span_add_event(span, BAD, 0, NULL, 0), OTLPX_STATUS_INVALID_UTF8);
    a = attr("k", OTLPX_VALUE_TYPE_STRING);
    a.string = BAD_STR;
    REFUSE(otlpx_span_add_event(span, S("e"), 0, &a, 1), OTLPX_STATUS_INVALID_UTF8);
    ctx.trace_state = BAD_STR;
    REFUSE(otlpx_span_add_link(span, &ctx, NULL, 0), OTLPX_STATUS_INVALID_UTF8);
    ctx.trace_state = OS("");
    REFUSE(otlpx_span_add_link(span, &ctx, &a, 1), OTLPX_STATUS_INVALID_UTF8);
    REFUSE(otlpx_span_set_status(span, OTLPX_STATUS_CODE_ERROR, BAD), OTLPX_STATUS_INVALID_UTF8);
    REFUSE(otlpx_span_update_name(span, BAD), OTLPX_STATUS_INVALID_UTF8);
    CHECK_STATUS(otlpx_span_discard(span), OTLPX_STATUS_OK);

    /* One-shot spans: every string. */
    otlpx_finished_span fs = minimal_span();
    fs.name = BAD_STR;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_UTF8);
    fs = minimal_span();
    fs.trace_state = BAD_STR;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_UTF8);
    fs = minimal_span();
    fs.status_code = OTLPX_STATUS_CODE_ERROR;
    fs.status_message = BAD_STR;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_UTF8);
    otlpx_attribute bad_key = attr("", OTLPX_VALUE_TYPE_INT);
    bad_key.key = BAD_STR;
    fs = minimal_span();
    fs.attributes = &bad_key;
    fs.attributes_len = 1;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_UTF8);
    fs.attributes = &a; /* a bad string value */
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_UTF8);
    otlpx_event ev;
    memset(&ev, 0, sizeof ev);
    ev.name = BAD_STR;
    fs = minimal_span();
    fs.events = &ev;
    fs.events_len = 1;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_UTF8);
    ev.name = OS("e");
    ev.attributes = &a;
    ev.attributes_len = 1;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_UTF8);
    otlpx_link ln;
    memset(&ln, 0, sizeof ln);
    ln.context = ctx;
    ln.context.trace_state = BAD_STR;
    fs = minimal_span();
    fs.links = &ln;
    fs.links_len = 1;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_UTF8);
    ln.context.trace_state = OS("");
    ln.attributes = &a;
    ln.attributes_len = 1;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_UTF8);

    /* Configuration strings. */
    otlpx_config *c = NULL;
    REQUIRE_OK(otlpx_config_new(&c));
    CHECK_STATUS(otlpx_config_set_toml(c, BAD), OTLPX_STATUS_INVALID_UTF8);
    CHECK_STATUS(otlpx_config_set_service_name(c, BAD), OTLPX_STATUS_INVALID_UTF8);
    CHECK_STATUS(otlpx_config_set_endpoint(c, BAD), OTLPX_STATUS_INVALID_UTF8);
    CHECK_STATUS(otlpx_config_set_admin_address(c, BAD), OTLPX_STATUS_INVALID_UTF8);
    CHECK_STATUS(otlpx_config_add_header(c, BAD, S("v")), OTLPX_STATUS_INVALID_UTF8);
    CHECK_STATUS(otlpx_config_add_header(c, S("h"), BAD), OTLPX_STATUS_INVALID_UTF8);
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, &a), OTLPX_STATUS_INVALID_UTF8);
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, &bad_key), OTLPX_STATUS_INVALID_UTF8);
    /* None of them was kept: the config still builds an engine. */
    REQUIRE_OK(otlpx_config_ignore_environment(c, 1));
    REQUIRE_OK(otlpx_config_set_export(c, 0));
    otlpx_engine *e = NULL;
    CHECK_STATUS(otlpx_engine_new(c, &e), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
}

static void empty_strings(void) {
    /* NULL with length 0 is the empty string, everywhere. */
    otlpx_span span = 0;
    CHECK_STATUS(otlpx_span_begin(tracer, NULL, 0, NULL, &span), OTLPX_STATUS_OK);
    otlpx_attribute a = attr("", OTLPX_VALUE_TYPE_STRING);
    a.key = (otlpx_str){NULL, 0};
    otlpx_attribute b = attr("empty", OTLPX_VALUE_TYPE_BYTES);
    otlpx_attribute both[2] = {a, b};
    CHECK_STATUS(otlpx_span_set_attributes(span, both, 2), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_add_event(span, NULL, 0, 0, NULL, 0), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_set_status(span, OTLPX_STATUS_CODE_ERROR, NULL, 0), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_update_name(span, NULL, 0), OTLPX_STATUS_OK);
    uint64_t before = stats_of(engine).recorded;
    CHECK_STATUS(otlpx_span_end(span, 0), OTLPX_STATUS_OK);
    CHECK(stats_of(engine).recorded == before + 1);
}

static void huge_lengths(void) {
    char text[4] = "abc";
    otlpx_span span = 0;
    REFUSE(otlpx_span_begin(tracer, text, HUGE_LEN, NULL, &span), OTLPX_STATUS_INVALID_ARGUMENT);
    REFUSE(otlpx_span_begin(tracer, text, SIZE_MAX, NULL, &span), OTLPX_STATUS_INVALID_ARGUMENT);
    const otlpx_tracer *t = NULL;
    CHECK_STATUS(otlpx_engine_tracer(engine, text, HUGE_LEN, S(""), &t),
                 OTLPX_STATUS_INVALID_ARGUMENT);

    REQUIRE_OK(otlpx_span_begin(tracer, S("lengths"), NULL, &span));
    otlpx_attribute a = attr("k", OTLPX_VALUE_TYPE_STRING);
    a.string = (otlpx_str){text, HUGE_LEN};
    REFUSE(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_INVALID_ARGUMENT);
    a = attr("k", OTLPX_VALUE_TYPE_INT);
    a.key.len = HUGE_LEN;
    REFUSE(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_INVALID_ARGUMENT);
    /* An array count whose byte size is past PTRDIFF_MAX. */
    int64_t ints[1] = {1};
    a = attr("k", OTLPX_VALUE_TYPE_INT_ARRAY);
    a.array = ints;
    a.array_len = (size_t)PTRDIFF_MAX / sizeof(int64_t) + 1;
    REFUSE(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_INVALID_ARGUMENT);
    a = attr("k", OTLPX_VALUE_TYPE_INT);
    REFUSE(otlpx_span_set_attributes(span, &a, (size_t)PTRDIFF_MAX / sizeof a + 1),
           OTLPX_STATUS_INVALID_ARGUMENT);
    REFUSE(otlpx_span_add_event(span, text, HUGE_LEN, 0, NULL, 0), OTLPX_STATUS_INVALID_ARGUMENT);
    REFUSE(otlpx_span_set_status(span, OTLPX_STATUS_CODE_ERROR, text, HUGE_LEN),
           OTLPX_STATUS_INVALID_ARGUMENT);
    REFUSE(otlpx_span_update_name(span, text, HUGE_LEN), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_span_discard(span), OTLPX_STATUS_OK);

    otlpx_finished_span fs = minimal_span();
    fs.name.len = HUGE_LEN;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_ARGUMENT);
    fs = minimal_span();
    fs.attributes = &a;
    fs.attributes_len = HUGE_LEN;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_ARGUMENT);
    otlpx_event ev;
    memset(&ev, 0, sizeof ev);
    fs = minimal_span();
    fs.events = &ev;
    fs.events_len = HUGE_LEN;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_ARGUMENT);
    otlpx_link ln;
    memset(&ln, 0, sizeof ln);
    fs = minimal_span();
    fs.links = &ln;
    fs.links_len = HUGE_LEN;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_ARGUMENT);

    otlpx_config *c = NULL;
    REQUIRE_OK(otlpx_config_new(&c));
    CHECK_STATUS(otlpx_config_set_service_name(c, text, HUGE_LEN), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_config_set_toml(c, text, HUGE_LEN), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_config_set_endpoint(c, text, HUGE_LEN), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_config_add_header(c, text, HUGE_LEN, S("v")),
                 OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_config_free(c), OTLPX_STATUS_OK);
}

static void wrong_enums(void) {
    otlpx_span span = 0;
    otlpx_span_options opts;
    memset(&opts, 0, sizeof opts);
    opts.kind = 99;
    REFUSE(otlpx_span_begin(tracer, S("k"), &opts, &span), OTLPX_STATUS_INVALID_ARGUMENT);
    opts.kind = 6;
    REFUSE(otlpx_span_begin(tracer, S("k"), &opts, &span), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK(span == 0);

    REQUIRE_OK(otlpx_span_begin(tracer, S("enums"), NULL, &span));
    REFUSE(otlpx_span_set_status(span, 7, S("x")), OTLPX_STATUS_INVALID_ARGUMENT);
    REFUSE(otlpx_span_set_status(span, 3, NULL, 0), OTLPX_STATUS_INVALID_ARGUMENT);
    otlpx_attribute a = attr("k", 0);
    REFUSE(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_INVALID_ARGUMENT);
    a.type = 99;
    REFUSE(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_INVALID_ARGUMENT);
    a.type = 11;
    REFUSE(otlpx_span_add_event(span, S("e"), 0, &a, 1), OTLPX_STATUS_INVALID_ARGUMENT);
    /* A bool array holds 0 and 1 only. */
    uint8_t bools[3] = {0, 2, 1};
    otlpx_attribute ba = attr("bools", OTLPX_VALUE_TYPE_BOOL_ARRAY);
    ba.array = bools;
    ba.array_len = 3;
    REFUSE(otlpx_span_set_attributes(span, &ba, 1), OTLPX_STATUS_INVALID_ARGUMENT);
    bools[1] = 1;
    CHECK_STATUS(otlpx_span_set_attributes(span, &ba, 1), OTLPX_STATUS_OK);
    bools[1] = 255;
    /* A plain BOOL is any int64_t: non-zero is true. */
    otlpx_attribute b = attr("bool", OTLPX_VALUE_TYPE_BOOL);
    b.int_value = 2;
    CHECK_STATUS(otlpx_span_set_attributes(span, &b, 1), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_discard(span), OTLPX_STATUS_OK);

    otlpx_finished_span fs = minimal_span();
    fs.kind = 99;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_ARGUMENT);
    fs = minimal_span();
    fs.status_code = 7;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_ARGUMENT);
    a.type = 0;
    fs = minimal_span();
    fs.attributes = &a;
    fs.attributes_len = 1;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_ARGUMENT);
    a.type = 99;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_ARGUMENT);
    fs.attributes = &ba;
    REFUSE_RECORD(fs, OTLPX_STATUS_INVALID_ARGUMENT);

    otlpx_config *c = NULL;
    REQUIRE_OK(otlpx_config_new(&c));
    CHECK_STATUS(otlpx_config_set_protocol(c, 5), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_config_set_compression(c, 9), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_config_set_sampler(c, 42, 0.5), OTLPX_STATUS_INVALID_ARGUMENT);
    a.type = 0;
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, &a), OTLPX_STATUS_INVALID_ARGUMENT);
    a.type = 99;
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, &a), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, &ba), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_config_free(c), OTLPX_STATUS_OK);
}

static void zero_ids(void) {
    otlpx_stats before = stats_of(engine);
    otlpx_finished_span fs = minimal_span();
    memset(fs.trace_id, 0, sizeof fs.trace_id);
    CHECK_STATUS(otlpx_tracer_record_span(tracer, &fs), OTLPX_STATUS_INVALID_ARGUMENT);
    fs = minimal_span();
    memset(fs.span_id, 0, sizeof fs.span_id);
    CHECK_STATUS(otlpx_tracer_record_span(tracer, &fs), OTLPX_STATUS_INVALID_ARGUMENT);
    refused += 2;
    otlpx_stats after = stats_of(engine);
    CHECK(after.dropped_invalid == before.dropped_invalid + 2);
    /* Counted as recorded-then-dropped, so the stats still add up. */
    CHECK(after.recorded == before.recorded + 2);
    CHECK(after.in_rings == before.in_rings);
}

static void truncated_values(void) {
    /* [limits] attribute_value_length = 16 (this file's engine). */
    size_t mib = 1u << 20;
    char *big = malloc(mib);
    REQUIRE_OK(big == NULL ? OTLPX_STATUS_NULL_POINTER : OTLPX_STATUS_OK);
    memset(big, 'x', mib);
    otlpx_stats before = stats_of(engine);

    otlpx_attribute attrs[4];
    attrs[0] = attr("big.string", OTLPX_VALUE_TYPE_STRING);
    attrs[0].string = (otlpx_str){big, mib};
    attrs[1] = attr("big.bytes", OTLPX_VALUE_TYPE_BYTES);
    attrs[1].string = (otlpx_str){big, mib};
    otlpx_str elems[3] = {{big, mib}, OS("short"), {big, 17}};
    attrs[2] = attr("big.array", OTLPX_VALUE_TYPE_STRING_ARRAY);
    attrs[2].array = elems;
    attrs[2].array_len = 3;
    attrs[3] = attr("exactly.16", OTLPX_VALUE_TYPE_STRING);
    attrs[3].string = (otlpx_str){big, 16};

    otlpx_span span = 0;
    REQUIRE_OK(otlpx_span_begin(tracer, S("truncated"), NULL, &span));
    CHECK_STATUS(otlpx_span_set_attributes(span, attrs, 4), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_end(span, 0), OTLPX_STATUS_OK);
    otlpx_finished_span fs = minimal_span();
    fs.attributes = attrs;
    fs.attributes_len = 4;
    CHECK_STATUS(otlpx_tracer_record_span(tracer, &fs), OTLPX_STATUS_OK);

    otlpx_stats after = stats_of(engine);
    /* Per span: the string, the bytes, two of the three elements. */
    CHECK(after.values_truncated == before.values_truncated + 2 * 4);
    CHECK(after.recorded == before.recorded + 2);
    CHECK(after.dropped_too_large == before.dropped_too_large);
    free(big);
}

static void too_large(void) {
    /*
     * A 4 KiB ring takes records up to about half of it. An attribute that
     * would not fit is dropped from its span (counted in the span); a span
     * whose name alone is 3 KiB cannot be recorded at all.
     */
    otlpx_engine *small = test_engine(NULL, "[workers]\nring_bytes_per_cpu = 4096\n");
    const otlpx_tracer *t = test_tracer(small);
    static char big[3072];
    memset(big, 'v', sizeof big);
    otlpx_attribute a = attr("v", OTLPX_VALUE_TYPE_STRING);
    a.string = (otlpx_str){big, sizeof big};

    otlpx_span span = 0;
    REQUIRE_OK(otlpx_span_begin(t, S("big attribute"), NULL, &span));
    CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_end(span, 0), OTLPX_STATUS_OK);

    REQUIRE_OK(otlpx_span_begin(t, big, sizeof big, NULL, &span));
    CHECK_STATUS(otlpx_span_end(span, 0), OTLPX_STATUS_TOO_LARGE);
    CHECK_STATUS(otlpx_span_end(span, 0), OTLPX_STATUS_INVALID_HANDLE);
    otlpx_finished_span fs = minimal_span();
    fs.name = (otlpx_str){big, sizeof big};
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_TOO_LARGE);
    /* A zeroed span has zero ids; a small valid one still fits. */
    memset(&fs, 0, sizeof fs);
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_INVALID_ARGUMENT);
    fs = minimal_span();
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_OK);

    otlpx_stats s = stats_of(small);
    CHECK(s.dropped_too_large == 2);
    CHECK(s.dropped_invalid == 1);
    CHECK(s.recorded == 1 + 2 + 1 + 1); /* big attribute, too large x2, zero ids, small */
    CHECK(s.calls_refused == 1);         /* the zero ids; drops are not refusals */
    CHECK_STATUS(otlpx_engine_free(small), OTLPX_STATUS_OK);
}

static const otlpx_logger *logger;
static const otlpx_engine *log_engine;
static uint64_t logs_refused; /* log records refused so far */

/* Emits `r`, expecting `want`; the record must not have been recorded. */
static void refuse_log(const otlpx_log_record *r, otlpx_status want, int line) {
    otlpx_stats before = signal_stats(log_engine, OTLPX_SIGNAL_LOGS);
    otlpx_status got = otlpx_logger_emit(logger, r);
    logs_refused++;
    otlpx_stats after = signal_stats(log_engine, OTLPX_SIGNAL_LOGS);
    if (got != want) {
        fprintf(stderr, "line %d: otlpx_logger_emit returned %u (%s), expected %u (%s)\n", line,
                (unsigned)got, otlpx_status_str(got), (unsigned)want, otlpx_status_str(want));
        check_failures++;
    }
    if (after.recorded != before.recorded) {
        fprintf(stderr, "line %d: a refused log record was recorded\n", line);
        check_failures++;
    }
}
#define REFUSE_LOG(r, want) refuse_log(&(r), (want), __LINE__)

static void log_utf8(void) {
    otlpx_log_record r = log_record(9, BAD_STR);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_UTF8);
    r = log_record(9, OS("ok"));
    r.severity_text = BAD_STR;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_UTF8);
    r = log_record(9, OS("ok"));
    r.event_name = BAD_STR;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_UTF8);
    otlpx_attribute a = attr("k", OTLPX_VALUE_TYPE_STRING);
    a.key = BAD_STR;
    a.string = OS("v");
    r = log_record(9, OS("ok"));
    r.attributes = &a;
    r.attributes_len = 1;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_UTF8);
    a.key = OS("k");
    a.string = BAD_STR;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_UTF8);

    /* In a body: a map key, a nested string, a string array element. */
    otlpx_any_key_value entries[1] = {{BAD_STR, any_int(1)}};
    r = log_record(9, OS(""));
    r.body = any_array(OTLPX_VALUE_TYPE_MAP, entries, 1);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_UTF8);
    otlpx_any_value deep[1] = {any_string(BAD_STR)};
    entries[0] = (otlpx_any_key_value){OS("k"), any_array(OTLPX_VALUE_TYPE_ARRAY, deep, 1)};
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_UTF8);
    otlpx_str elems[2] = {OS("fine"), BAD_STR};
    entries[0].value = any_array(OTLPX_VALUE_TYPE_STRING_ARRAY, elems, 2);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_UTF8);
    /* Bytes are any bytes, in a body too. */
    entries[0].value = any_array(OTLPX_VALUE_TYPE_BYTES_ARRAY, elems, 2);
    CHECK_STATUS(otlpx_logger_emit(logger, &r), OTLPX_STATUS_OK);
    r.body = any_value(OTLPX_VALUE_TYPE_BYTES);
    r.body.string = BAD_STR;
    CHECK_STATUS(otlpx_logger_emit(logger, &r), OTLPX_STATUS_OK);
}

static void log_values(void) {
    /* Severities: 0 to 24 only. */
    uint32_t bad_severities[] = {25, 256, 265, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_severities / sizeof bad_severities[0]; i++) {
        otlpx_log_record r = log_record(bad_severities[i], OS("x"));
        REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
        CHECK(!otlpx_logger_enabled(logger, bad_severities[i]));
    }

    /* Unknown value types, at the top and nested; 0 nested. */
    otlpx_log_record r = log_record(9, OS(""));
    r.body.type = 13;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    r.body.type = UINT32_MAX;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    otlpx_any_value items[2] = {any_int(1), any_value(99)};
    r.body = any_array(OTLPX_VALUE_TYPE_ARRAY, items, 2);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    items[1] = any_value(0);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    otlpx_any_key_value entries[1] = {{OS("k"), any_value(0)}};
    r.body = any_array(OTLPX_VALUE_TYPE_MAP, entries, 1);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    /* A bool array in a body holds 0 and 1 only. */
    uint8_t bools[2] = {1, 2};
    entries[0].value = any_array(OTLPX_VALUE_TYPE_BOOL_ARRAY, bools, 2);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);

    /* ARRAY and MAP are body types, not attribute types. */
    otlpx_attribute a = attr("k", OTLPX_VALUE_TYPE_ARRAY);
    r = log_record(9, OS("x"));
    r.attributes = &a;
    r.attributes_len = 1;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    a.type = OTLPX_VALUE_TYPE_MAP;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    a.type = 13;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    otlpx_config *c = NULL;
    REQUIRE_OK(otlpx_config_new(&c));
    a.type = OTLPX_VALUE_TYPE_MAP;
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, &a), OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_config_free(c), OTLPX_STATUS_OK);

    /* A context flagged as given must name a span. */
    r = log_record(9, OS("x"));
    r.has_span_context = 1;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    memset(r.trace_id, 1, 16);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT); /* span id still zero */
    memset(r.trace_id, 0, 16);
    memset(r.span_id, 1, 8);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    memset(r.trace_id, 1, 16);
    CHECK_STATUS(otlpx_logger_emit(logger, &r), OTLPX_STATUS_OK);
    /* Not flagged: the ids are not read. */
    r.has_span_context = 0;
    memset(r.span_id, 0, 8);
    CHECK_STATUS(otlpx_logger_emit(logger, &r), OTLPX_STATUS_OK);

    /* Lengths past PTRDIFF_MAX, anywhere. */
    r = log_record(9, (otlpx_str){"x", HUGE_LEN});
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    r = log_record(9, OS("x"));
    r.attributes = &a;
    r.attributes_len = HUGE_LEN;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    r = log_record(9, OS("x"));
    r.body = any_array(OTLPX_VALUE_TYPE_INT_ARRAY, items, HUGE_LEN);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    r.body = any_array(OTLPX_VALUE_TYPE_MAP, entries, HUGE_LEN / sizeof entries[0] + 1);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);

    /* Unknown signals. */
    otlpx_stats st;
    CHECK_STATUS(otlpx_engine_signal_stats(log_engine, 0, &st, sizeof st),
                 OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_engine_signal_stats(log_engine, 3, &st, sizeof st),
                 OTLPX_STATUS_INVALID_ARGUMENT);
    size_t len = 0, n = 0;
    CHECK_STATUS(otlpx_engine_drain(log_engine, 0, 1, NULL, 0, &len, &n),
                 OTLPX_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(otlpx_engine_drain(log_engine, 3, 1, NULL, 0, &len, &n),
                 OTLPX_STATUS_INVALID_ARGUMENT);
}

static void log_bounds(void) {
    /* Nesting: OTLPX_MAX_BODY_DEPTH levels are fine, one more is not. */
    otlpx_any_value chain[OTLPX_MAX_BODY_DEPTH + 1];
    chain[0] = any_string(OS("bottom"));
    for (int i = 1; i <= OTLPX_MAX_BODY_DEPTH; i++) {
        chain[i] = any_array(i % 2 ? OTLPX_VALUE_TYPE_ARRAY : OTLPX_VALUE_TYPE_MAP, NULL, 1);
    }
    /* Maps' entries need keys: a parallel array of entries. */
    otlpx_any_key_value as_entry[OTLPX_MAX_BODY_DEPTH + 1];
    for (int i = 1; i <= OTLPX_MAX_BODY_DEPTH; i++) {
        as_entry[i - 1] = (otlpx_any_key_value){OS("k"), chain[i - 1]};
        chain[i].array = chain[i].type == OTLPX_VALUE_TYPE_MAP ? (const void *)&as_entry[i - 1]
                                                               : (const void *)&chain[i - 1];
    }
    otlpx_log_record r = log_record(9, OS(""));
    r.body = chain[OTLPX_MAX_BODY_DEPTH - 1];
    CHECK_STATUS(otlpx_logger_emit(logger, &r), OTLPX_STATUS_OK);
    r.body = chain[OTLPX_MAX_BODY_DEPTH];
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);

    /* A cycle: an array that holds itself is too deep, not endless. */
    otlpx_any_value self = any_value(OTLPX_VALUE_TYPE_ARRAY);
    self.array = &self;
    self.array_len = 1;
    r.body = self;
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);

    /* Shared pointers: 8 levels of 8 copies of the level below would be
     * 8^8 values from 64 structs. Refused, and quickly. */
    otlpx_any_value fan[8][8];
    for (int j = 0; j < 8; j++) {
        fan[0][j] = any_int(j);
    }
    for (int i = 1; i < 8; i++) {
        for (int j = 0; j < 8; j++) {
            fan[i][j] = any_array(OTLPX_VALUE_TYPE_ARRAY, fan[i - 1], 8);
        }
    }
    r.body = any_array(OTLPX_VALUE_TYPE_ARRAY, fan[7], 8);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    /* Six levels (8^6 = 262144 values) are within the bound. */
    r.body = any_array(OTLPX_VALUE_TYPE_ARRAY, fan[5], 8);
    otlpx_status st = otlpx_logger_emit(logger, &r);
    CHECK(st == OTLPX_STATUS_OK || st == OTLPX_STATUS_TOO_LARGE);

    /* More plain values than the bound, in one array. */
    size_t n = (size_t)OTLPX_MAX_BODY_VALUES;
    int64_t *ints = calloc(n, sizeof *ints);
    REQUIRE_OK(ints == NULL ? OTLPX_STATUS_NULL_POINTER : OTLPX_STATUS_OK);
    r.body = any_array(OTLPX_VALUE_TYPE_INT_ARRAY, ints, n);
    REFUSE_LOG(r, OTLPX_STATUS_INVALID_ARGUMENT);
    free(ints);
}

static void log_too_large(void) {
    /* A body too large for a 4 KiB ring: dropped and counted, not refused. */
    otlpx_engine *small = test_engine(NULL, "[workers]\nring_bytes_per_cpu = 4096\n");
    const otlpx_logger *l = test_logger(small);
    static char big[3072];
    memset(big, 'v', sizeof big);
    otlpx_log_record r = log_record(9, (otlpx_str){big, sizeof big});
    CHECK_STATUS(otlpx_logger_emit(l, &r), OTLPX_STATUS_TOO_LARGE);
    r = log_record(9, OS("small"));
    CHECK_STATUS(otlpx_logger_emit(l, &r), OTLPX_STATUS_OK);
    otlpx_stats s = signal_stats(small, OTLPX_SIGNAL_LOGS);
    CHECK(s.dropped_too_large == 1 && s.recorded == 2 && s.in_rings == 1);
    CHECK(s.calls_refused == 0);
    CHECK(stats_of(small).dropped_too_large == 0);
    CHECK_STATUS(otlpx_engine_free(small), OTLPX_STATUS_OK);
}

static void logs(void) {
    otlpx_engine *e = test_engine(NULL, "[workers]\nring_bytes_per_cpu = 16777216\n");
    log_engine = e;
    logger = test_logger(e);
    log_utf8();
    log_values();
    log_bounds();
    log_too_large();
    otlpx_stats s = signal_stats(e, OTLPX_SIGNAL_LOGS);
    CHECK(s.calls_refused == logs_refused);
    if (s.calls_refused != logs_refused) {
        fprintf(stderr, "  logs calls_refused %llu, expected %llu\n",
                (unsigned long long)s.calls_refused, (unsigned long long)logs_refused);
    }
    CHECK(stats_of(e).calls_refused == 0);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
}

int main(void) {
    logs();
    otlpx_engine *e = test_engine(NULL, "[limits]\nattribute_value_length = 16\n");
    engine = e;
    tracer = test_tracer(e);

    utf8();
    empty_strings();
    huge_lengths();
    wrong_enums();
    zero_ids();
    truncated_values();
    too_large();

    otlpx_stats s = stats_of(e);
    CHECK(s.calls_refused == refused);
    if (s.calls_refused != refused) {
        fprintf(stderr, "  calls_refused %llu, expected %llu\n",
                (unsigned long long)s.calls_refused, (unsigned long long)refused);
    }
    /* Only the spans meant to be: empty_strings 1, zero_ids 2, truncated 2. */
    CHECK(s.recorded == 5);
    CHECK(s.dropped_invalid == 2);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
    return check_exit("bad_values");
}
