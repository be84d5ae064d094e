/* http_parse.c: the strict, zero-copy HTTP/1.1 parser (see http_parse.h).
 *
 * Heads are parsed from the start on every call (as picohttpparser does
 * without its last_len hint): a head is small and the caller calls again only
 * when more bytes arrived. Errors are reported as soon as the bytes present
 * prove the head malformed, so a prefix of a bad head either needs more
 * bytes or fails the same way. */
#include "http_parse.h"

#include <stdint.h>

/* RFC 9110 token characters. */
static const uint8_t tchar[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

#define TCHAR(c) (tchar[(unsigned char)(c)])
#define IS_WS(c) ((c) == ' ' || (c) == '\t')

/* Field-value bytes: HTAB, SP, VCHAR, obs-text (CR/LF handled by callers). */
static inline bool value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* The same bytes by class, for the value scan's one lookup a byte: VISIBLE
 * (VCHAR, obs-text), BLANK (SP, HTAB) and STOP (CR, LF and the other
 * controls, which end or fail the value). */
enum { V_STOP = 0, V_VISIBLE = 1, V_BLANK = 2 };
static const uint8_t vclass[256] = {
    ['\t'] = V_BLANK, [' '] = V_BLANK,
    [0x21 ... 0x7e] = V_VISIBLE, [0x80 ... 0xff] = V_VISIBLE,
};

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

enum { PARSE_AGAIN = 0, PARSE_ERROR = -1 };

typedef struct {
    int status;
    const char *error;
} perr_t;

static int fail(perr_t *e, int status, const char *msg)
{
    e->status = status;
    e->error = msg;
    return PARSE_ERROR;
}

/* Parses header fields from buf[i..end) up to and including the empty line.
 * Returns the offset after the head (> 0), PARSE_AGAIN, or PARSE_ERROR. */
static long parse_fields(const char *buf, size_t i, size_t end, tg_http_header_t *h, size_t cap,
                         size_t *count, perr_t *e)
{
    size_t n = 0;
    for (;;) {
        if (i >= end)
            return PARSE_AGAIN;
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r') {
            if (i + 1 >= end)
                return PARSE_AGAIN;
            if (buf[i + 1] != '\n')
                return fail(e, 400, "bare CR in header section");
            *count = n;
            return (long)(i + 2);
        }
        if (c == '\n')
            return fail(e, 400, "bare LF in header section");
        if (IS_WS(c))
            return fail(e, 400, "obs-fold or whitespace before a header name");
        size_t ns = i;
        while (i < end && TCHAR(buf[i]))
            i++;
        if (i >= end)
            return PARSE_AGAIN;
        if (buf[i] != ':') {
            if (IS_WS(buf[i]))
                return fail(e, 400, "whitespace between header name and colon");
            return fail(e, 400, "invalid character in header name");
        }
        if (i == ns)
            return fail(e, 400, "empty header name");
        size_t ne = i++;
        while (i < end && IS_WS(buf[i]))
            i++;
        size_t vs = i, ve = i;
        for (; i < end; i++) {
            uint8_t k = vclass[(unsigned char)buf[i]];
            if (k == V_VISIBLE)
                ve = i + 1;
            else if (k == V_STOP)
                break;
        }
        if (i >= end)
            return PARSE_AGAIN;
        c = (unsigned char)buf[i];
        if (c == '\n')
            return fail(e, 400, "bare LF in header value");
        if (c != '\r')
            return fail(e, 400, "control character in header value");
        if (i + 1 >= end)
            return PARSE_AGAIN;
        if (buf[i + 1] != '\n')
            return fail(e, 400, "bare CR in header value");
        if (n >= cap)
            return fail(e, 494, "too many headers");
        h[n].name = buf + ns;
        h[n].name_len = ne - ns;
        h[n].value = buf + vs;
        h[n].value_len = ve - vs;
        n++;
        i += 2;
    }
}

const tg_http_header_t *tg_http_header_find(const tg_http_header_t *h, size_t n,
                                            const char *lname, size_t lname_len)
{
    for (size_t i = 0; i < n; i++)
        if (tg_str_ieq(h[i].name, h[i].name_len, lname, lname_len))
            return &h[i];
    return NULL;
}

/* Iterates the comma-separated members of a list value, trimmed of
 * whitespace (empty members are returned with len 0). */
