/*
 * happy_path.c: spans from several threads, through both APIs, all
 * arrive.
 *
 * THREADS pthreads each make PER_THREAD handle-based traces of three
 * spans (a root with attributes of every value type, an event, a link and
 * a status; a child by `parent_span`; a child by `parent_context`) and
 * record ONE_SHOT spans with `otlpx_tracer_record_span`. After a flush the
 * engine's stats must say every span was recorded and exported, nothing
 * dropped or refused. The expected count is printed as
 * `expected_spans=N` for the driver, which checks its receiver got N.
 *
 * Usage: happy_path ENDPOINT
 */
#include <pthread.h>

#include "check.h"

enum { THREADS = 4, PER_THREAD = 150, SPANS_PER_TRACE = 3, ONE_SHOT = 200 };

#define EXPECTED_SPANS (THREADS * (PER_THREAD * SPANS_PER_TRACE + ONE_SHOT))

static const otlpx_tracer *tracer;

/* Per-thread failures, summed by main (check_failures is not atomic). */
struct worker {
    int index;
    int failures;
};

#define WCHECK(w, call)                                                    \
    do {                                                                   \
        otlpx_status st_ = (call);                                         \
        if (st_ != OTLPX_STATUS_OK) {                                      \
            fprintf(stderr, "thread %d: %s:%d: %s returned %u (%s)\n",     \
                    (w)->index, __FILE__, __LINE__, #call, (unsigned)st_,  \
                    otlpx_status_str(st_));                                \
            (w)->failures++;                                               \
        }                                                                  \
    } while (0)

/* One attribute of every otlpx_value_type (arrays included). */
static size_t every_type(otlpx_attribute out[10], int64_t n) {
    static const otlpx_str strings[] = {{"alpha", 5}, {"beta", 4}};
    static const uint8_t bools[] = {1, 0, 1};
    static const double doubles[] = {0.5, -1.25};
    static const otlpx_str blobs[] = {{"\x00\x01", 2}, {"\xff", 1}};
    size_t i = 0;
    out[i] = attr("c.string", OTLPX_VALUE_TYPE_STRING);
    out[i++].string = OS("hello from C");
    out[i] = attr("c.bool", OTLPX_VALUE_TYPE_BOOL);
    out[i++].int_value = 1;
    out[i] = attr("c.int", OTLPX_VALUE_TYPE_INT);
    out[i++].int_value = n;
    out[i] = attr("c.double", OTLPX_VALUE_TYPE_DOUBLE);
    out[i++].double_value = 3.5;
    out[i] = attr("c.bytes", OTLPX_VALUE_TYPE_BYTES);
    out[i++].string = (otlpx_str){"\x00\xfe\x01", 3};
    out[i] = attr("c.string_array", OTLPX_VALUE_TYPE_STRING_ARRAY);
    out[i].array = strings;
    out[i++].array_len = 2;
    out[i] = attr("c.bool_array", OTLPX_VALUE_TYPE_BOOL_ARRAY);
    out[i].array = bools;
    out[i++].array_len = 3;
    out[i] = attr("c.int_array", OTLPX_VALUE_TYPE_INT_ARRAY);
    out[i].array = NULL; /* set by the caller: it must outlive the call */
    out[i++].array_len = 0;
    out[i] = attr("c.double_array", OTLPX_VALUE_TYPE_DOUBLE_ARRAY);
    out[i].array = doubles;
    out[i++].array_len = 2;
    out[i] = attr("c.bytes_array", OTLPX_VALUE_TYPE_BYTES_ARRAY);
    out[i].array = blobs;
    out[i++].array_len = 2;
    return i;
}

static void fill_id(uint8_t *id, size_t len, uint64_t a, uint64_t b) {
    for (size_t i = 0; i < len; i++) {
        uint64_t v = i < 8 ? a : b;
        id[i] = (uint8_t)(v >> (8 * (i % 8))) | 1u;
    }
}

