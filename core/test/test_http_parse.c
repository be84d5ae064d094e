/* test_http_parse.c: the table of framing and smuggling cases for the strict
 * HTTP/1.1 parser (requests, responses, chunked bodies). Every case is also
 * fed as each of its prefixes (TG_EAGAIN or the same result) and from an
 * exact-size heap copy so that ASan catches any read past the end. */
#include "test.h"

#include "http_parse.h"

#include <stdlib.h>

#define NOHOST "(null)" /* expect the field to be NULL */

enum { F_CHUNKED = 1, F_KA = 2, F_EXPECT = 4, F_UPGRADE = 8 };

typedef struct {
    const char *in;
    size_t len;       /* 0: strlen(in) */
    int status;       /* 0: parses; else the expected error_status */
    int head_len;     /* 0: the whole input */
    const char *method, *path, *query, *host; /* NULL: not checked; NOHOST: NULL expected */
    int minor;
    int64_t cl;
    int flags;
} req_case_t;

#define H11 "Host: a\r\n"
#define GET11 "GET / HTTP/1.1\r\n"
#define ERR(in, st) {in, 0, st, 0, NULL, NULL, NULL, NULL, 0, 0, 0}
#define ERRN(in, n, st) {in, n, st, 0, NULL, NULL, NULL, NULL, 0, 0, 0}

