#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cidr_parse(const char *s, nw_cidr *c, char *err, size_t errlen)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
    const char *h = s;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof host)
        return snprintf(err, errlen, "'%s' is not an address or ADDRESS/BITS", s), -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, host, c->addr) == 1) {
        c->family = AF_INET;
        c->bits = 32;
    } else if (inet_pton(AF_INET6, host, c->addr) == 1) {
        c->family = AF_INET6;
        c->bits = 128;
    } else {
        return snprintf(err, errlen, "'%s' is not an IPv4 or IPv6 address", s), -1;
    }
    if (slash) {
        int max = c->bits;
        size_t n = strlen(slash + 1);
        if (n == 0 || n > 3 || strspn(slash + 1, "0123456789") != n)
            return snprintf(err, errlen, "'%s': prefix must be 0 to %d", s, max), -1;
        int bits = atoi(slash + 1);
        if (bits > max)
            return snprintf(err, errlen, "'%s': prefix must be 0 to %d", s, max), -1;
        c->bits = bits;
        for (int i = bits; i < max; i++)
            if (c->addr[i / 8] & (0x80 >> (i % 8)))
                return snprintf(err, errlen,
                                "'%s': the address has bits set past the /%d prefix", s, bits),
                       -1;
    }
    return 0;
}

static int prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int cidr_match(const nw_cidr *c, const struct sockaddr *sa)
{
    const uint8_t *a;
    int family = sa->sa_family;
    if (family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        a = a6->s6_addr;
        if (c->family == AF_INET && IN6_IS_ADDR_V4MAPPED(a6)) {
            a += 12;
            family = AF_INET;
        }
    } else {
        return 0;
    }
    return family == c->family && prefix_equal(a, c->addr, c->bits);
}

int cidr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

const char *cidr_ntop(const struct sockaddr *sa, char *buf, size_t len)
{
    const void *a = sa->sa_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
        !inet_ntop(sa->sa_family, a, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    return buf;
}
