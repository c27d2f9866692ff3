/* cidr.h - client address lists: allowed_clients and FCGI_WEB_SERVER_ADDRS.
 *
 * An entry is an address or a CIDR range, IPv4 or IPv6: "127.0.0.1",
 * "10.0.0.0/8", "::1", "fd00::/8", "[::1]" (brackets allowed for v6). An
 * IPv4 entry also matches the same address seen as an IPv4-mapped IPv6 peer
 * (::ffff:a.b.c.d, on a dual-stack socket). Pure: no I/O. */
#ifndef NW_CIDR_H
#define NW_CIDR_H

#include <stdint.h>
#include <sys/socket.h>

typedef struct nw_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order; 4 bytes used for AF_INET */
    int bits;         /* prefix length: 0..32 or 0..128 */
} nw_cidr;

/* Parses one entry into c. 0, or -1 with the reason in err ("'10.0.0.0/33':
 * prefix must be 0 to 32"). Bits past the prefix must be zero
 * ("10.0.0.1/8" is refused: it says a range but names a host). */
int cidr_parse(const char *s, nw_cidr *c, char *err, size_t errlen);

/* Whether the peer address sa (AF_INET or AF_INET6; anything else never
 * matches) lies in c. */
int cidr_match(const nw_cidr *c, const struct sockaddr *sa);

/* Whether sa is a loopback address (127/8, ::1, ::ffff:127.x.x.x). */
int cidr_is_loopback(const struct sockaddr *sa);

/* The address of sa as text, in buf (INET6_ADDRSTRLEN bytes will do). */
const char *cidr_ntop(const struct sockaddr *sa, char *buf, size_t len);

#endif
