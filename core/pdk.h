/* pdk.h: the flat C ABI the PDK (pdk/, over LuaJIT's FFI) calls.
 *
 * Every request-scoped function takes the request as its first argument: the
 * `tg_req_t *` the PDK gets from the running coroutine with
 * `require("thread.exdata")()` (OpenResty's LuaJIT; the core sets it on each
 * request's coroutine). Strings are returned as pointer + length into memory
 * that stays valid until the next call that changes the same thing, or the end
 * of the request; the Lua side copies them with ffi.string. Return values: 0
 * (or a length/count >= 0) on success, a negative TG_E* code on failure
 * (TG_ENOTFOUND for an absent header, TG_EINVAL for a bad argument).
 *
 * The functions check nothing about phases: the PDK checks the phase first
 * (tg_pdk_get_phase) and raises Kong's error, then its arguments. */
#ifndef TG_PDK_H
#define TG_PDK_H

#include <stddef.h>
#include <stdint.h>

typedef struct tg_conn_s tg_req_t;

/* Phases, as bits (a PDK function lists the phases it allows as a mask). */
enum {
    TG_PHASE_INIT_WORKER = 1 << 0,
    TG_PHASE_CERTIFICATE = 1 << 1,
    TG_PHASE_REWRITE = 1 << 2,
    TG_PHASE_ACCESS = 1 << 3,
    TG_PHASE_RESPONSE = 1 << 4,
    TG_PHASE_BALANCER = 1 << 5,
    TG_PHASE_HEADER_FILTER = 1 << 6,
    TG_PHASE_BODY_FILTER = 1 << 7,
    TG_PHASE_LOG = 1 << 8,
    TG_PHASE_ADMIN_API = 1 << 9,
};

/* Header edit modes for the set_header family. */
enum { TG_HDR_SET = 0, TG_HDR_ADD = 1, TG_HDR_CLEAR = 2 };

int tg_pdk_get_phase(tg_req_t *r);

/* ---- kong.request: what the client sent (edits by plugins are not seen) ---- */
int tg_pdk_req_get_method(tg_req_t *r, const char **out, size_t *len);
/* the normalised path (what the router matched), without the query */
int tg_pdk_req_get_path(tg_req_t *r, const char **out, size_t *len);
/* the path as sent, without the query */
int tg_pdk_req_get_raw_path(tg_req_t *r, const char **out, size_t *len);
/* the query string without '?'; "" when none */
int tg_pdk_req_get_raw_query(tg_req_t *r, const char **out, size_t *len);
/* the Host header (or absolute-form authority) without the port, lowercased */
int tg_pdk_req_get_host(tg_req_t *r, const char **out, size_t *len);
/* the port the request came in on (the listener's) */
int tg_pdk_req_get_port(tg_req_t *r);
/* "http" or "https" */
int tg_pdk_req_get_scheme(tg_req_t *r, const char **out, size_t *len);
/* 10 for HTTP/1.0, 11 for HTTP/1.1 */
int tg_pdk_req_get_http_version(tg_req_t *r);
int tg_pdk_req_get_header_count(tg_req_t *r);
int tg_pdk_req_get_header_at(tg_req_t *r, int i, const char **name, size_t *nlen,
                             const char **value, size_t *vlen);
/* The first value of a header (name in any case). TG_ENOTFOUND if absent. */
int tg_pdk_req_get_header(tg_req_t *r, const char *name, size_t nlen, const char **value,
                          size_t *vlen);
/* The request body when it was buffered in memory (request_buffering): 0 with
 * the bytes; TG_ENOTFOUND when the request has none; TG_ETOOLARGE when it
 * spilled to a file; TG_EAGAIN when it is not read (streaming). */
int tg_pdk_req_get_body(tg_req_t *r, const char **out, size_t *len);
/* The descriptor of the file the whole body spilled to (read it with pread
 * or through /proc/self/fd/N; the proxy reads it with pread too), or -1. */
int tg_pdk_req_get_body_fd(tg_req_t *r);
/* Request start (seconds since the epoch, ms resolution). */
double tg_pdk_req_start_time(tg_req_t *r);
/* Regex captures of the matched route path: count, then each (start/end into
 * the normalised path; -1 when unset), with its name or NULL. */
int tg_pdk_req_get_capture_count(tg_req_t *r);
int tg_pdk_req_get_capture(tg_req_t *r, int i, const char **value, size_t *vlen,
                           const char **name);

/* ---- kong.client ---- */
/* the TCP peer's address */
int tg_pdk_client_get_ip(tg_req_t *r, const char **out, size_t *len);
/* the client address after real_ip_header from a trusted peer */
int tg_pdk_client_get_forwarded_ip(tg_req_t *r, const char **out, size_t *len);
int tg_pdk_client_get_port(tg_req_t *r);
int tg_pdk_client_is_trusted(tg_req_t *r, const char *ip, size_t len); /* 1 / 0 / TG_EINVAL */

/* ---- kong.service.request: what goes upstream ---- */
int tg_pdk_upreq_set_header(tg_req_t *r, const char *name, size_t nlen, const char *value,
                            size_t vlen, int mode);
int tg_pdk_upreq_set_path(tg_req_t *r, const char *path, size_t len);
int tg_pdk_upreq_set_raw_query(tg_req_t *r, const char *q, size_t len);
int tg_pdk_upreq_set_method(tg_req_t *r, const char *m, size_t len);
int tg_pdk_upreq_set_body(tg_req_t *r, const char *body, size_t len);

