/*
 * null_pointers.c: NULL for every pointer argument of every function.
 *
 * Each is refused with OTLPX_STATUS_NULL_POINTER, except where NULL is
 * documented as fine (the frees; a NULL string or array with length 0;
 * NULL options; a NULL config meaning the defaults; a NULL logger asked
 * whether it is enabled, which says no). Out-parameters are left
 * untouched on failure, and no refused call records anything.
 */
#include "check.h"

static void config_functions(void) {
    CHECK_STATUS(otlpx_config_new(NULL), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_free(NULL), OTLPX_STATUS_OK);

    otlpx_attribute a = attr("k", OTLPX_VALUE_TYPE_STRING);
    a.string = OS("v");
    /* A NULL config, for every function taking one. */
    CHECK_STATUS(otlpx_config_set_toml(NULL, S("")), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_service_name(NULL, S("s")), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_endpoint(NULL, S("http://127.0.0.1:4317")),
                 OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_admin_address(NULL, S("127.0.0.1:0")),
                 OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_add_header(NULL, S("h"), S("v")), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_add_resource_attribute(NULL, &a), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_protocol(NULL, OTLPX_PROTOCOL_GRPC), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_compression(NULL, OTLPX_COMPRESSION_NONE),
                 OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_export_timeout_ms(NULL, 1), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_schedule_delay_ms(NULL, 1), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_max_batch_spans(NULL, 1), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_ring_bytes_per_cpu(NULL, 4096), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_disabled(NULL, 1), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_ignore_environment(NULL, 1), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_export(NULL, 0), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_shutdown_timeout_ms(NULL, 100), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_sampler(NULL, OTLPX_SAMPLER_ALWAYS_ON, 0.0),
                 OTLPX_STATUS_NULL_POINTER);

    /* A NULL string with a length; the same with length 0 is fine. */
    otlpx_config *c = NULL;
    REQUIRE_OK(otlpx_config_new(&c));
    CHECK(c != NULL);
    CHECK_STATUS(otlpx_config_set_toml(c, NULL, 4), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_toml(c, NULL, 0), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_config_set_service_name(c, NULL, 4), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_service_name(c, NULL, 0), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_config_set_endpoint(c, NULL, 4), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_endpoint(c, NULL, 0), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_config_set_admin_address(c, NULL, 4), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_set_admin_address(c, NULL, 0), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_config_add_header(c, NULL, 1, S("v")), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_add_header(c, S("h"), NULL, 1), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_add_header(c, S("h"), NULL, 0), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, NULL), OTLPX_STATUS_NULL_POINTER);
    otlpx_attribute bad = a;
    bad.key = (otlpx_str){NULL, 1};
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, &bad), OTLPX_STATUS_NULL_POINTER);
    bad = a;
    bad.string = (otlpx_str){NULL, 1};
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, &bad), OTLPX_STATUS_NULL_POINTER);
    bad = attr("arr", OTLPX_VALUE_TYPE_INT_ARRAY);
    bad.array_len = 2;
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, &bad), OTLPX_STATUS_NULL_POINTER);
    bad.array_len = 0;
    CHECK_STATUS(otlpx_config_add_resource_attribute(c, &bad), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_config_free(c), OTLPX_STATUS_OK);

    /* otlpx_engine_new consumes its config even when `out` is NULL. */
    REQUIRE_OK(otlpx_config_new(&c));
    CHECK_STATUS(otlpx_engine_new(c, NULL), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_config_free(c), OTLPX_STATUS_INVALID_HANDLE);
    CHECK_STATUS(otlpx_engine_new(NULL, NULL), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_from_env(NULL), OTLPX_STATUS_NULL_POINTER);
}

