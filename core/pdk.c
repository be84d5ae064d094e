/* pdk.c: the C side of the PDK (core/pdk.h), over the proxy's request state. */
#include "pdk.h"
#include "conf.h"
#include "log.h"
#include "proxy_int.h"
#include "respond.h"
#include "uri.h"
#include "worker.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static bool ci_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return false;
    return true;
}

static int out_str(const char *p, size_t n, const char **out, size_t *len)
{
    *out = p ? p : "";
    *len = p ? n : 0;
    return 0;
}

static const tg_http_header_t *find(const tg_http_header_t *h, size_t n, const char *name,
                                    size_t nlen)
{
    for (size_t i = 0; i < n; i++)
        if (ci_eq(h[i].name, h[i].name_len, name, nlen))
            return &h[i];
    return NULL;
}

/* Applies one edit to a header list of capacity `cap` (strings copied into
 * the request's arena). */
static int edit_headers(tg_conn_t *c, tg_http_header_t *h, size_t *n, size_t cap,
                        const char *name, size_t nlen, const char *value, size_t vlen, int mode)
{
    if (mode == TG_HDR_SET || mode == TG_HDR_CLEAR) {
        size_t k = 0;
        for (size_t i = 0; i < *n; i++)
            if (!ci_eq(h[i].name, h[i].name_len, name, nlen))
                h[k++] = h[i];
        *n = k;
    }
    if (mode == TG_HDR_CLEAR)
        return 0;
    if (*n >= cap)
        return TG_ETOOLARGE;
    char *nm = tg__arena_dup(&c->arena, name, nlen);
    char *vl = tg__arena_dup(&c->arena, value, vlen);
    if (!nm || !vl)
        return TG_ENOMEM;
    h[*n] = (tg_http_header_t){nm, nlen, vl, vlen};
    (*n)++;
    return 0;
}

int tg_pdk_get_phase(tg_req_t *r)
{
    return r ? r->phase : 0;
}

/* ---- kong.request ---- */

int tg_pdk_req_get_method(tg_req_t *r, const char **out, size_t *len)
{
    return out_str(r->req.method, r->req.method_len, out, len);
}

int tg_pdk_req_get_path(tg_req_t *r, const char **out, size_t *len)
{
    return out_str(r->path, r->path_len, out, len);
}

int tg_pdk_req_get_raw_path(tg_req_t *r, const char **out, size_t *len)
{
    return out_str(r->req.path, r->req.path_len, out, len);
}

int tg_pdk_req_get_raw_query(tg_req_t *r, const char **out, size_t *len)
{
    return out_str(r->req.query, r->req.query_len, out, len);
}

int tg_pdk_req_get_host(tg_req_t *r, const char **out, size_t *len)
{
    const char *h = r->req.host;
    size_t n = h ? r->req.host_len : 0;
    if (n && h[0] == '[') {
        const char *rb = memchr(h, ']', n);
        n = rb ? (size_t)(rb - h) + 1 : n;
    } else if (n) {
        const char *colon = memchr(h, ':', n);
        n = colon ? (size_t)(colon - h) : n;
    }
    char *low = tg__arena_dup(&r->arena, h ? h : "", n);
    if (!low)
        return TG_ENOMEM;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)low[i]);
    return out_str(low, n, out, len);
}

int tg_pdk_req_get_port(tg_req_t *r)
{
    return r->local_port;
}

int tg_pdk_req_get_scheme(tg_req_t *r, const char **out, size_t *len)
{
    return r->ssl ? out_str("https", 5, out, len) : out_str("http", 4, out, len);
}

int tg_pdk_req_get_http_version(tg_req_t *r)
{
    return 10 + r->req.minor_version;
}

int tg_pdk_req_get_header_count(tg_req_t *r)
{
    return (int)r->req.num_headers;
}

int tg_pdk_req_get_header_at(tg_req_t *r, int i, const char **name, size_t *nlen,
                             const char **value, size_t *vlen)
{
    if (i < 0 || (size_t)i >= r->req.num_headers)
        return TG_EINVAL;
    const tg_http_header_t *h = &r->req.headers[i];
    out_str(h->name, h->name_len, name, nlen);
    return out_str(h->value, h->value_len, value, vlen);
}

int tg_pdk_req_get_header(tg_req_t *r, const char *name, size_t nlen, const char **value,
                          size_t *vlen)
{
    const tg_http_header_t *h = find(r->req.headers, r->req.num_headers, name, nlen);
    if (!h)
        return TG_ENOTFOUND;
    return out_str(h->value, h->value_len, value, vlen);
}

int tg_pdk_req_get_body(tg_req_t *r, const char **out, size_t *len)
{
    if (r->body_mode == 0 /* BODY_NONE */ && !r->body_total)
        return TG_ENOTFOUND;
    if (r->body_fd >= 0)
        return TG_ETOOLARGE;
    if (!r->route || !r->route->request_buffering || !r->body_done)
        return TG_EAGAIN;
    return out_str(tg_buf_start(&r->body), tg_buf_used(&r->body), out, len);
}

