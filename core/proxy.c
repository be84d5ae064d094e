/* proxy.c: the HTTP/1.1 proxy state machine.
 *
 * One tg_conn_t per client connection, driven by drive(): read the request
 * head, route it on the worker's snapshot, read (request_buffering) or stream
 * the body, take an upstream connection from the worker's keepalive pool,
 * send, stream the response back with bounded read-ahead, then either serve
 * the next pipelined request or close. Local answers (404, 503, parser
 * errors) use Kong's bodies from respond.c. */
#include "proxy.h"
#include "proxy_int.h"
#include "buf.h"
#include "dns.h"
#include "http_parse.h"
#include "log.h"
#include "pdk.h"
#include "plugins.h"
#include "proxy_protocol.h"
#include "tls.h"
#include "respond.h"
#include "router.h"
#include "uri.h"

#include <arpa/inet.h>
#include <event2/event_struct.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- utils -- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static void drive(tg_conn_t *c);
static void conn_close(tg_conn_t *c);

static const tg_http_header_t *find_header(const tg_http_header_t *h, size_t n, const char *lname)
{
    return tg_http_header_find(h, n, lname, strlen(lname));
}

/* Inlined with a literal, strlen folds: only same-length names compare. */
static inline bool ieq(const char *a, size_t alen, const char *lit)
{
    size_t llen = strlen(lit);
    return alen == llen && tg_str_ieq(a, alen, lit, llen);
}

/* --------------------------------------------------------- event arming -- */

static void on_client_read(evutil_socket_t fd, short what, void *arg);
static void on_client_write(evutil_socket_t fd, short what, void *arg);
static void on_up_event(evutil_socket_t fd, short what, void *arg);

/* The connection's one deadline (0: none). A timer update is a heap
 * operation, never a system call. */
static void set_deadline(tg_conn_t *c, int timeout_ms)
{
    if (timeout_ms > 0) {
        struct timeval tv = ms_tv(timeout_ms);
        event_add(&c->timer, &tv);
    } else {
        event_del(&c->timer);
    }
}

static void client_want_read(tg_conn_t *c, int timeout_ms)
{
    set_deadline(c, timeout_ms);
    if (c->read_pending) {
        /* the edge came while we were not reading: run the callback again */
        c->read_pending = false;
        event_active(&c->rev, EV_READ, 0);
    }
}

static void client_want_write(tg_conn_t *c)
{
    c->want_write = true;
    set_deadline(c, c->w->conf->send_timeout_ms > 0 ? c->w->conf->send_timeout_ms : 60000);
}

static void up_want(tg_upconn_t *u, short what, int timeout_ms)
{
    tg_conn_t *c = u->owner;
    if (c)
        set_deadline(c, timeout_ms);
    u->want_write = (what & EV_WRITE) != 0;
    if ((what & EV_READ) && u->read_pending) {
        u->read_pending = false;
        event_active(&u->rev, EV_READ, 0);
    }
}

/* --------------------------------------------------------- upstream pool -- */

static void up_free(tg_upconn_t *u)
{
    event_del(&u->rev);
    event_del(&u->wev);
    event_del(&u->idle_timer);
    tg_tls_close(u->ssl);
    if (u->fd >= 0)
        close(u->fd);
    tg_buf_free(&u->in);
    free(u);
}

/* The idle pool: one list of every idle connection, newest first (the oldest
 * goes when the pool is full), and per address bucket the same connections,
 * so that finding one for a target does not walk the others'. */
static uint8_t up_bucket(const struct sockaddr_storage *a, socklen_t len)
{
    const unsigned char *b = (const unsigned char *)a;
    uint32_t h = 2166136261u;
    for (socklen_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 16777619u;
    return (uint8_t)(h ^ (h >> 8) ^ (h >> 16) ^ (h >> 24));
}

static void pool_unlink(tg_worker_t *w, tg_upconn_t *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        w->idle_up = u->next;
    if (u->next)
        u->next->prev = u->prev;
    else
        w->idle_up_tail = u->prev;
    if (u->bprev)
        u->bprev->bnext = u->bnext;
    else
        w->idle_bucket[u->bucket] = u->bnext;
    if (u->bnext)
        u->bnext->bprev = u->bprev;
    u->next = u->prev = u->bnext = u->bprev = NULL;
    u->pooled = false;
    w->nidle_up--;
}

static void pool_push(tg_worker_t *w, tg_upconn_t *u)
{
    u->prev = NULL;
    u->next = w->idle_up;
    if (w->idle_up)
        w->idle_up->prev = u;
    else
        w->idle_up_tail = u;
    w->idle_up = u;
    u->bucket = up_bucket(&u->addr, u->addrlen);
    u->bprev = NULL;
    u->bnext = w->idle_bucket[u->bucket];
    if (u->bnext)
        u->bnext->bprev = u;
    w->idle_bucket[u->bucket] = u;
    u->pooled = true;
    w->nidle_up++;
}

/* A pooled connection that became readable (closed by the upstream) or
 * stayed idle too long leaves the pool. */
static void up_idle_drop(tg_upconn_t *u)
{
    if (u->pooled)
        pool_unlink(u->w, u);
    up_free(u);
}

static void on_up_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    up_idle_drop(arg);
}

static void up_release(tg_conn_t *c, bool reusable)
{
    tg_upconn_t *u = c->up;
    if (!u)
        return;
    c->up = NULL;
    tg_worker_t *w = c->w;
    const tg_conf_t *conf = w->conf;
    if (c->state != S_TUNNEL)
        set_deadline(c, 0);
    u->requests++;
    if (!reusable || tg_buf_used(&u->in) > 0 || atomic_load(&w->stopping) ||
        (conf->upstream_keepalive_max_requests > 0 &&
         u->requests >= conf->upstream_keepalive_max_requests) ||
        conf->upstream_keepalive_pool_size <= 0) {
        up_free(u);
        return;
    }
    if ((int)w->nidle_up >= conf->upstream_keepalive_pool_size) {
        tg_upconn_t *old = w->idle_up_tail; /* the oldest */
        pool_unlink(w, old);
        up_free(old);
    }
    tg_buf_reset(&u->in);
    u->owner = NULL;
    u->idle_since = now_ms();
    struct timeval tv = ms_tv(conf->upstream_keepalive_idle_timeout_ms > 0
                                  ? conf->upstream_keepalive_idle_timeout_ms
                                  : 60000);
    event_add(&u->idle_timer, &tv);
    pool_push(w, u);
}

static tg_upconn_t *up_take_idle(tg_worker_t *w, const tg_target_t *t, uint64_t tls_key)
{
    for (tg_upconn_t *u = w->idle_bucket[up_bucket(&t->addr, t->addrlen)]; u; u = u->bnext) {
        if (u->addrlen == t->addrlen && u->tls_key == tls_key &&
            memcmp(&u->addr, &t->addr, t->addrlen) == 0) {
            pool_unlink(w, u);
            event_del(&u->idle_timer);
            u->reused = true;
            u->read_pending = false;
            return u;
        }
    }
    return NULL;
}

static tg_upconn_t *up_connect(tg_worker_t *w, const tg_target_t *t, int *err)
{
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) != 0 && errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        return NULL;
    }
    tg_upconn_t *u = calloc(1, sizeof(*u));
    u->w = w;
    u->fd = fd;
    memcpy(&u->addr, &t->addr, t->addrlen);
    u->addrlen = t->addrlen;
    event_assign(&u->rev, w->base, fd, EV_READ | EV_ET | EV_PERSIST, on_up_event, u);
    event_assign(&u->wev, w->base, fd, EV_WRITE | EV_ET | EV_PERSIST, on_up_event, u);
    evtimer_assign(&u->idle_timer, w->base, on_up_idle_timer, u);
    event_add(&u->rev, NULL);
    event_add(&u->wev, NULL);
    return u;
}

/* -------------------------------------------------------- local answers -- */

/* Answers with Kong's error body for `status` and `message` (the runloop's
 * kong.response.error when runloop is true: JSON by default; otherwise the
 * error handler's, error_default_type by default). */
static void respond_exit(tg_conn_t *c, const char *source);

static void respond_error(tg_conn_t *c, int status, const char *message, bool runloop, bool close)
{
    const tg_conf_t *conf = c->w->conf;
    const char *accept = NULL;
    size_t accept_len = 0;
    if (c->req.num_headers) {
        /* Kong's error handler: Accept, else the request's Content-Type */
        const tg_http_header_t *h = find_header(c->req.headers, c->req.num_headers, "accept");
        if (!h && !runloop)
            h = find_header(c->req.headers, c->req.num_headers, "content-type");
        if (h) {
            accept = h->value;
            accept_len = h->value_len;
        }
    }
    int dflt = runloop ? TG_FMT_JSON : conf->error_default_fmt;
    int fmt = tg_respond_pick_format(accept, accept_len, dflt);
    char msgbuf[128];
    if (!message)
        message = tg_respond_default_message(status, msgbuf, sizeof(msgbuf));
    char body[2048];
    const char *ctype = "application/json; charset=utf-8";
    size_t blen = tg_respond_error_body(fmt, message, c->request_id[0] ? c->request_id : NULL,
                                        body, sizeof(body), &ctype);
    int wire_status = status == 494 ? 400 : status;
    c->status = wire_status;
    if (close)
        c->close_after = true;
    if (c->plugins && c->access_done && !c->exit_status) {
        /* after access, as Kong's error handler: the header_filter,
         * body_filter and log of the plugins that ran see this answer, with
         * kong.response.get_source() "error"; headers set before are dropped */
        c->exit_status = wire_status;
        c->exit_body = tg__arena_dup(&c->arena, body, blen);
        c->exit_body_len = c->exit_body ? blen : 0;
        c->npending_resp = 0;
        c->resp_h = NULL;
        tg_pdk_resp_set_header(c, "Content-Type", 12, ctype, strlen(ctype), TG_HDR_SET);
        if (c->head_request)
            c->exit_body_len = 0;
        respond_exit(c, "error");
        return;
    }

    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: %s\r\n",
                     wire_status, tg_http_reason(wire_status), ctype, blen,
                     status == 426                        ? "Upgrade"
                     : c->close_after || !c->keepalive ? "close"
                                                       : "keep-alive");
    tg_buf_append(&c->out, head, (size_t)n);
    unsigned hdrs = conf->headers;
    if (hdrs & TG_HDR_SERVER) {
        tg_buf_append_lit(&c->out, "Server: tollgate/" TG_VERSION "\r\n");
    }
    if ((hdrs & TG_HDR_RESPONSE_LATENCY) && c->t_start) {
        n = snprintf(head, sizeof(head), "X-Kong-Response-Latency: %lld\r\n",
                     (long long)(now_ms() - c->t_start));
        tg_buf_append(&c->out, head, (size_t)n);
    }
    if ((hdrs & TG_HDR_REQUEST_ID) && c->request_id[0]) {
        n = snprintf(head, sizeof(head), "X-Kong-Request-Id: %s\r\n", c->request_id);
        tg_buf_append(&c->out, head, (size_t)n);
    }
    if (status == 426)
        tg_buf_append_lit(&c->out, "Upgrade: TLS/1.2, HTTP/1.1\r\n");
    tg_buf_append_lit(&c->out, "\r\n");
    if (!c->head_request)
        tg_buf_append(&c->out, body, blen);
    c->state = S_LOCAL;
}

