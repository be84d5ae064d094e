/* fuzz_http_parse.c: fuzz target for the HTTP/1.1 parser (requests,
 * responses, chunked bodies) and the PROXY protocol parser.
 *
 * LLVMFuzzerTestOneInput checks invariants and aborts on a violation:
 * results within bounds, every slice inside the buffer (and inside the
 * head), the same result for every prefix (TG_EAGAIN or identical), the same
 * chunked result and payload whether fed whole or a byte at a time.
 *
 * Without -DTG_LIBFUZZER a main() runs a deterministic mutation loop over a
 * built-in seed corpus for argv[1] seconds (default 10; argv[2]: PRNG seed)
 * and exits non-zero on a violation (abort). See core/fuzz/README.md. */
#include "http_parse.h"
#include "proxy_protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 32
#define MAX_INPUT 4096

static const uint8_t *cur_data;
static size_t cur_size;

static void violation(const char *what)
{
    fprintf(stderr, "fuzz_http_parse: invariant violated: %s\ninput (%zu bytes):\n", what,
            cur_size);
    for (size_t i = 0; i < cur_size; i++)
        fprintf(stderr, "%02x%s", cur_data[i], (i % 32 == 31) ? "\n" : "");
    fprintf(stderr, "\n");
    abort();
}

#define INV(cond, what)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            violation(what);                                                                       \
    } while (0)

static bool inside(const char *base, size_t len, const char *p, size_t n)
{
    return p >= base && p <= base + len && n <= (size_t)(base + len - p);
}

/* ------------------------------------------------------------- requests -- */

static int parse_req(const char *buf, size_t len, tg_http_request_t *req, tg_http_header_t *h,
                     const tg_http_limits_t *lim)
{
    req->headers = h;
    req->num_headers = MAX_HEADERS;
    return tg_http_parse_request(buf, len, req, lim);
}

static void check_request(const char *buf, size_t len, const tg_http_limits_t *lim)
{
    tg_http_header_t h[MAX_HEADERS];
    tg_http_request_t req;
    int rc = parse_req(buf, len, &req, h, lim);
    INV(rc == TG_EAGAIN || rc == TG_ERROR || (rc > 0 && (size_t)rc <= len), "request rc bounds");
    if (rc == TG_ERROR) {
        int s = req.error_status;
        INV(req.error, "request error message");
        INV(s == 400 || s == 405 || s == 414 || s == 417 || s == 494 || s == 505,
            "request error status");
    }
    if (rc > 0) {
        size_t hl = (size_t)rc;
        INV(req.num_headers <= MAX_HEADERS, "header count");
        INV(!lim->max_headers || req.num_headers <= lim->max_headers, "max_headers");
        INV(!lim->max_header_size || hl <= lim->max_header_size, "max_header_size");
        INV(req.method_len > 0 && inside(buf, hl, req.method, req.method_len), "method slice");
        INV(req.target_len > 0 && inside(buf, hl, req.target, req.target_len), "target slice");
        INV(req.path_len > 0, "path empty");
        INV((req.path_len == 1 && req.path[0] == '/') ||
                inside(req.target, req.target_len, req.path, req.path_len),
            "path slice");
        INV(!req.query || inside(req.target, req.target_len, req.query, req.query_len),
            "query slice");
        INV(!req.host || inside(buf, hl, req.host, req.host_len), "host slice");
        INV(req.minor_version == 0 || req.minor_version == 1, "version");
        INV(!(req.chunked && req.content_length >= 0), "chunked with CL");
        INV(req.content_length >= -1, "content length");
        for (size_t i = 0; i < req.num_headers; i++) {
            INV(h[i].name_len > 0 && inside(buf, hl, h[i].name, h[i].name_len), "name slice");
            INV(inside(buf, hl, h[i].value, h[i].value_len), "value slice");
            for (size_t k = 0; k < h[i].value_len; k++)
                INV(h[i].value[k] != '\r' && h[i].value[k] != '\n', "CR/LF in a value");
            INV(h[i].value_len == 0 || (h[i].value[0] != ' ' && h[i].value[0] != '\t' &&
                                        h[i].value[h[i].value_len - 1] != ' '),
                "value not trimmed");
        }
        /* the head alone parses the same */
        tg_http_header_t h2[MAX_HEADERS];
        tg_http_request_t r2;
        INV(parse_req(buf, hl, &r2, h2, lim) == rc, "head alone differs");
    }
    /* every prefix: TG_EAGAIN, or the same result (errors may show early) */
    for (size_t n = 0; n < len; n++) {
        tg_http_header_t h2[MAX_HEADERS];
        tg_http_request_t r2;
        int r = parse_req(buf, n, &r2, h2, lim);
        if (rc > 0 && n < (size_t)rc)
            INV(r == TG_EAGAIN, "request prefix of a good head is not EAGAIN");
        else
            INV(r == TG_EAGAIN ||
                    (r == rc && (r != TG_ERROR || r2.error_status == req.error_status)),
                "request prefix result differs");
    }
}

