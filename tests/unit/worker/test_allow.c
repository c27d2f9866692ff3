/* Unit tests for src/worker/allow.c: which peers pass, and the bound on
 * the log lines refusals cost (one per address per minute, at most
 * ALLOW_LOG_ADDRS addresses a minute, then one line for the rest). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "allow.h"
#include "log.h"
#include "narwhal.h"
#include "../tmpdir.h"

static char logpath[128];

static void setup(void)
{
    tmpdir_setup();
    snprintf(logpath, sizeof logpath, "%s/error.log", tmpdir);
    cr_assert_eq(log_open(logpath, NULL), 0);
}

static void teardown(void)
{
    log_open(NULL, NULL);
    tmpdir_teardown();
}

TestSuite(allow, .init = setup, .fini = teardown);

static int lines(void)
{
    FILE *f = fopen(logpath, "r");
    cr_assert_not_null(f);
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static struct sockaddr_in v4(unsigned a)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(a)};
    return in;
}

static void set_list(const char *a, const char *b)
{
    static char *v[2];
    static nw_strlist l;
    v[0] = (char *)a;
    v[1] = (char *)b;
    l.v = v;
    l.n = b ? 2 : a ? 1 : 0;
    allow_init(&l);
}

Test(allow, empty_list_allows_everyone)
{
    set_list(NULL, NULL);
    struct sockaddr_in p = v4(0x0a000001);
    cr_expect(allow_peer((struct sockaddr *)&p, 0));
    cr_expect_eq(lines(), 0);
}

Test(allow, unix_peers_are_not_checked)
{
    set_list("127.0.0.2", NULL);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    cr_expect(allow_peer(&sa, 0));
}

Test(allow, one_line_per_address_per_minute)
{
    set_list("127.0.0.2", "10.0.0.0/8");
    struct sockaddr_in ok = v4(0x0a010203), bad = v4(0x7f000001), bad2 = v4(0x7f000003);
    cr_expect(allow_peer((struct sockaddr *)&ok, 1000));
    for (int i = 0; i < 10000; i++)
        cr_assert(!allow_peer((struct sockaddr *)&bad, 1000 + i));
    cr_expect_eq(lines(), 1, "a flood from one address is one line");
    cr_expect(!allow_peer((struct sockaddr *)&bad2, 2000));
    cr_expect_eq(lines(), 2, "another address, its own line");
    cr_expect(!allow_peer((struct sockaddr *)&bad, 1000 + ALLOW_LOG_EVERY_MS));
    cr_expect_eq(lines(), 3, "a minute later, one more, with the count");
    char *text = NULL;
    size_t cap = 0;
    FILE *f = fopen(logpath, "r");
    while (getline(&text, &cap, f) > 0)
        ;
    fclose(f);
    cr_expect(strstr(text, "refused a connection from 127.0.0.1: not in allowed_clients (9999 more "
                           "since the last report)"),
              "%s", text);
    free(text);
}

Test(allow, a_flood_from_many_addresses_is_bounded)
{
    set_list("::1", NULL);
    for (unsigned i = 0; i < 100000; i++) {
        struct sockaddr_in p = v4(0x0b000000 + i);
        cr_assert(!allow_peer((struct sockaddr *)&p, 5000 + i / 1000));
    }
    cr_expect_eq(lines(), ALLOW_LOG_ADDRS + 1,
                 "100000 addresses in 100 s: one line each for the first %d, one for the rest",
                 ALLOW_LOG_ADDRS);
}