/* Redirects to the https:// form of the request (301/302/307/308). */
static void respond_redirect_https(tg_conn_t *c, int code)
{
    char head[512];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nLocation: https://",
                     code, tg_http_reason(code));
    tg_buf_append(&c->out, head, (size_t)n);
    if (c->req.host) {
        /* the host without its port */
        size_t hl = c->req.host_len;
        const char *colon = c->req.host[0] == '[' ? NULL : memchr(c->req.host, ':', hl);
        tg_buf_append(&c->out, c->req.host, colon ? (size_t)(colon - c->req.host) : hl);
    }
    tg_buf_append(&c->out, c->req.path, c->req.path_len);
    if (c->req.query) {
        tg_buf_append_lit(&c->out, "?");
        tg_buf_append(&c->out, c->req.query, c->req.query_len);
    }
    tg_buf_append_lit(&c->out, "\r\n");
    if (c->w->conf->headers & TG_HDR_SERVER)
        tg_buf_append_lit(&c->out, "Server: " TG_SERVER_TOKEN "\r\n");
    if ((c->w->conf->headers & TG_HDR_REQUEST_ID) && c->request_id[0]) {
        n = snprintf(head, sizeof(head), "X-Kong-Request-Id: %s\r\n", c->request_id);
        tg_buf_append(&c->out, head, (size_t)n);
    }
    if (c->body_mode != BODY_NONE || !c->keepalive) {
        c->close_after = true;
        tg_buf_append_lit(&c->out, "Connection: close\r\n");
    }
    tg_buf_append_lit(&c->out, "\r\n");
    c->status = code;
    c->state = S_LOCAL;
}

/* Applies the response header edits made before the response existed. */
static void apply_pending_resp(tg_conn_t *c)
{
    for (size_t i = 0; i < c->npending_resp; i++) {
        const tg_http_header_t *h = &c->pending_resp[i];
        tg_pdk_resp_set_header(c, h->name, h->name_len, h->value, h->value_len,
                               c->pending_mode[i]);
    }
    c->npending_resp = 0;
}

/* A plugin's header_filter failed: as nginx when a header filter fails, the
 * request ends without an answer (the connection closes; log still runs). */
static void header_filter_failed(tg_conn_t *c)
{
    c->keepalive = false;
    c->close_after = true;
    if (c->up)
        c->up->no_reuse = true;
    c->state = S_CLOSING;
}

/* Answers a plugin's kong.response.exit (source "exit") or a gateway error
 * after access (source "error", Kong's error handler): its status, headers
 * and body, after header_filter (as Kong, the filters and log still run). */
static void respond_exit(tg_conn_t *c, const char *source)
{
    const tg_conf_t *conf = c->w->conf;
    char tmp[512];
    int n;
    c->source = source;
    c->status = c->exit_status;
    c->resp_h = c->local_h;
    c->resp_n = 0;
    c->resp_cap = TG_ARRAY_SIZE(c->local_h);
    apply_pending_resp(c);
    if (c->plugins && tg_plugins_run(c, TG_PHASE_HEADER_FILTER) != 0) {
        header_filter_failed(c);
        return;
    }
    int status = c->status ? c->status : c->exit_status;
    c->status = status;
    if (c->body_mode != BODY_NONE && !c->body_done)
        c->close_after = true;
    n = snprintf(tmp, sizeof(tmp), "HTTP/1.1 %d %s\r\n", status, tg_http_reason(status));
    tg_buf_append(&c->out, tmp, (size_t)n);
    bool has_server = false;
    for (size_t i = 0; i < c->resp_n; i++) {
        const tg_http_header_t *h = &c->resp_h[i];
        if (ieq(h->name, h->name_len, "content-length") ||
            ieq(h->name, h->name_len, "connection") ||
            ieq(h->name, h->name_len, "transfer-encoding"))
            continue;
        if (ieq(h->name, h->name_len, "server"))
            has_server = true;
        tg_buf_append(&c->out, h->name, h->name_len);
        tg_buf_append_lit(&c->out, ": ");
        tg_buf_append(&c->out, h->value, h->value_len);
        tg_buf_append_lit(&c->out, "\r\n");
    }
    bool nobody = status == 204 || status == 304 || status < 200;
    const char *body = c->exit_body;
    size_t blen = c->exit_body_len;
    bool failed = tg__filter_known(c, &body, &blen, !nobody && !c->head_request) != 0;
    if (failed)
        c->close_after = true;
    if (!nobody) {
        n = snprintf(tmp, sizeof(tmp), "Content-Length: %zu\r\n", blen);
        tg_buf_append(&c->out, tmp, (size_t)n);
    }
    if ((conf->headers & TG_HDR_SERVER) && !has_server)
        tg_buf_append_lit(&c->out, "Server: " TG_SERVER_TOKEN "\r\n");
    if (conf->headers & TG_HDR_RESPONSE_LATENCY) {
        n = snprintf(tmp, sizeof(tmp), "X-Kong-Response-Latency: %lld\r\n",
                     (long long)(now_ms() - c->t_start));
        tg_buf_append(&c->out, tmp, (size_t)n);
    }
    if (conf->headers & TG_HDR_REQUEST_ID) {
        n = snprintf(tmp, sizeof(tmp), "X-Kong-Request-Id: %s\r\n", c->request_id);
        tg_buf_append(&c->out, tmp, (size_t)n);
    }
    if (c->close_after || !c->keepalive)
        tg_buf_append_lit(&c->out, "Connection: close\r\n");
    tg_buf_append_lit(&c->out, "\r\n");
    if (!nobody && !c->head_request && blen && !failed)
        tg_buf_append(&c->out, body, blen);
    c->state = failed ? S_CLOSING : S_LOCAL;
}

/* The access phase's outcome `st`: true when the request goes on to the
 * upstream. */