static void handle_trace(struct worker *w, int i) {
    otlpx_attribute attrs[10];
    size_t n = every_type(attrs, i);
    int64_t ints[2] = {w->index, i};
    attrs[7].array = ints;
    attrs[7].array_len = 2;

    otlpx_span_options root_opts;
    memset(&root_opts, 0, sizeof root_opts);
    root_opts.kind = OTLPX_SPAN_KIND_SERVER;
    otlpx_span root = 0;
    WCHECK(w, otlpx_span_begin(tracer, S("c.root"), &root_opts, &root));
    WCHECK(w, otlpx_span_set_attributes(root, attrs, n));
    otlpx_attribute ev_attr = attr("c.event.attr", OTLPX_VALUE_TYPE_INT);
    ev_attr.int_value = i;
    WCHECK(w, otlpx_span_add_event(root, S("c.event"), 0, &ev_attr, 1));

    otlpx_span_context linked;
    memset(&linked, 0, sizeof linked);
    fill_id(linked.trace_id, 16, 0xabcdef, (uint64_t)i);
    fill_id(linked.span_id, 8, (uint64_t)w->index, 0);
    linked.trace_flags = 1;
    linked.trace_state = OS("vendor=value");
    otlpx_attribute link_attr = attr("c.link.attr", OTLPX_VALUE_TYPE_STRING);
    link_attr.string = OS("linked");
    WCHECK(w, otlpx_span_add_link(root, &linked, &link_attr, 1));
    if (i % 2 == 0) {
        WCHECK(w, otlpx_span_set_status(root, OTLPX_STATUS_CODE_ERROR, S("it failed")));
    } else {
        WCHECK(w, otlpx_span_set_status(root, OTLPX_STATUS_CODE_OK, NULL, 0));
    }

    /* A child by handle. */
    otlpx_span_options child_opts;
    memset(&child_opts, 0, sizeof child_opts);
    child_opts.kind = OTLPX_SPAN_KIND_CLIENT;
    child_opts.parent_span = root;
    otlpx_span child = 0;
    WCHECK(w, otlpx_span_begin(tracer, S("c.child"), &child_opts, &child));

    otlpx_span_context root_ctx, child_ctx;
    WCHECK(w, otlpx_span_get_context(root, &root_ctx));
    WCHECK(w, otlpx_span_get_context(child, &child_ctx));
    if (memcmp(root_ctx.trace_id, child_ctx.trace_id, 16) != 0 ||
        memcmp(root_ctx.span_id, child_ctx.span_id, 8) == 0) {
        fprintf(stderr, "thread %d: the child is not in the root's trace\n", w->index);
        w->failures++;
    }
    WCHECK(w, otlpx_span_end(child, 0));

    /* A child by context, as if the root's context came over the wire. */
    otlpx_span_options remote_opts;
    memset(&remote_opts, 0, sizeof remote_opts);
    remote_opts.kind = OTLPX_SPAN_KIND_CONSUMER;
    root_ctx.is_remote = 1;
    remote_opts.parent_context = &root_ctx;
    otlpx_span remote = 0;
    WCHECK(w, otlpx_span_begin(tracer, S("c.remote_child"), &remote_opts, &remote));
    otlpx_span_context remote_ctx;
    WCHECK(w, otlpx_span_get_context(remote, &remote_ctx));
    if (memcmp(root_ctx.trace_id, remote_ctx.trace_id, 16) != 0) {
        fprintf(stderr, "thread %d: the remote child left the trace\n", w->index);
        w->failures++;
    }
    WCHECK(w, otlpx_span_end(remote, 0));
    WCHECK(w, otlpx_span_end(root, 0));
}