static bool list_next(const char *v, size_t len, size_t *pos, const char **m, size_t *mlen)
{
    size_t i = *pos;
    if (i > len)
        return false;
    while (i < len && IS_WS(v[i]))
        i++;
    size_t s = i, last = i;
    while (i < len && v[i] != ',') {
        if (!IS_WS(v[i]))
            last = i + 1;
        i++;
    }
    *m = v + s;
    *mlen = last - s;
    *pos = i + 1; /* past the comma, or len + 1 at the end */
    return true;
}

bool tg_http_list_has(const char *value, size_t len, const char *ltok, size_t ltok_len)
{
    size_t pos = 0;
    const char *m;
    size_t ml;
    while (list_next(value, len, &pos, &m, &ml))
        if (tg_str_ieq(m, ml, ltok, ltok_len))
            return true;
    return false;
}

/* Content-Length: 1*DIGIT without sign, comma or overflow. */
static int64_t parse_content_length(const char *v, size_t len)
{
    if (len == 0)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < '0' || c > '9')
            return -1;
        if (n > (INT64_MAX - (c - '0')) / 10)
            return -1;
        n = n * 10 + (c - '0');
    }
    return n;
}

enum { TE_CHUNKED = 1, TE_OTHER = 2, TE_BAD = -1 };

/* Classifies a Transfer-Encoding value: TE_CHUNKED when it is exactly one
 * "chunked" coding, TE_OTHER for a well-formed list of other codings (or
 * chunked stacked with others), TE_BAD when malformed. *final_chunked tells
 * whether the last coding is chunked, *n_chunked how often chunked appears. */
static int classify_te(const char *v, size_t len, bool *final_chunked, int *n_chunked)
{
    size_t pos = 0, members = 0;
    const char *m;
    size_t ml;
    *final_chunked = false;
    while (list_next(v, len, &pos, &m, &ml)) {
        if (ml == 0)
            return TE_BAD;
        for (size_t i = 0; i < ml; i++)
            if (!TCHAR(m[i]))
                return TE_BAD; /* parameters (";q=..") included: we know none */
        members++;
        *final_chunked = tg_str_ieq(m, ml, "chunked", 7);
        if (*final_chunked)
            (*n_chunked)++;
    }
    return members == 1 && *final_chunked ? TE_CHUNKED : TE_OTHER;
}

/* Host header value: no whitespace, CTL, '/', '\\' or '@' (nginx refuses
 * these too); empty refused. */
static bool host_ok(const char *v, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '@')
            return false;
    }
    return true;
}

/* Matches "HTTP/d.d" against buf[i..i+avail); returns 1 when complete and
 * well-formed (*major, *minor set), 0 when a prefix of it, -1 when not. */
static int match_version(const char *p, size_t avail, int *major, int *minor)
{
    static const char pat[] = "HTTP/0.0";
    size_t n = avail < 8 ? avail : 8;
    for (size_t k = 0; k < n; k++) {
        if (pat[k] == '0') {
            if (p[k] < '0' || p[k] > '9')
                return -1;
        } else if (p[k] != pat[k]) {
            return -1;
        }
    }
    if (avail < 8)
        return 0;
    *major = p[5] - '0';
    *minor = p[7] - '0';
    return 1;
}

/* The request line in buf[s..e): complete says whether e is its CR (else the
 * line is still partial and running out means PARSE_AGAIN). */
static int parse_request_line(const char *buf, size_t s, size_t e, bool complete,
                              tg_http_request_t *req, perr_t *err)
{
    size_t i = s;
    while (i < e && TCHAR(buf[i]))
        i++;
    if (i == e)
        return complete ? fail(err, 400, "malformed request line") : PARSE_AGAIN;
    if (buf[i] != ' ')
        return fail(err, 400, "invalid character in method");
    if (i == s)
        return fail(err, 400, "empty method");
    req->method = buf + s;
    req->method_len = i - s;
    size_t ts = ++i;
    while (i < e && buf[i] != ' ') {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x21 || c == 0x7f)
            return fail(err, 400, "control character in request target");
        i++;
    }
    if (i == e)
        return complete ? fail(err, 400, "request line without HTTP version") : PARSE_AGAIN;
    if (i == ts)
        return fail(err, 400, "empty request target");
    req->target = buf + ts;
    req->target_len = i - ts;
    i++;
    int major = 0, minor = 0;
    int m = match_version(buf + i, e - i, &major, &minor);
    if (m < 0 || (m == 1 && e - i != 8) || (m == 0 && complete))
        return fail(err, 400, "malformed HTTP version");
    if (m == 0 || !complete)
        return PARSE_AGAIN;
    if (major != 1 || minor > 1)
        return fail(err, 505, "unsupported HTTP version");
    req->minor_version = minor;
    return 1;
}

