/*
 * errors_and_stats.c: the messages and counters a caller reads back.
 *
 * otlpx_status_str names every status and says "unknown status" for
 * other numbers; otlpx_last_error names the bad value of a failed build,
 * truncates (NUL-terminated, at a UTF-8 boundary) into a small buffer with
 * OTLPX_STATUS_BUFFER_TOO_SMALL and the full length; otlpx_engine_stats
 * writes exactly the `out_size` bytes asked for and not one more.
 */
#include "check.h"

static void status_strings(void) {
    const char *unknown = otlpx_status_str(9999);
    CHECK(unknown != NULL && strcmp(unknown, "unknown status") == 0);
    CHECK(strcmp(otlpx_status_str(17), "unknown status") == 0);
    CHECK(strcmp(otlpx_status_str(UINT32_MAX), "unknown status") == 0);
    CHECK(strcmp(otlpx_status_str(OTLPX_STATUS_OK), "ok") == 0);
    for (uint32_t s = 0; s <= OTLPX_STATUS_EXPORT_FAILED; s++) {
        const char *text = otlpx_status_str(s);
        CHECK(text != NULL && text[0] != '\0' && strcmp(text, unknown) != 0);
        for (uint32_t other = 0; other < s; other++) {
            CHECK(strcmp(text, otlpx_status_str(other)) != 0);
        }
    }
    const char *version = otlpx_version();
    CHECK(version != NULL && strchr(version, '.') != NULL);
}

/* Builds an engine from `config`, which must fail with OTLPX_STATUS_CONFIG;
 * returns the full message (malloc'd). */
static char *config_error(otlpx_config *config) {
    otlpx_engine *e = NULL;
    CHECK_STATUS(otlpx_engine_new(config, &e), OTLPX_STATUS_CONFIG);
    CHECK(e == NULL);
    size_t len = 0;
    CHECK_STATUS(otlpx_last_error(NULL, 0, &len), OTLPX_STATUS_BUFFER_TOO_SMALL);
    CHECK(len > 0);
    char *full = malloc(len + 1);
    REQUIRE_OK(full == NULL ? OTLPX_STATUS_NULL_POINTER : OTLPX_STATUS_OK);
    size_t len2 = 0;
    CHECK_STATUS(otlpx_last_error(full, len + 1, &len2), OTLPX_STATUS_OK);
    CHECK(len2 == len && strlen(full) == len);
    printf("last error: %s\n", full);
    return full;
}