static const req_case_t req_cases[] = {
    /* well-formed */
    {GET11 H11 "\r\n", 0, 0, 0, "GET", "/", NOHOST, "a", 1, -1, F_KA},
    {"GET /x HTTP/1.0\r\n\r\n", 0, 0, 0, "GET", "/x", NULL, NOHOST, 0, -1, 0},
    {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, 0, 0, "GET", "/", NULL, NULL, 0, -1,
     F_KA},
    {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, NULL, 0,
     -1, 0},
    {GET11 H11 "Connection: close\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, NULL, 1, -1, 0},
    {GET11 H11 "Connection: foo ,  CLOSE\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, NULL, 1, -1, 0},
    {"GET /p/a?x=1&y HTTP/1.1\r\n" H11 "\r\n", 0, 0, 0, "GET", "/p/a", "x=1&y", "a", 1, -1, F_KA},
    {"GET /p? HTTP/1.1\r\n" H11 "\r\n", 0, 0, 0, "GET", "/p", "", "a", 1, -1, F_KA},
    {"GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", 0, 0, 0, "GET", "/p",
     "q=1", "example.com:8080", 1, -1, F_KA},
    {"GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0, 0, "GET", "/", NOHOST,
     "example.com", 1, -1, F_KA},
    {"GET HTTPS://Example.com?x HTTP/1.1\r\nHost: x\r\n\r\n", 0, 0, 0, "GET", "/", "x",
     "Example.com", 1, -1, F_KA},
    {"OPTIONS * HTTP/1.1\r\n" H11 "\r\n", 0, 0, 0, "OPTIONS", "*", NOHOST, "a", 1, -1, F_KA},
    {"GET /caf\xc3\xa9/\xff HTTP/1.1\r\n" H11 "\r\n", 0, 0, 0, "GET", "/caf\xc3\xa9/\xff", NULL,
     NULL, 1, -1, F_KA},
    {GET11 "Host:   a  \t\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, "a", 1, -1, F_KA},
    {GET11 H11 "X-Empty:\r\nX-Sp:   \r\n\r\n", 0, 0, 0, NULL, NULL, NULL, NULL, 1, -1, F_KA},
    {GET11 H11 "X-Obs: caf\xe9 \x80\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, NULL, 1, -1, F_KA},
    {GET11 H11 "X-Tab: a\tb\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, NULL, 1, -1, F_KA},
    {"\r\n\r\n" GET11 H11 "\r\n", 0, 0, 0, "GET", "/", NULL, "a", 1, -1, F_KA},
    {GET11 H11 "\r\nGET /2 HTTP/1.1\r\n" H11 "\r\n", 0, 0, 27, "GET", "/", NULL, "a", 1, -1,
     F_KA},
    {"POST /u HTTP/1.1\r\n" H11 "Content-Length: 5\r\n\r\nhello", 0, 0, 48, "POST", "/u", NULL,
     "a", 1, 5, F_KA},
    {"POST / HTTP/1.1\r\n" H11 "Content-Length: 0\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, NULL, 1, 0,
     F_KA},
    {"POST / HTTP/1.1\r\n" H11 "content-length: 0012\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, NULL, 1,
     12, F_KA},
    {"POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n", 0, 0, 0, NULL, NULL, NULL,
     NULL, 1, -1, F_KA | F_CHUNKED},
    {"POST / HTTP/1.1\r\n" H11 "transfer-encoding:  Chunked \r\n\r\n", 0, 0, 0, NULL, NULL, NULL,
     NULL, 1, -1, F_KA | F_CHUNKED},
    {"POST / HTTP/1.1\r\n" H11 "Expect: 100-continue\r\nContent-Length: 3\r\n\r\n", 0, 0, 0, NULL,
     NULL, NULL, NULL, 1, 3, F_KA | F_EXPECT},
    {"POST / HTTP/1.1\r\n" H11 "Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n", 0, 0, 0, NULL,
     NULL, NULL, NULL, 1, 3, F_KA | F_EXPECT},
    {"GET / HTTP/1.0\r\nExpect: something\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, NULL, 0, -1, 0},
    {GET11 H11 "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n", 0, 0, 0, NULL,
     NULL, NULL, NULL, 1, -1, F_KA | F_UPGRADE},
    {GET11 H11 "Upgrade: websocket\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, NULL, 1, -1, F_KA},
    {"PURGE /c HTTP/1.1\r\n" H11 "\r\n", 0, 0, 0, "PURGE", "/c", NULL, NULL, 1, -1, F_KA},
    {"M-SEARCH /x HTTP/1.1\r\n" H11 "\r\n", 0, 0, 0, "M-SEARCH", NULL, NULL, NULL, 1, -1, F_KA},
    {"GET //a/../b HTTP/1.1\r\n" H11 "\r\n", 0, 0, 0, NULL, "//a/../b", NULL, NULL, 1, -1, F_KA},
    {"GET /a%20b#frag HTTP/1.1\r\n" H11 "\r\n", 0, 0, 0, NULL, "/a%20b#frag", NULL, NULL, 1, -1,
     F_KA},
    {GET11 "Host: [::1]:8000\r\n\r\n", 0, 0, 0, NULL, NULL, NULL, "[::1]:8000", 1, -1, F_KA},

    /* line endings */
    ERR("GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    ERR(GET11 "Host: a\n\r\n", 400),
    ERR(GET11 H11 "\n", 400),
    ERR(GET11 "Host: a\rb\r\n\r\n", 400),
    ERR("GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    ERR(GET11 H11 "\rX", 400),
    ERR("\nGET / HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("\rGET / HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GET / HTTP/1.1\n\n", 400),
    /* obs-fold and header names */
    ERR(GET11 H11 "X: b\r\n c\r\n\r\n", 400),
    ERR(GET11 H11 "X: b\r\n\tc\r\n\r\n", 400),
    ERR(GET11 " Host: a\r\n\r\n", 400),
    ERR(GET11 "Host : a\r\n\r\n", 400),
    ERR(GET11 "Host\t: a\r\n\r\n", 400),
    ERR(GET11 H11 ": a\r\n\r\n", 400),
    ERR(GET11 H11 "X(y): a\r\n\r\n", 400),
    ERR(GET11 H11 "X\"y: a\r\n\r\n", 400),
    ERR(GET11 H11 "X@y: a\r\n\r\n", 400),
    ERR(GET11 H11 "X\xc3\xa9: a\r\n\r\n", 400),
    ERR(GET11 H11 "NoColon\r\n\r\n", 400),
    /* header values */
    ERR(GET11 H11 "X: a\x01z\r\n\r\n", 400),
    ERR(GET11 H11 "X: a\x7fz\r\n\r\n", 400),
    ERR(GET11 H11 "X: a\x1b[0m\r\n\r\n", 400),
    ERRN(GET11 H11 "X: a\0z\r\n\r\n", sizeof(GET11 H11 "X: a\0z\r\n\r\n") - 1, 400),
    /* methods */
    ERR("G(ET / HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GE@T / HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR(" / HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GET\t/ HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
    /* request targets */
    ERR("GET /a\tb HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GET /a\x01 HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GET /a\x7f HTTP/1.1\r\n" H11 "\r\n", 400),
    ERRN("GET /a\0b HTTP/1.1\r\n" H11 "\r\n", sizeof("GET /a\0b HTTP/1.1\r\n" H11 "\r\n") - 1, 400),
    ERR("GET  HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GET  / HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GET * HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("OPTIONS *x HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GET example.com:80 HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GET ftp://example.com/ HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GET http:///p HTTP/1.1\r\n" H11 "\r\n", 400),
    ERR("GET http://user@example.com/ HTTP/1.1\r\n" H11 "\r\n", 400),
    /* versions */
    ERR("GET /\r\n\r\n", 400),
    ERR("GET / HTTP/2.0\r\n" H11 "\r\n", 505),
    ERR("GET / HTTP/1.2\r\n" H11 "\r\n", 505),
    ERR("GET / HTTP/0.9\r\n" H11 "\r\n", 505),
    ERR("GET / http/1.1\r\n" H11 "\r\n", 400),
    ERR("GET / HTTP/1.1 \r\n" H11 "\r\n", 400),
    ERR("GET / HTTP/11\r\n" H11 "\r\n", 400),
    ERR("GET / HTTP/1.10\r\n" H11 "\r\n", 400),
    ERR("GET / HTTP/1\r\n" H11 "\r\n", 400),
    ERR("GET / HTTP/2\r\n" H11 "\r\n", 400),
    /* Content-Length */
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: 1, 1\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: +5\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: -1\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: 5a\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: 0x10\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length:\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: 1 2\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: 99999999999999999999\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Content-Length: 9223372036854775808\r\n\r\n", 400),
    {"POST / HTTP/1.1\r\n" H11 "Content-Length: 9223372036854775807\r\n\r\n", 0, 0, 0, NULL, NULL,
     NULL, NULL, 1, INT64_MAX, F_KA},
    /* Transfer-Encoding */
    ERR("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: identity\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: xchunked\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked;foo\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: , chunked\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding:\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: \"chunked\"\r\n\r\n", 400),
    ERR("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n"
        "Transfer-Encoding: chunked\r\n\r\n",
        400),
    /* Host */
    ERR(GET11 H11 "Host: b\r\n\r\n", 400),
    ERR(GET11 H11 "host: a\r\n\r\n", 400),
    ERR(GET11 "\r\n", 400),
    ERR(GET11 "X: y\r\n\r\n", 400),
    ERR(GET11 "Host:\r\n\r\n", 400),
    ERR(GET11 "Host: a b\r\n\r\n", 400),
    ERR(GET11 "Host: a/b\r\n\r\n", 400),
    ERR(GET11 "Host: u@a\r\n\r\n", 400),
    ERR("GET http://example.com/ HTTP/1.1\r\n\r\n", 400),
    /* Expect */
    ERR("POST / HTTP/1.1\r\n" H11 "Expect: 100-continue-x\r\n\r\n", 417),
    ERR("POST / HTTP/1.1\r\n" H11 "Expect: foo\r\n\r\n", 417),
};

static const tg_http_limits_t dflt_limits = {8192, 16384, 100};

static bool field_ok(const char *want, const char *got, size_t got_len)
{
    if (!want)
        return true;
    if (strcmp(want, NOHOST) == 0)
        return got == NULL;
    return got && strlen(want) == got_len && memcmp(want, got, got_len) == 0;
}

static int parse_copy(const char *in, size_t len, tg_http_request_t *req, tg_http_header_t *h,
                      size_t cap, const tg_http_limits_t *lim)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, in, len);
    req->headers = h;
    req->num_headers = cap;
    int rc = tg_http_parse_request(copy, len, req, lim);
    /* slices must point into the copy */
    if (rc > 0) {
        for (size_t i = 0; i < req->num_headers; i++)
            if (h[i].name < copy || h[i].value + h[i].value_len > copy + rc)
                rc = -100;
        if (req->method != copy || req->target < copy ||
            req->target + req->target_len > copy + rc)
            rc = -100;
    }
    free(copy);
    return rc;
}

TEST(http_parse_request_table)
{
    ASSERT(TG_ARRAY_SIZE(req_cases) >= 60);
    for (size_t k = 0; k < TG_ARRAY_SIZE(req_cases); k++) {
        const req_case_t *c = &req_cases[k];
        size_t len = c->len ? c->len : strlen(c->in);
        tg_http_header_t h[100];
        tg_http_request_t req;
        char *copy = malloc(len);
        memcpy(copy, c->in, len);
        req.headers = h;
        req.num_headers = 100;
        int rc = tg_http_parse_request(copy, len, &req, &dflt_limits);
        if (c->status) {
            CHECK(rc == TG_ERROR && req.error_status == c->status && req.error,
                  "row %zu: want error %d, got rc %d status %d (%s)", k, c->status, rc,
                  req.error_status, req.error ? req.error : "");
        } else {
            int want = c->head_len ? c->head_len : (int)len;
            CHECK(rc == want, "row %zu: want %d, got %d (%s)", k, want, rc,
                  rc == TG_ERROR ? req.error : "");
            if (rc == want) {
                CHECK(field_ok(c->method, req.method, req.method_len), "row %zu: method", k);
                CHECK(field_ok(c->path, req.path, req.path_len), "row %zu: path %.*s", k,
                      (int)req.path_len, req.path);
                CHECK(field_ok(c->query, req.query, req.query_len), "row %zu: query", k);
                CHECK(field_ok(c->host, req.host, req.host_len), "row %zu: host", k);
                CHECK(req.minor_version == c->minor, "row %zu: minor %d", k, req.minor_version);
                CHECK(req.content_length == c->cl, "row %zu: cl %lld", k,
                      (long long)req.content_length);
                int flags = (req.chunked ? F_CHUNKED : 0) | (req.keepalive ? F_KA : 0) |
                            (req.expect_continue ? F_EXPECT : 0) | (req.upgrade ? F_UPGRADE : 0);
                CHECK(flags == c->flags, "row %zu: flags %d want %d", k, flags, c->flags);
            }
        }
        free(copy);
        /* every prefix: TG_EAGAIN or the same result */
        for (size_t n = 0; n < len; n++) {
            tg_http_request_t r2;
            tg_http_header_t h2[100];
            int rc2 = parse_copy(c->in, n, &r2, h2, 100, &dflt_limits);
            bool same = rc2 == rc && (rc != TG_ERROR || r2.error_status == req.error_status);
            CHECK(rc2 == TG_EAGAIN || same, "row %zu prefix %zu: rc %d (whole %d)", k, n, rc2,
                  rc);
        }
    }
}

TEST(http_parse_request_headers_slices)
{
    const char *in = "GET /a HTTP/1.1\r\nHost: h\r\nX-A:  one two  \r\nx-b:\r\n\r\n";
    tg_http_header_t h[8];
    tg_http_request_t req = {.headers = h, .num_headers = 8};
    int rc = tg_http_parse_request(in, strlen(in), &req, &dflt_limits);
    ASSERT_EQ(rc, (int)strlen(in));
    ASSERT_EQ(req.num_headers, 3);
    ASSERT_MEMEQ(h[1].name, h[1].name_len, "X-A");
    ASSERT_MEMEQ(h[1].value, h[1].value_len, "one two");
    ASSERT_EQ(h[2].value_len, 0);
    const tg_http_header_t *f = tg_http_header_find(h, req.num_headers, "x-b", 3);
    ASSERT(f == &h[2]);
    ASSERT(tg_http_header_find(h, req.num_headers, "x-c", 3) == NULL);
    ASSERT(tg_http_list_has("a, Keep-Alive ,b", 16, "keep-alive", 10));
    ASSERT(!tg_http_list_has("a, keep-alivex", 14, "keep-alive", 10));
}

TEST(http_parse_request_limits)
{
    tg_http_header_t h[8];
    tg_http_request_t req;
    tg_http_limits_t lim = {16, 64, 3};
    const char *ok = "GET /0123456789 HTTP/1.1\r\n"; /* line of 24 > 16 */
    req.headers = h;
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(ok, strlen(ok), &req, &lim), TG_ERROR);
    ASSERT_EQ(req.error_status, 414);
    /* a partial line already over the limit */
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(ok, 17, &req, &lim), TG_ERROR);
    ASSERT_EQ(req.error_status, 414);
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(ok, 16, &req, &lim), TG_EAGAIN);
    /* exactly 16 bytes of request line */
    const char *line16 = "GET /2345678 HTTP/1.1\r\nHost: a\r\n\r\n";
    lim.max_request_line = 21;
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(line16, strlen(line16), &req, &lim), (int)strlen(line16));
    lim.max_request_line = 20;
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(line16, strlen(line16), &req, &lim), TG_ERROR);
    ASSERT_EQ(req.error_status, 414);

    /* whole head size: exactly at the limit, one over, partial over */
    lim = (tg_http_limits_t){100, strlen(line16), 3};
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(line16, strlen(line16), &req, &lim), (int)strlen(line16));
    lim.max_header_size--;
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(line16, strlen(line16), &req, &lim), TG_ERROR);
    ASSERT_EQ(req.error_status, 494);
    const char *big = "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123456789";
    lim.max_header_size = 40;
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(big, strlen(big), &req, &lim), TG_ERROR);
    ASSERT_EQ(req.error_status, 494);
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(big, 40, &req, &lim), TG_EAGAIN);

    /* header count: max_headers, and the caller's capacity */
    const char *three = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    const char *four = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    lim = (tg_http_limits_t){100, 1000, 3};
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(three, strlen(three), &req, &lim), (int)strlen(three));
    ASSERT_EQ(req.num_headers, 3);
    req.num_headers = 8;
    ASSERT_EQ(tg_http_parse_request(four, strlen(four), &req, &lim), TG_ERROR);
    ASSERT_EQ(req.error_status, 494);
    lim.max_headers = 0;
    req.num_headers = 3;
    ASSERT_EQ(tg_http_parse_request(four, strlen(four), &req, &lim), TG_ERROR);
    ASSERT_EQ(req.error_status, 494);
}