/* ---- kong.service: where this request goes (pdk_service.c) ----
 * Overrides for the current request only (reset when it ends); the last
 * set_upstream / set_target wins. */
/* TG_ENOTFOUND when the config has no upstream `name` in the route's workspace */
int tg_pdk_svc_set_upstream(tg_req_t *r, const char *name, size_t len);
/* `host` and `port` bypass the balancer; `host` is the Host sent. `addr`:
 * the address the PDK found for it (NUL-terminated numeric) or NULL, then a
 * name that a service of the config uses is picked from dns.c's current
 * answers when the request goes upstream. TG_ENOTFOUND when neither applies
 * (or `addr` is not an address), TG_EINVAL for a port out of range. */
int tg_pdk_svc_set_target(tg_req_t *r, const char *host, size_t hlen, const char *addr, int port);
/* set_target's `host` could not be resolved: the request answers `status`
 * with `msg` when it would go upstream (Kong's balancer errors). */
int tg_pdk_svc_set_target_failed(tg_req_t *r, const char *host, size_t hlen, int status,
                                 const char *msg, size_t mlen);
int tg_pdk_svc_set_retries(tg_req_t *r, int retries); /* 0..32767 */
int tg_pdk_svc_set_timeouts(tg_req_t *r, int connect, int write, int read); /* ms, >= 1 */
/* kong.service.request.set_scheme: https 1 or 0 (http) */
int tg_pdk_svc_set_scheme(tg_req_t *r, int https);
/* Towards a TLS upstream, for this request: verification on/off, its depth,
 * and the client certificate and key (referenced until the request ends;
 * TG_EINVAL when the key does not match the certificate). */
int tg_pdk_svc_set_tls_verify(tg_req_t *r, int on);
int tg_pdk_svc_set_tls_verify_depth(tg_req_t *r, int depth);
struct x509_st;
struct evp_pkey_st;
int tg_pdk_svc_set_tls_cert_key(tg_req_t *r, struct x509_st *cert, struct evp_pkey_st *key);

/* ---- kong.response ---- */
/* The status sent (or to be sent) to the client; 0 before it is known. */
int tg_pdk_resp_get_status(tg_req_t *r);
int tg_pdk_resp_set_status(tg_req_t *r, int status);
/* "service" when the answer came from the upstream, "exit" from a plugin's
 * kong.response.exit, "error" otherwise. */
int tg_pdk_resp_get_source(tg_req_t *r, const char **out, size_t *len);
/* The headers of the answer as it stands (upstream's, after edits). */
int tg_pdk_resp_get_header_count(tg_req_t *r);
int tg_pdk_resp_get_header_at(tg_req_t *r, int i, const char **name, size_t *nlen,
                              const char **value, size_t *vlen);
int tg_pdk_resp_get_header(tg_req_t *r, const char *name, size_t nlen, const char **value,
                           size_t *vlen);
int tg_pdk_resp_set_header(tg_req_t *r, const char *name, size_t nlen, const char *value,
                           size_t vlen, int mode);
/* Short-circuits the request with `status` and `body` (headers set before
 * with tg_pdk_resp_set_header are sent with it). The caller (the PDK) then
 * yields the plugin's coroutine so nothing after the call runs. */
int tg_pdk_resp_exit(tg_req_t *r, int status, const char *body, size_t len);
/* In body_filter: the current chunk (ngx.arg[1], as an earlier plugin left
 * it) and whether it is the last (ngx.arg[2]). TG_ENOTFOUND in other phases. */
int tg_pdk_resp_get_chunk(tg_req_t *r, const char **out, size_t *len, int *eof);
/* Replaces the chunk with a copy of `data` (none when NULL); `eof` 1 ends the
 * body after this chunk, 0 clears that, -1 leaves it. TG_EINVAL outside
 * body_filter. */
int tg_pdk_resp_set_chunk(tg_req_t *r, const char *data, size_t len, int eof);

/* ---- kong.service.response: the upstream's answer as received ---- */
/* 0 when the upstream did not answer */
int tg_pdk_svcresp_get_status(tg_req_t *r);
int tg_pdk_svcresp_get_header(tg_req_t *r, const char *name, size_t nlen, const char **value,
                              size_t *vlen);
int tg_pdk_svcresp_get_header_count(tg_req_t *r);
int tg_pdk_svcresp_get_header_at(tg_req_t *r, int i, const char **name, size_t *nlen,
                                 const char **value, size_t *vlen);
/* The upstream's whole body with buffered proxying; TG_EINVAL without. */
int tg_pdk_svcresp_get_body(tg_req_t *r, const char **out, size_t *len);
/* kong.service.request.enable_buffering: the upstream's answer is read whole
 * before header_filter. */
int tg_pdk_upreq_enable_buffering(tg_req_t *r);

/* ---- kong.log, ngx.log ---- */
void tg_pdk_log(int level, const char *msg, size_t len); /* TG_LOG_* levels */
int tg_pdk_log_level(void);

/* ---- misc ---- */
double tg_pdk_now(void);    /* wall clock, seconds, ms resolution (cached per loop turn) */
int tg_pdk_worker_id(void); /* 0-based */
int tg_pdk_worker_count(void);
/* The request id (32 hex chars) of X-Kong-Request-Id. */
int tg_pdk_req_get_id(tg_req_t *r, const char **out, size_t *len);

#endif
