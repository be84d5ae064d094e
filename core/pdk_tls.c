/* pdk_tls.c: the C side of kong.client.tls and of ngx.var's ssl_* variables
 * (pdk/kong/pdk/client/tls.lua, core/lua/tollgate/ngx_shim.lua). Every
 * function answers -1 on a connection without TLS. */
#include "pdk.h"
#include "proxy_int.h"
#include "tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

int tg_pdk_tls_request_client_certificate(tg_req_t *r, const char *ca_pem, size_t len)
{
    if (!r->ssl)
        return -1;
    return tg__tls_request_client_certificate(r->ssl, ca_pem, len) == 0 ? 0 : -2;
}

int tg_pdk_tls_disable_session_reuse(tg_req_t *r)
{
    if (!r->ssl)
        return -1;
    tg__tls_disable_session_reuse(r->ssl);
    return 0;
}

/* The client's certificate then the chain it sent, as PEM in the request's
 * arena: 1, or 0 when the client sent none. */
int tg_pdk_tls_get_client_chain(tg_req_t *r, const char **out, size_t *len)
{
    if (!r->ssl)
        return -1;
    X509 *leaf = SSL_get0_peer_certificate(r->ssl);
    if (!leaf)
        return 0;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return -2;
    PEM_write_bio_X509(b, leaf);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(r->ssl); /* server side: without the leaf */
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        if (X509_cmp(x, leaf) != 0)
            PEM_write_bio_X509(b, x);
    }
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    *out = n > 0 ? tg__arena_dup(&r->arena, p, (size_t)n) : NULL;
    *len = *out ? (size_t)n : 0;
    BIO_free(b);
    return *out ? 1 : -2;
}

static int out_str(tg_req_t *r, const char *s, const char **out, size_t *len)
{
    if (!s)
        return 0;
    *len = strlen(s);
    *out = tg__arena_dup(&r->arena, s, *len);
    return *out ? 1 : -2;
}

/* nginx's $ssl_server_name, $ssl_protocol, $ssl_cipher, $ssl_session_reused,
 * $ssl_client_verify and $ssl_client_s_dn: 1 with the value, 0 when empty. */
int tg_pdk_tls_var(tg_req_t *r, const char *name, size_t nlen, const char **out, size_t *len)
{
    if (!r->ssl)
        return -1;
    SSL *ssl = r->ssl;
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
    if (IS("ssl_server_name"))
        return out_str(r, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), out, len);
    if (IS("ssl_protocol"))
        return out_str(r, SSL_get_version(ssl), out, len);
    if (IS("ssl_cipher"))
        return out_str(r, SSL_get_cipher_name(ssl), out, len);
    if (IS("ssl_session_reused"))
        return out_str(r, SSL_session_reused(ssl) ? "r" : ".", out, len);
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (IS("ssl_client_verify")) {
        if (!peer)
            return out_str(r, "NONE", out, len);
        long v = SSL_get_verify_result(ssl);
        if (v == X509_V_OK)
            return out_str(r, "SUCCESS", out, len);
        char b[256];
        snprintf(b, sizeof(b), "FAILED:%s", X509_verify_cert_error_string(v));
        return out_str(r, b, out, len);
    }
    if (IS("ssl_client_s_dn")) {
        if (!peer)
            return 0;
        char b[512];
        BIO *bio = BIO_new(BIO_s_mem());
        X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
        int n = BIO_read(bio, b, sizeof(b) - 1);
        BIO_free(bio);
        b[n > 0 ? n : 0] = 0;
        return out_str(r, b, out, len);
    }
#undef IS
    return 0;
}
