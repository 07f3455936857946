/*
 * logs.c: log records through otlpx_logger_emit, read back.
 *
 * A record-only engine takes records with every field set, with the
 * defaults, and with bodies of every kind (every plain value type, a map
 * of them, arrays and maps nested to OTLPX_MAX_BODY_DEPTH); each is
 * labelled by its `c.case` attribute. They are drained with
 * otlpx_engine_drain (through a buffer too small first) and written to
 * OUT_FILE, each request as a 4-byte little-endian length and its bytes,
 * for the driver to decode and compare. Several threads then emit nested
 * bodies at once (each thread's conversion arena on its own), and an
 * exporting engine sends records to ENDPOINT: the logs signal's stats
 * must account for every one, apart from the spans'.
 *
 * Usage: logs ENDPOINT OUT_FILE
 */
#include <pthread.h>

#include "check.h"

enum { THREADS = 4, PER_THREAD = 500, EXPORTED = 100 };

static const otlpx_logger *logger;

/* One `c.case` attribute, the label the driver finds each record by. */
static otlpx_attribute case_attr(const char *name) {
    otlpx_attribute a = attr("c.case", OTLPX_VALUE_TYPE_STRING);
    a.string.ptr = name;
    a.string.len = strlen(name);
    return a;
}

/* Emits `r` labelled `name` (its attributes must be NULL: set here). */
static void emit_case(otlpx_log_record r, const char *name) {
    otlpx_attribute a = case_attr(name);
    r.attributes = &a;
    r.attributes_len = 1;
    CHECK_STATUS(otlpx_logger_emit(logger, &r), OTLPX_STATUS_OK);
}

static void every_field(void) {
    static const otlpx_str tags[] = {{"a", 1}, {"b", 1}};
    otlpx_attribute attrs[4];
    attrs[0] = case_attr("every_field");
    attrs[1] = attr("order.id", OTLPX_VALUE_TYPE_INT);
    attrs[1].int_value = 1042;
    attrs[2] = attr("retry", OTLPX_VALUE_TYPE_BOOL);
    attrs[2].int_value = 1;
    attrs[3] = attr("tags", OTLPX_VALUE_TYPE_STRING_ARRAY);
    attrs[3].array = tags;
    attrs[3].array_len = 2;
    otlpx_log_record r = log_record(13, OS("payment retried"));
    r.time_unix_nano = 1700000000000000001u;
    r.observed_time_unix_nano = 1700000000000000002u;
    r.severity_text = OS("warning");
    r.attributes = attrs;
    r.attributes_len = 4;
    r.event_name = OS("payment.retry");
    for (int i = 0; i < 16; i++) {
        r.trace_id[i] = (uint8_t)(0x40 + i);
    }
    for (int i = 0; i < 8; i++) {
        r.span_id[i] = (uint8_t)(0x80 + i);
    }
    r.trace_flags = 1;
    r.has_span_context = 1;
    CHECK_STATUS(otlpx_logger_emit(logger, &r), OTLPX_STATUS_OK);

    /* The same context, unsampled. */
    r.attributes = NULL;
    r.attributes_len = 0;
    r.trace_flags = 0;
    emit_case(r, "unsampled_context");
}

static void defaults(void) {
    emit_case(log_record(9, OS("started")), "defaults");
    /* Unspecified severity, no body: no number, no text, no body. */
    emit_case(log_record(0, OS("")), "unspecified");
    otlpx_log_record r = log_record(0, OS(""));
    r.body.type = 0;
    emit_case(r, "no_body");
    /* An empty text is the severity's name. */
    emit_case(log_record(10, OS("x")), "info2");
    /* A zeroed record is valid. */
    otlpx_log_record zero;
    memset(&zero, 0, sizeof zero);
    emit_case(zero, "zeroed");
}