static void one_shot(struct worker *w, int i) {
    otlpx_attribute attrs[10];
    size_t n = every_type(attrs, i);
    int64_t ints[3] = {w->index, i, -1};
    attrs[7].array = ints;
    attrs[7].array_len = 3;

    otlpx_attribute ev_attr = attr("c.event.attr", OTLPX_VALUE_TYPE_DOUBLE);
    ev_attr.double_value = 0.25;
    otlpx_event event;
    memset(&event, 0, sizeof event);
    event.name = OS("c.one_shot.event");
    event.time_unix_nano = 1700000000000000500u;
    event.attributes = &ev_attr;
    event.attributes_len = 1;

    otlpx_attribute link_attr = attr("c.link.attr", OTLPX_VALUE_TYPE_BOOL);
    link_attr.int_value = 1;
    otlpx_link link;
    memset(&link, 0, sizeof link);
    fill_id(link.context.trace_id, 16, 0x5eed, (uint64_t)i);
    fill_id(link.context.span_id, 8, 0x1111, 0);
    link.context.trace_flags = 1;
    link.attributes = &link_attr;
    link.attributes_len = 1;

    otlpx_finished_span span = minimal_span();
    fill_id(span.trace_id, 16, (uint64_t)w->index + 1, (uint64_t)i + 1);
    fill_id(span.span_id, 8, (uint64_t)i + 7, 0);
    fill_id(span.parent_span_id, 8, (uint64_t)i + 9, 0);
    span.parent_is_remote = 1;
    span.name = OS("c.one_shot");
    span.kind = OTLPX_SPAN_KIND_PRODUCER;
    span.status_code = OTLPX_STATUS_CODE_ERROR;
    span.status_message = OS("one-shot error");
    span.trace_state = OS("k=v");
    span.attributes = attrs;
    span.attributes_len = n;
    span.events = &event;
    span.events_len = 1;
    span.links = &link;
    span.links_len = 1;
    WCHECK(w, otlpx_tracer_record_span(tracer, &span));
}

static void *run(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        handle_trace(w, i);
    }
    for (int i = 0; i < ONE_SHOT; i++) {
        one_shot(w, i);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s ENDPOINT\n", argv[0]);
        return 2;
    }
    /* 4 MiB rings: room for every span even if no worker ran meanwhile. */
    otlpx_config *config = test_config(argv[1], "[workers]\nring_bytes_per_cpu = 4194304\n");
    otlpx_attribute resource = attr("deployment.environment", OTLPX_VALUE_TYPE_STRING);
    resource.string = OS("c-test");
    REQUIRE_OK(otlpx_config_add_resource_attribute(config, &resource));
    REQUIRE_OK(otlpx_config_set_compression(config, OTLPX_COMPRESSION_GZIP));
    otlpx_engine *engine = NULL;
    REQUIRE_OK(otlpx_engine_new(config, &engine));
    tracer = test_tracer(engine);

    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t] = (struct worker){t, 0};
        CHECK(pthread_create(&threads[t], NULL, run, &workers[t]) == 0);
    }
    for (int t = 0; t < THREADS; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        check_failures += workers[t].failures;
    }

    CHECK_STATUS(otlpx_engine_flush(engine, 20000), OTLPX_STATUS_OK);
    otlpx_stats s = stats_of(engine);
    printf("recorded=%llu exported=%llu requests=%llu bytes_sent=%llu\n",
           (unsigned long long)s.recorded, (unsigned long long)s.exported,
           (unsigned long long)s.export_requests, (unsigned long long)s.export_bytes_sent);
    CHECK(s.recorded == EXPECTED_SPANS);
    CHECK(s.exported == EXPECTED_SPANS);
    CHECK(s.in_flight == 0 && s.in_rings == 0);
    CHECK(s.dropped_ring_full + s.dropped_too_large + s.dropped_invalid + s.dropped_aborted +
              s.dropped_rejected + s.dropped_export_failed + s.dropped_shutdown + s.dropped_evicted ==
          0);
    CHECK(s.export_failures == 0);
    CHECK(s.calls_refused == 0);
    CHECK(s.values_truncated == 0);
    CHECK(s.export_bytes_sent > 0 && s.export_bytes_sent < s.export_bytes_uncompressed);

    CHECK_STATUS(otlpx_engine_shutdown(engine, 5000), OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_engine_free(engine), OTLPX_STATUS_OK);
    printf("expected_spans=%d\n", EXPECTED_SPANS);
    return check_exit("happy_path");
}