static bool access_result(tg_conn_t *c, int st)
{
    if (st == 500) {
        /* Kong: JSON whatever Accept says, no request_id (KONG_COMPAT.md) */
        static const char body[] = "{\"message\":\"An unexpected error occurred\"}";
        c->exit_status = 500;
        c->exit_body = body;
        c->exit_body_len = sizeof(body) - 1;
        c->npending_resp = 0;
        tg_pdk_resp_set_header(c, "Content-Type", 12, "application/json; charset=utf-8", 31,
                               TG_HDR_SET);
        respond_exit(c, "error");
        return false;
    }
    if (c->exit_status) {
        respond_exit(c, "exit");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ lifecycle -- */

static void request_done(tg_conn_t *c);

static void log_access(tg_conn_t *c)
{
    tg_accesslog_t *al = tg_proxy_accesslog;
    if (!al)
        return;
    char line[2048];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char ts[64];
    strftime(ts, sizeof(ts), "%d/%b/%Y:%H:%M:%S %z", &tm);
    const tg_http_header_t *ua = find_header(c->req.headers, c->req.num_headers, "user-agent");
    const tg_http_header_t *ref = find_header(c->req.headers, c->req.num_headers, "referer");
    int n = snprintf(line, sizeof(line), "%s - - [%s] \"%.*s %.*s HTTP/1.%d\" %d %llu \"%.*s\" \"%.*s\"\n",
                     c->client_ip, ts, (int)c->req.method_len, c->req.method,
                     (int)(c->req.target_len > 1024 ? 1024 : c->req.target_len), c->req.target,
                     c->req.minor_version, c->status, (unsigned long long)c->bytes_sent,
                     ref ? (int)ref->value_len : 1, ref ? ref->value : "-",
                     ua ? (int)ua->value_len : 1, ua ? ua->value : "-");
    if (n > 0)
        tg_accesslog_write(al, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void snap_release(tg_conn_t *c)
{
    tg_snapshot_t *s = c->snap;
    if (!s)
        return;
    c->snap = NULL;
    int id = c->w->id;
    if (--s->per_worker[id].inflight == 0 && s->per_worker[id].retired && s != c->w->snap)
        tg_snapshot_unref(s);
}

static void reset_request(tg_conn_t *c)
{
    tg__lb_done(c);
    snap_release(c);
    c->route = NULL;
    c->req.num_headers = 0;
    c->head_len = 0;
    c->request_id[0] = 0;
    c->t_start = c->t_upstream_start = c->t_upstream_first = c->t_proxy_done = 0;
    c->status = 0;
    c->bytes_sent = 0;
    c->body_mode = BODY_NONE;
    c->body_left = 0;
    memset(&c->chunk, 0, sizeof(c->chunk));
    tg_buf_reset(&c->body);
    if (c->body_fd >= 0) {
        close(c->body_fd);
        c->body_fd = -1;
    }
    c->body_total = c->body_file_off = 0;
    c->body_done = c->expect_sent = false;
    c->target = NULL;
    c->tries = 0;
    c->fresh_only = false;
    tg_buf_reset(&c->upout);
    c->request_sent_any = false;
    c->res.num_headers = 0;
    c->res_mode = BODY_NONE;
    c->res_left = 0;
    memset(&c->res_chunk, 0, sizeof(c->res_chunk));
    c->dechunk = false;
    c->head_request = false;
    c->access_done = false;
    tg_plugins_request_done(c);
}

/* The log phase, once, after the last byte (or the connection's end). */
static void run_log_phase(tg_conn_t *c)
{
    if (c->plugins && !c->logged) {
        c->logged = true;
        tg_plugins_run(c, TG_PHASE_LOG);
    }
}

static void request_done(tg_conn_t *c)
{
    run_log_phase(c);
    if (c->t_start) {
        atomic_fetch_add_explicit(&tg_stats.total_requests, 1, memory_order_relaxed);
        log_access(c);
    }
    bool keep = c->keepalive && !c->close_after && !atomic_load(&c->w->stopping);
    /* the unread remainder of a request body we did not consume makes the
     * connection unusable */
    if (!c->body_done && c->body_mode != BODY_NONE)
        keep = false;
    if (c->up)
        up_release(c, false);
    tg_buf_consume(&c->in, 0);
    reset_request(c);
    if (!keep) {
        c->state = S_CLOSING;
        return;
    }
    c->state = S_HEAD;
}

/* ------------------------------------------------------------- routing -- */

/* A bounded copy of an address string (snprintf's "%s" without printf). */
static void copy_ip(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void set_client_ip(tg_conn_t *c)
{
    const tg_conf_t *conf = c->w->conf;
    copy_ip(c->client_ip, sizeof(c->client_ip), c->peer_ip);
    if (!conf->real_ip_header || !tg_conf_ip_trusted(conf, (struct sockaddr *)&c->peer))
        return;
    if (strcasecmp(conf->real_ip_header, "proxy_protocol") == 0) {
        if (c->pp_ip[0])
            copy_ip(c->client_ip, sizeof(c->client_ip), c->pp_ip);
        return;
    }
    char lname[128];
    size_t ln = strlen(conf->real_ip_header);
    if (ln >= sizeof(lname))
        return;
    for (size_t i = 0; i < ln; i++) {
        char ch = conf->real_ip_header[i];
        lname[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    const tg_http_header_t *h = tg_http_header_find(c->req.headers, c->req.num_headers, lname, ln);
    if (!h || !h->value_len)
        return;
    /* X-Forwarded-For style lists: the last address, or with
     * real_ip_recursive the last one not trusted. */
    const char *v = h->value;
    size_t len = h->value_len;
    char cand[INET6_ADDRSTRLEN];
    size_t end = len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && v[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b - a == 0 || b - a >= sizeof(cand))
            return;
        memcpy(cand, v + a, b - a);
        cand[b - a] = 0;
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, cand, &s4->sin_addr) == 1)
            s4->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, cand, &s6->sin6_addr) == 1)
            s6->sin6_family = AF_INET6;
        else
            return;
        copy_ip(c->client_ip, sizeof(c->client_ip), cand);
        if (!conf->real_ip_recursive || !tg_conf_ip_trusted(conf, (struct sockaddr *)&ss))
            return;
        if (start == 0)
            return;
        end = start - 1;
    }
}

static tg_target_t *pick_target(tg_conn_t *c)
{
    tg_service_t *s = c->route->service;
    if (s->upstream)
        return tg__lb_pick(c, s->upstream);
    /* an address host has its one target; a hostname is picked from dns.c's
     * answers by the caller */
    return s->ntargets ? &s->targets[0] : NULL;
}

static bool is_hop_by_hop(const tg_http_header_t *h, const tg_http_header_t *conn_hdr)
{
    const char *n = h->name;
    size_t nl = h->name_len;
    if (ieq(n, nl, "connection") || ieq(n, nl, "keep-alive") ||
        ieq(n, nl, "proxy-connection") || ieq(n, nl, "te") || ieq(n, nl, "trailer") ||
        ieq(n, nl, "transfer-encoding") || ieq(n, nl, "upgrade"))
        return true;
    if (conn_hdr) {
        /* headers named by Connection are hop-by-hop too */
        const char *p = conn_hdr->value, *end = p + conn_hdr->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
                p++;
            const char *s = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if (p > s && tg_str_ieq(h->name, h->name_len, s, (size_t)(p - s)))
                return true;
            if (p > s) {
                /* tg_str_ieq wants a lowercase second argument */
                char low[64];
                size_t n = (size_t)(p - s) < sizeof(low) ? (size_t)(p - s) : 0;
                for (size_t i = 0; i < n; i++)
                    low[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
                if (n && tg_str_ieq(h->name, h->name_len, low, n))
                    return true;
            }
        }
    }
    return false;
}

/* Builds the upstream request head into c->upout. */
static int build_upstream_head(tg_conn_t *c)
{
    const tg_conf_t *conf = c->w->conf;
    tg_route_t *r = c->route;
    tg_service_t *s = r->service;
    tg_buf_t *o = &c->upout;

    char upath[8192];
    int ulen;
    if (c->up_path) { /* kong.service.request.set_path */
        ulen = (int)c->up_path_len;
        memcpy(upath, c->up_path, c->up_path_len);
    } else {
        ulen = tg_router_upstream_path(&c->match, c->path, c->path_len, s->path, s->path_len,
                                       r->strip_path, upath, sizeof(upath));
    }
    if (ulen < 0)
        return TG_ETOOLARGE;

    if (c->up_method)
        tg_buf_append(o, c->up_method, c->up_method_len);
    else
        tg_buf_append(o, c->req.method, c->req.method_len);
    tg_buf_append_lit(o, " ");
    tg_buf_append(o, upath, (size_t)ulen);
    if (c->up_query ? c->up_query_len > 0 : c->req.query != NULL) {
        tg_buf_append_lit(o, "?");
        if (c->up_query)
            tg_buf_append(o, c->up_query, c->up_query_len);
        else
            tg_buf_append(o, c->req.query, c->req.query_len);
    }
    tg_buf_append_lit(o, " HTTP/1.1\r\nHost: ");
    const char *lbhost;
    size_t lbhost_len;
    if (c->ov.host) /* kong.service.set_target's host (Kong's $upstream_host) */
        tg_buf_append(o, c->ov.host, c->ov.host_len);
    else if (r->preserve_host && c->req.host)
        tg_buf_append(o, c->req.host, c->req.host_len);
    else if (c->lb_up && (lbhost = tg__lb_host(c, &lbhost_len)) != NULL)
        tg_buf_append(o, lbhost, lbhost_len);
    else
        tg_buf_append(o, s->host_header, s->host_header_len);
    tg_buf_append_lit(o, "\r\n");

    bool trusted = tg_conf_ip_trusted(conf, (struct sockaddr *)&c->peer);
    const tg_http_header_t *conn_hdr = find_header(c->req.headers, c->req.num_headers, "connection");
    const tg_http_header_t *xff = NULL, *via = NULL;
    const tg_http_header_t *xf_proto = NULL, *xf_host = NULL, *xf_port = NULL, *xf_path = NULL,
                           *xf_prefix = NULL;
    for (size_t i = 0; i < c->req.num_headers; i++) {
        const tg_http_header_t *h = &c->req.headers[i];
        if (is_hop_by_hop(h, conn_hdr) || ieq(h->name, h->name_len, "host") ||
            ieq(h->name, h->name_len, "content-length") || ieq(h->name, h->name_len, "expect") ||
            ieq(h->name, h->name_len, "x-real-ip") ||
            ieq(h->name, h->name_len, "x-kong-request-id"))
            continue;
        if (ieq(h->name, h->name_len, "x-forwarded-for")) {
            xff = h;
            continue;
        }
        if (ieq(h->name, h->name_len, "via")) {
            via = h;
            continue;
        }
        if (h->name_len > 12 && tg_str_ieq(h->name, 12, "x-forwarded-", 12)) {
            const char *suffix = h->name + 12;
            size_t sl = h->name_len - 12;
            const tg_http_header_t **slot = ieq(suffix, sl, "proto")    ? &xf_proto
                                            : ieq(suffix, sl, "host")   ? &xf_host
                                            : ieq(suffix, sl, "port")   ? &xf_port
                                            : ieq(suffix, sl, "path")   ? &xf_path
                                            : ieq(suffix, sl, "prefix") ? &xf_prefix
                                                                        : NULL;
            if (slot) {
                *slot = h;
                continue;
            }
        }
        tg_buf_append(o, h->name, h->name_len);
        tg_buf_append_lit(o, ": ");
        tg_buf_append(o, h->value, h->value_len);
        tg_buf_append_lit(o, "\r\n");
    }

    /* Kong: the client's X-Forwarded-For plus the TCP peer, or, without
     * one, the client address (after real_ip_header) */
    tg_buf_append_lit(o, "X-Real-IP: ");
    tg_buf_append_str(o, c->client_ip);
    tg_buf_append_lit(o, "\r\nX-Forwarded-For: ");
    if (xff) {
        tg_buf_append(o, xff->value, xff->value_len);
        tg_buf_append_lit(o, ", ");
        tg_buf_append_str(o, c->peer_ip);
    } else {
        tg_buf_append_str(o, c->client_ip);
    }
    tg_buf_append_lit(o, "\r\n");

#define XF(name, hdr, val, len)                                                                    \
    do {                                                                                           \
        tg_buf_append_lit(o, "X-Forwarded-" name ": ");                                            \
        if (trusted && (hdr))                                                                      \
            tg_buf_append(o, (hdr)->value, (hdr)->value_len);                                      \
        else                                                                                       \
            tg_buf_append(o, (val), (len));                                                        \
        tg_buf_append_lit(o, "\r\n");                                                              \
    } while (0)

    const char *host = c->req.host ? c->req.host : "";
    size_t hostlen = c->req.host ? c->req.host_len : 0;
    size_t hostonly = hostlen;
    if (hostlen && host[0] != '[') {
        const char *colon = memchr(host, ':', hostlen);
        if (colon)
            hostonly = (size_t)(colon - host);
    } else if (hostlen) {
        const char *rb = memchr(host, ']', hostlen);
        if (rb)
            hostonly = (size_t)(rb - host) + 1;
    }
    char port[8];
    size_t portlen = 0;
    for (unsigned p = c->local_port, div = 10000; div; div /= 10) {
        if (p / div || portlen || div == 1)
            port[portlen++] = (char)('0' + p / div % 10);
    }
    XF("Proto", xf_proto, c->ssl ? "https" : "http", c->ssl ? 5 : 4);
    XF("Host", xf_host, host, hostonly);
    XF("Port", xf_port, port, portlen);
    XF("Path", xf_path, c->req.path, c->req.path_len);
    if (r->strip_path && c->match.prefix_len > 0 &&
        !(c->match.prefix_len == 1 && c->path[0] == '/')) {
        XF("Prefix", xf_prefix, c->path, c->match.prefix_len);
    } else if (trusted && xf_prefix) {
        XF("Prefix", xf_prefix, "", 0);
    }
#undef XF

    if ((conf->headers_upstream & TG_HDR_REQUEST_ID)) {
        tg_buf_append_lit(o, "X-Kong-Request-Id: ");
        tg_buf_append_str(o, c->request_id);
        tg_buf_append_lit(o, "\r\n");
    }
    tg_buf_append_lit(o, "Via: ");
    if (via) {
        tg_buf_append(o, via->value, via->value_len);
        tg_buf_append_lit(o, ", ");
    }
    tg_buf_append_lit(o, "1.1 tollgate/" TG_VERSION "\r\n");

    if (c->req.upgrade) {
        const tg_http_header_t *up = find_header(c->req.headers, c->req.num_headers, "upgrade");
        tg_buf_append_lit(o, "Connection: upgrade\r\nUpgrade: ");
        if (up)
            tg_buf_append(o, up->value, up->value_len);
        tg_buf_append_lit(o, "\r\n");
    } else {
        tg_buf_append_lit(o, "Connection: keep-alive\r\n");
    }
    if (c->up_body_set) {
        tg_buf_append_lit(o, "Content-Length: ");
        tg_buf_append_u64(o, c->up_body_len);
        tg_buf_append_lit(o, "\r\n");
    } else if (c->body_mode == BODY_CHUNKED && !c->route->request_buffering) {
        tg_buf_append_lit(o, "Transfer-Encoding: chunked\r\n");
    } else if (c->body_mode != BODY_NONE) {
        uint64_t len = c->route->request_buffering ? c->body_total : (uint64_t)c->req.content_length;
        tg_buf_append_lit(o, "Content-Length: ");
        tg_buf_append_u64(o, len);
        tg_buf_append_lit(o, "\r\n");
    }
    tg_buf_append_lit(o, "\r\n");
    return 0;
}

static const char *rebase(const char *p, const char *from, const char *to)
{
    return p ? to + (p - from) : NULL;
}

/* The parsed slices point into c->in, which later reads compact or move:
 * copy the head into its own buffer (reused across requests) and move the
 * slices there. */
static int keep_head(tg_conn_t *c)
{
    const char *from = tg_buf_start(&c->in);
    tg_buf_reset(&c->head);
    if (tg_buf_append(&c->head, from, c->head_len) != 0)
        return TG_ENOMEM;
    const char *to = c->head.data;
    tg_http_request_t *r = &c->req;
    r->method = rebase(r->method, from, to);
    r->target = rebase(r->target, from, to);
    r->path = rebase(r->path, from, to);
    r->query = rebase(r->query, from, to);
    r->host = rebase(r->host, from, to);
    for (size_t i = 0; i < r->num_headers; i++) {
        r->headers[i].name = rebase(r->headers[i].name, from, to);
        r->headers[i].value = rebase(r->headers[i].value, from, to);
    }
    return 0;
}

/* Parses the head in c->in and decides what happens to the request. */
static bool rewrite_result(tg_conn_t *c, int st);
static void route_request(tg_conn_t *c);

static void start_request(tg_conn_t *c)
{
    const tg_conf_t *conf = c->w->conf;
    tg_worker_t *w = c->w;
    c->req.headers = c->headers;
    c->req.num_headers = TG_PROXY_MAX_HEADERS;
    tg_http_limits_t lim = {conf->max_request_line, conf->max_header_size, conf->max_headers};
    if (lim.max_headers == 0 || lim.max_headers > TG_PROXY_MAX_HEADERS)
        lim.max_headers = TG_PROXY_MAX_HEADERS;
    int rc = tg_http_parse_request(tg_buf_start(&c->in), tg_buf_used(&c->in), &c->req, &lim);
    if (rc == TG_EAGAIN) {
        client_want_read(c, conf->client_header_timeout_ms);
        return;
    }
    c->t_start = now_ms();
    c->t_start_wall = tg_pdk_now();
    tg_request_id_new(c->request_id);
    if (rc < 0) {
        tg_log(TG_LOG_INFO, "client %s sent an invalid request: %s", c->peer_ip,
               c->req.error ? c->req.error : "malformed");
        c->req.num_headers = 0;
        c->keepalive = false;
        snprintf(c->client_ip, sizeof(c->client_ip), "%s", c->peer_ip);
        respond_error(c, c->req.error_status ? c->req.error_status : 400, NULL, false, true);
        return;
    }
    c->head_len = (size_t)rc;
    /* nginx's large_client_header_buffers: one header line must fit a buffer */
    if (conf->max_header_line) {
        for (size_t i = 0; i < c->req.num_headers; i++) {
            if (c->req.headers[i].name_len + c->req.headers[i].value_len + 2 >
                conf->max_header_line) {
                c->req.num_headers = 0;
                c->keepalive = false;
                respond_error(c, 494, NULL, false, true);
                return;
            }
        }
    }
    if (keep_head(c) != 0) {
        c->req.num_headers = 0;
        respond_error(c, 500, NULL, false, true);
        return;
    }
    c->keepalive = c->req.keepalive;
    c->head_request = ieq(c->req.method, c->req.method_len, "head");
    set_client_ip(c);

    /* the request keeps the snapshot it started with */
    c->snap = w->snap;
    c->snap->per_worker[w->id].inflight++;

    /* body framing */
    if (c->req.chunked) {
        c->body_mode = BODY_CHUNKED;
    } else if (c->req.content_length > 0) {
        c->body_mode = BODY_LENGTH;
        c->body_left = c->req.content_length;
    } else {
        c->body_done = true;
    }
    tg_buf_consume(&c->in, c->head_len);

    int plen = tg_uri_normalize(c->req.path, c->req.path_len, c->path, sizeof(c->path));
    if (plen < 0) {
        respond_error(c, plen == TG_ETOOLARGE ? 414 : 400, NULL, false, true);
        return;
    }
    c->path_len = (size_t)plen;

    /* global plugins' rewrite runs before the router (KONG_COMPAT.md) */
    if (tg_plugins_active(w, 0)) {
        c->plugins = true;
        int st = tg_plugins_run(c, TG_PHASE_REWRITE);
        if (st == TG_PLUGINS_PENDING) {
            c->state = S_PLUGIN;
            set_deadline(c, 0);
            return;
        }
        if (!rewrite_result(c, st))
            return;
    }
    route_request(c);
}

/* The rewrite phase's outcome: true when the request goes on to routing. */
static bool rewrite_result(tg_conn_t *c, int st)
{
    if (st == 500) {
        respond_error(c, 500, NULL, false, c->body_mode != BODY_NONE);
        return false;
    }
    if (c->exit_status) {
        respond_exit(c, "exit");
        return false;
    }
    return true;
}

static void route_request(tg_conn_t *c)
{
    const tg_conf_t *conf = c->w->conf;
    tg_worker_t *w = c->w;
    tg_router_req_t rq = {
        .method = c->req.method,
        .method_len = c->req.method_len,
        .host = c->req.host,
        .host_len = c->req.host ? c->req.host_len : 0,
        .path = c->path,
        .path_len = c->path_len,
        .protocol = c->ssl ? TG_PROTO_HTTPS : TG_PROTO_HTTP,
        .port = c->local_port,
        .headers = c->req.headers,
        .num_headers = c->req.num_headers,
    };
    if (c->ssl) {
        rq.sni = SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
        rq.sni_len = rq.sni ? strlen(rq.sni) : 0;
    }
    if (!c->snap->router ||
        tg_router_match(c->snap->router, w->router_cache, &rq, &c->match) != 0) {
        respond_error(c, 404, "no Route matched with those values", true, c->body_mode != BODY_NONE);
        return;
    }
    c->route = c->match.data;
    c->route_pos = c->route->pos;
    if (tg_plugins_active(w, c->route_pos))
        c->plugins = true;
    if (!c->match.protocol_ok) {
        /* an http request on an https-only route (KONG_COMPAT.md, "Errors") */
        int code = c->route->https_redirect_status_code;
        if (code == 426) {
            respond_error(c, 426, "Please use HTTPS protocol", true, c->body_mode != BODY_NONE);
        } else {
            respond_redirect_https(c, code);
        }
        return;
    }
    if (!c->route->service) {
        respond_error(c, 503, "no Service found with those values", true, c->body_mode != BODY_NONE);
        return;
    }
    if (conf->client_max_body_size > 0 && c->body_mode == BODY_LENGTH &&
        (uint64_t)c->req.content_length > conf->client_max_body_size) {
        respond_error(c, 413, NULL, false, true);
        return;
    }
    if (c->req.expect_continue && c->body_mode != BODY_NONE) {
        tg_buf_append_lit(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        c->expect_sent = true;
    }
    c->state = (c->route->request_buffering && c->body_mode != BODY_NONE) ? S_BODY : S_CONNECT;
}

/* ---------------------------------------------------------- the bodies -- */

static int body_store(tg_conn_t *c, const char *p, size_t n)
{
    const tg_conf_t *conf = c->w->conf;
    c->body_total += n;
    if (conf->client_max_body_size > 0 && c->body_total > conf->client_max_body_size)
        return TG_ETOOLARGE;
    if (c->body_fd < 0 && tg_buf_used(&c->body) + n <= conf->client_body_buffer_size)
        return tg_buf_append(&c->body, p, n);
    if (c->body_fd < 0) {
        /* spill to an anonymous file under the prefix */
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s", conf->prefix ? conf->prefix : "/tmp");
        c->body_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (c->body_fd < 0)
            c->body_fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (c->body_fd < 0)
            return TG_EIO;
        if (tg_buf_used(&c->body) &&
            write(c->body_fd, tg_buf_start(&c->body), tg_buf_used(&c->body)) !=
                (ssize_t)tg_buf_used(&c->body))
            return TG_EIO;
        tg_buf_reset(&c->body);
    }
    return write(c->body_fd, p, n) == (ssize_t)n ? 0 : TG_EIO;
}

/* Takes body bytes from c->in. With `sink` NULL the payload is stored
 * (buffering); otherwise the raw framing bytes are appended to sink
 * (streaming). Returns 0, or an HTTP status to fail with. */
static int body_pump(tg_conn_t *c, tg_buf_t *sink)
{
    while (!c->body_done && tg_buf_used(&c->in) > 0) {
        const char *p = tg_buf_start(&c->in);
        size_t avail = tg_buf_used(&c->in);
        if (c->body_mode == BODY_LENGTH) {
            size_t n = avail < (uint64_t)c->body_left ? avail : (size_t)c->body_left;
            int rc = sink ? tg_buf_append(sink, p, n) : body_store(c, p, n);
            if (rc == TG_ETOOLARGE)
                return 413;
            if (rc)
                return 500;
            tg_buf_consume(&c->in, n);
            c->body_left -= (int64_t)n;
            if (c->body_left == 0)
                c->body_done = true;
        } else {
            const char *data;
            size_t dlen;
            int n = tg_http_chunked_next(&c->chunk, p, avail, &data, &dlen);
            if (n < 0)
                return 400;
            if (n == 0)
                break;
            int rc = 0;
            if (sink) {
                rc = tg_buf_append(sink, p, (size_t)n);
                c->body_total += dlen;
                if (c->w->conf->client_max_body_size > 0 &&
                    c->body_total > c->w->conf->client_max_body_size)
                    rc = TG_ETOOLARGE;
            } else if (dlen) {
                rc = body_store(c, data, dlen);
            }
            if (rc == TG_ETOOLARGE)
                return 413;
            if (rc)
                return 500;
            tg_buf_consume(&c->in, (size_t)n);
            if (c->chunk.done)
                c->body_done = true;
        }
    }
    return 0;
}

/* ---------------------------------------------------------- upstream io -- */

static void upstream_failed(tg_conn_t *c, int status, const char *why);
static void up_io(tg_conn_t *c, short what);

static void start_upstream(tg_conn_t *c)
{
    tg_worker_t *w = c->w;
    tg_service_t *s = c->route->service;
    if (!c->t_upstream_start)
        c->t_upstream_start = now_ms();
    const char *msg;
    int st, ov = tg__ov_pick(c, &st, &msg); /* kong.service.set_target / set_upstream */
    if (ov < 0) {
        respond_error(c, st, msg, true, !c->body_done);
        return;
    }
    if (!ov && s->resolve_error) {
        /* after access, as Kong's balancer phase: the plugins ran, and their
         * filters and log see this answer */
        respond_error(c, 503, s->ntargets == 0 && !strcmp(s->resolve_error, "no healthy targets")
                                  ? "failure to get a peer from the ring-balancer"
                                  : "name resolution failed",
                      true, !c->body_done);
        return;
    }
    if (!ov && s->dns) { /* a hostname: the worker's view of dns.c's current answers */
        st = tg_dns_pick(s->dns, w->id, s->port, &c->dns_target, &msg);
        if (st) {
            respond_error(c, st, msg, true, !c->body_done);
            return;
        }
    }
    if (!ov)
        c->target = s->dns ? &c->dns_target : pick_target(c);
    if (!c->target) {
        respond_error(c, 503, "failure to get a peer from the ring-balancer", true, !c->body_done);
        return;
    }
    /* TLS: the SNI Kong sends is the host the upstream is asked for */
    char snibuf[256];
    const char *sni = NULL, *vhost = NULL;
    uint64_t tls_key = 0;
    bool use_tls; /* the service's protocol, or kong.service.request.set_scheme's */
    const tg_tls_upstream_t *tls = tg__ov_tls(c, &use_tls);
    if (use_tls) {
        /* the host of the Host header build_upstream_head sends */
        const char *base = c->ov.host ? c->ov.host : s->host, *h = base;
        size_t hl = strlen(base);
        if (c->ov.host)
            ;
        else if (c->route->preserve_host && c->req.host)
            h = c->req.host, hl = c->req.host_len;
        else if (c->lb_up && (h = tg__lb_host(c, &hl)) == NULL)
            h = s->host, hl = strlen(s->host);
        tls_key = tg_tls_upstream_target(tls, h, hl, snibuf, sizeof(snibuf), &sni);
        vhost = sni ? sni : base;
    }
    tg_upconn_t *u = c->fresh_only ? NULL : up_take_idle(w, c->target, tls_key);
    if (!u) {
        int err = 0;
        u = up_connect(w, c->target, &err);
        if (u && use_tls) {
            u->ssl = tg_tls_connect_new(u->fd, tls, sni, vhost);
            u->tls_key = tls_key;
            u->handshaking = true;
            if (!u->ssl) {
                up_free(u);
                u = NULL;
                err = ENOMEM;
            }
        }
        if (!u) {
            tg_log(TG_LOG_ERR, "connect() to %s failed: %s", c->target->name, strerror(err));
            upstream_failed(c, 502, "connect");
            return;
        }
        u->reused = false;
    }
    u->owner = c;
    c->up = u;
    tg_buf_reset(&c->upout);
    if (build_upstream_head(c) != 0) {
        respond_error(c, 414, NULL, false, true);
        return;
    }
    if (c->up_body_set) {
        /* kong.service.request.set_raw_body replaces what the client sent */
        tg_buf_append(&c->upout, c->up_body, c->up_body_len);
        if (!c->body_done)
            c->close_after = true;
    } else if (c->route->request_buffering && c->body_fd < 0 && tg_buf_used(&c->body)) {
        tg_buf_append(&c->upout, tg_buf_start(&c->body), tg_buf_used(&c->body));
    }
    c->body_file_off = 0;
    c->request_sent_any = false;
    if (u->reused) {
        /* a pooled connection is almost always writable: send now rather
         * than arming a write event (an epoll_ctl each way) */
        c->state = S_SEND;
        up_io(c, EV_WRITE);
        return;
    }
    c->state = S_CONNECT;
    up_want(u, EV_WRITE, tg__connect_timeout(c));
}

/* A failure before any response byte arrived: retry when that is safe (the
 * body can be sent again), else answer `status`. A pooled connection that
 * turned out stale is replaced by a fresh one without counting a try. */
static void upstream_failed(tg_conn_t *c, int status, const char *why)
{
    bool stale = c->up && c->up->reused && !c->t_upstream_first;
    if (!stale)
        tg__lb_report(c, status == 504 ? TG_HEV_TIMEOUT : TG_HEV_TCP_FAILURE, 0);
    if (c->up)
        up_release(c, false);
    bool replayable = c->body_mode == BODY_NONE || c->route->request_buffering;
    /* as nginx's proxy_next_upstream: a non-idempotent request is not sent twice */
    if (c->request_sent_any && (ieq(c->req.method, c->req.method_len, "post") ||
                                ieq(c->req.method, c->req.method_len, "patch") ||
                                ieq(c->req.method, c->req.method_len, "lock")))
        replayable = false;
    if (replayable && (stale || c->tries < tg__retries(c))) {
        if (stale) {
            c->fresh_only = true;
        } else {
            c->tries++;
            tg_log(TG_LOG_WARN, "upstream %s failed (%s), retrying (%d/%d)",
                   c->target ? c->target->name : "?", why, c->tries, tg__retries(c));
        }
        start_upstream(c);
        return;
    }
    tg_log(TG_LOG_ERR, "upstream %s failed: %s", c->target ? c->target->name : "?", why);
    respond_error(c, status, NULL, false, !c->body_done);
}

/* Fills c->upout with more request body: from the spill file, or streamed
 * from the client. Returns 0, or a status to fail with. */
static int refill_upout(tg_conn_t *c)
{
    if (c->up_body_set)
        return 0;
    if (c->route->request_buffering) {
        if (c->body_fd >= 0 && c->body_file_off < c->body_total) {
            if (tg_buf_reserve(&c->upout, 65536) != 0)
                return 500;
            ssize_t n = pread(c->body_fd, c->upout.data + c->upout.len, 65536,
                              (off_t)c->body_file_off);
            if (n <= 0)
                return 500;
            c->upout.len += (size_t)n;
            c->body_file_off += (uint64_t)n;
        }
        return 0;
    }
    return body_pump(c, &c->upout);
}

static bool request_fully_sent(tg_conn_t *c)
{
    if (tg_buf_used(&c->upout))
        return false;
    if (c->up_body_set)
        return true;
    if (c->route->request_buffering)
        return c->body_fd < 0 || c->body_file_off >= c->body_total;
    return c->body_done;
}

static bool response_started(tg_conn_t *c);

/* recv()/send() on a plain or a TLS socket; *other is set when TLS waits for
 * the opposite direction. */
static ssize_t io_recv(int fd, SSL *ssl, void *p, size_t n, bool *other)
{
    if (!ssl) {
        *other = false;
        return recv(fd, p, n, 0);
    }
    return tg_tls_recv(ssl, p, n, other);
}

static ssize_t io_send(int fd, SSL *ssl, const void *p, size_t n, bool *other)
{
    if (!ssl) {
        *other = false;
        return send(fd, p, n, MSG_NOSIGNAL);
    }
    return tg_tls_send(ssl, p, n, other);
}

/* Reads from an edge-triggered socket into `b` until EAGAIN, or until `b`
 * holds more than the read-ahead bound (then *pending is set: the edge was
 * not drained). 1 = ok (maybe nothing new), 0 = closed, -1 = error (errno).
 * *other: TLS waits for the socket to be writable before it reads on. */
static int read_edge(int fd, SSL *ssl, tg_buf_t *b, bool *pending, bool *other)
{
    for (;;) {
        if (tg_buf_used(b) > 4 * TG_PROXY_READ_AHEAD) {
            *pending = true;
            return 1;
        }
        if (tg_buf_reserve(b, 16384) != 0)
            return -1;
        ssize_t n = io_recv(fd, ssl, b->data + b->len, b->cap - b->len, other);
        if (n > 0) {
            b->len += (size_t)n;
            continue;
        }
        if (n == 0)
            return 0;
        return errno == EAGAIN || errno == EINTR ? 1 : -1;
    }
}

/* Reads what the upstream sent into u->in (read_edge's results). */
static int up_recv(tg_conn_t *c)
{
    tg_upconn_t *u = c->up;
    size_t before = tg_buf_used(&u->in);
    bool other;
    int r = read_edge(u->fd, u->ssl, &u->in, &u->read_pending, &other);
    if (other)
        u->want_write = true;
    if (!c->t_upstream_first && tg_buf_used(&u->in) > before)
        c->t_upstream_first = now_ms();
    return r;
}

/* Sends as much of the request as the socket takes. 1 = all sent, 0 = wait,
 * -1 = failed (answered or retried already). */
static int up_send(tg_conn_t *c)
{
    tg_upconn_t *u = c->up;
    for (;;) {
        if (!tg_buf_used(&c->upout)) {
            int st = refill_upout(c);
            if (st) {
                up_release(c, false);
                respond_error(c, st, NULL, false, true);
                return -1;
            }
        }
        if (!tg_buf_used(&c->upout))
            return request_fully_sent(c) ? 1 : 0;
        bool other;
        ssize_t n = io_send(u->fd, u->ssl, tg_buf_start(&c->upout), tg_buf_used(&c->upout),
                            &other);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            if (!c->request_sent_any || u->reused) {
                upstream_failed(c, 502, strerror(errno));
            } else {
                tg_log(TG_LOG_ERR, "send() to %s failed: %s", c->target->name, strerror(errno));
                up_release(c, false);
                respond_error(c, 502, NULL, false, true);
            }
            return -1;
        }
        c->request_sent_any = true;
        tg_buf_consume(&c->upout, (size_t)n);
    }
}

static void up_io(tg_conn_t *c, short what)
{
    tg_upconn_t *u = c->up;
    if (what & EV_TIMEOUT) {
        if (c->state == S_RESP_BODY && !c->buffering) {
            tg_log(TG_LOG_ERR, "upstream timed out while reading the response from %s",
                   c->target->name);
            tg__lb_report(c, TG_HEV_TIMEOUT, 0);
            up_release(c, false);
            c->close_after = true;
            c->state = S_CLOSING;
            return;
        }
        tg_log(TG_LOG_ERR, "upstream timed out (%s) %s",
               c->state == S_CONNECT ? "connect" : c->state == S_SEND ? "write" : "read",
               c->target->name);
        if (c->state == S_CONNECT) {
            upstream_failed(c, 504, "connect timeout");
        } else if (!c->t_upstream_first && !tg_buf_used(&u->in)) {
            /* no byte of the answer yet: as nginx's proxy_next_upstream
             * timeout, another target may be tried (upstream_failed decides:
             * never a non-idempotent request whose bytes were sent) */
            u->reused = false; /* a timeout is not a stale pooled connection */
            upstream_failed(c, 504, c->state == S_SEND ? "write timeout" : "read timeout");
        } else {
            tg__lb_report(c, TG_HEV_TIMEOUT, 0);
            up_release(c, false);
            respond_error(c, 504, NULL, false, !c->body_done);
        }
        return;
    }
    if (c->state == S_CONNECT) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            tg_log(TG_LOG_ERR, "connect() to %s failed: %s", c->target->name, strerror(err));
            upstream_failed(c, 502, "connect");
            return;
        }
        if (u->handshaking) {
            bool want_write;
            char why[512];
            int h = tg_tls_handshake(u->ssl, &want_write, why, sizeof(why));
            if (h == 0) {
                up_want(u, want_write ? EV_WRITE : EV_READ, tg__connect_timeout(c));
                return;
            }
            if (h < 0) {
                tg_log(TG_LOG_ERR, "upstream %s: %s", c->target->name, why);
                upstream_failed(c, 502, why);
                return;
            }
            u->handshaking = false;
        }
        c->state = S_SEND;
    }
    if (c->state == S_SEND) {
        int sent = up_send(c);
        if (sent < 0)
            return;
        if (sent == 0) {
            /* wait for the socket, or (streaming) for more body from the
             * client; an early answer from the upstream is read meanwhile */
            if (what & EV_READ) {
                int r = up_recv(c);
                if (r <= 0) {
                    tg_log(TG_LOG_ERR, "upstream %s closed the connection while the request "
                                       "was being sent", c->target->name);
                    up_release(c, false);
                    respond_error(c, 502, NULL, false, true);
                    return;
                }
            }
            if (tg_buf_used(&u->in) == 0) {
                up_want(u, EV_READ | (tg_buf_used(&c->upout) ? EV_WRITE : 0), tg__write_timeout(c));
                if (!c->route->request_buffering && !c->body_done)
                    client_want_read(c, c->w->conf->client_body_timeout_ms);
                return;
            }
            /* the upstream answered before taking the whole body */
            c->close_after = true;
            u->no_reuse = true;
        }
        c->state = S_RESP_HEAD;
    }
    /* S_RESP_HEAD */
    int r = up_recv(c);
    if (r < 0 || (r == 0 && tg_buf_used(&u->in) == 0)) {
        if (u->reused && tg_buf_used(&u->in) == 0 && !c->t_upstream_first) {
            upstream_failed(c, 502, r < 0 ? strerror(errno) : "closed");
            return;
        }
        tg_log(TG_LOG_ERR, "upstream %s closed the connection before sending a response",
               c->target->name);
        /* no byte of the answer came: as nginx's proxy_next_upstream error,
         * another target when the request may be sent again */
        upstream_failed(c, 502, "closed before a response");
        return;
    }
    c->res.headers = c->res_headers;
    c->res.num_headers = TG_PROXY_MAX_HEADERS;
    size_t max_head = c->w->conf->max_header_size ? c->w->conf->max_header_size * 4 : 65536;
    int rc = tg_http_parse_response(tg_buf_start(&u->in), tg_buf_used(&u->in), &c->res, max_head);
    if (rc == TG_EAGAIN && r != 0) {
        up_want(u, EV_READ, tg__read_timeout(c));
        return;
    }
    if (rc < 0) {
        tg_log(TG_LOG_ERR, "upstream %s sent an invalid response: %s", c->target->name,
               c->res.error ? c->res.error : r == 0 ? "closed mid-head" : "malformed");
        up_release(c, false);
        respond_error(c, 502, NULL, false, !c->body_done);
        return;
    }
    if (c->res.status >= 100 && c->res.status < 200 && c->res.status != 101) {
        tg_buf_consume(&u->in, (size_t)rc); /* interim answers are ours to give */
        if (tg_buf_used(&u->in))
            up_io(c, EV_READ);
        else
            up_want(u, EV_READ, tg__read_timeout(c));
        return;
    }
    if (r == 0)
        u->no_reuse = true;
    c->t_proxy_done = now_ms();
    /* kept only for plugins that run once the response is there */
    if (tg_plugins_wants(c, TG_PHASE_RESPONSE | TG_PHASE_HEADER_FILTER | TG_PHASE_BODY_FILTER |
                                TG_PHASE_LOG) &&
        tg__filter_keep_head(c, tg_buf_start(&u->in), (size_t)rc) != 0) {
        up_release(c, false);
        respond_error(c, 500, NULL, false, true);
        return;
    }
    bool done = response_started(c);
    tg_buf_consume(&u->in, (size_t)rc);
    if (done) {
        /* an exit in header_filter answered instead of the upstream's body */
        up_release(c, false);
        if (c->state != S_CLOSING)
            c->state = S_LOCAL;
        return;
    }
    c->state = c->res.status == 101 && c->req.upgrade ? S_TUNNEL : S_RESP_BODY;
}

