/* proxy_filter.c: the response side of the plugin host — the upstream's head
 * kept for kong.service.response, body_filter over streamed chunks (with the
 * client's framing chosen again when plugins may change the body), and the
 * whole body kept for buffered proxying (the `response` phase). */
#include "log.h"
#include "pdk.h"
#include "plugins.h"
#include "proxy_int.h"

#include <stdio.h>

/* Buffered proxying keeps the upstream's body in memory up to this size; a
 * larger one answers 502, as Kong does for a truncated buffered body. */
#define TG_BUFFERED_MAX (64u * 1024 * 1024)

static const char *rebase(const char *p, const char *from, const char *to)
{
    return p ? to + (p - from) : NULL;
}

int tg__filter_keep_head(tg_conn_t *c, const char *from, size_t len)
{
    tg_http_response_t *res = &c->res;
    tg_buf_reset(&c->res_head);
    if (tg_buf_append(&c->res_head, from, len) != 0)
        return TG_ENOMEM;
    const char *to = c->res_head.data;
    res->reason = rebase(res->reason, from, to);
    for (size_t i = 0; i < res->num_headers; i++) {
        res->headers[i].name = rebase(res->headers[i].name, from, to);
        res->headers[i].value = rebase(res->headers[i].value, from, to);
    }
    /* plugins edit res->headers in place: kong.service.response reads this copy */
    c->svc_n = res->num_headers;
    c->svc_h = tg__arena_alloc(&c->arena, c->svc_n * sizeof(*c->svc_h) + 1);
    if (!c->svc_h)
        return TG_ENOMEM;
    if (c->svc_n)
        memcpy(c->svc_h, res->headers, c->svc_n * sizeof(*c->svc_h));
    return 0;
}

/* Runs the body_filter phase over one chunk. 0, or -1 when a plugin failed. */
static int run_body_filter(tg_conn_t *c, const char *p, size_t n, bool eof)
{
    c->bf_chunk = p;
    c->chunk_len = n;
    c->chunk_eof = eof;
    c->chunk_set = false;
    return tg_plugins_run(c, TG_PHASE_BODY_FILTER) ? -1 : 0;
}

/* What body_filter left in ngx.arg[1]. */
static void chunk_result(tg_conn_t *c, const char **p, size_t *n)
{
    if (c->chunk_set) {
        *p = tg_buf_start(&c->bf_out);
        *n = tg_buf_used(&c->bf_out);
    } else {
        *p = c->bf_chunk;
        *n = c->chunk_len;
    }
}

int tg__filter_known(tg_conn_t *c, const char **p, size_t *n, bool send)
{
    if (!tg_plugins_wants(c, TG_PHASE_BODY_FILTER))
        return 0;
    if (run_body_filter(c, send ? *p : "", send ? *n : 0, true) != 0)
        return -1;
    if (send)
        chunk_result(c, p, n);
    return 0;
}

/* Ends a head left open (TG_OUT_OPEN): the length when the whole body is
 * known, else chunked for HTTP/1.1 clients and close-delimited for 1.0. */
static void end_open_head(tg_conn_t *c, bool whole, size_t len)
{
    char tmp[64];
    if (whole) {
        int k = snprintf(tmp, sizeof(tmp), "Content-Length: %zu\r\n", len);
        tg_buf_append(&c->out, tmp, (size_t)k);
        c->out_mode = TG_OUT_LENGTH;
    } else if (c->req.minor_version >= 1) {
        tg_buf_append_lit(&c->out, "Transfer-Encoding: chunked\r\n");
        c->out_mode = TG_OUT_CHUNKED;
    } else {
        c->close_after = true;
        c->out_mode = TG_OUT_CLOSE;
    }
    tg__proxy_head_end(c);
}

/* One turn of the body: `n` decoded bytes, `eof` when the upstream's body
 * ended. Buffering: keeps them. Else runs body_filter and writes the result
 * framed by c->out_mode. Returns 1 when the client's body is complete, 0 for
 * more, -1 when a plugin failed or the buffered body is too large. */