/* A map of every plain value type. */
static void scalars(void) {
    static const otlpx_str strs[] = {{"x", 1}, {"yy", 2}};
    static const uint8_t bools[] = {1, 0};
    static const int64_t ints[] = {-1, 0, INT64_MAX};
    static const double doubles[] = {0.5, -2.0};
    static const otlpx_str blobs[] = {{"\x00\xff", 2}};
    otlpx_any_key_value m[10];
    m[0] = (otlpx_any_key_value){OS("s"), any_string(OS("text"))};
    m[1] = (otlpx_any_key_value){OS("b"), any_value(OTLPX_VALUE_TYPE_BOOL)};
    m[1].value.int_value = 1;
    m[2] = (otlpx_any_key_value){OS("i"), any_int(-7)};
    m[3] = (otlpx_any_key_value){OS("d"), any_value(OTLPX_VALUE_TYPE_DOUBLE)};
    m[3].value.double_value = 2.5;
    m[4] = (otlpx_any_key_value){OS("y"), any_value(OTLPX_VALUE_TYPE_BYTES)};
    m[4].value.string = (otlpx_str){"\x00\xfe", 2};
    m[5] = (otlpx_any_key_value){OS("sa"), any_array(OTLPX_VALUE_TYPE_STRING_ARRAY, strs, 2)};
    m[6] = (otlpx_any_key_value){OS("ba"), any_array(OTLPX_VALUE_TYPE_BOOL_ARRAY, bools, 2)};
    m[7] = (otlpx_any_key_value){OS("ia"), any_array(OTLPX_VALUE_TYPE_INT_ARRAY, ints, 3)};
    m[8] = (otlpx_any_key_value){OS("da"), any_array(OTLPX_VALUE_TYPE_DOUBLE_ARRAY, doubles, 2)};
    m[9] = (otlpx_any_key_value){OS("ya"), any_array(OTLPX_VALUE_TYPE_BYTES_ARRAY, blobs, 1)};
    otlpx_log_record r = log_record(9, OS(""));
    r.body = any_array(OTLPX_VALUE_TYPE_MAP, m, 10);
    emit_case(r, "scalars");

    /* A bytes body (not UTF-8), a double body, a bool body. */
    r.body = any_value(OTLPX_VALUE_TYPE_BYTES);
    r.body.string = (otlpx_str){"\xff\x00\x01", 3};
    emit_case(r, "bytes_body");
    r.body = any_value(OTLPX_VALUE_TYPE_DOUBLE);
    r.body.double_value = -0.25;
    emit_case(r, "double_body");
    /* An array of attributes is a map's entries (same layout). */
    otlpx_attribute as_entries[2];
    as_entries[0] = attr("k1", OTLPX_VALUE_TYPE_INT);
    as_entries[0].int_value = 1;
    as_entries[1] = attr("k2", OTLPX_VALUE_TYPE_STRING);
    as_entries[1].string = OS("v2");
    r.body = any_array(OTLPX_VALUE_TYPE_MAP, as_entries, 2);
    emit_case(r, "attributes_as_map");
}

/*
 * [ {"k": [1, "two", {}], "m": {"deep": {"deeper": 3}}}, 7, "x", [] ]
 */
