/*
 * fuzz_settings.c - libFuzzer target for settings.
 *
 * The input is used twice:
 *   1. as a config file: settings_load(narwhal -c FILE);
 *   2. as the value of NARWHAL_CMD_ARGS (up to the first NUL), with
 *      `-c /dev/null` on the command line so the words cannot name a real
 *      file to read.
 * Whenever a load succeeds, the settings are written with settings_print,
 * loaded back from that text, and must come back the same (the
 * --print-config round trip); the same again after settings_finish, which
 * the loaded-back copy must pass too. abort() on any mismatch.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_settings: check failed: %s (line %d)\n", #cond, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char conf_path[64], print_path[64];
static FILE *devnull;

static void cleanup(void)
{
    unlink(conf_path);
    unlink(print_path);
}

static void init_once(void)
{
    if (devnull)
        return;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 32)
        tmp = "/tmp";
    snprintf(conf_path, sizeof conf_path, "%s/fuzz_settings.%ld.conf", tmp, (long)getpid());
    snprintf(print_path, sizeof print_path, "%s/fuzz_settings.%ld.print", tmp, (long)getpid());
    devnull = fopen("/dev/null", "w");
    CHECK(devnull);
    /* The default worker count reads it; keep runs reproducible. */
    unsetenv("WEB_CONCURRENCY");
    atexit(cleanup);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "w");
    CHECK(f);
    CHECK(fwrite(data, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int list_eq(const nw_strlist *a, const nw_strlist *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return 0;
    return 1;
}

/* Every setting a config file can hold (config, check_config and
 * print_config are command-line only). */
static void compare(const nw_settings *a, const nw_settings *b, const char *text, size_t len)
{
#define SAME(cond, what)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_settings: round trip changed %s; printed config:\n", what);      \
            fwrite(text, 1, len, stderr);                                                          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
#define SAME_INT(f) SAME(a->f == b->f, #f)
#define SAME_STR(f) SAME(str_eq(a->f, b->f), #f)
#define SAME_LIST(f) SAME(list_eq(&a->f, &b->f), #f)
    SAME_LIST(bind);
    SAME_INT(workers);
    SAME_INT(backlog);
    SAME_STR(pidfile);
    SAME_STR(accesslog);
    SAME_STR(access_log_format);
    SAME_STR(errorlog);
    SAME_INT(loglevel);
    SAME_INT(timeout);
    SAME_INT(graceful_timeout);
    SAME_INT(keepalive);
    SAME_INT(daemon);
    SAME_STR(chdir);
    SAME_LIST(raw_env);
    SAME_STR(user);
    SAME_STR(group);
    SAME_INT(umask);
    SAME_STR(app);
    SAME_INT(worker_class);
    SAME_INT(threads);
    SAME_INT(worker_connections);
    SAME_INT(coroutine_stack_size);
    SAME_INT(protocol);
    SAME_INT(limit_request_line);
    SAME_INT(limit_request_fields);
    SAME_INT(limit_request_field_size);
    SAME_INT(max_requests);
    SAME_INT(max_requests_jitter);
    SAME_STR(exec);
    SAME_LIST(exec_args);
    SAME_INT(exec_stop_signal);
    SAME_INT(reload);
    SAME_INT(spew);
    SAME_INT(preload_app);
#undef SAME_LIST
#undef SAME_STR
#undef SAME_INT
#undef SAME
}

/* Prints s, loads it back, and compares. With finished, s has been through
 * settings_finish: the copy must pass it too, and compare after it. */
static void round_trip(const nw_settings *s, int finished)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    nw_settings back;
    char *argv[] = {"narwhal", "-c", print_path, NULL};

    CHECK(mem);
    settings_print(s, mem);
    CHECK(fclose(mem) == 0);
    write_file(print_path, text, len);
    int rc = settings_load(&back, 3, argv, NULL, devnull, devnull);
    if (rc != 0) {
        fprintf(stderr, "fuzz_settings: printed config does not load (rc %d):\n", rc);
        fwrite(text, 1, len, stderr);
        rc = settings_load(&back, 3, argv, NULL, stdout, stderr);
        abort();
    }
    if (finished && settings_finish(&back, devnull) != 0) {
        fprintf(stderr, "fuzz_settings: printed config fails settings_finish:\n");
        fwrite(text, 1, len, stderr);
        settings_finish(&back, stderr);
        abort();
    }
    compare(s, &back, text, len);
    settings_free(&back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nw_settings s;

    init_once();

    /* 1. the input as a config file */
    {
        char *argv[] = {"narwhal", "-c", conf_path, NULL};
        write_file(conf_path, data, size);
        int rc = settings_load(&s, 3, argv, NULL, devnull, devnull);
        CHECK(rc >= 0 && rc <= 2);
        if (rc == 0) {
            round_trip(&s, 0);
            if (settings_finish(&s, devnull) == 0)
                round_trip(&s, 1);
        }
        settings_free(&s);
    }

    /* 2. the input as NARWHAL_CMD_ARGS */
    {
        char *argv[] = {"narwhal", "-c", "/dev/null", NULL};
        char *env = malloc(size + 1);
        CHECK(env);
        memcpy(env, data, size);
        env[size] = '\0';
        int rc = settings_load(&s, 3, argv, env, devnull, devnull);
        CHECK(rc >= 0 && rc <= 2);
        if (rc == 0) {
            round_trip(&s, 0);
            if (settings_finish(&s, devnull) == 0)
                round_trip(&s, 1);
        }
        settings_free(&s);
        free(env);
    }
    return 0;
}
