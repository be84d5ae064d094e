/* proxy_protocol.c: PROXY protocol v1 and v2 headers (see proxy_protocol.h;
 * the format is HAProxy's proxy-protocol.txt). */
#include "proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static const char v1_sig[] = "PROXY ";
static const char v2_sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};

#define V2_HEAD 16
#define V2_INET_LEN 12
#define V2_INET6_LEN 36
#define V2_UNIX_LEN 216

/* A port: 1-5 digits, no leading zero (except "0"), at most 65535. */
static bool parse_port(const char *p, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || (n > 1 && p[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

static bool set_addr(struct sockaddr_storage *ss, int family, const char *p, size_t n,
                     uint16_t port)
{
    char tmp[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return inet_pton(AF_INET, tmp, &sin->sin_addr) == 1;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return inet_pton(AF_INET6, tmp, &sin6->sin6_addr) == 1;
}

/* "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN...\r\n". */
static int parse_v1(const char *buf, size_t len, tg_proxy_protocol_t *out)
{
    size_t lim = len < TG_PROXY_PROTOCOL_V1_MAX ? len : TG_PROXY_PROTOCOL_V1_MAX;
    size_t e = 0;
    while (e < lim && buf[e] != '\r') {
        if (buf[e] == '\n' || buf[e] == '\0')
            return TG_ERROR;
        e++;
    }
    if (e == lim)
        return len >= TG_PROXY_PROTOCOL_V1_MAX ? TG_ERROR : TG_EAGAIN;
    if (e + 2 > TG_PROXY_PROTOCOL_V1_MAX)
        return TG_ERROR;
    if (e + 1 >= len)
        return TG_EAGAIN;
    if (buf[e + 1] != '\n')
        return TG_ERROR;
    int consumed = (int)(e + 2);

    /* fields of the line buf[6..e), separated by single spaces */
    const char *f[5];
    size_t fl[5];
    size_t nf = 0, i = sizeof(v1_sig) - 1;
    while (i <= e && nf < 5) {
        size_t s = i;
        while (i < e && buf[i] != ' ')
            i++;
        f[nf] = buf + s;
        fl[nf] = i - s;
        nf++;
        i++;
        if (nf == 1 && fl[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0) {
            /* the rest of the line is ignored */
            out->has_addr = 0;
            return consumed;
        }
    }
    if (nf != 5 || i <= e)
        return TG_ERROR; /* too few or too many fields */
    int family;
    if (fl[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
        family = AF_INET;
    else if (fl[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return TG_ERROR;
    uint16_t sport, dport;
    if (!parse_port(f[3], fl[3], &sport) || !parse_port(f[4], fl[4], &dport))
        return TG_ERROR;
    if (!set_addr(&out->src, family, f[1], fl[1], sport) ||
        !set_addr(&out->dst, family, f[2], fl[2], dport))
        return TG_ERROR;
    out->has_addr = 1;
    return consumed;
}

static int parse_v2(const unsigned char *b, size_t len, tg_proxy_protocol_t *out)
{
    if (len < V2_HEAD)
        return TG_EAGAIN;
    unsigned ver = b[12] >> 4, cmd = b[12] & 0xf;
    unsigned fam = b[13] >> 4, proto = b[13] & 0xf;
    size_t plen = (size_t)b[14] << 8 | b[15];
    if (ver != 2 || cmd > 1 || fam > 3 || proto > 2)
        return TG_ERROR;
    size_t need = fam == 1 ? V2_INET_LEN : fam == 2 ? V2_INET6_LEN : fam == 3 ? V2_UNIX_LEN : 0;
    if (plen < need)
        return TG_ERROR;
    if (len < V2_HEAD + plen)
        return TG_EAGAIN;
    /* TLVs after a known address block must be well-formed (their contents
     * are ignored); after UNSPEC nothing is known of the bytes */
    size_t t = V2_HEAD + need, end = V2_HEAD + plen;
    while (fam != 0 && t < end) {
        if (end - t < 3)
            return TG_ERROR;
        size_t tl = (size_t)b[t + 1] << 8 | b[t + 2];
        if (end - t - 3 < tl)
            return TG_ERROR;
        t += 3 + tl;
    }
    out->has_addr = 0;
    if (cmd == 1 && proto == 1 && (fam == 1 || fam == 2)) {
        const unsigned char *a = b + V2_HEAD;
        memset(&out->src, 0, sizeof(out->src));
        memset(&out->dst, 0, sizeof(out->dst));
        if (fam == 1) {
            struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
            struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
            s->sin_family = d->sin_family = AF_INET;
            memcpy(&s->sin_addr, a, 4);
            memcpy(&d->sin_addr, a + 4, 4);
            memcpy(&s->sin_port, a + 8, 2);
            memcpy(&d->sin_port, a + 10, 2);
        } else {
            struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
            struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
            s->sin6_family = d->sin6_family = AF_INET6;
            memcpy(&s->sin6_addr, a, 16);
            memcpy(&d->sin6_addr, a + 16, 16);
            memcpy(&s->sin6_port, a + 32, 2);
            memcpy(&d->sin6_port, a + 34, 2);
        }
        out->has_addr = 1;
    }
    return (int)(V2_HEAD + plen);
}

int tg_proxy_protocol_parse(const char *buf, size_t len, tg_proxy_protocol_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t n1 = len < sizeof(v1_sig) - 1 ? len : sizeof(v1_sig) - 1;
    if (memcmp(buf, v1_sig, n1) == 0)
        return len < sizeof(v1_sig) - 1 ? TG_EAGAIN : parse_v1(buf, len, out);
    size_t n2 = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    if (memcmp(buf, v2_sig, n2) == 0)
        return len < sizeof(v2_sig) ? TG_EAGAIN : parse_v2((const unsigned char *)buf, len, out);
    return TG_ERROR;
}
