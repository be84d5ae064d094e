/* proxy_int.h: the proxy's connection and request state, shared by the
 * proxy (proxy.c), the plugin host (plugins.c) and the PDK's C side (pdk.c).
 * Internal to the core: nothing outside those files includes it. */
#ifndef TG_PROXY_INT_H
#define TG_PROXY_INT_H

#include "balancer.h"
#include "buf.h"
#include "http_parse.h"
#include "proxy.h"
#include "router.h"

#include <arpa/inet.h>
#include <event2/event_struct.h>
#include <lua.h>

/* Strings that plugins write (header values, paths): a per-request arena of
 * blocks that never move, reset when the request ends. */
typedef struct tg_arena_block_s {
    struct tg_arena_block_s *next;
    size_t used, cap;
    char data[];
} tg_arena_block_t;

typedef struct {
    tg_arena_block_t *head;
} tg_arena_t;

char *tg__arena_dup(tg_arena_t *a, const char *p, size_t n);
/* `n` bytes aligned for any object, NULL when out of memory. */
void *tg__arena_alloc(tg_arena_t *a, size_t n);
void tg__arena_reset(tg_arena_t *a);

enum {
    S_PROXY_PROTO,
    S_HEAD,
    S_BODY,     /* buffering the request body */
    S_CONNECT,  /* waiting for the upstream connect */
    S_SEND,     /* sending the request (and streaming its body) */
    S_RESP_HEAD,
    S_RESP_BODY,
    S_LOCAL,    /* flushing a locally generated answer */
    S_TUNNEL,
    S_CLOSING,  /* flushing, then close */
    S_PLUGIN,   /* a plugin phase waits for I/O (tg__proxy_plugins_done) */
};

enum { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE };

struct tg_upconn_s {
    /* the keepalive pool: every idle connection (newest first), and those of
     * one address bucket; `pooled` while in both */
    tg_upconn_t *next, *prev, *bnext, *bprev;
    bool pooled;
    uint8_t bucket;
    socklen_t addrlen;
    struct sockaddr_storage addr;
    tg_worker_t *w;
    int fd;
    /* registered once (edge-triggered, persistent): no epoll_ctl per request */
    struct event rev, wev;
    struct event idle_timer; /* keepalive idle timeout while pooled */
    bool read_pending;       /* an edge was left unread (bounded read-ahead) */
    bool want_write;         /* a write edge matters (connect, a send that blocked) */
    tg_buf_t in;
    int requests;
    int64_t idle_since;
    bool reused;
    bool no_reuse; /* the response said close, or its end is the connection's */
    tg_conn_t *owner;
    /* TLS towards the upstream (tls.c): NULL for http */
    struct ssl_st *ssl;
    uint64_t tls_key; /* the service's TLS parameters and SNI: pools never mix them */
    bool handshaking;
};

struct tg_conn_s {
    tg_conn_t *next, *prev;
    tg_worker_t *w;
    int fd;
    /* registered once (edge-triggered, persistent); what we wait for is a
     * flag, and the one deadline of the current state is `timer` */
    struct event rev, wev, timer;
    bool want_write;
    bool read_pending; /* readable while we did not want to read */
    struct sockaddr_storage peer;
    socklen_t peerlen;
    char peer_ip[INET6_ADDRSTRLEN];
    uint16_t peer_port, local_port;
    char client_ip[INET6_ADDRSTRLEN]; /* after real_ip_header from a trusted peer */
    char pp_ip[INET6_ADDRSTRLEN];     /* the PROXY protocol source, "" if none */
    int state;
    tg_buf_t in, out;
    tg_buf_t head; /* the current request's head, copied out of `in` */
    bool keepalive, close_after;

    /* the current request */
    tg_http_header_t headers[TG_PROXY_MAX_HEADERS];
    tg_http_request_t req;
    size_t head_len;
    tg_snapshot_t *snap;
    tg_route_t *route;
    tg_router_match_t match;
    char request_id[33];
    int64_t t_start, t_upstream_start, t_upstream_first, t_proxy_done;
    char path[8192];
    size_t path_len;
    int status;
    uint64_t bytes_sent;