static bool nobody_status(int status)
{
    return status == 204 || status == 304 || (status >= 100 && status < 200);
}

void tg__proxy_head_end(tg_conn_t *c)
{
    bool keep = c->keepalive && !c->close_after && !atomic_load(&c->w->stopping);
    if (!keep)
        c->close_after = true;
    if (c->req.minor_version == 0 && keep)
        tg_buf_append_lit(&c->out, "Connection: keep-alive\r\n");
    else if (!keep)
        tg_buf_append_lit(&c->out, "Connection: close\r\n");
    tg_buf_append_lit(&c->out, "\r\n");
}

static bool response_head(tg_conn_t *c);

/* Decides how the upstream's body ends and, unless the body is buffered
 * first, writes the head. True when the client's answer is complete (an exit
 * in header_filter replaced the body). */
static bool response_started(tg_conn_t *c)
{
    tg_http_response_t *res = &c->res;
    c->status = res->status;

    bool nobody = c->head_request || nobody_status(res->status);
    if (nobody)
        c->res_mode = BODY_NONE;
    else if (res->chunked)
        c->res_mode = BODY_CHUNKED;
    else if (res->content_length >= 0)
        c->res_mode = BODY_LENGTH, c->res_left = res->content_length;
    else
        c->res_mode = BODY_CLOSE;
    if (c->res_mode == BODY_LENGTH && c->res_left == 0)
        c->res_mode = BODY_NONE;
    if (!res->keepalive || c->res_mode == BODY_CLOSE)
        c->up->no_reuse = true;
    if (c->buffering && c->req.upgrade) {
        /* as Kong: no buffered proxying for a connection upgrade */
        tg_log(TG_LOG_NOTICE, "response buffering was turned off: connection upgrade");
        c->buffering = false;
    }
    /* plugins that see the body re-frame it (proxy_filter.c) */
    c->bf = tg_plugins_wants(c, TG_PHASE_BODY_FILTER);
    if (!c->buffering && !(c->bf && !nobody)) {
        if (c->res_mode == BODY_CLOSE)
            c->close_after = true;
        if (c->res_mode == BODY_CHUNKED && c->req.minor_version == 0) {
            c->dechunk = true;
            c->close_after = true;
        }
    }
    c->source = "service";
    tg__lb_report(c, TG_HEV_SUCCESS, res->status);
    if (c->buffering)
        return false; /* the whole body first, then the response phase */
    return response_head(c);
}