/* ------------------------------------------------------------ responses -- */

static void check_response(const char *buf, size_t len, size_t max)
{
    tg_http_header_t h[MAX_HEADERS];
    tg_http_response_t res = {.headers = h, .num_headers = MAX_HEADERS};
    int rc = tg_http_parse_response(buf, len, &res, max);
    INV(rc == TG_EAGAIN || rc == TG_ERROR || (rc > 0 && (size_t)rc <= len), "response rc");
    if (rc == TG_ERROR)
        INV(res.error, "response error message");
    if (rc > 0) {
        size_t hl = (size_t)rc;
        INV(!max || hl <= max, "response max");
        INV(res.status >= 100 && res.status <= 999, "status range");
        INV(inside(buf, hl, res.reason, res.reason_len), "reason slice");
        INV(!(res.chunked && res.content_length >= 0), "response chunked with CL");
        INV(!res.no_body || (!res.chunked && res.content_length == 0), "no_body framing");
        for (size_t i = 0; i < res.num_headers; i++) {
            INV(inside(buf, hl, h[i].name, h[i].name_len), "response name slice");
            INV(inside(buf, hl, h[i].value, h[i].value_len), "response value slice");
        }
    }
    for (size_t n = 0; n < len; n++) {
        tg_http_response_t r2 = {.headers = h, .num_headers = MAX_HEADERS};
        int r = tg_http_parse_response(buf, n, &r2, max);
        if (rc > 0 && n < (size_t)rc)
            INV(r == TG_EAGAIN, "response prefix of a good head is not EAGAIN");
        else
            INV(r == TG_EAGAIN || r == rc, "response prefix result differs");
    }
}

/* -------------------------------------------------------------- chunked -- */

/* Walks buf delivered `step` bytes at a time (0: all at once): 1 done, 0
 * needs more, -1 error; the payload is appended to out. */
static int walk_chunked(const char *buf, size_t len, size_t step, char *out, size_t *out_len,
                        size_t *consumed)
{
    tg_http_chunked_t d;
    tg_http_chunked_init(&d);
    size_t pos = 0, have = step ? 0 : len;
    *out_len = 0;
    for (;;) {
        if (step)
            have = have + step < len ? have + step : len;
        for (;;) {
            const char *data;
            size_t dl;
            size_t avail = have - pos;
            int n = tg_http_chunked_next(&d, buf + pos, avail, &data, &dl);
            if (n < 0) {
                *consumed = pos;
                return -1;
            }
            INV((size_t)n <= avail, "chunked consumed beyond input");
            INV(dl == 0 || inside(buf + pos, (size_t)n, data, dl), "chunk data slice");
            INV(n > 0 || dl == 0, "data without consuming");
            if (dl)
                memcpy(out + *out_len, data, dl);
            *out_len += dl;
            pos += (size_t)n;
            if (d.done) {
                *consumed = pos;
                return 1;
            }
            if (n == 0)
                break;
        }
        if (have == len) {
            *consumed = pos;
            return 0;
        }
    }
}

