/* statsd.c - statsD metrics over UDP or a unix datagram socket (see
 * statsd.h). */
#include "statsd.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "narwhal.h"

static struct {
    pthread_mutex_t lock;
    int fd;
    char prefix[128];
    char buf[STATSD_DATAGRAM];
    size_t len;
    char host[256]; /* what fd is connected to */
} sd = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static int connect_unix(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path) {
        log_error("statsd_host unix:%s: path too long", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        /* A server that is not there yet is not an error for a datagram
         * socket we connect later: keep it simple, say so and stay off. */
        log_error("statsd_host unix:%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int connect_udp(const char *host)
{
    const char *why = NULL;
    struct addrinfo *res = listener_resolve(host, SOCK_DGRAM, 0, &why);
    if (!res) {
        log_error("statsd_host %s: %s", host, why);
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    if (fd < 0)
        log_error("statsd_host %s: %s", host, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

static void statsd_counter(const char *name, long value);

static void count_log_line(int level)
{
    statsd_counter(level >= NW_LOG_CRITICAL ? "gunicorn.log.critical"
                   : level >= NW_LOG_ERROR  ? "gunicorn.log.error"
                                            : "gunicorn.log.warning",
                   1);
}

/* gunicorn's rule: "app", "app." (and "app..") are the prefix "app.". */
static void set_prefix(char *out, size_t size, const char *prefix)
{
    size_t n = prefix ? strlen(prefix) : 0;
    while (n && prefix[n - 1] == '.')
        n--;
    if (n >= size - 1)
        n = size - 2; /* the setting's check keeps it far shorter */
    if (n)
        snprintf(out, size, "%.*s.", (int)n, prefix);
    else
        out[0] = 0;
}

int statsd_open(const char *host, const char *prefix)
{
    char want[sizeof sd.prefix];
    set_prefix(want, sizeof want, prefix);
    if (!host || !*host) {
        log_set_level_hook(NULL);
        statsd_close();
        return 0;
    }
    pthread_mutex_lock(&sd.lock);
    int same = sd.fd >= 0 && strcmp(sd.host, host) == 0;
    if (same)
        snprintf(sd.prefix, sizeof sd.prefix, "%s", want);
    pthread_mutex_unlock(&sd.lock);
    if (same) /* a reload that kept the host: the same socket */
        return 0;
    int fd = strncmp(host, "unix:", 5) == 0 ? connect_unix(host + 5) : connect_udp(host);
    if (fd < 0) /* logged; metrics go where they went before, if anywhere */
        return -1;
    statsd_close();
    pthread_mutex_lock(&sd.lock);
    sd.fd = fd;
    snprintf(sd.host, sizeof sd.host, "%s", host);
    snprintf(sd.prefix, sizeof sd.prefix, "%s", want);
    sd.len = 0;
    pthread_mutex_unlock(&sd.lock);
    log_set_level_hook(count_log_line);
    return 0;
}

void statsd_after_fork(void)
{
    pthread_mutex_init(&sd.lock, NULL);
    sd.len = 0;
}

int statsd_enabled(void)
{
    return __atomic_load_n(&sd.fd, __ATOMIC_RELAXED) >= 0;
}

/* With the lock held. */
static void send_batch(void)
{
    if (sd.len) /* what the socket does not take now is dropped: never waited for */
        (void)send(sd.fd, sd.buf, sd.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    sd.len = 0;
}

void statsd_close(void)
{
    pthread_mutex_lock(&sd.lock);
    if (sd.fd >= 0) {
        send_batch();
        close(sd.fd);
    }
    sd.fd = -1;
    pthread_mutex_unlock(&sd.lock);
}

/* Appends lines ("name:value|type\n" each, the prefix already in). */
static void add(const char *lines, size_t n)
{
    pthread_mutex_lock(&sd.lock);
    if (sd.fd >= 0 && n < sizeof sd.buf) {
        if (sd.len + n > sizeof sd.buf)
            send_batch();
        memcpy(sd.buf + sd.len, lines, n);
        sd.len += n;
    }
    pthread_mutex_unlock(&sd.lock);
}

static void metric(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void metric(const char *fmt, ...)
{
    if (!statsd_enabled())
        return;
    char line[STATSD_DATAGRAM];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof line)
        add(line, (size_t)n);
}

static void statsd_counter(const char *name, long value)
{
    metric("%s%s:%ld|c\n", sd.prefix, name, value);
}

void statsd_gauge(const char *name, long value)
{
    metric("%s%s:%ld|g\n", sd.prefix, name, value);
}

void statsd_request(int status, double ms)
{
    metric("%sgunicorn.requests:1|c\n%sgunicorn.request.duration:%.3f|ms\n"
           "%sgunicorn.request.status.%d:1|c\n",
           sd.prefix, sd.prefix, ms, sd.prefix, status);
}

void statsd_flush(void)
{
    if (!statsd_enabled())
        return;
    pthread_mutex_lock(&sd.lock);
    if (sd.fd >= 0)
        send_batch();
    pthread_mutex_unlock(&sd.lock);
}