/* Buffered proxying: the upstream's body is in c->bf_in; runs the response
 * phase, then answers like response_head. */
static void response_result(tg_conn_t *c, int st);

static void response_buffered(tg_conn_t *c)
{
    c->resp_h = c->res_headers;
    c->resp_n = c->res.num_headers;
    c->resp_cap = TG_PROXY_MAX_HEADERS;
    apply_pending_resp(c);
    int st = tg_plugins_run(c, TG_PHASE_RESPONSE);
    if (st == TG_PLUGINS_PENDING) {
        c->state = S_PLUGIN;
        set_deadline(c, 0);
        return;
    }
    response_result(c, st);
}

/* The response phase's outcome: the answer. */
static void response_result(tg_conn_t *c, int st)
{
    if (st == 500) {
        /* Kong: the error handler answers (by Accept, with the request id) */
        c->resp_h = NULL;
        respond_error(c, 500, NULL, false, false);
        return;
    }
    if (c->exit_status)
        c->status = c->exit_status;
    response_head(c);
    if (c->state != S_CLOSING)
        c->state = S_LOCAL;
}

/* Runs header_filter and writes the response head; with a known body
 * (buffered, or an exit in header_filter) the body too, after body_filter.
 * True when the client's answer is complete. */
static bool response_head(tg_conn_t *c)
{
    const tg_conf_t *conf = c->w->conf;
    tg_http_response_t *res = &c->res;
    tg_buf_t *o = &c->out;

    /* whether plugins may have edited the upstream's headers: an edit
     * pending from access or a header_filter to run */
    bool edited = false;
    if (c->plugins) {
        edited = c->npending_resp > 0 || tg_plugins_wants(c, TG_PHASE_HEADER_FILTER);
        if (!c->resp_h) {
            c->resp_h = c->res_headers;
            c->resp_n = res->num_headers;
            c->resp_cap = TG_PROXY_MAX_HEADERS;
            apply_pending_resp(c);
        }
        if (tg_plugins_run(c, TG_PHASE_HEADER_FILTER) != 0) {
            header_filter_failed(c);
            return true; /* nothing is sent */
        }
        res->num_headers = c->resp_n;
    }
    /* the body the client gets when it is known now */
    bool known = c->exit_status || c->buffering;
    const char *kb = NULL;
    size_t kn = 0;
    if (c->exit_status) {
        kb = c->exit_body, kn = c->exit_body_len;
    } else if (c->buffering) {
        kb = tg_buf_start(&c->bf_in), kn = tg_buf_used(&c->bf_in);
    }
    bool nobody = c->head_request || nobody_status(c->status);
    bool failed = false;
    c->out_mode = TG_OUT_RAW;
    if (known) {
        failed = tg__filter_known(c, &kb, &kn, !nobody) != 0;
        /* without a body (HEAD, 204, 304) the upstream's headers stand */
        c->out_mode = nobody && !c->exit_status ? TG_OUT_RAW : TG_OUT_LENGTH;
    } else if (c->bf && nobody) {
        failed = tg__filter_known(c, &kb, &kn, false) != 0;
    } else if (c->bf || (edited && c->res_mode == BODY_LENGTH &&
                         !find_header(res->headers, res->num_headers, "content-length"))) {
        /* the body may change, or header_filter dropped its length */
        c->out_mode = TG_OUT_OPEN;
    }
    if (failed)
        c->close_after = true;

    tg_buf_append_lit(o, "HTTP/1.1 ");
    tg_buf_append_i64(o, c->status);
    tg_buf_append_lit(o, " ");
    if (res->reason_len && c->status == res->status)
        tg_buf_append(o, res->reason, res->reason_len);
    else
        tg_buf_append_str(o, tg_http_reason(c->status));
    tg_buf_append_lit(o, "\r\n");

    const tg_http_header_t *conn_hdr = find_header(res->headers, res->num_headers, "connection");
    const tg_http_header_t *via = NULL;
    bool has_server = false;
    bool upgrade = res->status == 101 && c->req.upgrade;
    for (size_t i = 0; i < res->num_headers; i++) {
        const tg_http_header_t *h = &res->headers[i];
        if (ieq(h->name, h->name_len, "transfer-encoding")) {
            if (!c->dechunk && c->out_mode == TG_OUT_RAW)
                tg_buf_append_lit(o, "Transfer-Encoding: chunked\r\n");
            continue;
        }
        if (c->out_mode != TG_OUT_RAW && ieq(h->name, h->name_len, "content-length"))
            continue;
        if (upgrade && (ieq(h->name, h->name_len, "upgrade") ||
                        ieq(h->name, h->name_len, "connection"))) {
            tg_buf_append(o, h->name, h->name_len);
            tg_buf_append_lit(o, ": ");
            tg_buf_append(o, h->value, h->value_len);
            tg_buf_append_lit(o, "\r\n");
            continue;
        }
        if (is_hop_by_hop(h, conn_hdr))
            continue;
        if (ieq(h->name, h->name_len, "via")) {
            via = h;
            continue;
        }
        if (ieq(h->name, h->name_len, "server"))
            has_server = true;
        tg_buf_append(o, h->name, h->name_len);
        tg_buf_append_lit(o, ": ");
        tg_buf_append(o, h->value, h->value_len);
        tg_buf_append_lit(o, "\r\n");
    }
    unsigned hdrs = conf->headers;
    if (hdrs & TG_HDR_VIA) {
        tg_buf_append_lit(o, "Via: ");
        if (via) {
            tg_buf_append(o, via->value, via->value_len);
            tg_buf_append_lit(o, ", ");
        }
        tg_buf_append_lit(o, "1.1 tollgate/" TG_VERSION "\r\n");
    } else if (via) {
        tg_buf_append_lit(o, "Via: ");
        tg_buf_append(o, via->value, via->value_len);
        tg_buf_append_lit(o, "\r\n");
    }
    if ((hdrs & TG_HDR_SERVER) && !has_server)
        tg_buf_append_lit(o, "Server: tollgate/" TG_VERSION "\r\n");
    if (hdrs & TG_HDR_UPSTREAM_LATENCY) {
        tg_buf_append_lit(o, "X-Kong-Upstream-Latency: ");
        tg_buf_append_i64(o, c->t_proxy_done - c->t_upstream_start);
        tg_buf_append_lit(o, "\r\n");
    }
    if (hdrs & TG_HDR_PROXY_LATENCY) {
        tg_buf_append_lit(o, "X-Kong-Proxy-Latency: ");
        tg_buf_append_i64(o, c->t_upstream_start - c->t_start);
        tg_buf_append_lit(o, "\r\n");
    }
    if (hdrs & TG_HDR_UPSTREAM_STATUS) {
        tg_buf_append_lit(o, "X-Kong-Upstream-Status: ");
        tg_buf_append_i64(o, res->status);
        tg_buf_append_lit(o, "\r\n");
    }
    if (hdrs & TG_HDR_REQUEST_ID) {
        tg_buf_append_lit(o, "X-Kong-Request-Id: ");
        tg_buf_append_str(o, c->request_id);
        tg_buf_append_lit(o, "\r\n");
    }
    tg__lb_response(c, o);
    if (c->out_mode == TG_OUT_OPEN)
        return false; /* ended with the first filtered chunk (proxy_filter.c) */
    if (c->out_mode == TG_OUT_LENGTH && !nobody_status(c->status)) {
        tg_buf_append_lit(o, "Content-Length: ");
        tg_buf_append_u64(o, kn);
        tg_buf_append_lit(o, "\r\n");
    }
    if (upgrade)
        tg_buf_append_lit(o, "\r\n");
    else
        tg__proxy_head_end(c);
    if (!known)
        return false;
    if (!nobody && !failed && kn)
        tg_buf_append(o, kb, kn);
    if (failed)
        c->state = S_CLOSING;
    return true;
}