TEST(http_parse_request_pipelined)
{
    const char *in = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                     "GET /b HTTP/1.1\r\nHost: b\r\n\r\n"
                     "GET /c HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n";
    size_t off = 0, len = strlen(in);
    const char *paths[] = {"/a", "/b", "/c"};
    for (int i = 0; i < 3; i++) {
        tg_http_header_t h[8];
        tg_http_request_t req = {.headers = h, .num_headers = 8};
        int rc = tg_http_parse_request(in + off, len - off, &req, &dflt_limits);
        ASSERT(rc > 0);
        ASSERT_MEMEQ(req.path, req.path_len, paths[i]);
        off += (size_t)rc + (req.content_length > 0 ? (size_t)req.content_length : 0);
        ASSERT_EQ(req.keepalive, i < 2);
    }
    ASSERT_EQ(off, len);
}

/* ------------------------------------------------------------ responses -- */

typedef struct {
    const char *in;
    int ok;
    int head_len; /* 0: whole */
    int status;
    const char *reason;
    int64_t cl;
    int flags; /* F_CHUNKED, F_KA, F_UPGRADE; 16: no_body */
} res_case_t;

#define F_NOBODY 16
#define NOPE(in) {in, 0, 0, 0, NULL, 0, 0}

static const res_case_t res_cases[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 1, 38, 200, "OK", 5, F_KA},
    {"HTTP/1.1 204 No Content\r\n\r\n", 1, 0, 204, "No Content", 0, F_KA | F_NOBODY},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", 1, 0, 304, NULL, 0,
     F_KA | F_NOBODY},
    {"HTTP/1.1 100 Continue\r\n\r\n", 1, 0, 100, "Continue", 0, F_KA | F_NOBODY},
    {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 1,
     0, 101, NULL, 0, F_KA | F_NOBODY | F_UPGRADE},
    {"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 1, 0, 200, "", 0, F_KA},
    {"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", 1, 0, 200, "", 0, F_KA},
    {"HTTP/1.1 404 Not \xc3\xa9 Found\r\nContent-Length: 0\r\n\r\n", 1, 0, 404, NULL, 0, F_KA},
    {"HTTP/1.0 200 OK\r\n\r\n", 1, 0, 200, NULL, -1, 0},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", 1, 0, 200, NULL,
     2, F_KA},
    {"HTTP/1.1 200 OK\r\n\r\n", 1, 0, 200, NULL, -1, 0},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 0, 200, NULL, -1,
     F_KA | F_CHUNKED},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 1, 0, 200,
     NULL, -1, F_CHUNKED},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 1, 0, 200, NULL, -1,
     F_KA | F_CHUNKED},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 1, 0, 200, NULL, -1, 0},
    {"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n", 1, 0, 200, NULL, 4,
     F_KA},
    {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", 1, 0, 200, NULL, 1, 0},
    NOPE("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
    NOPE("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
    NOPE("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x\r\n\r\n"),
    NOPE("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n"),
    NOPE("HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n"),
    NOPE("HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n"),
    NOPE("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
    NOPE("HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n"),
    NOPE("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
    NOPE("HTTP/1.1 200 O\x01K\r\n\r\n"),
    NOPE("HTTP/1.1 200 OK\r\nX : a\r\n\r\n"),
    NOPE("HTTP/2 200 OK\r\n\r\n"),
    NOPE("HTTP/2.0 200 OK\r\n\r\n"),
    NOPE("HTTP/1.1 20 OK\r\n\r\n"),
    NOPE("HTTP/1.1 2000 OK\r\n\r\n"),
    NOPE("HTTP/1.1 099 OK\r\n\r\n"),
    NOPE("HTTP/1.1  200 OK\r\n\r\n"),
    NOPE("ICY 200 OK\r\n\r\n"),
};

TEST(http_parse_response_table)
{
    for (size_t k = 0; k < TG_ARRAY_SIZE(res_cases); k++) {
        const res_case_t *c = &res_cases[k];
        size_t len = strlen(c->in);
        tg_http_header_t h[16];
        tg_http_response_t res = {.headers = h, .num_headers = 16};
        char *copy = malloc(len);
        memcpy(copy, c->in, len);
        int rc = tg_http_parse_response(copy, len, &res, 4096);
        if (!c->ok) {
            CHECK(rc == TG_ERROR && res.error, "row %zu: want error, got %d", k, rc);
        } else {
            int want = c->head_len ? c->head_len : (int)len;
            CHECK(rc == want, "row %zu: want %d, got %d (%s)", k, want, rc,
                  rc == TG_ERROR ? res.error : "");
            if (rc == want) {
                CHECK(res.status == c->status, "row %zu: status %d", k, res.status);
                CHECK(!c->reason || (res.reason_len == strlen(c->reason) &&
                                     memcmp(res.reason, c->reason, res.reason_len) == 0),
                      "row %zu: reason", k);
                CHECK(res.content_length == c->cl, "row %zu: cl %lld", k,
                      (long long)res.content_length);
                int flags = (res.chunked ? F_CHUNKED : 0) | (res.keepalive ? F_KA : 0) |
                            (res.upgrade ? F_UPGRADE : 0) | (res.no_body ? F_NOBODY : 0);
                CHECK(flags == c->flags, "row %zu: flags %d want %d", k, flags, c->flags);
            }
        }
        free(copy);
        for (size_t n = 0; n < len; n++) {
            tg_http_response_t r2 = {.headers = h, .num_headers = 16};
            char *p = malloc(n ? n : 1);
            memcpy(p, c->in, n);
            int rc2 = tg_http_parse_response(p, n, &r2, 4096);
            free(p);
            CHECK(rc2 == TG_EAGAIN || rc2 == rc, "row %zu prefix %zu: %d (whole %d)", k, n, rc2,
                  rc);
        }
    }
}

TEST(http_parse_response_limit)
{
    const char *in = "HTTP/1.1 200 OK\r\nX-Long: 0123456789012345678901234567890\r\n\r\n";
    tg_http_header_t h[4];
    tg_http_response_t res = {.headers = h, .num_headers = 4};
    ASSERT_EQ(tg_http_parse_response(in, strlen(in), &res, strlen(in)), (int)strlen(in));
    res.num_headers = 4;
    ASSERT_EQ(tg_http_parse_response(in, strlen(in), &res, strlen(in) - 1), TG_ERROR);
    res.num_headers = 4;
    ASSERT_EQ(tg_http_parse_response(in, 30, &res, 20), TG_ERROR);
    res.num_headers = 1;
    const char *two = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    ASSERT_EQ(tg_http_parse_response(two, strlen(two), &res, 0), TG_ERROR);
}

/* -------------------------------------------------------------- chunked -- */

typedef struct {
    const char *in;
    int ok;           /* 1: completes */
    const char *data; /* the payload when ok */
    size_t rest;      /* bytes after the body, left unconsumed */
} chunk_case_t;

#undef NOPE
#define NOPE(in) {in, 0, NULL, 0}

static const chunk_case_t chunk_cases[] = {
    {"5\r\nhello\r\n0\r\n\r\n", 1, "hello", 0},
    {"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 1, "hello", 16},
    {"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 1, "abcde", 0},
    {"A\r\n0123456789\r\n0\r\n\r\n", 1, "0123456789", 0},
    {"a\r\n0123456789\r\n00\r\n\r\n", 1, "0123456789", 0},
    {"0\r\n\r\n", 1, "", 0},
    {"5;foo\r\nhello\r\n0\r\n\r\n", 1, "hello", 0},
    {"5;foo=bar;baz\r\nhello\r\n0;last=1\r\n\r\n", 1, "hello", 0},
    {"5\r\nhello\r\n0\r\nX-T: v\r\nY:\r\n\r\n", 1, "hello", 0},
    {"0000000000000005\r\nhello\r\n0\r\n\r\n", 1, "hello", 0},
    {"5\r\nhe\r\nl\r\n0\r\n\r\n", 1, "he\r\nl", 0},
    NOPE("5;foo=\"bar\"\r\nhello\r\n0\r\n\r\n"),
    NOPE("5 ;foo\r\nhello\r\n0\r\n\r\n"),
    NOPE("5; foo\r\nhello\r\n0\r\n\r\n"),
    NOPE("5;\r\nhello\r\n0\r\n\r\n"),
    NOPE("5;a=\r\nhello\r\n0\r\n\r\n"),
    NOPE("5;a==b\r\nhello\r\n0\r\n\r\n"),
    NOPE("5 \r\nhello\r\n0\r\n\r\n"),
    NOPE("5\nhello\r\n0\r\n\r\n"),
    NOPE("5\r\nhello\n0\r\n\r\n"),
    NOPE("5\r\nhello\r\n0\r\n\n"),
    NOPE("5\r\nhello\r\n0\n\r\n"),
    NOPE("5\r\nhelloX\r\n0\r\n\r\n"),
    NOPE("5\r\nhello\rX0\r\n\r\n"),
    NOPE("g\r\n"),
    NOPE("\r\n"),
    NOPE("-1\r\n"),
    NOPE("0x5\r\nhello\r\n0\r\n\r\n"),
    NOPE("+5\r\nhello\r\n0\r\n\r\n"),
    NOPE("00000000000000005\r\nhello\r\n0\r\n\r\n"),
    NOPE("10000000000000000\r\n"),
    NOPE("5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n"),
    NOPE("5\r\nhello\r\n0\r\nX : a\r\n\r\n"),
    NOPE("5\r\nhello\r\n0\r\n: a\r\n\r\n"),
    NOPE("5\r\nhello\r\n0\r\nX: a\x01\r\n\r\n"),
    NOPE("5\r\nhello\r\n0\r\nX: a\n\r\n"),
    NOPE("5\r\nhello\r\n0\r\n X: a\r\n\r\n"),
};

/* Walks buf delivered in steps of `step` bytes (0: all at once). Returns 1
 * when done, 0 when it needs more at the end, -1 on error; payload appended to
 * out, *consumed set. */
static int walk(const char *in, size_t len, size_t step, char *out, size_t *out_len,
                size_t *consumed)
{
    tg_http_chunked_t d;
    tg_http_chunked_init(&d);
    size_t pos = 0, have = step ? 0 : len;
    *out_len = 0;
    for (;;) {
        if (step && have < len)
            have = have + step < len ? have + step : len;
        for (;;) {
            const char *data;
            size_t dl;
            /* an exact-size copy of what has arrived and is not consumed yet */
            size_t avail = have - pos;
            char *win = malloc(avail ? avail : 1);
            memcpy(win, in + pos, avail);
            int n = tg_http_chunked_next(&d, win, avail, &data, &dl);
            if (n >= 0 && dl) {
                if (data < win || data + dl > win + n) {
                    free(win);
                    return -2;
                }
                memcpy(out + *out_len, data, dl);
                *out_len += dl;
            }
            free(win);
            if (n < 0) {
                *consumed = pos;
                return -1;
            }
            if (n > (int)avail)
                return -2;
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

TEST(http_parse_chunked_table)
{
    for (size_t k = 0; k < TG_ARRAY_SIZE(chunk_cases); k++) {
        const chunk_case_t *c = &chunk_cases[k];
        size_t len = strlen(c->in);
        size_t steps[] = {0, 1, 2, 3, 7};
        for (size_t s = 0; s < TG_ARRAY_SIZE(steps); s++) {
            char out[256];
            size_t out_len, consumed;
            int r = walk(c->in, len, steps[s], out, &out_len, &consumed);
            if (c->ok) {
                CHECK(r == 1, "row %zu step %zu: result %d", k, steps[s], r);
                CHECK(out_len == strlen(c->data) && memcmp(out, c->data, out_len) == 0,
                      "row %zu step %zu: payload %.*s", k, steps[s], (int)out_len, out);
                CHECK(consumed == len - c->rest, "row %zu step %zu: consumed %zu", k, steps[s],
                      consumed);
            } else {
                CHECK(r == -1, "row %zu step %zu: want error, got %d", k, steps[s], r);
            }
        }
    }
}

TEST(http_parse_chunked_limits)
{
    /* a chunk-size line of 4096 bytes is fine, 4097 is not */
    static char buf[8192];
    for (size_t total = 4095; total <= 4098; total++) {
        /* "1;" + name chars + "\r\n": line bytes counted up to and including CRLF */
        size_t n = 0;
        buf[n++] = '1';
        buf[n++] = ';';
        while (n < total - 2)
            buf[n++] = 'x';
        buf[n++] = '\r';
        buf[n++] = '\n';
        memcpy(buf + n, "a\r\n0\r\n\r\n", 8);
        n += 8;
        char out[16];
        size_t ol, consumed;
        int r = walk(buf, n, 0, out, &ol, &consumed);
        CHECK(r == (total <= TG_HTTP_CHUNK_LINE_MAX ? 1 : -1), "line of %zu: %d", total, r);
    }
    /* 16 hex digits of f: the largest size, accepted (needs more data) */
    tg_http_chunked_t d;
    tg_http_chunked_init(&d);
    const char *data;
    size_t dl;
    const char *max = "ffffffffffffffff\r\nab";
    ASSERT_EQ(tg_http_chunked_next(&d, max, strlen(max), &data, &dl), (int)strlen(max));
    ASSERT_EQ(dl, 2);
    ASSERT(d.remaining == UINT64_MAX - 2);
    /* once done, nothing more is consumed; once failed, it stays failed */
    tg_http_chunked_init(&d);
    ASSERT_EQ(tg_http_chunked_next(&d, "0\r\n\r\nX", 6, &data, &dl), 5);
    ASSERT(d.done);
    ASSERT_EQ(tg_http_chunked_next(&d, "X", 1, &data, &dl), 0);
    tg_http_chunked_init(&d);
    ASSERT_EQ(tg_http_chunked_next(&d, "z", 1, &data, &dl), TG_ERROR);
    ASSERT_EQ(tg_http_chunked_next(&d, "0\r\n\r\n", 5, &data, &dl), TG_ERROR);
    ASSERT_EQ(tg_http_chunked_next(&d, "", 0, &data, &dl), TG_ERROR);
}