static bool ieq_prefix(const char *p, size_t len, const char *lower, size_t llen)
{
    return len >= llen && tg_str_ieq(p, llen, lower, llen);
}

/* Splits the target into path, query and (absolute-form) host. */
static int parse_target(tg_http_request_t *req, perr_t *err)
{
    const char *t = req->target;
    size_t tl = req->target_len;
    if (t[0] == '*') {
        if (tl != 1 || req->method_len != 7 || memcmp(req->method, "OPTIONS", 7) != 0)
            return fail(err, 400, "asterisk-form target outside OPTIONS");
        req->path = t;
        req->path_len = 1;
        return 0;
    }
    size_t ps = 0;
    if (t[0] != '/') {
        size_t skip;
        if (ieq_prefix(t, tl, "http://", 7))
            skip = 7;
        else if (ieq_prefix(t, tl, "https://", 8))
            skip = 8;
        else
            return fail(err, 400, "invalid request target");
        size_t a = skip;
        while (a < tl && t[a] != '/' && t[a] != '?')
            a++;
        if (a == skip)
            return fail(err, 400, "empty authority in absolute-form target");
        if (memchr(t + skip, '@', a - skip))
            return fail(err, 400, "userinfo in absolute-form target");
        req->host = t + skip;
        req->host_len = a - skip;
        req->absolute_form = 1;
        ps = a;
    }
    const char *q = memchr(t + ps, '?', tl - ps);
    size_t pe = q ? (size_t)(q - t) : tl;
    if (pe == ps) {
        req->path = "/";
        req->path_len = 1;
    } else {
        req->path = t + ps;
        req->path_len = pe - ps;
    }
    if (q) {
        req->query = q + 1;
        req->query_len = tl - pe - 1;
    }
    return 0;
}

/* Framing and connection semantics of a parsed request head. */
static int request_semantics(tg_http_request_t *req, perr_t *err)
{
    const tg_http_header_t *hs = req->headers;
    const tg_http_header_t *host = NULL, *te = NULL;
    bool conn_close = false, conn_keep = false, conn_upgrade = false, has_upgrade = false;
    bool cl_seen = false;
    for (size_t k = 0; k < req->num_headers; k++) {
        const tg_http_header_t *h = &hs[k];
        const char *n = h->name;
        size_t nl = h->name_len;
        if (tg_str_ieq(n, nl, "content-length", 14)) {
            if (cl_seen)
                return fail(err, 400, "duplicate Content-Length");
            cl_seen = true;
            req->content_length = parse_content_length(h->value, h->value_len);
            if (req->content_length < 0)
                return fail(err, 400, "invalid Content-Length");
        } else if (tg_str_ieq(n, nl, "transfer-encoding", 17)) {
            if (te)
                return fail(err, 400, "duplicate Transfer-Encoding");
            te = h;
        } else if (tg_str_ieq(n, nl, "host", 4)) {
            if (host)
                return fail(err, 400, "duplicate Host");
            if (!host_ok(h->value, h->value_len))
                return fail(err, 400, "invalid Host");
            host = h;
        } else if (tg_str_ieq(n, nl, "connection", 10)) {
            conn_close |= tg_http_list_has(h->value, h->value_len, "close", 5);
            conn_keep |= tg_http_list_has(h->value, h->value_len, "keep-alive", 10);
            conn_upgrade |= tg_http_list_has(h->value, h->value_len, "upgrade", 7);
        } else if (tg_str_ieq(n, nl, "upgrade", 7)) {
            has_upgrade = true;
        } else if (tg_str_ieq(n, nl, "expect", 6) && req->minor_version == 1) {
            if (!tg_str_ieq(h->value, h->value_len, "100-continue", 12))
                return fail(err, 417, "unsupported Expect");
            req->expect_continue = 1;
        }
    }
    if (te) {
        if (req->minor_version == 0)
            return fail(err, 400, "Transfer-Encoding in an HTTP/1.0 request");
        bool final_chunked;
        int n_chunked = 0;
        int c = classify_te(te->value, te->value_len, &final_chunked, &n_chunked);
        if (c == TE_BAD)
            return fail(err, 400, "malformed Transfer-Encoding");
        if (c != TE_CHUNKED)
            return fail(err, 400, "unsupported Transfer-Encoding");
        if (cl_seen)
            return fail(err, 400, "Content-Length with Transfer-Encoding");
        req->chunked = 1;
    }
    if (!host && req->minor_version == 1)
        return fail(err, 400, "HTTP/1.1 request without Host");
    if (!req->host && host) {
        req->host = host->value;
        req->host_len = host->value_len;
    }
    req->keepalive = req->minor_version == 1 ? !conn_close : (conn_keep && !conn_close);
    req->upgrade = has_upgrade && conn_upgrade;
    return 0;
}