/* ------------------------------------------------------------- client io -- */

/* Reads what the client sent; returns -1 on EOF/error (connection to close). */
static int client_read(tg_conn_t *c)
{
    if (c->ssl && c->state == S_PROXY_PROTO) {
        /* the PROXY header comes before the handshake: peek at it, so that
         * the TLS layer reads the ClientHello from the socket itself */
        tg_buf_reset(&c->in);
        if (tg_buf_reserve(&c->in, 536) != 0)
            return -1;
        ssize_t n = recv(c->fd, c->in.data + c->in.len, 536, MSG_PEEK);
        if (n > 0)
            c->in.len += (size_t)n;
        return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)) ? 0 : -1;
    }
    bool other = false;
    int r = read_edge(c->fd, c->ssl, &c->in, &c->read_pending, &other);
    if (other) {
        c->tls_read_wants_write = true;
        c->want_write = true;
    }
    if (r < 0 && c->ssl && errno == EPROTO) {
        char e[256];
        tg_log(TG_LOG_INFO, "client %s: TLS error: %s", c->peer_ip,
               tg_tls_last_error(c->ssl, e, sizeof(e)));
    }
    return r == 1 ? 0 : -1;
}

/* Writes c->out; returns 1 when empty, 0 when blocked, -1 on error. */
static int client_flush(tg_conn_t *c)
{
    while (tg_buf_used(&c->out)) {
        bool other;
        ssize_t n = io_send(c->fd, c->ssl, tg_buf_start(&c->out), tg_buf_used(&c->out), &other);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                client_want_write(c);
                return 0;
            }
            return -1;
        }
        c->bytes_sent += (uint64_t)n;
        tg_buf_consume(&c->out, (size_t)n);
    }
    return 1;
}

