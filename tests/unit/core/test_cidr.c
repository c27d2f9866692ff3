/* Unit tests for src/core/cidr.c: the entries allowed_clients and
 * FCGI_WEB_SERVER_ADDRS take, what they refuse, and what matches. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "cidr.h"

static struct sockaddr_storage addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1)
        in->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1)
        in6->sin6_family = AF_INET6;
    else
        cr_assert_fail("bad test address %s", text);
    return ss;
}

static int matches(const char *entry, const char *peer)
{
    nw_cidr c;
    char err[160];
    cr_assert_eq(cidr_parse(entry, &c, err, sizeof err), 0, "%s: %s", entry, err);
    struct sockaddr_storage ss = addr(peer);
    return cidr_match(&c, (struct sockaddr *)&ss);
}

Test(cidr, matches)
{
    cr_expect(matches("127.0.0.1", "127.0.0.1"));
    cr_expect(!matches("127.0.0.1", "127.0.0.2"));
    cr_expect(matches("10.0.0.0/8", "10.255.1.2"));
    cr_expect(!matches("10.0.0.0/8", "11.0.0.1"));
    cr_expect(matches("192.168.1.128/25", "192.168.1.200"));
    cr_expect(!matches("192.168.1.128/25", "192.168.1.127"));
    cr_expect(matches("0.0.0.0/0", "203.0.113.9"));
    cr_expect(matches("::1", "::1"));
    cr_expect(matches("[::1]", "::1"));
    cr_expect(!matches("::1", "::2"));
    cr_expect(matches("fd00::/8", "fd12:3456::1"));
    cr_expect(!matches("fd00::/8", "fe80::1"));
    cr_expect(matches("2001:db8::/33", "2001:db8:7fff::1"));
    cr_expect(!matches("2001:db8::/33", "2001:db8:8000::1"));
    /* a v4 entry matches the same peer on a dual-stack socket, and only it */
    cr_expect(matches("127.0.0.0/8", "::ffff:127.0.0.5"));
    cr_expect(!matches("127.0.0.0/8", "::ffff:10.0.0.5"));
    cr_expect(!matches("::/0", "127.0.0.1"), "families do not mix");
    cr_expect(!matches("0.0.0.0/0", "::1"));
}

Test(cidr, refusals_name_the_entry)
{
    const char *bad[][2] = {
        {"", "'' is not an address or ADDRESS/BITS"},
        {"nginx", "'nginx' is not an IPv4 or IPv6 address"},
        {"10.0.0.0/33", "'10.0.0.0/33': prefix must be 0 to 32"},
        {"::/129", "'::/129': prefix must be 0 to 128"},
        {"10.0.0.0/", "'10.0.0.0/': prefix must be 0 to 32"},
        {"10.0.0.0/-1", "'10.0.0.0/-1': prefix must be 0 to 32"},
        {"10.0.0.1/8", "'10.0.0.1/8': the address has bits set past the /8 prefix"},
        {"1.2.3", "'1.2.3' is not an IPv4 or IPv6 address"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nw_cidr c;
        char err[160] = "";
        cr_expect_eq(cidr_parse(bad[i][0], &c, err, sizeof err), -1, "'%s' accepted", bad[i][0]);
        cr_expect_str_eq(err, bad[i][1]);
    }
}

Test(cidr, loopback)
{
    struct sockaddr_storage a = addr("127.8.9.10"), b = addr("::1"), c = addr("::ffff:127.0.0.1"),
                            d = addr("10.0.0.1"), e = addr("::"), f = addr("0.0.0.0");
    cr_expect(cidr_is_loopback((struct sockaddr *)&a));
    cr_expect(cidr_is_loopback((struct sockaddr *)&b));
    cr_expect(cidr_is_loopback((struct sockaddr *)&c));
    cr_expect(!cidr_is_loopback((struct sockaddr *)&d));
    cr_expect(!cidr_is_loopback((struct sockaddr *)&e), ":: is every address");
    cr_expect(!cidr_is_loopback((struct sockaddr *)&f), "0.0.0.0 is every address");
    char buf[64];
    cr_expect_str_eq(cidr_ntop((struct sockaddr *)&b, buf, sizeof buf), "::1");
    cr_expect_str_eq(cidr_ntop((struct sockaddr *)&a, buf, sizeof buf), "127.8.9.10");
}
