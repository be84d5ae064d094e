/* uri.c: request path normalisation and re-escaping (Kong's kong/tools/uri.lua semantics). */
#include "uri.h"

#include <stdlib.h>

/* Kong's reserved set: decoding these would change the meaning of the path. */
static bool is_reserved(unsigned char c)
{
    return c != 0 && strchr("!*'();:@&=+$,/?%#[]", c) != NULL;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Pass 1: percent-decoding into out (stopping at a raw '?'). Returns length or error. */
static int decode(const char *in, size_t len, char *out, size_t cap, bool strict)
{
    static const char HEX[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '?')
            break;
        if (c == '%') {
            int hi = i + 1 < len ? hexval((unsigned char)in[i + 1]) : -1;
            int lo = i + 2 < len ? hexval((unsigned char)in[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                if (strict)
                    return TG_EINVAL;
                if (o >= cap)
                    return TG_ETOOLARGE;
                out[o++] = '%';
                continue;
            }
            unsigned char d = (unsigned char)(hi << 4 | lo);
            if (d == 0 && strict)
                return TG_EINVAL;
            if (is_reserved(d)) {
                if (o + 3 > cap)
                    return TG_ETOOLARGE;
                out[o++] = '%';
                out[o++] = HEX[hi];
                out[o++] = HEX[lo];
            } else {
                if (o >= cap)
                    return TG_ETOOLARGE;
                out[o++] = (char)d;
            }
            i += 2;
            continue;
        }
        if (o >= cap)
            return TG_ETOOLARGE;
        out[o++] = (char)c;
    }
    return (int)o;
}

/* Drops the last kept segment of p[0..w): segments are "/name" (or a leading relative
 * "name"), so it starts at the last '/' or at 0. */
static size_t pop_segment(const char *p, size_t w)
{
    while (w > 0 && p[w - 1] != '/')
        w--;
    return w > 0 ? w - 1 : 0;
}

/* Pass 2, in place: dot-segment removal and `//` merging, the way Kong's normalize() walks
 * the path (segments are "/name" units; "/.." drops the last one kept). */
static size_t remove_dots(char *p, size_t n)
{
    size_t r = 0, w = 0; /* read position, write end */

    while (r < n) {
        size_t left = n - r;
        const char *u = p + r;
        if (left == 2 && u[0] == '/' && u[1] == '.') { /* "/." at the end */
            r += 1;
            p[r] = '/';
            n = r + 1;
            continue;
        }
        if (left == 3 && u[0] == '/' && u[1] == '.' && u[2] == '.') { /* "/.." at the end */
            w = pop_segment(p, w);
            r += 2;
            p[r] = '/';
            n = r + 1;
            continue;
        }
        if ((left == 1 && u[0] == '.') || (left == 2 && u[0] == '.' && u[1] == '.')) {
            r = n;
            continue;
        }
        if (left >= 3 && u[0] == '.' && u[1] == '.' && u[2] == '/') {
            r += 3;
            continue;
        }
        if (left >= 2 && u[0] == '.' && u[1] == '/') {
            r += 2;
            continue;
        }
        if (left >= 3 && u[0] == '/' && u[1] == '.' && u[2] == '/') {
            r += 2;
            continue;
        }
        if (left >= 4 && u[0] == '/' && u[1] == '.' && u[2] == '.' && u[3] == '/') {
            r += 3;
            w = pop_segment(p, w);
            continue;
        }
        if (left >= 2 && u[0] == '/' && u[1] == '/') {
            r += 1;
            continue;
        }
        /* a segment: up to (not including) the next '/' after the first byte */
        size_t e = r + 1;
        while (e < n && p[e] != '/')
            e++;
        if (w != r)
            memmove(p + w, p + r, e - r);
        w += e - r;
        r = e;
    }
    return w;
}

static int normalize(const char *in, size_t len, char *out, size_t cap, bool strict)
{
    int n = decode(in, len, out, cap, strict);
    if (n < 0)
        return n;
    size_t m = (size_t)n;
    if (!(m == 0 || (m == 1 && out[0] == '/')) &&
        (memchr(out, '.', m) || memmem(out, m, "//", 2)))
        m = remove_dots(out, m);
    if (m < cap)
        out[m] = '\0';
    return (int)m;
}

int tg_uri_normalize(const char *in, size_t len, char *out, size_t cap)
{
    return normalize(in, len, out, cap, true);
}

int tg_uri_normalize_lenient(const char *in, size_t len, char *out, size_t cap)
{
    return normalize(in, len, out, cap, false);
}

static bool keep_unescaped(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$&'()*+,/:;=?@[]-_.~%", c) != NULL;
}

int tg_uri_escape_path(const char *in, size_t len, char *out, size_t cap)
{
    static const char HEX[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (keep_unescaped(c)) {
            if (o >= cap)
                return TG_ETOOLARGE;
            out[o++] = (char)c;
        } else {
            if (o + 3 > cap)
                return TG_ETOOLARGE;
            out[o++] = '%';
            out[o++] = HEX[c >> 4];
            out[o++] = HEX[c & 15];
        }
    }
    if (o < cap)
        out[o] = '\0';
    return (int)o;
}

bool tg_uri_is_normalized(const char *path, size_t len, char *norm, size_t normcap)
{
    char stackbuf[1024];
    char *buf = len < sizeof(stackbuf) ? stackbuf : malloc(len + 1);
    if (!buf)
        return false;
    int n = normalize(path, len, buf, len + 1, false);
    bool same = n >= 0 && (size_t)n == len && memcmp(buf, path, len) == 0;
    if (!same && norm && normcap) {
        size_t k = n < 0 ? 0 : (size_t)n;
        if (k >= normcap)
            k = normcap - 1;
        memcpy(norm, buf, k);
        norm[k] = '\0';
    }
    if (buf != stackbuf)
        free(buf);
    return same;
}
