/*
 * fuzz_accesslog.c - libFuzzer target for the access log format.
 *
 * Input: the format (up to the first NUL), then NUL-separated strings that
 * the entry's param and resp_header callbacks hand out (picked by a hash of
 * the name asked for; some names get NULL). The format is compiled with an
 * error buffer sized exactly from the input (so ASan sees any overrun) and,
 * if it compiles, rendered. Properties (abort() on failure):
 *   - compile fails exactly when it leaves a message, which fits the buffer;
 *   - a rendered line ends in its only newline, and values never bring a
 *     control character into it (only the format's own literals can).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_accesslog: check failed: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct values {
    const char **v;
    size_t n;
} values;

static const char *pick(const values *vals, const char *name, uint32_t salt)
{
    uint32_t h = 2166136261u ^ salt;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    if (!vals->n || h % 5 == 0)
        return NULL;
    return vals->v[h % vals->n];
}

static const char *fuzz_param(void *ctx, const char *name)
{
    return pick(ctx, name, 1);
}

static const char *fuzz_header(void *ctx, const char *name)
{
    return pick(ctx, name, 2);
}

static int has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int tz_set;
    if (!tz_set) {
        /* %(t)s: the same line whatever the machine's zone */
        setenv("TZ", "UTC", 1);
        tz_set = 1;
    }

    /* One copy, NUL-terminated: the format and the values point into it. */
    char *copy = malloc(size + 1);
    CHECK(copy);
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *fmt = copy;
    size_t fmt_len = strlen(fmt);

    values vals = {NULL, 0};
    for (size_t off = fmt_len + 1; off <= size; off += strlen(copy + off) + 1) {
        vals.v = realloc(vals.v, (vals.n + 1) * sizeof *vals.v);
        CHECK(vals.v);
        vals.v[vals.n++] = copy + off;
    }

    /* An error buffer of 0..63 bytes, then a roomy one. */
    size_t errlen = size % 64;
    char *err = errlen ? malloc(errlen) : NULL;
    access_format *f = access_format_compile(fmt, err, errlen);
    if (errlen)
        CHECK(strlen(err) < errlen && (f ? err[0] == '\0' : errlen == 1 || err[0] != '\0'));
    access_format_free(f);
    free(err);

    char big[512];
    f = access_format_compile(fmt, big, sizeof big);
    CHECK(f ? big[0] == '\0' : big[0] != '\0');
    if (f) {
        access_entry e = {
            .param = fuzz_param,
            .resp_header = fuzz_header,
            .ctx = &vals,
            .status = size & 1 ? 200 : 499,
            .body_bytes = size & 2 ? 0 : (uint64_t)size * 1000003u,
            .start = {(time_t)1795773662 + (time_t)size, 0},
            .duration_us = (uint64_t)size * 7919u,
            .pid = 4242,
        };
        nw_buf out = NW_BUF_INIT;
        access_format_render(f, &e, &out);
        CHECK(out.len >= 1 && out.data[out.len - 1] == '\n');
        if (!has_control(fmt, fmt_len))
            CHECK(!has_control((const char *)out.data, out.len - 1));
        nw_buf_free(&out);
        access_format_free(f);
    }
    free(vals.v);
    free(copy);
    return 0;
}