static void tunnel(tg_conn_t *c)
{
    tg_upconn_t *u = c->up;
    /* client -> upstream */
    if (tg_buf_used(&c->in)) {
        tg_buf_append(&c->upout, tg_buf_start(&c->in), tg_buf_used(&c->in));
        tg_buf_reset(&c->in);
    }
    bool other;
    while (tg_buf_used(&c->upout)) {
        ssize_t n = io_send(u->fd, u->ssl, tg_buf_start(&c->upout), tg_buf_used(&c->upout),
                            &other);
        if (n <= 0)
            break;
        tg_buf_consume(&c->upout, (size_t)n);
    }
    /* upstream -> client */
    for (;;) {
        if (tg_buf_used(&u->in)) {
            tg_buf_append(&c->out, tg_buf_start(&u->in), tg_buf_used(&u->in));
            tg_buf_reset(&u->in);
        }
        if (tg_buf_used(&c->out) > TG_PROXY_READ_AHEAD)
            break;
        if (tg_buf_reserve(&u->in, 16384) != 0)
            break;
        ssize_t n = io_recv(u->fd, u->ssl, u->in.data + u->in.len, u->in.cap - u->in.len, &other);
        if (n > 0) {
            u->in.len += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->close_after = true;
            c->state = S_CLOSING;
            up_release(c, false);
            return;
        }
        break;
    }
    short ev = EV_READ | (tg_buf_used(&c->upout) ? EV_WRITE : 0);
    up_want(u, ev, 0);
    client_want_read(c, 0);
}

/* ---------------------------------------------------------------- drive -- */

static void drive(tg_conn_t *c)
{
    for (int guard = 0; guard < 64; guard++) {
        int prev = c->state;
        switch (c->state) {
        case S_PROXY_PROTO: {
            tg_proxy_protocol_t pp;
            int rc = tg_proxy_protocol_parse(tg_buf_start(&c->in), tg_buf_used(&c->in), &pp);
            if (rc == TG_EAGAIN) {
                client_want_read(c, c->w->conf->client_header_timeout_ms);
                return;
            }
            if (rc < 0) {
                tg_log(TG_LOG_INFO, "client %s: broken PROXY protocol header", c->peer_ip);
                conn_close(c);
                return;
            }
            if (c->ssl) {
                /* only peeked (client_read): take the header off the
                 * socket; the handshake reads on from there */
                char skip[536];
                if (recv(c->fd, skip, (size_t)rc, 0) != rc) {
                    conn_close(c);
                    return;
                }
                tg_buf_reset(&c->in);
                c->read_pending = true;
            } else {
                tg_buf_consume(&c->in, (size_t)rc);
            }
            /* as nginx's $proxy_protocol_addr: the client address only
             * through real_ip_header = proxy_protocol from a trusted peer */
            if (pp.has_addr) {
                const void *a = pp.src.ss_family == AF_INET
                                    ? (const void *)&((struct sockaddr_in *)&pp.src)->sin_addr
                                    : (const void *)&((struct sockaddr_in6 *)&pp.src)->sin6_addr;
                inet_ntop(pp.src.ss_family, a, c->pp_ip, sizeof(c->pp_ip));
            }
            c->state = S_HEAD;
            break;
        }
        case S_HEAD:
            if (tg_buf_used(&c->out)) {
                int f = client_flush(c);
                if (f < 0) {
                    conn_close(c);
                    return;
                }
                if (f == 0)
                    return;
            }
            if (!tg_buf_used(&c->in)) {
                if (atomic_load(&c->w->stopping)) {
                    conn_close(c);
                    return;
                }
                /* a TLS handshake in progress has the head's deadline */
                if (c->ssl && !SSL_is_init_finished(c->ssl))
                    client_want_read(c, c->w->conf->client_header_timeout_ms > 0
                                            ? c->w->conf->client_header_timeout_ms
                                            : 60000);
                else
                    client_want_read(c, c->w->conf->keepalive_timeout_ms > 0
                                            ? c->w->conf->keepalive_timeout_ms
                                            : 60000);
                return;
            }
            start_request(c);
            if (c->state == S_HEAD)
                return; /* incomplete head */
            break;
        case S_BODY: {
            int st = body_pump(c, NULL);
            if (st) {
                respond_error(c, st, NULL, false, true);
                break;
            }
            if (!c->body_done) {
                if (tg_buf_used(&c->out) && client_flush(c) < 0) {
                    conn_close(c);
                    return;
                }
                client_want_read(c, c->w->conf->client_body_timeout_ms);
                return;
            }
            c->state = S_CONNECT;
            c->up = NULL;
            break;
        }
        case S_CONNECT:
            if (!c->up) {
                /* access runs once the body is buffered (request_buffering),
                 * or before it streams */
                if (c->plugins && !c->access_done) {
                    c->access_done = true;
                    int st = tg_plugins_run(c, TG_PHASE_ACCESS);
                    if (st == TG_PLUGINS_PENDING) {
                        c->state = S_PLUGIN;
                        set_deadline(c, 0);
                        return;
                    }
                    if (!access_result(c, st))
                        break;
                }
                start_upstream(c);
                if (c->state == S_CONNECT || c->state == S_SEND)
                    return;
                break;
            }
            return; /* waiting for the upstream */
        case S_SEND:
            if (tg_buf_used(&c->out) && client_flush(c) < 0) {
                conn_close(c);
                return;
            }
            if (c->up && !c->route->request_buffering) {
                up_io(c, EV_WRITE);
                if (c->state == S_SEND)
                    return;
                break;
            }
            return;
        case S_RESP_HEAD:
            return;
        case S_RESP_BODY: {
            int r = tg__response_pump(c);
            if (c->buffering && r != 0) {
                /* buffered proxying: the response phase, then the answer */
                up_release(c, r == 1 && !c->up->no_reuse);
                if (r == 1)
                    response_buffered(c);
                else
                    respond_error(c, 502, NULL, false, true);
                break;
            }
            if (r == -2) {
                /* a body_filter failed, or memory ran out (logged): the body
                 * ends here */
                c->close_after = true;
                up_release(c, false);
            } else if (r < 0) {
                tg_log(TG_LOG_ERR, "upstream %s sent a malformed chunked body", c->target->name);
                c->close_after = true;
                up_release(c, false);
            }
            int f = client_flush(c);
            if (f < 0) {
                conn_close(c);
                return;
            }
            if (r == 1 || r < 0) {
                if (r == 1 && c->up)
                    up_release(c, !c->up->no_reuse);
                if (f == 0) {
                    /* finish once the client took the rest */
                    c->state = S_LOCAL;
                    return;
                }
                request_done(c);
                break;
            }
            if (tg_buf_used(&c->out) > TG_PROXY_READ_AHEAD)
                return; /* bounded read-ahead: the client's write edge resumes us */
            up_want(c->up, EV_READ, tg__read_timeout(c));
            return;
        }
        case S_LOCAL: {
            int f = client_flush(c);
            if (f < 0) {
                conn_close(c);
                return;
            }
            if (f == 0)
                return;
            request_done(c);
            break;
        }
        case S_TUNNEL: {
            tunnel(c);
            int f = client_flush(c);
            if (f < 0) {
                conn_close(c);
                return;
            }
            if (c->state == S_TUNNEL)
                return;
            break;
        }
        case S_PLUGIN:
            return; /* tg__proxy_plugins_done resumes */
        case S_CLOSING: {
            int f = client_flush(c);
            if (f != 0) {
                conn_close(c);
                return;
            }
            return;
        }
        }
        if (c->state == prev && prev != S_HEAD)
            return;
    }
}