static void check_chunked(const char *buf, size_t len)
{
    static char out1[MAX_INPUT + 1], out2[MAX_INPUT + 1];
    size_t l1, l2, c1, c2;
    int r1 = walk_chunked(buf, len, 0, out1, &l1, &c1);
    int r2 = walk_chunked(buf, len, 1, out2, &l2, &c2);
    INV(r1 == r2, "chunked: whole and byte-by-byte results differ");
    INV(l1 == l2 && memcmp(out1, out2, l1) == 0, "chunked: payloads differ");
    INV(r1 != 1 || c1 == c2, "chunked: consumed differs");
    INV(l1 <= len, "chunked payload longer than input");
    int r3 = walk_chunked(buf, len, 7, out2, &l2, &c2);
    INV(r1 == r3 && l1 == l2 && memcmp(out1, out2, l1) == 0, "chunked: 7-byte steps differ");
}

/* ------------------------------------------------------ PROXY protocol -- */

static void check_proxy_protocol(const char *buf, size_t len)
{
    tg_proxy_protocol_t pp;
    int rc = tg_proxy_protocol_parse(buf, len, &pp);
    INV(rc == TG_EAGAIN || rc == TG_ERROR || (rc > 0 && (size_t)rc <= len), "pp rc");
    for (size_t n = 0; n < len; n++) {
        int r = tg_proxy_protocol_parse(buf, n, &pp);
        if (rc > 0 && n < (size_t)rc)
            INV(r == TG_EAGAIN, "pp prefix of a good header");
        else
            INV(r == TG_EAGAIN || r == rc, "pp prefix differs");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    cur_data = data;
    cur_size = size;
    /* an exact-size copy so that ASan sees any read past the end */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    static const tg_http_limits_t roomy = {8192, 16384, MAX_HEADERS};
    static const tg_http_limits_t tight = {24, 96, 4};
    check_request(buf, size, &roomy);
    check_request(buf, size, &tight);
    check_response(buf, size, 0);
    check_response(buf, size, 80);
    check_chunked(buf, size);
    check_proxy_protocol(buf, size);
    free(buf);
    return 0;
}

#ifndef TG_LIBFUZZER

#include <time.h>

static const char *const seeds[] = {
    "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "GET http://a.example:8080/p?q=1 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
    "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
    "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "GET / HTTP/1.1\nHost: a\n\n",
    "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n",
    "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\nX-Obs: \xff\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    "HTTP/1.0 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    "5\r\nhello\r\n0\r\n\r\n",
    "a;ext=1;x\r\n0123456789\r\n0\r\nTrailer: v\r\n\r\n",
    "ffffffffffffffff\r\nab",
    "PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\nGET / HTTP/1.1\r\n",
    "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n",
    "PROXY UNKNOWN\r\n",
};

#define D(lit) {lit, sizeof(lit) - 1}

static const struct {
    const char *s;
    size_t n;
} dict[] = {
    D("\r\n"), D("\r\n\r\n"), D("\n"), D("\r"), D(" "), D("\t"), D(":"), D(";"), D(","), D("="),
    D("\""), D("?"), D("/"), D("*"), D("HTTP/1.1"), D("HTTP/1.0"), D("Host: a\r\n"),
    D("Content-Length: "), D("Transfer-Encoding: chunked\r\n"), D("Connection: close\r\n"),
    D("Expect: 100-continue\r\n"), D("chunked"), D("0\r\n\r\n"), D("ffffffff"), D("http://"),
    D("\x7f"), D("\x80"), D("\0"), D("CONNECT "), D("\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"),
};


static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

#define POOL 256

typedef struct {
    size_t len;
    uint8_t b[MAX_INPUT];
} input_t;

static input_t pool[POOL];
static size_t pool_n;

static void pool_add(const uint8_t *p, size_t n)
{
    input_t *in = &pool[pool_n < POOL ? pool_n++ : (size_t)(rnd() % POOL)];
    in->len = n;
    memcpy(in->b, p, n);
}

static void mutate(input_t *m)
{
    int rounds = 1 + (int)(rnd() % 4);
    for (int r = 0; r < rounds; r++) {
        size_t len = m->len;
        switch (rnd() % 7) {
        case 0: /* bit flip */
            if (len)
                m->b[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
            break;
        case 1: /* random byte insert */
            if (len < MAX_INPUT) {
                size_t at = rnd() % (len + 1);
                memmove(m->b + at + 1, m->b + at, len - at);
                m->b[at] = (uint8_t)rnd();
                m->len++;
            }
            break;
        case 2: /* delete a run */
            if (len) {
                size_t at = rnd() % len, n = 1 + rnd() % 8;
                if (n > len - at)
                    n = len - at;
                memmove(m->b + at, m->b + at + n, len - at - n);
                m->len -= n;
            }
            break;
        case 3: { /* dictionary insert */
            size_t di = rnd() % TG_ARRAY_SIZE(dict);
            const char *w = dict[di].s;
            size_t wl = dict[di].n;
            if (len + wl <= MAX_INPUT) {
                size_t at = rnd() % (len + 1);
                memmove(m->b + at + wl, m->b + at, len - at);
                memcpy(m->b + at, w, wl);
                m->len += wl;
            }
            break;
        }
        case 4: { /* splice with another pool entry */
            const input_t *o = &pool[rnd() % pool_n];
            size_t cut = len ? rnd() % (len + 1) : 0, from = o->len ? rnd() % o->len : 0;
            size_t n = o->len - from;
            if (cut + n > MAX_INPUT)
                n = MAX_INPUT - cut;
            memcpy(m->b + cut, o->b + from, n);
            m->len = cut + n;
            break;
        }
        case 5: /* duplicate a run */
            if (len) {
                size_t at = rnd() % len, n = 1 + rnd() % 16;
                if (n > len - at)
                    n = len - at;
                if (len + n <= MAX_INPUT) {
                    memmove(m->b + at + n, m->b + at, len - at);
                    m->len += n;
                }
            }
            break;
        case 6: /* truncate */
            if (len)
                m->len = rnd() % len;
            break;
        }
    }
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 10;
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x9e3779b97f4a7c15ull;
    if (!rng_state)
        rng_state = 1;
    for (size_t i = 0; i < TG_ARRAY_SIZE(seeds); i++) {
        size_t n = strlen(seeds[i]);
        pool_add((const uint8_t *)seeds[i], n);
        LLVMFuzzerTestOneInput((const uint8_t *)seeds[i], n);
    }
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    static input_t m;
    unsigned long iters = 0, kept = 0;
    for (;;) {
        if ((iters & 63) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 >= secs)
                break;
        }
        m = pool[rnd() % pool_n];
        mutate(&m);
        LLVMFuzzerTestOneInput(m.b, m.len);
        iters++;
        /* keep inputs that still parse as something, for depth */
        tg_http_header_t h[MAX_HEADERS];
        tg_http_request_t req = {.headers = h, .num_headers = MAX_HEADERS};
        tg_http_limits_t lim = {8192, 16384, MAX_HEADERS};
        tg_http_response_t res = {.headers = h, .num_headers = MAX_HEADERS};
        if (tg_http_parse_request((const char *)m.b, m.len, &req, &lim) > 0 ||
            tg_http_parse_response((const char *)m.b, m.len, &res, 0) > 0 || rnd() % 64 == 0) {
            pool_add(m.b, m.len);
            kept++;
        }
    }
    printf("fuzz_http_parse: %lu inputs in %.0f s, no invariant violated (%lu kept)\n", iters,
           secs, kept);
    return 0;
}

#endif