static void nested(void) {
    otlpx_any_value k_items[3] = {any_int(1), any_string(OS("two")),
                                  any_array(OTLPX_VALUE_TYPE_MAP, NULL, 0)};
    otlpx_any_key_value deeper[1] = {{OS("deeper"), any_int(3)}};
    otlpx_any_key_value deep[1] = {{OS("deep"), any_array(OTLPX_VALUE_TYPE_MAP, deeper, 1)}};
    otlpx_any_key_value top_map[2] = {
        {OS("k"), any_array(OTLPX_VALUE_TYPE_ARRAY, k_items, 3)},
        {OS("m"), any_array(OTLPX_VALUE_TYPE_MAP, deep, 1)},
    };
    otlpx_any_value top[4] = {any_array(OTLPX_VALUE_TYPE_MAP, top_map, 2), any_int(7),
                              any_string(OS("x")), any_array(OTLPX_VALUE_TYPE_ARRAY, NULL, 0)};
    otlpx_log_record r = log_record(17, OS(""));
    r.body = any_array(OTLPX_VALUE_TYPE_ARRAY, top, 4);
    emit_case(r, "nested");

    /* Exactly OTLPX_MAX_BODY_DEPTH levels: arrays around an int. */
    otlpx_any_value chain[OTLPX_MAX_BODY_DEPTH];
    chain[0] = any_int(42);
    for (int i = 1; i < OTLPX_MAX_BODY_DEPTH; i++) {
        chain[i] = any_array(OTLPX_VALUE_TYPE_ARRAY, &chain[i - 1], 1);
    }
    r.body = chain[OTLPX_MAX_BODY_DEPTH - 1];
    emit_case(r, "max_depth");
}

/* Writes one drained request to `out`: length (4 bytes LE), bytes. */
static void write_request(FILE *out, const uint8_t *buf, size_t len) {
    uint8_t prefix[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                         (uint8_t)(len >> 24)};
    CHECK(fwrite(prefix, 1, 4, out) == 4);
    CHECK(len == 0 || fwrite(buf, 1, len, out) == len);
}

/* Drains `signal` from `engine` until nothing is left, a few items a
 * request; writes the requests to `out` (if not NULL); returns the items. */
static size_t drain_all(const otlpx_engine *engine, uint32_t signal, FILE *out) {
    size_t total = 0;
    for (;;) {
        /* Too small first: the request is kept for the next call. */
        uint8_t small[8];
        size_t need = 0, items = 77;
        otlpx_status st = otlpx_engine_drain(engine, signal, 5, small, sizeof small, &need, &items);
        if (st == OTLPX_STATUS_OK) {
            CHECK(need == 0 && items == 0);
            return total;
        }
        CHECK_STATUS(st, OTLPX_STATUS_BUFFER_TOO_SMALL);
        CHECK(need > sizeof small);
        CHECK(items == 77); /* not written on failure */
        /* Asking for the size alone keeps it too. */
        size_t need2 = 0;
        CHECK_STATUS(otlpx_engine_drain(engine, signal, 5, NULL, 0, &need2, &items),
                     OTLPX_STATUS_BUFFER_TOO_SMALL);
        CHECK(need2 == need);
        uint8_t *buf = malloc(need);
        REQUIRE_OK(buf == NULL ? OTLPX_STATUS_NULL_POINTER : OTLPX_STATUS_OK);
        size_t len = 0;
        REQUIRE_OK(otlpx_engine_drain(engine, signal, 5, buf, need, &len, &items));
        CHECK(len == need);
        CHECK(items >= 1 && items <= 5);
        total += items;
        if (out != NULL) {
            write_request(out, buf, len);
        }
        free(buf);
    }
}

static size_t cases_emitted(const otlpx_engine *engine) {
    return (size_t)signal_stats(engine, OTLPX_SIGNAL_LOGS).recorded;
}

/* Per-thread failures, summed by main (check_failures is not atomic). */
struct worker {
    const otlpx_logger *logger;
    int index;
    int failures;
};

static void *emit_many(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        otlpx_any_value leaves[3] = {any_int(w->index), any_int(i), any_string(OS("leaf"))};
        otlpx_any_key_value entries[2] = {
            {OS("thread"), any_int(w->index)},
            {OS("leaves"), any_array(OTLPX_VALUE_TYPE_ARRAY, leaves, 3)},
        };
        otlpx_log_record r = log_record(9, OS(""));
        r.body = any_array(OTLPX_VALUE_TYPE_MAP, entries, 2);
        if (otlpx_logger_emit(w->logger, &r) != OTLPX_STATUS_OK) {
            w->failures++;
        }
    }
    return NULL;
}