int tg_pdk_req_get_body_fd(tg_req_t *r)
{
    if (r->body_fd < 0 || !r->route || !r->route->request_buffering || !r->body_done)
        return -1;
    return r->body_fd;
}

double tg_pdk_req_start_time(tg_req_t *r)
{
    return r->t_start_wall;
}

int tg_pdk_req_get_capture_count(tg_req_t *r)
{
    return r->match.is_regex ? r->match.ncaptures : 0;
}

int tg_pdk_req_get_capture(tg_req_t *r, int i, const char **value, size_t *vlen,
                           const char **name)
{
    if (i < 0 || i >= tg_pdk_req_get_capture_count(r))
        return TG_EINVAL;
    *name = r->match.captures[i].name;
    int s = r->match.captures[i].start, e = r->match.captures[i].end;
    if (s < 0 || e < s) {
        *value = NULL;
        *vlen = 0;
        return TG_ENOTFOUND;
    }
    return out_str(r->path + s, (size_t)(e - s), value, vlen);
}

int tg_pdk_req_get_id(tg_req_t *r, const char **out, size_t *len)
{
    return out_str(r->request_id, strlen(r->request_id), out, len);
}

/* ---- kong.client ---- */

int tg_pdk_client_get_ip(tg_req_t *r, const char **out, size_t *len)
{
    return out_str(r->peer_ip, strlen(r->peer_ip), out, len);
}

int tg_pdk_client_get_forwarded_ip(tg_req_t *r, const char **out, size_t *len)
{
    return out_str(r->client_ip, strlen(r->client_ip), out, len);
}

int tg_pdk_client_get_port(tg_req_t *r)
{
    return r->peer_port;
}

int tg_pdk_client_is_trusted(tg_req_t *r, const char *ip, size_t len)
{
    char buf[INET6_ADDRSTRLEN];
    if (len >= sizeof(buf))
        return TG_EINVAL;
    memcpy(buf, ip, len);
    buf[len] = 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, buf, &s4->sin_addr) == 1)
        s4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, buf, &s6->sin6_addr) == 1)
        s6->sin6_family = AF_INET6;
    else
        return TG_EINVAL;
    return tg_conf_ip_trusted(r->w->conf, (struct sockaddr *)&ss) ? 1 : 0;
}

/* ---- kong.service.request ---- */

int tg_pdk_upreq_set_header(tg_req_t *r, const char *name, size_t nlen, const char *value,
                            size_t vlen, int mode)
{
    return edit_headers(r, r->headers, &r->req.num_headers, TG_PROXY_MAX_HEADERS, name, nlen,
                        value, vlen, mode);
}

int tg_pdk_upreq_set_path(tg_req_t *r, const char *path, size_t len)
{
    char esc[8192];
    int n = tg_uri_escape_path(path, len, esc, sizeof(esc));
    if (n < 0)
        return n;
    r->up_path = tg__arena_dup(&r->arena, esc, (size_t)n);
    r->up_path_len = (size_t)n;
    return r->up_path ? 0 : TG_ENOMEM;
}

int tg_pdk_upreq_set_raw_query(tg_req_t *r, const char *q, size_t len)
{
    r->up_query = tg__arena_dup(&r->arena, q, len);
    r->up_query_len = len;
    return r->up_query ? 0 : TG_ENOMEM;
}

int tg_pdk_upreq_set_method(tg_req_t *r, const char *m, size_t len)
{
    r->up_method = tg__arena_dup(&r->arena, m, len);
    r->up_method_len = len;
    return r->up_method ? 0 : TG_ENOMEM;
}

int tg_pdk_upreq_set_body(tg_req_t *r, const char *body, size_t len)
{
    r->up_body = tg__arena_dup(&r->arena, body, len);
    r->up_body_len = len;
    r->up_body_set = r->up_body != NULL;
    return r->up_body ? 0 : TG_ENOMEM;
}

/* ---- kong.response ---- */

int tg_pdk_resp_get_status(tg_req_t *r)
{
    if (r->exit_status)
        return r->exit_status;
    return r->status;
}

int tg_pdk_resp_set_status(tg_req_t *r, int status)
{
    if (status < 100 || status > 599)
        return TG_EINVAL;
    r->status = status;
    return 0;
}

int tg_pdk_resp_get_source(tg_req_t *r, const char **out, size_t *len)
{
    const char *s = r->source ? r->source : "error";
    return out_str(s, strlen(s), out, len);
}

int tg_pdk_resp_get_header_count(tg_req_t *r)
{
    return r->resp_h ? (int)r->resp_n : (int)r->npending_resp;
}

int tg_pdk_resp_get_header_at(tg_req_t *r, int i, const char **name, size_t *nlen,
                              const char **value, size_t *vlen)
{
    const tg_http_header_t *h = r->resp_h ? r->resp_h : r->pending_resp;
    size_t n = r->resp_h ? r->resp_n : r->npending_resp;
    if (i < 0 || (size_t)i >= n)
        return TG_EINVAL;
    out_str(h[i].name, h[i].name_len, name, nlen);
    return out_str(h[i].value, h[i].value_len, value, vlen);
}