static int filter_chunk(tg_conn_t *c, const char *p, size_t n, bool eof)
{
    if (c->buffering) {
        /* the bytes are in c->bf_in already */
        if (tg_buf_used(&c->bf_in) > TG_BUFFERED_MAX) {
            tg_log(TG_LOG_ERR, "buffered upstream response body larger than %u bytes",
                   TG_BUFFERED_MAX);
            return -1;
        }
        return eof ? 1 : 0;
    }
    if (n == 0 && !eof)
        return 0;
    if (run_body_filter(c, p, n, eof) != 0) {
        /* as nginx: the head is out, the body ends here (truncated) */
        if (c->out_mode == TG_OUT_OPEN)
            end_open_head(c, false, 0);
        return -1;
    }
    const char *o;
    size_t on;
    chunk_result(c, &o, &on);
    /* a plugin may end the body early, never make it outlast the upstream's */
    bool end = c->chunk_eof || eof;
    if (c->out_mode == TG_OUT_OPEN)
        end_open_head(c, end, on);
    if (c->out_mode == TG_OUT_CHUNKED) {
        if (on) {
            char tmp[32];
            int k = snprintf(tmp, sizeof(tmp), "%zx\r\n", on);
            tg_buf_append(&c->out, tmp, (size_t)k);
            tg_buf_append(&c->out, o, on);
            tg_buf_append_lit(&c->out, "\r\n");
        }
        if (end)
            tg_buf_append_lit(&c->out, "0\r\n\r\n");
    } else if (on) {
        tg_buf_append(&c->out, o, on);
    }
    return end ? 1 : 0;
}

/* ---- the body pump ---- */

/* Moves response body bytes from the upstream buffer to the client buffer,
 * or, when plugins see the body, decoded into c->bf_in (all of it when
 * buffering) for body_filter. Returns 1 when the response is complete, 0
 * when more is needed, -1 on a framing error, -2 when a plugin failed or
 * memory ran out (logged). */
int tg__response_pump(tg_conn_t *c)
{
    tg_upconn_t *u = c->up;
    bool decoded = c->buffering || c->out_mode != TG_OUT_RAW;
    tg_buf_t *d = decoded ? &c->bf_in : &c->out;
    if (decoded && !c->buffering)
        tg_buf_reset(d);
    bool done = false;
    int rc = 0;
    while (!done && rc == 0 && tg_buf_used(&u->in) > 0) {
        const char *p = tg_buf_start(&u->in);
        size_t take = tg_buf_used(&u->in);
        if (c->res_mode == BODY_LENGTH) {
            if ((uint64_t)c->res_left < take)
                take = (size_t)c->res_left;
            c->res_left -= (int64_t)take;
            done = c->res_left == 0;
            rc = tg_buf_append(d, p, take);
        } else if (c->res_mode == BODY_CHUNKED) {
            const char *data;
            size_t dlen;
            int n = tg_http_chunked_next(&c->res_chunk, p, take, &data, &dlen);
            if (n < 0)
                return -1;
            if (n == 0)
                break;
            take = (size_t)n;
            done = c->res_chunk.done;
            if (!decoded && !c->dechunk)
                rc = tg_buf_append(d, p, take);
            else if (dlen)
                rc = tg_buf_append(d, data, dlen);
        } else if (c->res_mode == BODY_CLOSE) {
            rc = tg_buf_append(d, p, take);
        } else {
            break;
        }
        tg_buf_consume(&u->in, take);
    }
    if (rc != 0) {
        tg_log(TG_LOG_ERR, "out of memory for the response body from %s", c->target->name);
        return -2;
    }
    if (c->res_mode == BODY_NONE || (c->res_mode == BODY_CLOSE && c->up_eof))
        done = true;
    if (!decoded)
        return done ? 1 : 0;
    int r = filter_chunk(c, tg_buf_start(d), tg_buf_used(d), done);
    if (r < 0)
        return -2;
    if (r == 1 && !done)
        u->no_reuse = true; /* the filters ended the body early */
    return r;
}