    /* request body */
    int body_mode;
    int64_t body_left;
    tg_http_chunked_t chunk;
    tg_buf_t body;
    int body_fd;
    uint64_t body_total, body_file_off;
    bool body_done, expect_sent;

    /* upstream */
    tg_upconn_t *up;
    tg_target_t *target;
    tg_upstream_t *lb_up; /* the upstream balanced over (balancer_req.c), NULL if none */
    tg_lb_state_t lb;
    char lb_cookie[37];   /* a hash cookie to set on the response */
    int tries;
    bool fresh_only; /* after a stale pooled connection */
    tg_buf_t upout;
    bool request_sent_any;
    tg_target_t dns_target; /* target's storage for a hostname's pick (dns.h) */
    /* kong.service.set_upstream / set_target / set_retries / set_timeouts
     * (pdk_service.c): this request's overrides, zeroed when it ends */
    struct {
        tg_upstream_t *up;   /* set_upstream: balance over this upstream */
        tg_target_t *target; /* set_target: this address (arena), no balancer */
        struct tg_dns_name_s *dns; /* set_target's name, when a service's (dns.h) */
        const char *host;    /* set_target's host: the Host sent (arena) */
        size_t host_len;
        int status;          /* set_target's name failed to resolve: answer this */
        const char *error;
        bool has_retries;
        int retries;
        int connect, write, read; /* ms, 0: the service's */
        int scheme;               /* set_scheme: TG_PROTO_HTTP(S), 0: the service's */
        /* set_tls_verify / set_tls_verify_depth / set_tls_cert_key: this
         * request's copy of the TLS parameters (arena; the client pair
         * referenced until the request ends), NULL: the service's */
        struct tg_tls_upstream_s *tls;
        bool own_pair; /* tls->client_cert/key are referenced here */
    } ov;

    /* response */
    tg_http_header_t res_headers[TG_PROXY_MAX_HEADERS];
    tg_http_response_t res;
    int res_mode;
    int64_t res_left;
    tg_http_chunked_t res_chunk;
    bool dechunk; /* HTTP/1.0 client, chunked upstream */
    bool head_request;

    /* the plugin host (plugins.c) and the PDK (pdk.c) */
    lua_State *co;     /* the request's coroutine, NULL when no plugin ran */
    int co_ref;        /* its anchor in the worker's registry */
    bool co_used;      /* a coroutine ran for this request (the runloop's `first`) */
    int phase;         /* TG_PHASE_* while a phase runs */
    bool parked;       /* the coroutine waits for I/O (lthread.c) in park_phase */
    int park_phase;
    int route_pos;     /* the route's 1-based position in the config, 0 before routing */
    bool plugins;      /* plugins may run for this request */
    bool access_done;
    double t_start_wall; /* request start, seconds since the epoch */
    tg_arena_t arena;  /* strings plugins wrote */
    const char *up_path; /* kong.service.request.set_path, already escaped */
    size_t up_path_len;
    const char *up_query; /* set_raw_query, NULL when untouched */
    size_t up_query_len;
    const char *up_method;
    size_t up_method_len;
    const char *up_body; /* set_raw_body */
    size_t up_body_len;
    bool up_body_set;
    int exit_status;   /* kong.response.exit: 0 when none */
    const char *exit_body;
    size_t exit_body_len;
    /* response header edits made before the response exists (rewrite,
     * access): applied to the upstream's or the exit's headers */
    tg_http_header_t pending_resp[32];
    uint8_t pending_mode[32];
    size_t npending_resp;
    /* the response headers header_filter works on */
    tg_http_header_t *resp_h;
    size_t resp_n, resp_cap;
    tg_http_header_t local_h[40]; /* an exit's headers */
    bool logged;
    const char *source; /* "service", "exit" or "error" */