int tg_pdk_resp_get_header(tg_req_t *r, const char *name, size_t nlen, const char **value,
                           size_t *vlen)
{
    const tg_http_header_t *h = r->resp_h ? find(r->resp_h, r->resp_n, name, nlen)
                                          : find(r->pending_resp, r->npending_resp, name, nlen);
    if (!h)
        return TG_ENOTFOUND;
    return out_str(h->value, h->value_len, value, vlen);
}

int tg_pdk_resp_set_header(tg_req_t *r, const char *name, size_t nlen, const char *value,
                           size_t vlen, int mode)
{
    if (r->resp_h)
        return edit_headers(r, r->resp_h, &r->resp_n, r->resp_cap, name, nlen, value, vlen,
                            mode);
    /* before the response exists: remembered, applied to it later */
    if (r->npending_resp >= TG_ARRAY_SIZE(r->pending_resp))
        return TG_ETOOLARGE;
    char *nm = tg__arena_dup(&r->arena, name, nlen);
    char *vl = tg__arena_dup(&r->arena, value ? value : "", value ? vlen : 0);
    if (!nm || !vl)
        return TG_ENOMEM;
    r->pending_resp[r->npending_resp] = (tg_http_header_t){nm, nlen, vl, value ? vlen : 0};
    r->pending_mode[r->npending_resp] = (uint8_t)mode;
    r->npending_resp++;
    return 0;
}

int tg_pdk_resp_exit(tg_req_t *r, int status, const char *body, size_t len)
{
    if (status < 100 || status > 599)
        return TG_EINVAL;
    r->exit_status = status;
    r->exit_body = body ? tg__arena_dup(&r->arena, body, len) : NULL;
    r->exit_body_len = body ? len : 0;
    r->source = "exit";
    return 0;
}

int tg_pdk_resp_get_chunk(tg_req_t *r, const char **out, size_t *len, int *eof)
{
    if (r->phase != TG_PHASE_BODY_FILTER) {
        *eof = 0;
        out_str(NULL, 0, out, len);
        return TG_ENOTFOUND;
    }
    *eof = r->chunk_eof;
    if (r->chunk_set)
        return out_str(tg_buf_start(&r->bf_out), tg_buf_used(&r->bf_out), out, len);
    return out_str(r->bf_chunk, r->chunk_len, out, len);
}

int tg_pdk_resp_set_chunk(tg_req_t *r, const char *data, size_t len, int eof)
{
    if (r->phase != TG_PHASE_BODY_FILTER)
        return TG_EINVAL;
    if (data) {
        /* one buffer per connection, reused chunk after chunk */
        tg_buf_reset(&r->bf_out);
        if (len && tg_buf_append(&r->bf_out, data, len) != 0)
            return TG_ENOMEM;
        r->chunk_set = true;
    }
    if (eof >= 0)
        r->chunk_eof = eof != 0;
    return 0;
}

/* ---- kong.service.response ---- */

int tg_pdk_svcresp_get_status(tg_req_t *r)
{
    return r->svc_h ? r->res.status : 0;
}

int tg_pdk_svcresp_get_header(tg_req_t *r, const char *name, size_t nlen, const char **value,
                              size_t *vlen)
{
    const tg_http_header_t *h = r->svc_h ? find(r->svc_h, r->svc_n, name, nlen) : NULL;
    if (!h)
        return TG_ENOTFOUND;
    return out_str(h->value, h->value_len, value, vlen);
}

int tg_pdk_svcresp_get_header_count(tg_req_t *r)
{
    return r->svc_h ? (int)r->svc_n : 0;
}

int tg_pdk_svcresp_get_header_at(tg_req_t *r, int i, const char **name, size_t *nlen,
                                 const char **value, size_t *vlen)
{
    if (!r->svc_h || i < 0 || (size_t)i >= r->svc_n)
        return TG_EINVAL;
    out_str(r->svc_h[i].name, r->svc_h[i].name_len, name, nlen);
    return out_str(r->svc_h[i].value, r->svc_h[i].value_len, value, vlen);
}

int tg_pdk_svcresp_get_body(tg_req_t *r, const char **out, size_t *len)
{
    if (!r->buffering)
        return TG_EINVAL;
    return out_str(tg_buf_start(&r->bf_in), tg_buf_used(&r->bf_in), out, len);
}

int tg_pdk_upreq_enable_buffering(tg_req_t *r)
{
    r->buffering = true;
    return 0;
}

/* ---- logging, time, workers ---- */

void tg_pdk_log(int level, const char *msg, size_t len)
{
    if (level < tg_log_level())
        return;
    tg_log(level, "%.*s", (int)(len > 65536 ? 65536 : len), msg);
}

int tg_pdk_log_level(void)
{
    return tg_log_level();
}

double tg_pdk_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)(tv.tv_usec / 1000) / 1000.0;
}

static __thread int this_worker_id;

void tg__pdk_set_worker(int id)
{
    this_worker_id = id;
}

int tg_pdk_worker_id(void)
{
    return this_worker_id;
}

int tg_pdk_worker_count(void)
{
    return tg_workers_count();
}