static void last_error(void) {
    /* A bad endpoint, named in the message. */
    otlpx_config *c = test_config(NULL, NULL);
    REQUIRE_OK(otlpx_config_set_endpoint(c, S("not a url")));
    char *full = config_error(c);
    CHECK(strstr(full, "not a url") != NULL);
    size_t full_len = strlen(full);

    /* Too small: what fits, NUL-terminated, and the full length. */
    char small[9];
    memset(small, '#', sizeof small);
    size_t len = 0;
    CHECK_STATUS(otlpx_last_error(small, 8, &len), OTLPX_STATUS_BUFFER_TOO_SMALL);
    CHECK(len == full_len);
    CHECK(small[7] == '\0' && strlen(small) == 7);
    CHECK(memcmp(small, full, 7) == 0);
    CHECK(small[8] == '#'); /* not a byte past capacity */
    CHECK_STATUS(otlpx_last_error(small, 1, &len), OTLPX_STATUS_BUFFER_TOO_SMALL);
    CHECK(small[0] == '\0');
    /* Exactly the message and its NUL fit. */
    char *exact = malloc(full_len + 1);
    REQUIRE_OK(exact == NULL ? OTLPX_STATUS_NULL_POINTER : OTLPX_STATUS_OK);
    CHECK_STATUS(otlpx_last_error(exact, full_len + 1, &len), OTLPX_STATUS_OK);
    CHECK(strcmp(exact, full) == 0);
    CHECK_STATUS(otlpx_last_error(exact, full_len, &len), OTLPX_STATUS_BUFFER_TOO_SMALL);
    CHECK(strlen(exact) == full_len - 1);
    free(exact);
    free(full);

    /* A cut never splits a UTF-8 character. */
    c = test_config(NULL, NULL);
    REQUIRE_OK(otlpx_config_set_endpoint(c, S("n\xc3\xb6t a url")));
    full = config_error(c);
    const char *o = strstr(full, "\xc3\xb6");
    CHECK(o != NULL);
    if (o != NULL) {
        size_t at = (size_t)(o - full);
        char *cut = malloc(at + 2);
        REQUIRE_OK(cut == NULL ? OTLPX_STATUS_NULL_POINTER : OTLPX_STATUS_OK);
        /* Room for `at` bytes and half of the two-byte character. */
        CHECK_STATUS(otlpx_last_error(cut, at + 2, &len), OTLPX_STATUS_BUFFER_TOO_SMALL);
        CHECK(strlen(cut) == at);
        CHECK(memcmp(cut, full, at) == 0);
        free(cut);
    }
    free(full);

    /* A bad TOML line, named by line and key. */
    c = test_config(NULL, "[limits]\nattribute_count = 10\nattribute_value_length = \"lots\"\n");
    full = config_error(c);
    CHECK(strstr(full, "<otlpx_config_set_toml>:3") != NULL);
    CHECK(strstr(full, "attribute_value_length") != NULL);
    free(full);
    c = test_config(NULL, "[limits]\nno_such_limit = 1\n");
    full = config_error(c);
    CHECK(strstr(full, "no_such_limit") != NULL);
    free(full);
    c = test_config(NULL, "this is = = not toml\n");
    full = config_error(c);
    CHECK(strstr(full, "<otlpx_config_set_toml>") != NULL);
    free(full);

    /* Setter values are checked at build, and the message names the setter. */
    c = test_config(NULL, NULL);
    REQUIRE_OK(otlpx_config_set_ring_bytes_per_cpu(c, 1000));
    full = config_error(c);
    CHECK(strstr(full, "1000") != NULL);
    free(full);
    c = test_config(NULL, NULL);
    REQUIRE_OK(otlpx_config_set_sampler(c, OTLPX_SAMPLER_TRACE_ID_RATIO, 1.5));
    full = config_error(c);
    CHECK(strstr(full, "1.5") != NULL);
    free(full);

    /* Each thread has its own message: a success does not clear it. */
    otlpx_engine *e = test_engine(NULL, NULL);
    CHECK_STATUS(otlpx_last_error(NULL, 0, &len), OTLPX_STATUS_BUFFER_TOO_SMALL);
    CHECK(len > 0);
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
}

static void stats_size(void) {
    otlpx_engine *e = test_engine(NULL, NULL);
    const otlpx_tracer *t = test_tracer(e);
    otlpx_finished_span fs = minimal_span();
    for (int i = 0; i < 3; i++) {
        REQUIRE_OK(otlpx_tracer_record_span(t, &fs));
    }
    otlpx_stats full = stats_of(e);
    CHECK(full.recorded == 3 && full.in_rings == 3);
    CHECK(full.ring_bytes_capacity > 0 && full.ring_bytes_used > 0);

    enum { CANARY = 0xa5, EXTRA = 64 };
    union {
        otlpx_stats stats;
        unsigned char bytes[sizeof(otlpx_stats) + EXTRA];
    } buf;
    /* Prefixes of every size, aligned or not: exactly out_size bytes. */
    size_t sizes[] = {0, 1, 8, 12, 16, sizeof(uint64_t) * 4 + 3, sizeof(otlpx_stats) - 1,
                      sizeof(otlpx_stats), sizeof(otlpx_stats) + EXTRA};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        memset(buf.bytes, CANARY, sizeof buf.bytes);
        CHECK_STATUS(otlpx_engine_stats(e, &buf.stats, n), OTLPX_STATUS_OK);
        size_t written = n < sizeof(otlpx_stats) ? n : sizeof(otlpx_stats);
        CHECK(memcmp(buf.bytes, &full, written) == 0);
        for (size_t i = written; i < sizeof buf.bytes; i++) {
            if (buf.bytes[i] != CANARY) {
                fprintf(stderr, "out_size %zu: byte %zu was written\n", n, i);
                check_failures++;
                break;
            }
        }
    }
    CHECK_STATUS(otlpx_engine_free(e), OTLPX_STATUS_OK);
}

int main(void) {
    status_strings();
    last_error();
    stats_size();
    return check_exit("errors_and_stats");
}