/* The request line's end: the first CR or LF at or after s (len if none). */
static size_t line_end(const char *buf, size_t s, size_t len)
{
    for (size_t i = s; i < len; i++)
        if (buf[i] == '\r' || buf[i] == '\n')
            return i;
    return len;
}

static int req_fail(tg_http_request_t *req, perr_t *e)
{
    req->error_status = e->status;
    req->error = e->error;
    return TG_ERROR;
}

int tg_http_parse_request(const char *buf, size_t len, tg_http_request_t *req,
                          const tg_http_limits_t *lim)
{
    size_t cap = req->num_headers;
    tg_http_header_t *headers = req->headers;
    memset(req, 0, sizeof(*req));
    req->headers = headers;
    req->content_length = -1;
    if (lim->max_headers && lim->max_headers < cap)
        cap = lim->max_headers;
    size_t max_head = lim->max_header_size ? lim->max_header_size : (size_t)INT32_MAX;
    size_t max_line = lim->max_request_line ? lim->max_request_line : (size_t)INT32_MAX;
    size_t end = len < max_head ? len : max_head; /* the head must fit in buf[0..end) */
    perr_t e = {400, NULL};

    /* Every decision depends only on buf[0..end) and on whether len > end,
     * so that a prefix needs more bytes or fails the same way. */
#define NEED_MORE()                                                                                \
    return len > max_head ? (fail(&e, 494, "request head too large"), req_fail(req, &e))          \
                          : TG_EAGAIN

    /* RFC 9112 2.2: empty lines (CRLF) before the request line are ignored */
    size_t s = 0;
    while (s < end && buf[s] == '\r') {
        if (s + 1 >= end)
            NEED_MORE();
        if (buf[s + 1] != '\n')
            return fail(&e, 400, "bare CR before request line"), req_fail(req, &e);
        s += 2;
    }
    if (s >= end)
        NEED_MORE();
    if (buf[s] == '\n')
        return fail(&e, 400, "bare LF before request line"), req_fail(req, &e);

    size_t le = line_end(buf, s, end);
    if (le - s > max_line) {
        /* a malformed start is reported as such, a long but sane line as 414 */
        if (parse_request_line(buf, s, s + max_line, false, req, &e) == PARSE_ERROR)
            return req_fail(req, &e);
        return fail(&e, 414, "request line too long"), req_fail(req, &e);
    }
    int rc = parse_request_line(buf, s, le, le < end, req, &e);
    if (rc == PARSE_ERROR)
        return req_fail(req, &e);
    if (rc == PARSE_AGAIN)
        NEED_MORE();
    if (buf[le] == '\n')
        return fail(&e, 400, "bare LF after request line"), req_fail(req, &e);
    if (le + 1 >= end)
        NEED_MORE();
    if (buf[le + 1] != '\n')
        return fail(&e, 400, "bare CR after request line"), req_fail(req, &e);
    if (req->method_len == 7 && memcmp(req->method, "CONNECT", 7) == 0)
        return fail(&e, 405, "CONNECT is not supported"), req_fail(req, &e);
    if (parse_target(req, &e) < 0)
        return req_fail(req, &e);

    long hl = parse_fields(buf, le + 2, end, headers, cap, &req->num_headers, &e);
    if (hl == PARSE_ERROR)
        return req_fail(req, &e);
    if (hl == PARSE_AGAIN)
        NEED_MORE();
#undef NEED_MORE
    if (request_semantics(req, &e) < 0)
        return req_fail(req, &e);
    return (int)hl;
}

/* ------------------------------------------------------------ responses -- */

