/* http_parse.h: the strict, zero-copy HTTP/1.1 parser (request and response
 * heads, chunked bodies).
 *
 * Every name and value is a slice of the caller's buffer; nothing is copied
 * or modified. Parsing is strict as RFC 9112 reads and as llhttp's strict
 * mode applies it (DESIGN.md, "The hot path"); the table of cases lives in
 * core/test/test_http_parse.c. Choices made where the RFC leaves room:
 *
 *  - any duplicate Content-Length (even with equal values) or a comma list
 *    in it: 400;
 *  - Transfer-Encoding other than exactly "chunked" (one coding, any case,
 *    optional surrounding whitespace): 400, whether the coding is unknown or
 *    stacked ("gzip", "chunked, gzip", "gzip, chunked", "identity",
 *    "xchunked") or the value malformed ("chunked;foo", empty members), and
 *    for two Transfer-Encoding headers (nginx answers 501 to an unknown
 *    coding, with no Kong error body; the integration specs expect 400);
 *  - CONNECT: 405 (tollgate does not tunnel); authority-form targets
 *    otherwise 400; absolute-form only for http/https, with a non-empty
 *    authority and no userinfo; "*" only with OPTIONS;
 *  - Host: one, non-empty, without whitespace, CTL, '/', backslash or '@'
 *    (required on HTTP/1.1 even with an absolute-form target, whose
 *    authority then wins);
 *  - HTTP/0.9 simple requests ("GET /") and malformed versions: 400; a
 *    well-formed version other than 1.0/1.1: 505;
 *  - Expect other than "100-continue": 417 (HTTP/1.1 only; ignored on 1.0).
 */
#ifndef TG_HTTP_PARSE_H
#define TG_HTTP_PARSE_H

#include "tg.h"

typedef struct {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing SP/HTAB trimmed */
    size_t value_len;
} tg_http_header_t;

typedef struct {
    size_t max_request_line; /* bytes (without CRLF); exceeding -> error_status 414; 0: none */
    size_t max_header_size;  /* bytes of the whole head; exceeding -> 494; 0: none */
    size_t max_headers;      /* header count; exceeding -> 494 as well; 0: capacity only */
} tg_http_limits_t;

typedef struct {
    const char *method;
    size_t method_len;
    const char *target; /* as sent (origin-form, absolute-form, asterisk) */
    size_t target_len;
    const char *path; /* path part of the target ("/" for absolute-form without one),
                       * query excluded; "*" for OPTIONS * */
    size_t path_len;
    const char *query; /* after '?', without '?'; NULL when no '?' */
    size_t query_len;
    const char *host; /* absolute-form authority, else the Host header value, else NULL */
    size_t host_len;
    int minor_version;         /* HTTP/1.0 -> 0, HTTP/1.1 -> 1 */
    tg_http_header_t *headers; /* caller's array */
    size_t num_headers;        /* in: capacity of headers[], out: count */
    int64_t content_length;    /* -1 when absent */
    unsigned chunked : 1;         /* Transfer-Encoding: chunked */
    unsigned keepalive : 1;       /* HTTP/1.1 unless "close"; 1.0 only with "keep-alive" */
    unsigned expect_continue : 1; /* Expect: 100-continue */
    unsigned upgrade : 1;         /* Upgrade header and "upgrade" among Connection tokens */
    unsigned absolute_form : 1;   /* the target was absolute-form */
    int error_status;             /* on TG_ERROR: 400, 405, 414, 417, 494, 505 */
    const char *error;            /* on TG_ERROR: a static string for the error log */
} tg_http_request_t;

/* Parses a request head from buf[0..len). Returns the head length (> 0, the
 * offset of the first body byte or of the next pipelined request) when
 * complete, TG_EAGAIN when more bytes are needed (already TG_ERROR when len
 * exceeds a limit), TG_ERROR with error_status and error set when malformed.
 * Empty lines (CRLF) before the request line are skipped (RFC 9112 2.2) and
 * count in the head length. A request line over max_request_line answers 414
 * unless its first max_request_line bytes are already malformed (400). */
int tg_http_parse_request(const char *buf, size_t len, tg_http_request_t *req,
                          const tg_http_limits_t *lim);

typedef struct {
    int minor_version;
    int status;
    const char *reason;
    size_t reason_len;
    tg_http_header_t *headers;
    size_t num_headers;     /* in: capacity, out: count */
    int64_t content_length; /* -1 absent (or ignored because of chunked) */
    unsigned chunked : 1;
    unsigned keepalive : 1; /* connection reusable after this response (version + Connection) */
    unsigned upgrade : 1;
    unsigned no_body : 1; /* 1xx, 204, 304: then chunked = 0, content_length = 0 (the
                           * caller also knows about HEAD) */
    const char *error;
} tg_http_response_t;

/* Same return convention. Leniency allowed to a recipient by RFC 9112: with
 * both Transfer-Encoding chunked and Content-Length, chunked wins and
 * keepalive = 0; a Transfer-Encoding not ending in chunked means the body is
 * delimited by close (chunked = 0, content_length = -1, keepalive = 0).
 * Duplicate equal Content-Length values are folded; differing ones refused. */
int tg_http_parse_response(const char *buf, size_t len, tg_http_response_t *res,
                           size_t max_header_size);

/* Incremental chunked-body walker that never modifies the buffer. Zero it
 * (or tg_http_chunked_init) before the first call. */
typedef struct {
    int state;
    uint64_t remaining;
    size_t line_len;
    unsigned done : 1;
} tg_http_chunked_t;

#define TG_HTTP_CHUNK_LINE_MAX 4096

static inline void tg_http_chunked_init(tg_http_chunked_t *d)
{
    memset(d, 0, sizeof(*d));
}

/* Consumes framing from buf[0..len) up to and including the next run of
 * payload bytes. Returns the number of bytes consumed (>= 0; 0 only when
 * len == 0 or more bytes are needed to make progress, or when done); *data /
 * *data_len point at the payload inside what was consumed (data_len 0 if
 * none). Sets d->done once the last chunk and the trailer section are
 * complete (bytes after that are not consumed). TG_ERROR on malformed
 * framing. */
int tg_http_chunked_next(tg_http_chunked_t *d, const char *buf, size_t len, const char **data,
                         size_t *data_len);

/* Case-insensitive lookup; lname is lowercase. First match or NULL. */
const tg_http_header_t *tg_http_header_find(const tg_http_header_t *h, size_t n,
                                            const char *lname, size_t lname_len);

/* True when the comma-separated list value contains token `ltok` (lowercase,
 * case-insensitive match, surrounding whitespace ignored). */
bool tg_http_list_has(const char *value, size_t len, const char *ltok, size_t ltok_len);

#endif
