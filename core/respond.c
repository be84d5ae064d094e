/* respond.c: Kong's generated error responses (see respond.h).
 *
 * The templates, media types and the Accept negotiation follow Kong 3.10's
 * kong/tools/http.lua (get_response_type, get_mime_type, ERROR_TEMPLATES)
 * and kong/error_handlers.lua (the messages), re-implemented in C. */
#include "respond.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

/* ------------------------------------------------------------ request ids -- */

/* xoshiro256** per thread, seeded from getrandom; a fork bumps a generation
 * so that a child never repeats its parent's sequence. */
static atomic_uint rid_generation = 1;
static pthread_once_t rid_once = PTHREAD_ONCE_INIT;

static __thread struct {
    uint64_t s[4];
    unsigned generation;
} rid_rng;

static void rid_after_fork(void)
{
    atomic_fetch_add(&rid_generation, 1);
}

static void rid_install_atfork(void)
{
    pthread_atfork(NULL, NULL, rid_after_fork);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rid_next(void)
{
    uint64_t *s = rid_rng.s;
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

static void rid_seed(unsigned gen)
{
    uint64_t seed[4] = {0};
    size_t got = 0;
    while (got < sizeof(seed)) {
        ssize_t n = getrandom((char *)seed + got, sizeof(seed) - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof(seed)) { /* no entropy source: time and addresses, never all zero */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed[0] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull;
        seed[1] ^= (uint64_t)ts.tv_sec;
        seed[2] ^= (uint64_t)(uintptr_t)&rid_rng;
        seed[3] ^= 0x2545f4914f6cdd1dull;
    }
    memcpy(rid_rng.s, seed, sizeof(seed));
    rid_rng.generation = gen;
}

void tg_request_id_new(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned gen = atomic_load_explicit(&rid_generation, memory_order_relaxed);
    if (TG_UNLIKELY(rid_rng.generation != gen)) {
        pthread_once(&rid_once, rid_install_atfork);
        rid_seed(gen);
    }
    uint64_t a = rid_next(), b = rid_next();
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(a >> (60 - 4 * i)) & 0xf];
        out[16 + i] = hex[(b >> (60 - 4 * i)) & 0xf];
    }
    out[32] = '\0';
}

/* -------------------------------------------------- content negotiation -- */

/* Kong's ACCEPT_PATTERN character classes: a range token starts with
 * [a-z0-9] and continues with [a-z0-9-!#$&^_+.] (case-insensitive), at
 * least two characters in all. */
static bool tok_first(unsigned char c)
{
    c |= 0x20;
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool tok_rest(unsigned char c)
{
    return tok_first(c) || (c && strchr("-!#$&^_+.", c));
}

/* Matches a media-range token (or "*") at p[*i..n); advances *i. */
static bool match_range_token(const char *p, size_t n, size_t *i)
{
    size_t k = *i;
    if (k < n && p[k] == '*') {
        *i = k + 1;
        return true;
    }
    if (k >= n || !tok_first((unsigned char)p[k]))
        return false;
    k++;
    if (k >= n || !tok_rest((unsigned char)p[k]))
        return false;
    while (k < n && tok_rest((unsigned char)p[k]))
        k++;
    *i = k;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* "q=" 1(.0{0,3})? | 0(.\d{0,3})? at p[*i..n); the value in thousandths. */
static bool match_q(const char *p, size_t n, size_t *i, int *q)
{
    size_t k = *i;
    if (k + 2 >= n || (p[k] | 0x20) != 'q' || p[k + 1] != '=')
        return false;
    k += 2;
    char lead = p[k];
    if (lead != '0' && lead != '1')
        return false;
    k++;
    int v = lead == '1' ? 1000 : 0, scale = 100;
    if (k < n && p[k] == '.') {
        k++;
        for (int d = 0; d < 3 && k < n; d++, k++) {
            if (lead == '1' ? p[k] != '0' : (p[k] < '0' || p[k] > '9'))
                break;
            v += (p[k] - '0') * scale;
            scale /= 10;
        }
    }
    *q = v;
    *i = k;
    return true;
}

/* One Accept element (already split at commas): the media range and its q
 * (in thousandths; 1000 when absent), as Kong's anchored pattern reads it.
 * False when the element does not match at all. */
static bool parse_accept_element(const char *p, size_t n, size_t *mlen, int *q)
{
    size_t i = 0;
    if (!match_range_token(p, n, &i) || i >= n || p[i] != '/')
        return false;
    i++;
    if (!match_range_token(p, n, &i))
        return false;
    *mlen = i;
    *q = 1000;
    for (;;) {
        size_t k = i;
        while (k < n && is_space(p[k]))
            k++;
        if (k >= n || p[k] != ';')
            break;
        k++;
        while (k < n && is_space(p[k]))
            k++;
        int qv;
        if (match_q(p, n, &k, &qv)) {
            *q = qv;
        } else {
            size_t t = k;
            if (t >= n || p[t] == '*' || !match_range_token(p, n, &t))
                break;
            if (t < n && p[t] == '=')
                while (t < n && p[t] != ';')
                    t++;
            k = t;
        }
        i = k;
    }
    return true;
}

/* Kong's get_mime_type for a matched media range (exact-case lookup). */
static int range_format(const char *m, size_t n)
{
    static const struct {
        const char *mime;
        int fmt;
    } known[] = {
        {"text/html", TG_FMT_HTML},   {"application/json", TG_FMT_JSON},
        {"text/plain", TG_FMT_TEXT},  {"application/xml", TG_FMT_XML},
        {"text/*", TG_FMT_TEXT},      {"application/*", TG_FMT_JSON},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(known); i++)
        if (strlen(known[i].mime) == n && memcmp(known[i].mime, m, n) == 0)
            return known[i].fmt;
    return TG_FMT_JSON; /* "* / *", unknown types, grpc: Kong's default */
}

int tg_respond_pick_format(const char *accept, size_t len, int default_fmt)
{
    if (!accept)
        return default_fmt;
    int fmt = TG_FMT_JSON, best = 0;
    size_t s = 0;
    while (s <= len) {
        size_t e = s;
        while (e < len && accept[e] != ',')
            e++;
        size_t a = s, b = e;
        while (a < b && is_space(accept[a]))
            a++;
        while (b > a && is_space(accept[b - 1]))
            b--;
        size_t mlen;
        int q;
        if (b > a && parse_accept_element(accept + a, b - a, &mlen, &q) && q > best) {
            best = q;
            fmt = range_format(accept + a, mlen);
        }
        s = e + 1;
    }
    return fmt;
}

int tg_respond_format_from_mime(const char *mime)
{
    if (!mime)
        return -1;
    if (strcmp(mime, "application/json") == 0)
        return TG_FMT_JSON;
    if (strcmp(mime, "text/html") == 0)
        return TG_FMT_HTML;
    if (strcmp(mime, "application/xml") == 0)
        return TG_FMT_XML;
    if (strcmp(mime, "text/plain") == 0)
        return TG_FMT_TEXT;
    return -1;
}

/* ----------------------------------------------------------------- bodies -- */

size_t tg_respond_error_body(int fmt, const char *message, const char *request_id, char *out,
                             size_t cap, const char **content_type)
{
    const char *rid = request_id ? request_id : "";
    const char *msg = message ? message : "";
    const char *ct;
    int n;
    switch (fmt) {
    case TG_FMT_HTML:
        ct = "text/html; charset=utf-8";
        n = snprintf(out, cap,
                     "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n"
                     "    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n"
                     "    <p>%s.</p>\n    <p>request_id: %s</p>\n  </body>\n</html>\n",
                     msg, rid);
        break;
    case TG_FMT_XML:
        ct = "application/xml; charset=utf-8";
        n = snprintf(out, cap,
                     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n"
                     "  <message>%s</message>\n  <requestid>%s</requestid>\n</error>\n",
                     msg, rid);
        break;
    case TG_FMT_TEXT:
        ct = "text/plain; charset=utf-8";
        n = snprintf(out, cap, "%s\nrequest_id: %s\n", msg, rid);
        break;
    default:
        ct = "application/json; charset=utf-8";
        n = snprintf(out, cap, "{\n  \"message\":\"%s\",\n  \"request_id\":\"%s\"\n}", msg, rid);
        break;
    }
    if (content_type)
        *content_type = ct;
    if (n < 0 || cap == 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

const char *tg_respond_default_message(int status, char *buf, size_t cap)
{
    switch (status) {
    case 400: return "Bad request";
    case 404: return "Not found";
    case 405: return "Method not allowed";
    case 408: return "Request timeout";
    case 411: return "Length required";
    case 412: return "Precondition failed";
    case 413: return "Payload too large";
    case 414: return "URI too long";
    case 417: return "Expectation failed";
    case 494: return "Request header or cookie too large";
    case 500: return "An unexpected error occurred";
    case 502: return "An invalid response was received from the upstream server";
    case 503: return "The upstream server is currently unavailable";
    case 504: return "The upstream server is timing out";
    }
    static __thread char tl[64];
    if (!buf || cap == 0) {
        buf = tl;
        cap = sizeof(tl);
    }
    snprintf(buf, cap, "The upstream server responded with %d", status);
    return buf;
}

const char *tg_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 494: return "Request Header Or Cookie Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    }
    return "Unknown";
}
