/* test_respond.c: Kong's error bodies, Accept negotiation, default messages,
 * reason phrases and request ids. */
#include "test.h"

#include "respond.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    const char *accept; /* NULL: header absent */
    int dflt;
    int want;
} accept_case_t;

static const accept_case_t accept_cases[] = {
    {NULL, TG_FMT_JSON, TG_FMT_JSON},
    {NULL, TG_FMT_HTML, TG_FMT_HTML},
    {NULL, TG_FMT_TEXT, TG_FMT_TEXT},
    {"text/html", TG_FMT_TEXT, TG_FMT_HTML},
    {"application/json", TG_FMT_TEXT, TG_FMT_JSON},
    {"application/xml", TG_FMT_JSON, TG_FMT_XML},
    {"text/plain", TG_FMT_JSON, TG_FMT_TEXT},
    {"text/plain; charset=utf-8", TG_FMT_JSON, TG_FMT_TEXT},
    {"  text/html  ", TG_FMT_JSON, TG_FMT_HTML},
    /* highest q wins */
    {"text/html;q=0.5, application/xml;q=0.9", TG_FMT_JSON, TG_FMT_XML},
    {"text/html;q=0.9, application/xml;q=0.5", TG_FMT_JSON, TG_FMT_HTML},
    {"text/plain;q=0.1, text/html", TG_FMT_JSON, TG_FMT_HTML},
    {"text/html ; q=0.8 , text/plain ; Q=0.81", TG_FMT_JSON, TG_FMT_TEXT},
    {"text/html;level=1;q=0.2, text/plain;q=0.3", TG_FMT_JSON, TG_FMT_TEXT},
    /* a tie: the first listed wins */
    {"text/html, application/xml", TG_FMT_JSON, TG_FMT_HTML},
    {"application/xml;q=0.5, text/html;q=0.5", TG_FMT_JSON, TG_FMT_XML},
    {"text/plain;q=1, text/html;q=1.000", TG_FMT_JSON, TG_FMT_TEXT},
    /* q=0 never wins */
    {"text/html;q=0", TG_FMT_TEXT, TG_FMT_JSON},
    {"text/html;q=0.000, text/plain;q=0.001", TG_FMT_JSON, TG_FMT_TEXT},
    /* wildcards */
    {"*/*", TG_FMT_HTML, TG_FMT_JSON},
    {"text/*", TG_FMT_JSON, TG_FMT_TEXT},
    {"application/*", TG_FMT_TEXT, TG_FMT_JSON},
    {"image/*", TG_FMT_TEXT, TG_FMT_JSON},
    {"*/html", TG_FMT_TEXT, TG_FMT_JSON},
    {"*/*;q=0.1, text/html;q=0.2", TG_FMT_JSON, TG_FMT_HTML},
    {"text/html;q=0.2, */*;q=0.3", TG_FMT_JSON, TG_FMT_JSON},
    /* unknown types win like any other (then JSON) */
    {"image/png, text/html", TG_FMT_TEXT, TG_FMT_JSON},
    {"image/png;q=0.1, text/html", TG_FMT_TEXT, TG_FMT_HTML},
    {"application/grpc", TG_FMT_TEXT, TG_FMT_JSON},
    /* the lookup is exact-case, as in Kong */
    {"Text/HTML", TG_FMT_TEXT, TG_FMT_JSON},
    /* malformed: no valid range -> JSON, or the element skipped */
    {"", TG_FMT_TEXT, TG_FMT_JSON},
    {"garbage", TG_FMT_TEXT, TG_FMT_JSON},
    {",,, ,", TG_FMT_TEXT, TG_FMT_JSON},
    {"text/", TG_FMT_TEXT, TG_FMT_JSON},
    {"/html", TG_FMT_TEXT, TG_FMT_JSON},
    {"t/html", TG_FMT_TEXT, TG_FMT_JSON},
    {"text / html", TG_FMT_TEXT, TG_FMT_JSON},
    {"garbage, text/plain;q=0.4", TG_FMT_JSON, TG_FMT_TEXT},
    {"text/html;q=abc, text/plain;q=0.5", TG_FMT_JSON, TG_FMT_HTML},
    {"text/html;q=2, text/plain;q=0.5", TG_FMT_JSON, TG_FMT_HTML},
    {"text/html;q=0.5x, text/plain;q=0.4", TG_FMT_JSON, TG_FMT_HTML},
    {"text/html;q=0.1234, text/plain;q=0.123", TG_FMT_JSON, TG_FMT_HTML},
    {"text/html;q=0.1, text/plain;q=0.1001", TG_FMT_JSON, TG_FMT_HTML},
    {"text/html;q=1.5, text/plain;q=0.9", TG_FMT_JSON, TG_FMT_HTML},
    {"text/html;x;q=0.1, text/plain;q=0.5", TG_FMT_JSON, TG_FMT_HTML},
    {"text/html;xx;q=0.1, text/plain;q=0.5", TG_FMT_JSON, TG_FMT_TEXT},
    {"text/htmlx, text/html", TG_FMT_TEXT, TG_FMT_JSON},
};