static void threads(void) {
    otlpx_engine *e = test_engine(NULL, "[workers]\nring_bytes_per_cpu = 4194304\n");
    struct worker workers[THREADS];
    pthread_t ids[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t] = (struct worker){test_logger(e), t, 0};
        CHECK(pthread_create(&ids[t], NULL, emit_many, &workers[t]) == 0);
    }
    for (int t = 0; t < THREADS; t++) {
        CHECK(pthread_join(ids[t], NULL) == 0);
        CHECK(workers[t].failures == 0);
    }
    otlpx_stats s = signal_stats(e, OTLPX_SIGNAL_LOGS);
    CHECK(s.recorded == THREADS * PER_THREAD);
    CHECK(s.calls_refused == 0 && s.dropped_ring_full == 0);
    CHECK(drain_all(e, OTLPX_SIGNAL_LOGS, NULL) == THREADS * PER_THREAD);
    CHECK(signal_stats(e, OTLPX_SIGNAL_LOGS).in_rings == 0);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
}

static void exported(const char *endpoint) {
    otlpx_engine *e = test_engine(endpoint, NULL);
    const otlpx_logger *l = test_logger(e);
    for (int i = 0; i < EXPORTED; i++) {
        otlpx_log_record r = log_record(13, OS("to the receiver"));
        CHECK_STATUS(otlpx_logger_emit(l, &r), OTLPX_STATUS_OK);
    }
    CHECK_STATUS(otlpx_engine_flush(e, 10000), OTLPX_STATUS_OK);
    otlpx_stats s = signal_stats(e, OTLPX_SIGNAL_LOGS);
    CHECK(s.recorded == EXPORTED && s.exported == EXPORTED);
    CHECK(s.export_requests >= 1);
    /* An exporting engine's rings are its workers': nothing to drain. */
    size_t len = 1, items = 1;
    CHECK_STATUS(otlpx_engine_drain(e, OTLPX_SIGNAL_LOGS, 10, NULL, 0, &len, &items),
                 OTLPX_STATUS_OK);
    CHECK(len == 0 && items == 0);
    /* The spans' accounting is apart. */
    CHECK(stats_of(e).recorded == 0);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
    printf("expected_log_records=%d\n", EXPORTED);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ENDPOINT OUT_FILE\n", argv[0]);
        return 2;
    }
    otlpx_engine *e = test_engine(NULL, NULL);
    logger = test_logger(e);
    const otlpx_logger *again = NULL;
    REQUIRE_OK(otlpx_engine_logger(e, S("otlpx-c-logs"), S("2.0"), &again));
    CHECK(again == logger); /* the same name and version: the same logger */
    CHECK(otlpx_logger_enabled(logger, 0));
    CHECK(otlpx_logger_enabled(logger, 9));
    CHECK(otlpx_logger_enabled(logger, 24));
    CHECK(!otlpx_logger_enabled(logger, 25));
    CHECK(!otlpx_logger_enabled(NULL, 9));

    every_field();
    defaults();
    scalars();
    nested();
    size_t n = cases_emitted(e);
    printf("cases=%zu\n", n);
    otlpx_stats s = signal_stats(e, OTLPX_SIGNAL_LOGS);
    CHECK(s.in_rings == n && s.calls_refused == 0);
    CHECK(stats_of(e).recorded == 0); /* no span */

    FILE *out = fopen(argv[2], "wb");
    REQUIRE_OK(out == NULL ? OTLPX_STATUS_NULL_POINTER : OTLPX_STATUS_OK);
    CHECK(drain_all(e, OTLPX_SIGNAL_LOGS, out) == n);
    CHECK(fclose(out) == 0);
    CHECK(drain_all(e, OTLPX_SIGNAL_TRACES, NULL) == 0);
    CHECK(signal_stats(e, OTLPX_SIGNAL_LOGS).in_rings == 0);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);

    threads();
    exported(argv[1]);
    return check_exit("logs");
}