static void engine_functions(void) {
    CHECK_STATUS(otlpx_engine_free(NULL), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_engine_flush(NULL, 1), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_shutdown(NULL, 1), OTLPX_STATUS_NULL_POINTER);
    otlpx_stats s;
    CHECK_STATUS(otlpx_engine_stats(NULL, &s, sizeof s), OTLPX_STATUS_NULL_POINTER);
    const otlpx_tracer *t = (const otlpx_tracer *)&s; /* a canary value */
    const otlpx_tracer *const canary = t;
    CHECK_STATUS(otlpx_engine_tracer(NULL, S("n"), S("v"), &t), OTLPX_STATUS_NULL_POINTER);
    CHECK(t == canary);

    otlpx_engine *e = test_engine(NULL, NULL);
    CHECK_STATUS(otlpx_engine_stats(e, NULL, sizeof s), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_tracer(e, NULL, 1, S("v"), &t), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_tracer(e, S("n"), NULL, 1, &t), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_tracer(e, S("n"), S("v"), NULL), OTLPX_STATUS_NULL_POINTER);
    CHECK(t == canary);
    CHECK_STATUS(otlpx_engine_tracer(e, NULL, 0, NULL, 0, &t), OTLPX_STATUS_OK);
    CHECK(t != canary && t != NULL);
    CHECK(stats_of(e).recorded == 0);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);

    /* Asking for the message's length only is fine; a NULL length is not. */
    size_t len = 0;
    char buf[8];
    CHECK_STATUS(otlpx_last_error(buf, sizeof buf, NULL), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_last_error(NULL, 8, &len), OTLPX_STATUS_NULL_POINTER);
    otlpx_status st = otlpx_last_error(NULL, 0, &len);
    CHECK(st == OTLPX_STATUS_OK || st == OTLPX_STATUS_BUFFER_TOO_SMALL);
}

