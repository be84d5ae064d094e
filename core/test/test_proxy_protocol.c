/* test_proxy_protocol.c: PROXY protocol v1 and v2, table-driven; every case
 * also fed as each of its prefixes (TG_EAGAIN or the same result). */
#include "test.h"

#include "proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

typedef struct {
    const char *in;
    size_t len;     /* 0: strlen */
    int want;       /* bytes consumed, or TG_ERROR */
    int has_addr;
    const char *src, *dst; /* "ip port" when has_addr */
} pp_case_t;

#define SIG "\r\n\r\n\0\r\nQUIT\n"
#define V2(rest) SIG rest, sizeof(SIG rest) - 1

static const pp_case_t pp_cases[] = {
    /* v1 */
    {"PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\nGET /", 0, 43, 1, "192.168.0.1 56324",
     "10.0.0.2 443"},
    {"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", 0, 36, 1, "2001:db8::1 1", "::1 65535"},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 0 80\r\n", 0, 33, 1, "1.2.3.4 0", "5.6.7.8 80"},
    {"PROXY UNKNOWN\r\n", 0, 15, 0, NULL, NULL},
    {"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nxyz", 0, 35, 0, NULL, NULL},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 80\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 80\rX", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP4 1.2.3.4  5.6.7.8 1 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 80 \r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 80 9\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 01 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 -1 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP4 ::1 5.6.7.8 1 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP6 1.2.3.4 ::1 1 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY TCP4 1.2.3.256 5.6.7.8 1 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY UDP4 1.2.3.4 5.6.7.8 1 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY tcp4 1.2.3.4 5.6.7.8 1 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY  TCP4 1.2.3.4 5.6.7.8 1 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"PROXY\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"proxy TCP4 1.2.3.4 5.6.7.8 1 80\r\n", 0, TG_ERROR, 0, NULL, NULL},
    {"GET / HTTP/1.1\r\n", 0, TG_ERROR, 0, NULL, NULL},
    /* a v1 line longer than 107 bytes */
    {"PROXY UNKNOWN 0123456789012345678901234567890123456789012345678901234567890123456789"
     "0123456789012345678901\r\n",
     0, TG_ERROR, 0, NULL, NULL},
    /* exactly 107 bytes */
    {"PROXY UNKNOWN 0123456789012345678901234567890123456789012345678901234567890123456789"
     "012345678901234567890\r\n",
     0, 107, 0, NULL, NULL},

    /* v2: PROXY, TCP over IPv4 */
    {V2("\x21\x11\x00\x0c" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb" "GET"),
     28, 1, "127.0.0.1 8080", "10.0.0.2 443"},
    /* with a TLV (type 0x04 NOOP, 2 bytes) */
    {V2("\x21\x11\x00\x11" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb"
        "\x04\x00\x02" "ab"),
     33, 1, "127.0.0.1 8080", "10.0.0.2 443"},
    /* TCP over IPv6 */
    {V2("\x21\x21\x00\x24" "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
        "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01" "\x00\x50" "\x00\x51"),
     52, 1, "2001:db8::1 80", "::1 81"},
    /* LOCAL: addresses ignored */
    {V2("\x20\x00\x00\x00"), 16, 0, NULL, NULL},
    {V2("\x20\x11\x00\x0c" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb"), 28, 0,
     NULL, NULL},
    /* UDP over IPv4 and UNSPEC: accepted, no address */
    {V2("\x21\x12\x00\x0c" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb"), 28, 0,
     NULL, NULL},
    {V2("\x21\x00\x00\x03" "abc"), 19, 0, NULL, NULL},
    /* errors: version, command, family, protocol, short lengths, broken TLVs */
    {V2("\x11\x11\x00\x0c" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb"),
     TG_ERROR, 0, NULL, NULL},
    {V2("\x22\x11\x00\x0c" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb"),
     TG_ERROR, 0, NULL, NULL},
    {V2("\x21\x41\x00\x0c" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb"),
     TG_ERROR, 0, NULL, NULL},
    {V2("\x21\x13\x00\x0c" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb"),
     TG_ERROR, 0, NULL, NULL},
    {V2("\x21\x11\x00\x0b" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01"), TG_ERROR, 0,
     NULL, NULL},
    {V2("\x21\x21\x00\x0c" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb"),
     TG_ERROR, 0, NULL, NULL},
    {V2("\x21\x11\x00\x0e" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb" "\x04\x00"),
     TG_ERROR, 0, NULL, NULL},
    {V2("\x21\x11\x00\x10" "\x7f\x00\x00\x01" "\x0a\x00\x00\x02" "\x1f\x90" "\x01\xbb"
        "\x04\x00\x05" "a"),
     TG_ERROR, 0, NULL, NULL},
    {"\r\n\r\n\0\r\nQUIX\n\x21\x00\x00\x00", 16, TG_ERROR, 0, NULL, NULL},
};

static bool addr_is(const struct sockaddr_storage *ss, const char *want)
{
    char ip[INET6_ADDRSTRLEN], got[80];
    unsigned port;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
        port = ntohs(s->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
        port = ntohs(s->sin6_port);
    } else {
        return false;
    }
    snprintf(got, sizeof(got), "%s %u", ip, port);
    return strcmp(got, want) == 0;
}

static int parse_exact(const char *in, size_t len, tg_proxy_protocol_t *pp)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    int rc = tg_proxy_protocol_parse(copy, len, pp);
    free(copy);
    return rc;
}

TEST(proxy_protocol_table)
{
    for (size_t k = 0; k < TG_ARRAY_SIZE(pp_cases); k++) {
        const pp_case_t *c = &pp_cases[k];
        size_t len = c->len ? c->len : strlen(c->in);
        tg_proxy_protocol_t pp;
        int rc = parse_exact(c->in, len, &pp);
        CHECK(rc == c->want, "row %zu: got %d want %d", k, rc, c->want);
        if (rc > 0 && rc == c->want) {
            CHECK(pp.has_addr == c->has_addr, "row %zu: has_addr %d", k, pp.has_addr);
            if (c->has_addr && pp.has_addr) {
                CHECK(addr_is(&pp.src, c->src), "row %zu: src", k);
                CHECK(addr_is(&pp.dst, c->dst), "row %zu: dst", k);
            }
        }
        for (size_t n = 0; n < len; n++) {
            int r2 = parse_exact(c->in, n, &pp);
            CHECK(r2 == TG_EAGAIN || r2 == rc, "row %zu prefix %zu: %d (whole %d)", k, n, r2, rc);
            if (n < (size_t)(rc > 0 ? rc : 0))
                CHECK(r2 == TG_EAGAIN, "row %zu prefix %zu of a good header: %d", k, n, r2);
        }
    }
}