TEST(respond_pick_format)
{
    for (size_t i = 0; i < TG_ARRAY_SIZE(accept_cases); i++) {
        const accept_case_t *c = &accept_cases[i];
        size_t len = c->accept ? strlen(c->accept) : 0;
        char *copy = c->accept ? malloc(len + 1) : NULL;
        if (copy)
            memcpy(copy, c->accept, len); /* not NUL-terminated for the call */
        int got = tg_respond_pick_format(copy, len, c->dflt);
        CHECK(got == c->want, "row %zu (%s): got %d want %d", i, c->accept ? c->accept : "NULL",
              got, c->want);
        free(copy);
    }
}

TEST(respond_format_from_mime)
{
    ASSERT_EQ(tg_respond_format_from_mime("application/json"), TG_FMT_JSON);
    ASSERT_EQ(tg_respond_format_from_mime("text/html"), TG_FMT_HTML);
    ASSERT_EQ(tg_respond_format_from_mime("application/xml"), TG_FMT_XML);
    ASSERT_EQ(tg_respond_format_from_mime("text/plain"), TG_FMT_TEXT);
    ASSERT_EQ(tg_respond_format_from_mime("text/xml"), -1);
    ASSERT_EQ(tg_respond_format_from_mime(""), -1);
    ASSERT_EQ(tg_respond_format_from_mime(NULL), -1);
}

TEST(respond_error_body_templates)
{
    char out[1024];
    const char *ct = NULL;
    const char *rid = "0123456789abcdef0123456789abcdef";
    size_t n = tg_respond_error_body(TG_FMT_JSON, "no Route matched with those values", rid, out,
                                     sizeof(out), &ct);
    ASSERT_MEMEQ(out, n,
                 "{\n  \"message\":\"no Route matched with those values\",\n"
                 "  \"request_id\":\"0123456789abcdef0123456789abcdef\"\n}");
    ASSERT_STREQ(ct, "application/json; charset=utf-8");

    n = tg_respond_error_body(TG_FMT_HTML, "Not found", rid, out, sizeof(out), &ct);
    ASSERT_MEMEQ(out, n,
                 "<!doctype html>\n"
                 "<html>\n"
                 "  <head>\n"
                 "    <meta charset=\"utf-8\">\n"
                 "    <title>Error</title>\n"
                 "  </head>\n"
                 "  <body>\n"
                 "    <h1>Error</h1>\n"
                 "    <p>Not found.</p>\n"
                 "    <p>request_id: 0123456789abcdef0123456789abcdef</p>\n"
                 "  </body>\n"
                 "</html>\n");
    ASSERT_STREQ(ct, "text/html; charset=utf-8");

    n = tg_respond_error_body(TG_FMT_XML, "Bad request", rid, out, sizeof(out), &ct);
    ASSERT_MEMEQ(out, n,
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<error>\n"
                 "  <message>Bad request</message>\n"
                 "  <requestid>0123456789abcdef0123456789abcdef</requestid>\n"
                 "</error>\n");
    ASSERT_STREQ(ct, "application/xml; charset=utf-8");

    n = tg_respond_error_body(TG_FMT_TEXT, "Bad request", rid, out, sizeof(out), &ct);
    ASSERT_MEMEQ(out, n, "Bad request\nrequest_id: 0123456789abcdef0123456789abcdef\n");
    ASSERT_STREQ(ct, "text/plain; charset=utf-8");

    /* no request id: Kong formats "" */
    n = tg_respond_error_body(TG_FMT_JSON, "x", NULL, out, sizeof(out), &ct);
    ASSERT_MEMEQ(out, n, "{\n  \"message\":\"x\",\n  \"request_id\":\"\"\n}");

    /* truncation: NUL-terminated, length cap - 1 */
    char small[8];
    n = tg_respond_error_body(TG_FMT_TEXT, "Bad request", rid, small, sizeof(small), NULL);
    ASSERT_EQ(n, 7);
    ASSERT_STREQ(small, "Bad req");
}