static void span_functions(void) {
    otlpx_engine *e = test_engine(NULL, NULL);
    const otlpx_tracer *t = test_tracer(e);
    uint64_t refused = 0;

    /* otlpx_span_begin */
    otlpx_span span = 777;
    CHECK_STATUS(otlpx_span_begin(NULL, S("x"), NULL, &span), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_span_begin(t, NULL, 1, NULL, &span), OTLPX_STATUS_NULL_POINTER);
    refused++;
    CHECK_STATUS(otlpx_span_begin(t, S("x"), NULL, NULL), OTLPX_STATUS_NULL_POINTER);
    refused++;
    otlpx_span_context parent;
    memset(&parent, 0, sizeof parent);
    memset(parent.trace_id, 1, 16);
    memset(parent.span_id, 2, 8);
    parent.trace_flags = 1;
    parent.trace_state = (otlpx_str){NULL, 3};
    otlpx_span_options options;
    memset(&options, 0, sizeof options);
    options.parent_context = &parent;
    CHECK_STATUS(otlpx_span_begin(t, S("x"), &options, &span), OTLPX_STATUS_NULL_POINTER);
    refused++;
    CHECK(span == 777);
    /* NULL name with length 0, NULL options, NULL parent context: fine. */
    CHECK_STATUS(otlpx_span_begin(t, NULL, 0, NULL, &span), OTLPX_STATUS_OK);
    CHECK(span != 777 && span != 0);
    options.parent_context = NULL;
    otlpx_span other = 0;
    CHECK_STATUS(otlpx_span_begin(t, S("y"), &options, &other), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_discard(other), OTLPX_STATUS_OK);

    /* otlpx_span_set_attributes */
    otlpx_attribute a = attr("k", OTLPX_VALUE_TYPE_STRING);
    CHECK_STATUS(otlpx_span_set_attributes(span, NULL, 1), OTLPX_STATUS_NULL_POINTER);
    refused++;
    CHECK_STATUS(otlpx_span_set_attributes(span, NULL, 0), OTLPX_STATUS_OK);
    a.key = (otlpx_str){NULL, 1};
    CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_NULL_POINTER);
    refused++;
    a = attr("k", OTLPX_VALUE_TYPE_STRING);
    a.string = (otlpx_str){NULL, 2};
    CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_NULL_POINTER);
    refused++;
    a = attr("k", OTLPX_VALUE_TYPE_BYTES);
    a.string = (otlpx_str){NULL, 2};
    CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_NULL_POINTER);
    refused++;
    static const uint32_t array_types[] = {
        OTLPX_VALUE_TYPE_STRING_ARRAY, OTLPX_VALUE_TYPE_BOOL_ARRAY, OTLPX_VALUE_TYPE_INT_ARRAY,
        OTLPX_VALUE_TYPE_DOUBLE_ARRAY, OTLPX_VALUE_TYPE_BYTES_ARRAY};
    for (size_t i = 0; i < sizeof array_types / sizeof array_types[0]; i++) {
        a = attr("arr", array_types[i]);
        a.array_len = 1;
        CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_NULL_POINTER);
        refused++;
        a.array_len = 0;
        CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_OK);
    }
    otlpx_str elems[2] = {OS("ok"), {NULL, 1}};
    a = attr("sarr", OTLPX_VALUE_TYPE_STRING_ARRAY);
    a.array = elems;
    a.array_len = 2;
    CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_NULL_POINTER);
    refused++;
    a.type = OTLPX_VALUE_TYPE_BYTES_ARRAY;
    CHECK_STATUS(otlpx_span_set_attributes(span, &a, 1), OTLPX_STATUS_NULL_POINTER);
    refused++;

    /* otlpx_span_add_event */
    CHECK_STATUS(otlpx_span_add_event(span, NULL, 1, 0, NULL, 0), OTLPX_STATUS_NULL_POINTER);
    refused++;
    CHECK_STATUS(otlpx_span_add_event(span, S("e"), 0, NULL, 1), OTLPX_STATUS_NULL_POINTER);
    refused++;
    CHECK_STATUS(otlpx_span_add_event(span, NULL, 0, 0, NULL, 0), OTLPX_STATUS_OK);

    /* otlpx_span_add_link */
    otlpx_span_context link;
    memset(&link, 0, sizeof link);
    memset(link.trace_id, 3, 16);
    memset(link.span_id, 4, 8);
    CHECK_STATUS(otlpx_span_add_link(span, NULL, NULL, 0), OTLPX_STATUS_NULL_POINTER);
    refused++;
    CHECK_STATUS(otlpx_span_add_link(span, &link, NULL, 1), OTLPX_STATUS_NULL_POINTER);
    refused++;
    link.trace_state = (otlpx_str){NULL, 5};
    CHECK_STATUS(otlpx_span_add_link(span, &link, NULL, 0), OTLPX_STATUS_NULL_POINTER);
    refused++;
    link.trace_state = (otlpx_str){NULL, 0};
    CHECK_STATUS(otlpx_span_add_link(span, &link, NULL, 0), OTLPX_STATUS_OK);

    /* otlpx_span_set_status, otlpx_span_update_name, otlpx_span_get_context */
    CHECK_STATUS(otlpx_span_set_status(span, OTLPX_STATUS_CODE_ERROR, NULL, 3),
                 OTLPX_STATUS_NULL_POINTER);
    refused++;
    CHECK_STATUS(otlpx_span_set_status(span, OTLPX_STATUS_CODE_ERROR, NULL, 0), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_update_name(span, NULL, 3), OTLPX_STATUS_NULL_POINTER);
    refused++;
    CHECK_STATUS(otlpx_span_update_name(span, NULL, 0), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_span_get_context(span, NULL), OTLPX_STATUS_NULL_POINTER);
    /* (Counted or not: get_context checks `out` before it finds the span.) */
    CHECK(stats_of(e).recorded == 0);
    CHECK_STATUS(otlpx_span_end(span, 0), OTLPX_STATUS_OK);
    CHECK(stats_of(e).recorded == 1);

    /* otlpx_tracer_record_span */
    otlpx_finished_span fs = minimal_span();
    CHECK_STATUS(otlpx_tracer_record_span(NULL, &fs), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_tracer_record_span(t, NULL), OTLPX_STATUS_NULL_POINTER);
    refused++;
    otlpx_str *strings[] = {&fs.name, &fs.trace_state, &fs.status_message};
    for (size_t i = 0; i < 3; i++) {
        fs = minimal_span();
        fs.status_code = OTLPX_STATUS_CODE_ERROR;
        strings[i]->ptr = NULL;
        strings[i]->len = 2;
        CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_NULL_POINTER);
        refused++;
        strings[i]->len = 0;
        CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_OK);
    }
    fs = minimal_span();
    fs.attributes_len = 1;
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_NULL_POINTER);
    refused++;
    fs = minimal_span();
    fs.events_len = 1;
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_NULL_POINTER);
    refused++;
    fs = minimal_span();
    fs.links_len = 1;
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_NULL_POINTER);
    refused++;
    otlpx_event ev;
    memset(&ev, 0, sizeof ev);
    ev.attributes_len = 1;
    fs = minimal_span();
    fs.events = &ev;
    fs.events_len = 1;
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_NULL_POINTER);
    refused++;
    ev.attributes_len = 0;
    ev.name = (otlpx_str){NULL, 1};
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_NULL_POINTER);
    refused++;
    otlpx_link ln;
    memset(&ln, 0, sizeof ln);
    memset(ln.context.trace_id, 5, 16);
    memset(ln.context.span_id, 6, 8);
    ln.attributes_len = 1;
    fs = minimal_span();
    fs.links = &ln;
    fs.links_len = 1;
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_NULL_POINTER);
    refused++;
    ln.attributes_len = 0;
    ln.context.trace_state = (otlpx_str){NULL, 1};
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_NULL_POINTER);
    refused++;
    otlpx_attribute nul = attr("k", OTLPX_VALUE_TYPE_STRING);
    nul.string = (otlpx_str){NULL, 1};
    fs = minimal_span();
    fs.attributes = &nul;
    fs.attributes_len = 1;
    CHECK_STATUS(otlpx_tracer_record_span(t, &fs), OTLPX_STATUS_NULL_POINTER);
    refused++;
    /* A zeroed span but for its ids: every string empty, every array NULL. */
    otlpx_finished_span zero;
    memset(&zero, 0, sizeof zero);
    memset(zero.trace_id, 7, 16);
    memset(zero.span_id, 8, 8);
    CHECK_STATUS(otlpx_tracer_record_span(t, &zero), OTLPX_STATUS_OK);

    otlpx_stats s = stats_of(e);
    CHECK(s.recorded == 1 + 3 + 1); /* the handle span, 3 in the loop, zero */
    CHECK(s.dropped_invalid == 0);
    CHECK(s.calls_refused == refused);
    if (s.calls_refused != refused) {
        fprintf(stderr, "  calls_refused %llu, expected %llu\n",
                (unsigned long long)s.calls_refused, (unsigned long long)refused);
    }
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
}

