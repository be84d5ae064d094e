/* tls.h: TLS with OpenSSL — the proxy listeners' server contexts (ssl_cert,
 * ssl_protocols, ssl_cipher_suite, session tickets, ALPN), the default
 * self-signed pair kept in the prefix, certificate selection by SNI from the
 * snapshot's certificates, and non-blocking record I/O with recv()/send()
 * semantics for the proxy's edge-triggered loop. */
#ifndef TG_TLS_H
#define TG_TLS_H

#include "tg.h"
#include "conf.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct lua_State;

/* Writes <prefix>/ssl/kong-default{,-ecdsa}.{crt,key} (RSA-2048 and ECDSA
 * P-256, CN=localhost, 20 years) unless both files of a pair exist, when a
 * proxy listener has ssl and ssl_cert is unset. */
int tg_tls_prepare_prefix(const tg_conf_t *conf, char *err, size_t errlen);

/* Builds the listeners' default server context from the configuration (once,
 * before the workers start). A no-op without an ssl listener. */
int tg_tls_init(const tg_conf_t *conf, char *err, size_t errlen);
void tg_tls_shutdown(void);

/* A server-side SSL on an accepted socket; `conn` is the proxy connection
 * (tg_conn_t) the SNI callback and the certificate phase work for. NULL on
 * failure. */
SSL *tg_tls_accept_new(int fd, void *conn);
/* recv()/send() semantics on a non-blocking socket: >0 bytes, 0 = the peer
 * closed (recv only), -1 with errno (EAGAIN: wait; *want_other set when the
 * record layer waits for the opposite direction). */
ssize_t tg_tls_recv(SSL *ssl, void *buf, size_t n, bool *want_other);
ssize_t tg_tls_send(SSL *ssl, const void *buf, size_t n, bool *want_other);
/* Sends close_notify if it can without blocking, and frees. */
void tg_tls_close(SSL *ssl);
/* Why the last failed operation failed (for the error log). */
const char *tg_tls_last_error(SSL *ssl, char *buf, size_t len);

/* ---- certificates and snis of a snapshot ---- */

typedef struct tg_tls_certs_s tg_tls_certs_t;

/* Builds the certificate table from the loader's config at `idx` (fields
 * certificates and snis). *out is NULL when the config has no certificate. */
int tg_tls_certs_build(struct lua_State *L, int idx, tg_tls_certs_t **out, char *err,
                       size_t errlen);
void tg_tls_certs_free(tg_tls_certs_t *certs);
/* The server context for `sni`: exact name, then `*.suffix`, then `prefix.*`,
 * then the `*` SNI; NULL = the listener's default certificate. The SNI
 * callback looks it up in the connection's worker's current snapshot. */
SSL_CTX *tg_tls_certs_lookup(const tg_tls_certs_t *certs, const char *sni);

/* kong.client.tls (pdk_tls.c), in the certificate phase: ask the client for a
 * certificate (CA names from ca_pem, none when NULL), and keep the session
 * from being resumed later. */
int tg__tls_request_client_certificate(SSL *ssl, const char *ca_pem, size_t len);
void tg__tls_disable_session_reuse(SSL *ssl);
/* The parked certificate phase ended with status st (0: go on): the
 * handshake goes on, or fails, when it is driven next. */
void tg__tls_cert_phase_done(SSL *ssl, int st);

/* ---- upstream TLS ---- */

typedef struct tg_tls_upstream_s tg_tls_upstream_t;
/* A service's TLS parameters towards its upstream. */
struct tg_tls_upstream_s {
    bool verify;
    int verify_depth; /* -1: OpenSSL's default */
    X509_STORE *store; /* ca_certificates; NULL = the system's */
    X509 *client_cert; /* client_certificate (mTLS) */
    STACK_OF(X509) *client_chain;
    EVP_PKEY *client_key;
    uint64_t key;     /* distinguishes keepalive pools */
};
/* Builds the TLS parameters of the service row at `svc` (tls_verify,
 * tls_verify_depth, ca_certificates ids looked up in the `cas` list,
 * client_certificate looked up in the `certs` list). NULL with err set when a
 * reference or a PEM is bad. */
tg_tls_upstream_t *tg_tls_upstream_build(struct lua_State *L, int svc, int cas, int certs,
                                         char *err, size_t errlen);
void tg_tls_upstream_free(tg_tls_upstream_t *p);
/* For a request to `host` (the service's host, or the request's Host with
 * preserve_host; a port is dropped): *sni is the name Kong sends (in buf;
 * NULL for an IP literal), and the result the keepalive pool key of the
 * connection (these parameters to that name; never 0). */
uint64_t tg_tls_upstream_target(const tg_tls_upstream_t *p, const char *host, size_t len,
                                char *buf, size_t buflen, const char **sni);
/* A client-side SSL on a connected socket; `host` is the name (or IP) the
 * upstream certificate must match when verifying. */
SSL *tg_tls_connect_new(int fd, const tg_tls_upstream_t *p, const char *sni, const char *host);
/* 1 = done, 0 = wait (*want_write says for which direction), -1 = failed
 * (reason in `why`). */
int tg_tls_handshake(SSL *ssl, bool *want_write, char *why, size_t whylen);

#endif