int tg_http_parse_response(const char *buf, size_t len, tg_http_response_t *res,
                           size_t max_header_size)
{
    size_t cap = res->num_headers;
    tg_http_header_t *headers = res->headers;
    memset(res, 0, sizeof(*res));
    res->headers = headers;
    res->content_length = -1;
    size_t max_head = max_header_size ? max_header_size : (size_t)INT32_MAX;
    size_t end = len < max_head ? len : max_head;
    perr_t e = {502, NULL};
#define RES_FAIL(msg) return (res->error = (msg), TG_ERROR)
#define RES_AGAIN() return len > max_head ? (res->error = "response head too large", TG_ERROR) \
                                          : TG_EAGAIN

    int major = 0, minor = 0;
    int m = match_version(buf, end, &major, &minor);
    if (m < 0)
        RES_FAIL("malformed status line");
    if (m == 0)
        RES_AGAIN();
    if (major != 1 || minor > 1)
        RES_FAIL("unsupported HTTP version");
    res->minor_version = minor;
    size_t i = 8;
    if (i >= end)
        RES_AGAIN();
    if (buf[i] != ' ')
        RES_FAIL("malformed status line");
    i++;
    int status = 0;
    for (int k = 0; k < 3; k++, i++) {
        if (i >= end)
            RES_AGAIN();
        if (buf[i] < '0' || buf[i] > '9')
            RES_FAIL("malformed status code");
        status = status * 10 + (buf[i] - '0');
    }
    if (status < 100)
        RES_FAIL("malformed status code");
    res->status = status;
    if (i >= end)
        RES_AGAIN();
    size_t rs = i;
    if (buf[i] == ' ') {
        rs = ++i;
        for (;; i++) {
            if (i >= end)
                RES_AGAIN();
            unsigned char c = (unsigned char)buf[i];
            if (c == '\r' || c == '\n')
                break;
            if (!value_char(c))
                RES_FAIL("control character in reason phrase");
        }
    }
    if (buf[i] == '\n')
        RES_FAIL("bare LF after status line");
    if (buf[i] != '\r')
        RES_FAIL("malformed status line");
    res->reason = buf + rs;
    res->reason_len = i - rs;
    if (i + 1 >= end)
        RES_AGAIN();
    if (buf[i + 1] != '\n')
        RES_FAIL("bare CR after status line");

    long hl = parse_fields(buf, i + 2, end, headers, cap, &res->num_headers, &e);
    if (hl == PARSE_ERROR)
        RES_FAIL(e.error);
    if (hl == PARSE_AGAIN)
        RES_AGAIN();

    bool conn_close = false, conn_keep = false, conn_upgrade = false, has_upgrade = false;
    bool te_seen = false, final_chunked = false, te_bad = false;
    int n_chunked = 0;
    for (size_t k = 0; k < res->num_headers; k++) {
        const tg_http_header_t *h = &headers[k];
        if (tg_str_ieq(h->name, h->name_len, "content-length", 14)) {
            int64_t v = parse_content_length(h->value, h->value_len);
            if (v < 0)
                RES_FAIL("invalid Content-Length");
            if (res->content_length >= 0 && res->content_length != v)
                RES_FAIL("conflicting Content-Length values");
            res->content_length = v;
        } else if (tg_str_ieq(h->name, h->name_len, "transfer-encoding", 17)) {
            te_seen = true;
            if (classify_te(h->value, h->value_len, &final_chunked, &n_chunked) == TE_BAD)
                te_bad = true;
        } else if (tg_str_ieq(h->name, h->name_len, "connection", 10)) {
            conn_close |= tg_http_list_has(h->value, h->value_len, "close", 5);
            conn_keep |= tg_http_list_has(h->value, h->value_len, "keep-alive", 10);
            conn_upgrade |= tg_http_list_has(h->value, h->value_len, "upgrade", 7);
        } else if (tg_str_ieq(h->name, h->name_len, "upgrade", 7)) {
            has_upgrade = true;
        }
    }
    res->keepalive = minor == 1 ? !conn_close : (conn_keep && !conn_close);
    res->upgrade = has_upgrade && conn_upgrade;
    if (status < 200 || status == 204 || status == 304) {
        res->no_body = 1;
        res->content_length = 0;
        return (int)hl;
    }
    if (te_seen) {
        if (te_bad)
            RES_FAIL("malformed Transfer-Encoding");
        if (n_chunked > 1 || (n_chunked == 1 && !final_chunked))
            RES_FAIL("chunked is not the final transfer coding");
        if (res->content_length >= 0 || !final_chunked || minor == 0)
            res->keepalive = 0;
        res->content_length = -1;
        res->chunked = final_chunked;
    } else if (res->content_length < 0) {
        res->keepalive = 0; /* delimited by close */
    }
    return (int)hl;
#undef RES_FAIL
#undef RES_AGAIN
}