/* Emits `r`, which must be refused with NULL_POINTER and not recorded. */
static void refuse_log(const otlpx_logger *l, const otlpx_log_record *r, uint64_t *refused,
                       int line) {
    otlpx_status got = otlpx_logger_emit(l, r);
    (*refused)++;
    if (got != OTLPX_STATUS_NULL_POINTER) {
        fprintf(stderr, "line %d: otlpx_logger_emit returned %u (%s), expected NULL_POINTER\n",
                line, (unsigned)got, otlpx_status_str(got));
        check_failures++;
    }
}
#define REFUSE_LOG(r) refuse_log(l, &(r), &refused, __LINE__)

static void log_functions(void) {
    otlpx_engine *e = test_engine(NULL, NULL);
    const otlpx_logger *l = test_logger(e);
    uint64_t refused = 0;

    /* otlpx_engine_logger */
    const otlpx_logger *canary = (const otlpx_logger *)&refused;
    const otlpx_logger *out = canary;
    CHECK_STATUS(otlpx_engine_logger(NULL, S("n"), S("v"), &out), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_logger(e, NULL, 1, S("v"), &out), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_logger(e, S("n"), NULL, 1, &out), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_logger(e, S("n"), S("v"), NULL), OTLPX_STATUS_NULL_POINTER);
    CHECK(out == canary);
    CHECK_STATUS(otlpx_engine_logger(e, NULL, 0, NULL, 0, &out), OTLPX_STATUS_OK);
    CHECK(out != canary && out != NULL);
    CHECK(!otlpx_logger_enabled(NULL, 9));

    /* otlpx_logger_emit: no logger (no engine to count it in), no record. */
    otlpx_log_record r = log_record(9, OS("body"));
    CHECK_STATUS(otlpx_logger_emit(NULL, &r), OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_logger_emit(l, NULL), OTLPX_STATUS_NULL_POINTER);
    refused++;

    /* Every string of the record, NULL with a length; fine with 0. */
    otlpx_str *strings[] = {&r.severity_text, &r.event_name, &r.body.string};
    for (size_t i = 0; i < 3; i++) {
        r = log_record(9, OS("body"));
        strings[i]->ptr = NULL;
        strings[i]->len = 2;
        REFUSE_LOG(r);
        strings[i]->len = 0;
        CHECK_STATUS(otlpx_logger_emit(l, &r), OTLPX_STATUS_OK);
    }
    r = log_record(9, OS("body"));
    r.body.type = OTLPX_VALUE_TYPE_BYTES;
    r.body.string = (otlpx_str){NULL, 1};
    REFUSE_LOG(r);

    /* Attributes: the array, a key, a value. */
    r = log_record(9, OS("body"));
    r.attributes_len = 1;
    REFUSE_LOG(r);
    otlpx_attribute a = attr("k", OTLPX_VALUE_TYPE_STRING);
    a.key = (otlpx_str){NULL, 1};
    r.attributes = &a;
    REFUSE_LOG(r);
    a = attr("k", OTLPX_VALUE_TYPE_STRING);
    a.string = (otlpx_str){NULL, 1};
    REFUSE_LOG(r);

    /* Body arrays of every kind, NULL with elements; fine empty. */
    static const uint32_t body_arrays[] = {
        OTLPX_VALUE_TYPE_STRING_ARRAY, OTLPX_VALUE_TYPE_BOOL_ARRAY, OTLPX_VALUE_TYPE_INT_ARRAY,
        OTLPX_VALUE_TYPE_DOUBLE_ARRAY, OTLPX_VALUE_TYPE_BYTES_ARRAY, OTLPX_VALUE_TYPE_ARRAY,
        OTLPX_VALUE_TYPE_MAP};
    for (size_t i = 0; i < sizeof body_arrays / sizeof body_arrays[0]; i++) {
        r = log_record(9, OS(""));
        r.body = any_array(body_arrays[i], NULL, 3);
        REFUSE_LOG(r);
        r.body.array_len = 0;
        CHECK_STATUS(otlpx_logger_emit(l, &r), OTLPX_STATUS_OK);
    }
    /* NULLs nested in a body: an element string, a map key, a value. */
    otlpx_str elems[2] = {OS("ok"), {NULL, 1}};
    otlpx_any_value inner = any_array(OTLPX_VALUE_TYPE_STRING_ARRAY, elems, 2);
    otlpx_any_value items[2] = {any_int(1), inner};
    r = log_record(9, OS(""));
    r.body = any_array(OTLPX_VALUE_TYPE_ARRAY, items, 2);
    REFUSE_LOG(r);
    otlpx_any_key_value entries[1] = {{{NULL, 1}, any_int(1)}};
    r.body = any_array(OTLPX_VALUE_TYPE_MAP, entries, 1);
    REFUSE_LOG(r);
    entries[0] = (otlpx_any_key_value){OS("k"), any_array(OTLPX_VALUE_TYPE_MAP, NULL, 1)};
    REFUSE_LOG(r);
    entries[0].value = any_string((otlpx_str){NULL, 4});
    REFUSE_LOG(r);

    /* otlpx_engine_signal_stats, otlpx_engine_drain */
    otlpx_stats st;
    CHECK_STATUS(otlpx_engine_signal_stats(NULL, OTLPX_SIGNAL_LOGS, &st, sizeof st),
                 OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_signal_stats(e, OTLPX_SIGNAL_LOGS, NULL, sizeof st),
                 OTLPX_STATUS_NULL_POINTER);
    uint8_t buf[64];
    size_t len = 99, n = 99;
    CHECK_STATUS(otlpx_engine_drain(NULL, OTLPX_SIGNAL_LOGS, 1, buf, sizeof buf, &len, &n),
                 OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_drain(e, OTLPX_SIGNAL_LOGS, 1, NULL, sizeof buf, &len, &n),
                 OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_drain(e, OTLPX_SIGNAL_LOGS, 1, buf, sizeof buf, NULL, &n),
                 OTLPX_STATUS_NULL_POINTER);
    CHECK_STATUS(otlpx_engine_drain(e, OTLPX_SIGNAL_LOGS, 1, buf, sizeof buf, &len, NULL),
                 OTLPX_STATUS_NULL_POINTER);
    CHECK(len == 99 && n == 99);

    otlpx_stats s = signal_stats(e, OTLPX_SIGNAL_LOGS);
    /* 3 strings and 7 empty arrays accepted: nothing else recorded. */
    CHECK(s.recorded == 3 + 7);
    CHECK(s.calls_refused == refused);
    if (s.calls_refused != refused) {
        fprintf(stderr, "  logs calls_refused %llu, expected %llu\n",
                (unsigned long long)s.calls_refused, (unsigned long long)refused);
    }
    /* The spans' count is apart. */
    CHECK(stats_of(e).calls_refused == 0 && stats_of(e).recorded == 0);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
}

int main(void) {
    config_functions();
    engine_functions();
    span_functions();
    log_functions();
    return check_exit("null_pointers");
}
