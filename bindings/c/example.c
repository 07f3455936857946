/*
 * example.c: otlpx from C, start to finish.
 *
 *   cc example.c $(pkg-config --cflags --libs otlpx) -o example
 *   ./example http://localhost:4317      # or set OTEL_EXPORTER_OTLP_ENDPOINT
 *
 * Every call returns an otlpx_status (0 is OTLPX_STATUS_OK); strings are
 * (pointer, length) pairs, never NUL-terminated by requirement.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlpx.h"

/* A string literal as the (pointer, length) pair otlpx takes. */
#define STR(lit) (lit), (sizeof(lit) - 1)
#define OTLPX_STR(lit) ((otlpx_str){(lit), sizeof(lit) - 1})

/* Prints what went wrong and returns false if `status` is not OK. */
static int ok(otlpx_status status, const char *what) {
    if (status == OTLPX_STATUS_OK) {
        return 1;
    }
    char message[512];
    size_t len = 0;
    message[0] = '\0';
    otlpx_last_error(message, sizeof message, &len);
    fprintf(stderr, "%s: %s%s%s\n", what, otlpx_status_str(status),
            message[0] != '\0' ? ": " : "", message);
    return 0;
}

#define TRY(call)                                                          \
    do {                                                                   \
        if (!ok((call), #call)) {                                          \
            goto fail;                                                     \
        }                                                                  \
    } while (0)

int main(int argc, char **argv) {
    otlpx_engine *engine = NULL;
    int exit_code = EXIT_FAILURE;

    /* 1. Configure: anything not set here comes from OTEL_* variables;
     *    with no endpoint anywhere, the engine exports to
     *    http://localhost:4317 (OTEL_TRACES_EXPORTER, OTEL_LOGS_EXPORTER and OTEL_METRICS_EXPORTER
     *    all none: record only). */
    otlpx_config *config = NULL;
    TRY(otlpx_config_new(&config));
    TRY(otlpx_config_set_service_name(config, STR("c-example")));
    if (argc > 1) {
        TRY(otlpx_config_set_endpoint(config, argv[1], strlen(argv[1])));
    }

    /* 2. The engine takes the config (and frees it, even on failure). */
    otlpx_status status = otlpx_engine_new(config, &engine);
    config = NULL;
    if (!ok(status, "otlpx_engine_new")) {
        goto fail;
    }

    /* 3. A tracer per instrumentation scope; the engine owns it. */
    const otlpx_tracer *tracer = NULL;
    TRY(otlpx_engine_tracer(engine, STR("example.c"), STR("1.0.0"), &tracer));

    /* 4. A span by handle: begin, describe, end. */
    otlpx_span_options options = {.kind = OTLPX_SPAN_KIND_SERVER};
    otlpx_span request = 0;
    TRY(otlpx_span_begin(tracer, STR("GET /orders"), &options, &request));

    otlpx_attribute attributes[] = {
        {.key = OTLPX_STR("http.request.method"), .type = OTLPX_VALUE_TYPE_STRING,
         .string = OTLPX_STR("GET")},
        {.key = OTLPX_STR("http.response.status_code"), .type = OTLPX_VALUE_TYPE_INT,
         .int_value = 200},
    };
    TRY(otlpx_span_set_attributes(request, attributes, 2));

    otlpx_attribute rows = {.key = OTLPX_STR("rows"), .type = OTLPX_VALUE_TYPE_INT,
                            .int_value = 42};
    TRY(otlpx_span_add_event(request, STR("cache miss"), 0, &rows, 1));

    /* A child: name its parent's handle. */
    otlpx_span_options child_options = {.kind = OTLPX_SPAN_KIND_CLIENT,
                                        .parent_span = request};
    otlpx_span query = 0;
    TRY(otlpx_span_begin(tracer, STR("SELECT orders"), &child_options, &query));
    TRY(otlpx_span_end(query, 0));

    TRY(otlpx_span_set_status(request, OTLPX_STATUS_CODE_OK, NULL, 0));
    TRY(otlpx_span_end(request, 0));

    /* 5. A span another SDK already finished, recorded in one call. */
    otlpx_attribute job = {.key = OTLPX_STR("job.id"), .type = OTLPX_VALUE_TYPE_STRING,
                           .string = OTLPX_STR("nightly-7")};
    otlpx_event retry = {.name = OTLPX_STR("retry"),
                         .time_unix_nano = 1700000000500000000u};
    otlpx_link previous = {
        .context = {.trace_id = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
                    .span_id = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
                    .trace_flags = 1}};
    otlpx_finished_span batch = {
        .trace_id = {0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd,
                     0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
        .span_id = {0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31},
        .trace_flags = 1,
        .name = OTLPX_STR("batch job"),
        .kind = OTLPX_SPAN_KIND_INTERNAL,
        .start_time_unix_nano = 1700000000000000000u,
        .end_time_unix_nano = 1700000001000000000u,
        .status_code = OTLPX_STATUS_CODE_ERROR,
        .status_message = OTLPX_STR("2 of 40 rows failed"),
        .attributes = &job,
        .attributes_len = 1,
        .events = &retry,
        .events_len = 1,
        .links = &previous,
        .links_len = 1,
    };
    TRY(otlpx_tracer_record_span(tracer, &batch));

    /* 6. Before exiting: send what is recorded, and see what happened. */
    status = otlpx_engine_flush(engine, 5000);
    if (status == OTLPX_STATUS_NOT_EXPORTING) {
        printf("export off: spans were recorded, not exported\n");
    } else if (!ok(status, "otlpx_engine_flush")) {
        goto fail;
    }
    otlpx_stats stats;
    TRY(otlpx_engine_stats(engine, &stats, sizeof stats));
    printf("otlpx %s: %llu spans recorded, %llu exported, %llu dropped (ring full)\n",
           otlpx_version(), (unsigned long long)stats.recorded,
           (unsigned long long)stats.exported, (unsigned long long)stats.dropped_ring_full);

    TRY(otlpx_engine_shutdown(engine, 5000));
    exit_code = EXIT_SUCCESS;
fail:
    otlpx_config_free(config); /* NULL is fine */
    otlpx_engine_free(engine); /* so is this */
    return exit_code;
}