/* -------------------------------------------------------------- chunked -- */

enum {
    CH_SIZE_START = 0, /* first hex digit of a chunk-size */
    CH_SIZE,           /* more hex digits, ';' or CR */
    CH_EXT_NAME_START,
    CH_EXT_NAME,
    CH_EXT_VAL_START,
    CH_EXT_VAL,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRL_START, /* start of a trailer line or the final CRLF */
    CH_TRL_NAME,
    CH_TRL_VALUE,
    CH_TRL_LF,
    CH_END_LF,
    CH_DONE,
    CH_ERROR,
};

#define CH_MAX_DIGITS 16
#define CH_MAX_TRAILERS (32 * 1024)

int tg_http_chunked_next(tg_http_chunked_t *d, const char *buf, size_t len, const char **data,
                         size_t *data_len)
{
    *data = NULL;
    *data_len = 0;
    if (d->state == CH_ERROR)
        return TG_ERROR;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        int st = d->state;
        if (st == CH_DATA) {
            size_t avail = len - i;
            size_t n = d->remaining < avail ? (size_t)d->remaining : avail;
            *data = buf + i;
            *data_len = n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = CH_DATA_CR;
            return (int)(i + n);
        }
        if (st == CH_DONE)
            break;
        if (st == CH_ERROR)
            return TG_ERROR;
        if (st <= CH_SIZE_LF || (st >= CH_TRL_START && st <= CH_TRL_LF)) {
            if (++d->line_len > TG_HTTP_CHUNK_LINE_MAX)
                goto bad;
        }
        if (st >= CH_TRL_START && st <= CH_END_LF && ++d->remaining > CH_MAX_TRAILERS)
            goto bad;
        switch (st) {
        case CH_SIZE_START:
            if (hexval(c) < 0)
                goto bad;
            d->remaining = (uint64_t)hexval(c);
            d->line_len = 1;
            d->state = CH_SIZE;
            break;
        case CH_SIZE:
            if (hexval(c) >= 0) {
                if (d->line_len > CH_MAX_DIGITS)
                    goto bad;
                d->remaining = d->remaining << 4 | (uint64_t)hexval(c);
            } else if (c == ';') {
                d->state = CH_EXT_NAME_START;
            } else if (c == '\r') {
                d->state = CH_SIZE_LF;
            } else {
                goto bad;
            }
            break;
        case CH_EXT_NAME_START:
        case CH_EXT_VAL_START:
            if (!TCHAR(c))
                goto bad; /* quoted-string values and whitespace included */
            d->state = st + 1;
            break;
        case CH_EXT_NAME:
        case CH_EXT_VAL:
            if (c == ';')
                d->state = CH_EXT_NAME_START;
            else if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (c == '=' && st == CH_EXT_NAME)
                d->state = CH_EXT_VAL_START;
            else if (!TCHAR(c))
                goto bad;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                goto bad;
            d->line_len = 0;
            if (d->remaining == 0) {
                d->state = CH_TRL_START;
            } else {
                d->state = CH_DATA;
            }
            break;
        case CH_DATA_CR:
            if (c != '\r')
                goto bad;
            d->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                goto bad;
            d->state = CH_SIZE_START;
            break;
        case CH_TRL_START:
            if (c == '\r')
                d->state = CH_END_LF;
            else if (TCHAR(c))
                d->state = CH_TRL_NAME;
            else
                goto bad; /* bare LF, obs-fold, ':' (empty name), others */
            break;
        case CH_TRL_NAME:
            if (c == ':')
                d->state = CH_TRL_VALUE;
            else if (!TCHAR(c))
                goto bad;
            break;
        case CH_TRL_VALUE:
            if (c == '\r')
                d->state = CH_TRL_LF;
            else if (!value_char(c))
                goto bad;
            break;
        case CH_TRL_LF:
            if (c != '\n')
                goto bad;
            d->line_len = 0;
            d->state = CH_TRL_START;
            break;
        case CH_END_LF:
            if (c != '\n')
                goto bad;
            d->state = CH_DONE;
            d->done = 1;
            return (int)(i + 1);
        }
        i++;
    }
    return (int)i;
bad:
    d->state = CH_ERROR;
    return TG_ERROR;
}