void tg__proxy_plugins_done(tg_conn_t *c, int phase, int st)
{
    if (phase == TG_PHASE_CERTIFICATE) {
        /* the handshake was suspended: read on, which drives it further */
        tg_plugins_request_done(c);
        tg__tls_cert_phase_done(c->ssl, st);
        event_active(&c->rev, EV_READ, 0);
        return;
    }
    if (phase == TG_PHASE_REWRITE) {
        c->state = S_HEAD; /* what routing expects to leave behind */
        if (rewrite_result(c, st))
            route_request(c);
        if (c->state == S_HEAD)
            c->state = S_CLOSING; /* not reached: routing always decides */
    } else if (phase == TG_PHASE_RESPONSE) {
        response_result(c, st);
    } else { /* TG_PHASE_ACCESS */
        c->state = S_CONNECT;
        c->up = NULL;
        access_result(c, st);
    }
    drive(c);
}

/* A client that goes away while its request is parked: the request is
 * dropped (OpenResty's lua_check_client_abort). */
static bool client_gone(tg_conn_t *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

static bool reading_state(const tg_conn_t *c)
{
    return c->state == S_TUNNEL || c->state == S_HEAD || c->state == S_BODY ||
           c->state == S_PROXY_PROTO || c->state == S_SEND;
}

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
    tg_conn_t *c = arg;
    if (c->state == S_PLUGIN && client_gone(c)) {
        conn_close(c);
        return;
    }
    if (!reading_state(c)) {
        /* pipelined bytes or a close wait in the socket until the current
         * answer is done, so a client cannot make us buffer without bound */
        c->read_pending = true;
        return;
    }
    if (client_read(c) < 0) {
        if (c->state == S_TUNNEL || c->state == S_HEAD || c->state == S_BODY ||
            c->state == S_PROXY_PROTO || (c->state == S_SEND && !c->body_done)) {
            conn_close(c);
            return;
        }
        /* half-close while we answer: finish the answer, then close */
        c->close_after = true;
        c->keepalive = false;
        return;
    }
    drive(c);
}

static void on_client_write(evutil_socket_t fd, short what, void *arg)
{
    tg_conn_t *c = arg;
    if (c->tls_read_wants_write) {
        c->tls_read_wants_write = false;
        event_active(&c->rev, EV_READ, 0); /* TLS reads on once it could write */
    }
    if (!c->want_write)
        return;
    c->want_write = false;
    drive(c);
}

/* The state's deadline passed. */
static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    tg_conn_t *c = arg;
    switch (c->state) {
    case S_PROXY_PROTO:
    case S_HEAD:
        if (tg_buf_used(&c->in) == 0 && !c->t_start) {
            conn_close(c); /* an idle keepalive connection */
            return;
        }
        /* fall through */
    case S_BODY:
        c->keepalive = false;
        respond_error(c, 408, NULL, false, true);
        drive(c);
        return;
    case S_CONNECT:
    case S_SEND:
    case S_RESP_HEAD:
        up_io(c, EV_TIMEOUT);
        drive(c);
        return;
    case S_PLUGIN:
        return; /* no deadline while a plugin waits: its own timeouts apply */
    case S_RESP_BODY:
        if (!c->want_write) {
            up_io(c, EV_TIMEOUT);
            drive(c);
            return;
        }
        break;
    }
    conn_close(c); /* the client took too long to take the answer */
}

static void on_up_event(evutil_socket_t fd, short what, void *arg)
{
    tg_upconn_t *up = arg;
    tg_conn_t *c = up->owner;
    if (!c) {
        /* pooled: readable means closed by the upstream (or stray bytes) */
        if (what & EV_READ)
            up_idle_drop(up);
        return;
    }
    if (!c->up)
        return;
    /* an edge-triggered socket reports free send space after every ACK:
     * only a write edge we wait for is worth any work */
    if (!(what & EV_READ) && !up->want_write && c->state != S_TUNNEL)
        return;
    if (what & EV_WRITE)
        up->want_write = false;
    if (c->state == S_TUNNEL) {
        drive(c);
        return;
    }
    if (c->state == S_RESP_BODY) {
        if (what & EV_TIMEOUT) {
            up_io(c, what);
            drive(c);
            return;
        }
        tg_upconn_t *u = c->up;
        for (;;) {
            if (tg_buf_used(&c->out) + tg_buf_used(&u->in) > TG_PROXY_READ_AHEAD) {
                u->read_pending = true; /* bounded read-ahead: resumed by up_want */
                break;
            }
            if (tg_buf_reserve(&u->in, 16384) != 0)
                break;
            bool other;
            ssize_t n =
                io_recv(u->fd, u->ssl, u->in.data + u->in.len, u->in.cap - u->in.len, &other);
            if (other)
                up->want_write = true;
            if (n > 0) {
                u->in.len += (size_t)n;
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                if (c->res_mode == BODY_CLOSE && (c->buffering || c->out_mode != TG_OUT_RAW)) {
                    c->up_eof = true; /* the decoded body is complete */
                    drive(c);
                    return;
                }
                if (c->buffering) {
                    tg_log(TG_LOG_ERR, "upstream %s closed the connection mid-body",
                           c->target->name);
                    up_release(c, false);
                    respond_error(c, 502, NULL, false, true);
                    drive(c);
                    return;
                }
                if (c->res_mode == BODY_CLOSE) {
                    tg__response_pump(c);
                    up_release(c, false);
                    c->close_after = true;
                    c->state = S_LOCAL; /* flush, then done */
                    drive(c);
                    return;
                }
                tg_log(TG_LOG_ERR, "upstream %s closed the connection in the middle of the body",
                       c->target->name);
                tg__response_pump(c);
                up_release(c, false);
                c->close_after = true;
                c->keepalive = false;
                c->state = S_CLOSING;
                drive(c);
                return;
            }
            break;
        }
        drive(c);
        return;
    }
    up_io(c, what);
    drive(c);
}

/* ------------------------------------------------------------ accepting -- */

void tg_proxy_accept(tg_worker_t *w, int fd, const struct sockaddr *peer, socklen_t len,
                     const tg_listen_t *l)
{
    uint16_t local_port = l->port;
    bool proxy_protocol = l->proxy_protocol;
    tg_conn_t *c = w->free_conns;
    if (c) {
        w->free_conns = c->next;
        tg_buf_t in = c->in, out = c->out, body = c->body, upout = c->upout, head = c->head;
        tg_buf_t res_head = c->res_head, bf_in = c->bf_in, bf_out = c->bf_out;
        memset(c, 0, sizeof(*c));
        c->in = in, c->out = out, c->body = body, c->upout = upout, c->head = head;
        c->res_head = res_head, c->bf_in = bf_in, c->bf_out = bf_out;
        tg_buf_reset(&c->in);
        tg_buf_reset(&c->out);
    } else {
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            return;
        }
    }
    c->w = w;
    c->fd = fd;
    c->body_fd = -1;
    memcpy(&c->peer, peer, len);
    c->peerlen = len;
    c->local_port = local_port;
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)peer;
        inet_ntop(AF_INET, &s->sin_addr, c->peer_ip, sizeof(c->peer_ip));
        c->peer_port = ntohs(s->sin_port);
    } else if (peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)peer;
        inet_ntop(AF_INET6, &s->sin6_addr, c->peer_ip, sizeof(c->peer_ip));
        c->peer_port = ntohs(s->sin6_port);
    } else {
        snprintf(c->peer_ip, sizeof(c->peer_ip), "unix:");
    }
    snprintf(c->client_ip, sizeof(c->client_ip), "%s", c->peer_ip);
    c->state = proxy_protocol ? S_PROXY_PROTO : S_HEAD;
    if (l->ssl) {
        c->ssl = tg_tls_accept_new(fd, c);
        if (!c->ssl) {
            tg_log(TG_LOG_ERR, "could not start TLS on a connection from %s", c->peer_ip);
            close(fd);
            c->next = w->free_conns;
            w->free_conns = c;
            return;
        }
    }
    event_assign(&c->rev, w->base, fd, EV_READ | EV_ET | EV_PERSIST, on_client_read, c);
    event_assign(&c->wev, w->base, fd, EV_WRITE | EV_ET | EV_PERSIST, on_client_write, c);
    evtimer_assign(&c->timer, w->base, on_conn_timer, c);
    event_add(&c->rev, NULL);
    event_add(&c->wev, NULL);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    atomic_fetch_add_explicit(&tg_stats.connections_active, 1, memory_order_relaxed);
    client_want_read(c, w->conf->client_header_timeout_ms > 0 ? w->conf->client_header_timeout_ms
                                                              : 60000);
}

static void conn_close(tg_conn_t *c)
{
    tg_worker_t *w = c->w;
    tg_plugins_abort(c); /* a parked phase ends here */
    if (c->t_start)
        run_log_phase(c);
    if (c->t_start && c->status)
        log_access(c), atomic_fetch_add_explicit(&tg_stats.total_requests, 1, memory_order_relaxed);
    if (c->up)
        up_release(c, false);
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->timer);
    tg_tls_close(c->ssl);
    c->ssl = NULL;
    close(c->fd);
    reset_request(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    atomic_fetch_sub_explicit(&tg_stats.connections_active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&tg_stats.connections_handled, 1, memory_order_relaxed);
    /* keep small buffers for reuse, drop big ones */
    if (c->in.cap > 65536)
        tg_buf_free(&c->in);
    if (c->out.cap > 65536)
        tg_buf_free(&c->out);
    if (c->body.cap > 65536)
        tg_buf_free(&c->body);
    if (c->upout.cap > 65536)
        tg_buf_free(&c->upout);
    if (c->res_head.cap > 65536)
        tg_buf_free(&c->res_head);
    if (c->bf_in.cap > 65536)
        tg_buf_free(&c->bf_in);
    if (c->bf_out.cap > 65536)
        tg_buf_free(&c->bf_out);
    c->next = w->free_conns;
    w->free_conns = c;
}

void tg_proxy_close_idle(tg_worker_t *w)
{
    tg_conn_t *c = w->conns;
    while (c) {
        tg_conn_t *next = c->next;
        if (atomic_load(&w->stopping) == 2 ||
            (c->state == S_HEAD && tg_buf_used(&c->in) == 0 && tg_buf_used(&c->out) == 0))
            conn_close(c);
        c = next;
    }
    while (w->idle_up) {
        tg_upconn_t *u = w->idle_up;
        pool_unlink(w, u);
        up_free(u);
    }
}

size_t tg_proxy_live(tg_worker_t *w)
{
    size_t n = 0;
    for (tg_conn_t *c = w->conns; c; c = c->next)
        n++;
    return n;
}