    /* the response side of the plugin host (proxy_filter.c) */
    tg_buf_t res_head;       /* the upstream's head, kept while plugins may read it */
    tg_http_header_t *svc_h; /* the upstream's headers as received (arena) */
    size_t svc_n;
    bool buffering;       /* buffered proxying: the whole body before header_filter */
    bool bf;              /* body_filter plugins see the body */
    bool up_eof;          /* the upstream closed: a close-delimited body is complete */
    int out_mode;         /* TG_OUT_*: how the client's body is framed */
    tg_buf_t bf_in;       /* decoded body bytes (one pump turn, or all when buffering) */
    tg_buf_t bf_out;      /* a chunk as a body_filter replaced it */
    const char *bf_chunk; /* body_filter's current chunk (ngx.arg[1]) */
    size_t chunk_len;
    bool chunk_eof, chunk_set; /* ngx.arg[2]; whether ngx.arg[1] was replaced */

    /* TLS from the client (tls.c): NULL on a plain listener */
    struct ssl_st *ssl;
    bool tls_read_wants_write; /* SSL_read waits for the socket to take bytes */
};

/* balancer_req.c: the balancer for the proxy */
tg_target_t *tg__lb_pick(tg_conn_t *c, tg_upstream_t *u);
void tg__lb_report(tg_conn_t *c, int event, int status); /* passive health (TG_HEV_*) */
void tg__lb_response(tg_conn_t *c, tg_buf_t *o); /* latency; Set-Cookie of the hash cookie */
void tg__lb_done(tg_conn_t *c);
const char *tg__lb_host(tg_conn_t *c, size_t *len);

/* pdk_service.c: the request's target when a plugin chose one (set_target,
 * set_upstream): 1 with c->target set (NULL: the upstream has no healthy
 * target), 0 when no override applies, -1 with *status and *msg to answer. */
int tg__ov_pick(tg_conn_t *c, int *status, const char **msg);

/* The TLS parameters of this request's upstream connection (*use: TLS at all;
 * NULL parameters with it: no verification, no client certificate). */
const struct tg_tls_upstream_s *tg__ov_tls(tg_conn_t *c, bool *use);
/* Drops what the overrides hold (the request ends). */
void tg__ov_reset(tg_conn_t *c);

/* The service's timeouts and retries unless a plugin overrode them. */
static inline int tg__connect_timeout(const tg_conn_t *c)
{
    return c->ov.connect ? c->ov.connect : c->route->service->connect_timeout;
}
static inline int tg__write_timeout(const tg_conn_t *c)
{
    return c->ov.write ? c->ov.write : c->route->service->write_timeout;
}
static inline int tg__read_timeout(const tg_conn_t *c)
{
    return c->ov.read ? c->ov.read : c->route->service->read_timeout;
}
static inline int tg__retries(const tg_conn_t *c)
{
    return c->ov.has_retries ? c->ov.retries : c->route->service->retries;
}

/* How the client's body is framed when plugins may change it. */
enum {
    TG_OUT_RAW,     /* as the upstream framed it */
    TG_OUT_OPEN,    /* head not ended: the first filtered chunk decides */
    TG_OUT_LENGTH,  /* Content-Length, the body known */
    TG_OUT_CHUNKED, /* re-chunked (HTTP/1.1 clients) */
    TG_OUT_CLOSE,   /* delimited by close (HTTP/1.0 clients) */
};

/* proxy.c: ends a response head (Connection, blank line). */
void tg__proxy_head_end(tg_conn_t *c);

/* proxy_filter.c */
/* Moves the upstream's body bytes to the client (proxy.c's S_RESP_BODY):
 * 1 when the response is complete, 0 when more is needed, -1 on a framing
 * error, -2 when a plugin failed or memory ran out (logged). */
int tg__response_pump(tg_conn_t *c);
/* Copies the upstream's head (`len` bytes at `from`) out of the read buffer
 * and keeps a copy of its headers for kong.service.response. */
int tg__filter_keep_head(tg_conn_t *c, const char *from, size_t len);
/* Runs body_filter over a whole known body (buffered, exits): *p / *n become
 * the body to send. `send` false (HEAD, 204, 304): runs once with "" and eof.
 * Returns 0, or -1 when a plugin failed. */
int tg__filter_known(tg_conn_t *c, const char **p, size_t *n, bool send);

#endif