TEST(respond_default_messages)
{
    static const struct {
        int status;
        const char *msg;
    } rows[] = {
        {400, "Bad request"},
        {404, "Not found"},
        {405, "Method not allowed"},
        {408, "Request timeout"},
        {411, "Length required"},
        {412, "Precondition failed"},
        {413, "Payload too large"},
        {414, "URI too long"},
        {417, "Expectation failed"},
        {494, "Request header or cookie too large"},
        {500, "An unexpected error occurred"},
        {502, "An invalid response was received from the upstream server"},
        {503, "The upstream server is currently unavailable"},
        {504, "The upstream server is timing out"},
        {401, "The upstream server responded with 401"},
        {505, "The upstream server responded with 505"},
        {429, "The upstream server responded with 429"},
    };
    char buf[128];
    for (size_t i = 0; i < TG_ARRAY_SIZE(rows); i++) {
        const char *m = tg_respond_default_message(rows[i].status, buf, sizeof(buf));
        CHECK(m && strcmp(m, rows[i].msg) == 0, "status %d: %s", rows[i].status, m ? m : "NULL");
    }
    ASSERT_STREQ(tg_respond_default_message(418, NULL, 0),
                 "The upstream server responded with 418");
}

TEST(respond_reason_phrases)
{
    ASSERT_STREQ(tg_http_reason(200), "OK");
    ASSERT_STREQ(tg_http_reason(400), "Bad Request");
    ASSERT_STREQ(tg_http_reason(404), "Not Found");
    ASSERT_STREQ(tg_http_reason(426), "Upgrade Required");
    ASSERT_STREQ(tg_http_reason(502), "Bad Gateway");
    ASSERT_STREQ(tg_http_reason(505), "HTTP Version Not Supported");
    ASSERT_STREQ(tg_http_reason(799), "Unknown");
}

static bool is_rid(const char *s)
{
    if (strlen(s) != 32)
        return false;
    for (int i = 0; i < 32; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void *rid_thread(void *arg)
{
    char *out = arg;
    for (int i = 0; i < 64; i++)
        tg_request_id_new(out + i * 33);
    return NULL;
}

static int cmp_rid(const void *a, const void *b)
{
    return memcmp(a, b, 33);
}

TEST(respond_request_ids)
{
    /* format, and no repeats within and across threads */
    enum { THREADS = 4, PER = 64 };
    static char ids[THREADS * PER][33];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        ASSERT_EQ(pthread_create(&th[t], NULL, rid_thread, ids[t * PER]), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    for (int i = 0; i < THREADS * PER; i++)
        CHECK(is_rid(ids[i]), "id %d: %s", i, ids[i]);
    qsort(ids, THREADS * PER, 33, cmp_rid);
    for (int i = 1; i < THREADS * PER; i++)
        CHECK(strcmp(ids[i - 1], ids[i]) != 0, "duplicate id %s", ids[i]);
    /* every hex digit shows up in every position over many ids (not constant) */
    unsigned seen[32] = {0};
    for (int i = 0; i < 2000; i++) {
        char id[33];
        tg_request_id_new(id);
        for (int k = 0; k < 32; k++)
            seen[k] |= 1u << (id[k] <= '9' ? id[k] - '0' : id[k] - 'a' + 10);
    }
    for (int k = 0; k < 32; k++)
        CHECK(seen[k] == 0xffff, "position %d: digits %x", k, seen[k]);
}
