/* tls.c: TLS with OpenSSL for the proxy (see tls.h). */
#include "tls.h"
#include "log.h"
#include "pdk.h"
#include "plugins.h"
#include "proxy_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lauxlib.h>
#include <lua.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static SSL_CTX *default_ctx; /* the listeners' context: default certificates */
static SSL_CTX *client_ctx;  /* towards upstreams */
static int client_init(const tg_conf_t *conf, char *err, size_t errlen);
static int ex_conn = -1;     /* SSL ex_data: the proxy connection */
static int ex_flags = -1;    /* SSL ex_data: TLSF_* bits */
static const tg_conf_t *gconf;

enum {
    TLSF_DONE = 1,
    TLSF_RENEGOTIATE = 2,
    TLSF_CERT_PHASE = 4,  /* the certificate phase started */
    TLSF_NO_REUSE = 8,
    TLSF_CERT_OK = 16,    /* ... and ended well */
    TLSF_CERT_FAILED = 32 /* ... and failed: the handshake fails */
};

static const char sid_ctx[] = "tollgate";

/* ------------------------------------------------------------- helpers -- */

static const char *ssl_errstr(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (!e)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static bool is_pem(const char *s)
{
    return strstr(s, "-----BEGIN ") != NULL;
}

/* A BIO over a PEM given inline, base64-encoded, or as a file path (the
 * three forms Kong takes for ssl_cert and its kin). */
static BIO *pem_bio(const char *v)
{
    if (is_pem(v))
        return BIO_new_mem_buf(v, -1);
    size_t n = strlen(v);
    if (n >= 16 && access(v, F_OK) != 0 && strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                                    "qrstuvwxyz0123456789+/=") == n) {
        unsigned char *out = malloc(n);
        int len = out ? EVP_DecodeBlock(out, (const unsigned char *)v, (int)n) : -1;
        BIO *b = NULL;
        if (len > 0 && memmem(out, (size_t)len, "-----BEGIN ", 11)) {
            b = BIO_new(BIO_s_mem());
            if (b)
                BIO_write(b, out, len);
        }
        free(out);
        if (b)
            return b;
    }
    return BIO_new_file(v, "r");
}

/* Loads a certificate chain and its key into ctx (one of RSA/ECDSA). */
static int ctx_use_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errlen)
{
    char e[256];
    BIO *b = pem_bio(cert);
    X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
    if (!x) {
        snprintf(err, errlen, "could not load certificate %s: %s", is_pem(cert) ? "(PEM)" : cert,
                 ssl_errstr(e, sizeof(e)));
        BIO_free(b);
        return TG_EINVAL;
    }
    if (SSL_CTX_use_certificate(ctx, x) != 1) {
        snprintf(err, errlen, "could not use certificate: %s", ssl_errstr(e, sizeof(e)));
        X509_free(x);
        BIO_free(b);
        return TG_EINVAL;
    }
    X509_free(x);
    /* the rest of the file is the chain */
    X509 *ca;
    while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            break;
        }
    }
    ERR_clear_error();
    BIO_free(b);
    b = pem_bio(key);
    EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!pk) {
        snprintf(err, errlen, "could not load certificate key %s: %s",
                 is_pem(key) ? "(PEM)" : key, ssl_errstr(e, sizeof(e)));
        return TG_EINVAL;
    }
    int ok = SSL_CTX_use_PrivateKey(ctx, pk) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(pk);
    if (!ok) {
        snprintf(err, errlen, "certificate does not match key: %s", ssl_errstr(e, sizeof(e)));
        return TG_EINVAL;
    }
    return 0;
}

/* ---------------------------------------------- default certificate pair -- */

static int write_file(const char *path, mode_t mode, int (*fn)(BIO *, void *), void *obj)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return TG_EIO;
    BIO *b = BIO_new_fd(fd, BIO_CLOSE);
    int ok = b && fn(b, obj) == 1;
    BIO_free(b);
    return ok ? 0 : TG_EIO;
}

static int write_key(BIO *b, void *k)
{
    return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int write_crt(BIO *b, void *x)
{
    return PEM_write_bio_X509(b, x);
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (!ext)
        return 0;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static int gen_pair(const char *crt_path, const char *key_path, bool ecdsa, char *err,
                    size_t errlen)
{
    char e[256];
    EVP_PKEY *k = ecdsa ? EVP_EC_gen("prime256v1") : EVP_RSA_gen(2048);
    X509 *x = X509_new();
    int rc = TG_EIO;
    unsigned char serial[16];
    if (!k || !x || RAND_bytes(serial, sizeof(serial)) != 1)
        goto done;
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365 * 20);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    static const char *const parts[][2] = {{"C", "US"},   {"ST", "California"},
                                           {"L", "San Francisco"}, {"O", "Kong"},
                                           {"OU", "IT Department"}, {"CN", "localhost"}};
    for (size_t i = 0; i < TG_ARRAY_SIZE(parts); i++)
        X509_NAME_add_entry_by_txt(n, parts[i][0], MBSTRING_ASC,
                                   (const unsigned char *)parts[i][1], -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (!add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !add_ext(x, NID_subject_key_identifier, "hash") || !X509_sign(x, k, EVP_sha256()))
        goto done;
    if (write_file(key_path, 0600, write_key, k) != 0 ||
        write_file(crt_path, 0644, write_crt, x) != 0) {
        snprintf(err, errlen, "could not write %s: %s", key_path, strerror(errno));
        rc = TG_EIO;
        goto out;
    }
    rc = 0;
    goto out;
done:
    snprintf(err, errlen, "could not generate the default certificate: %s",
             ssl_errstr(e, sizeof(e)));
out:
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

static bool any_ssl_listener(const tg_conf_t *conf)
{
    for (size_t i = 0; i < conf->nproxy_listen; i++)
        if (conf->proxy_listen[i].ssl)
            return true;
    return false;
}

static void default_paths(const tg_conf_t *conf, bool ecdsa, char *crt, char *key, size_t len)
{
    snprintf(crt, len, "%s/ssl/kong-default%s.crt", conf->prefix, ecdsa ? "-ecdsa" : "");
    snprintf(key, len, "%s/ssl/kong-default%s.key", conf->prefix, ecdsa ? "-ecdsa" : "");
}

int tg_tls_prepare_prefix(const tg_conf_t *conf, char *err, size_t errlen)
{
    bool listeners = !conf->nssl_cert && any_ssl_listener(conf);
    bool client = conf->client_ssl && !conf->client_ssl_cert; /* the RSA pair serves it */
    if (!listeners && !client)
        return 0;
    for (int ec = 0; ec <= (listeners ? 1 : 0); ec++) {
        char crt[4096], key[4096];
        default_paths(conf, ec, crt, key, sizeof(crt));
        if (access(crt, F_OK) == 0 && access(key, F_OK) == 0)
            continue;
        int rc = gen_pair(crt, key, ec, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------ server contexts -- */

/* Kong's named suites (kong/conf_loader/constants.lua, CIPHER_SUITES). */
static const struct {
    const char *name, *protocols, *ciphers;
    bool prefer_server;
} suites[] = {
    {"modern", "TLSv1.3", NULL, false},
    {"intermediate", "TLSv1.2 TLSv1.3",
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
     "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
     "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305",
     false},
    {"old", "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3",
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
     "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
     "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305:"
     "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:"
     "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"
     "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:"
     "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA:"
     "DES-CBC3-SHA",
     true},
    {"fips", "TLSv1.2", "TLSv1.2+FIPS:kRSA+FIPS:!eNULL:!aNULL", true},
};

static int proto_version(const char *t)
{
    static const struct {
        const char *n;
        int v;
    } p[] = {{"TLSv1", TLS1_VERSION},
             {"TLSv1.1", TLS1_1_VERSION},
             {"TLSv1.2", TLS1_2_VERSION},
             {"TLSv1.3", TLS1_3_VERSION}};
    for (size_t i = 0; i < TG_ARRAY_SIZE(p); i++)
        if (!strcmp(p[i].n, t))
            return p[i].v;
    return 0;
}

/* min/max protocol versions from "TLSv1.2 TLSv1.3" */
static int set_protocols(SSL_CTX *ctx, const char *protocols, char *err, size_t errlen)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", protocols ? protocols : "TLSv1.2 TLSv1.3");
    int lo = 0, hi = 0;
    char *save = NULL;
    for (char *t = strtok_r(tmp, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
        int v = proto_version(t);
        if (!v) {
            snprintf(err, errlen, "ssl_protocols: invalid entry '%s'", t);
            return TG_EINVAL;
        }
        if (!lo || v < lo)
            lo = v;
        if (v > hi)
            hi = v;
    }
    if (!lo) {
        snprintf(err, errlen, "ssl_protocols: no protocol");
        return TG_EINVAL;
    }
    if (lo < TLS1_2_VERSION)
        SSL_CTX_set_security_level(ctx, 0); /* the old suite's protocols need it */
    SSL_CTX_set_min_proto_version(ctx, lo);
    SSL_CTX_set_max_proto_version(ctx, hi);
    return 0;
}

/* ALPN: http/1.1 only until HTTP/2 lands (then h2 joins this list). */
static const unsigned char alpn_protos[] = "\x08http/1.1";

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, alpn_protos, sizeof(alpn_protos) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* as nginx: no common protocol */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static void set_flag(const SSL *ssl, intptr_t f)
{
    intptr_t v = (intptr_t)SSL_get_ex_data(ssl, ex_flags);
    SSL_set_ex_data((SSL *)ssl, ex_flags, (void *)(v | f));
}

/* The ClientHello is in: switch to the certificate the snapshot has for the
 * server name (the certificate phase runs next, in on_cert). */
static int on_servername(SSL *ssl, int *al, void *arg)
{
    tg_conn_t *c = SSL_get_ex_data(ssl, ex_conn);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (c && name && c->w->snap) {
        SSL_CTX *ctx = tg_tls_certs_lookup(c->w->snap->tls_certs, name);
        if (ctx && ctx != SSL_get_SSL_CTX(ssl))
            SSL_set_SSL_CTX(ssl, ctx);
    }
    return SSL_TLSEXT_ERR_OK;
}

/* The global plugins' certificate phase (Kong's ssl_certificate_by_lua),
 * once per handshake, after the server name chose the certificate. A phase
 * that parks on I/O suspends the handshake (-1: SSL_ERROR_WANT_X509_LOOKUP)
 * until tg__tls_cert_phase_done; a plugin that fails fails the handshake. */
static int on_cert(SSL *ssl, void *arg)
{
    tg_conn_t *c = SSL_get_ex_data(ssl, ex_conn);
    intptr_t f = (intptr_t)SSL_get_ex_data(ssl, ex_flags);
    if (!c || (f & TLSF_CERT_OK))
        return 1;
    if (f & TLSF_CERT_FAILED)
        return 0;
    if (f & TLSF_CERT_PHASE)
        return -1; /* still parked */
    set_flag(ssl, TLSF_CERT_PHASE);
    if (!tg_plugins_active(c->w, 0)) {
        set_flag(ssl, TLSF_CERT_OK);
        return 1;
    }
    int st = tg_plugins_run(c, TG_PHASE_CERTIFICATE);
    if (st == TG_PLUGINS_PENDING)
        return -1;
    tg_plugins_request_done(c); /* the request's phases start afresh */
    set_flag(ssl, st == 0 ? TLSF_CERT_OK : TLSF_CERT_FAILED);
    return st == 0 ? 1 : 0;
}

void tg__tls_cert_phase_done(SSL *ssl, int st)
{
    set_flag(ssl, st == 0 ? TLSF_CERT_OK : TLSF_CERT_FAILED);
}

/* The end of the handshake (TLS 1.3 reports its post-handshake messages
 * this way too: TLSF_DONE is set from the first one). */
static void on_info(const SSL *ssl, int where, int ret)
{
    intptr_t f = (intptr_t)SSL_get_ex_data(ssl, ex_flags);
    if (where & SSL_CB_HANDSHAKE_DONE) {
        SSL_set_ex_data((SSL *)ssl, ex_flags, (void *)(f | TLSF_DONE));
        /* kong.client.tls.disable_session_reuse: nothing resumes this one */
        if ((f & TLSF_NO_REUSE) && default_ctx && !(f & TLSF_DONE))
            SSL_CTX_remove_session(default_ctx, SSL_get_session(ssl));
    }
}

/* A ClientHello after the handshake is a client's renegotiation: OpenSSL
 * refuses it with a warning alert and would read on; the connection is
 * closed instead (tg_tls_recv fails), as nginx does. */
static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
        ((const unsigned char *)buf)[0] == SSL3_MT_CLIENT_HELLO &&
        ((intptr_t)SSL_get_ex_data(ssl, ex_flags) & TLSF_DONE))
        set_flag(ssl, TLSF_RENEGOTIATE);
}

void tg__tls_disable_session_reuse(SSL *ssl)
{
    SSL_set_options(ssl, SSL_OP_NO_TICKET);
    set_flag(ssl, TLSF_NO_REUSE);
}

/* kong.client.tls.request_client_certificate: any certificate is taken
 * (nginx's optional_no_ca); the verify result is the plugin's to judge. */
static int accept_any(int ok, X509_STORE_CTX *x)
{
    return 1;
}

int tg__tls_request_client_certificate(SSL *ssl, const char *ca_pem, size_t len)
{
    STACK_OF(X509_NAME) *names = NULL;
    if (ca_pem && len) {
        names = sk_X509_NAME_new_null();
        BIO *b = BIO_new_mem_buf(ca_pem, (int)len);
        X509 *x;
        while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
            X509_NAME *n = X509_NAME_dup(X509_get_subject_name(x));
            if (n)
                sk_X509_NAME_push(names, n);
            X509_free(x);
        }
        ERR_clear_error();
        BIO_free(b);
        if (sk_X509_NAME_num(names) == 0) {
            sk_X509_NAME_free(names);
            return TG_EINVAL;
        }
        SSL_set_client_CA_list(ssl, names);
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, accept_any);
    return 0;
}

/* The DH parameters of a named RFC 7919 group ("ffdhe2048"), NULL if unknown. */
static EVP_PKEY *dh_group(const char *name)
{
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)name, 0),
        OSSL_PARAM_construct_end(),
    };
    if (pc && EVP_PKEY_paramgen_init(pc) > 0 && EVP_PKEY_CTX_set_params(pc, params) > 0)
        EVP_PKEY_paramgen(pc, &pk);
    EVP_PKEY_CTX_free(pc);
    return pk;
}

/* The settings every server context shares (the default one and each
 * certificate's). */
static int ctx_configure(SSL_CTX *ctx, const tg_conf_t *conf, char *err, size_t errlen)
{
    char e[256];
    const char *protocols = conf->ssl_protocols, *ciphers = conf->ssl_ciphers;
    bool prefer = conf->ssl_prefer_server_ciphers;
    const char *suite = conf->ssl_cipher_suite ? conf->ssl_cipher_suite : "intermediate";
    if (strcmp(suite, "custom") != 0) {
        for (size_t i = 0; i < TG_ARRAY_SIZE(suites); i++) {
            if (!strcmp(suites[i].name, suite)) {
                protocols = suites[i].protocols;
                ciphers = suites[i].ciphers;
                prefer = suites[i].prefer_server;
            }
        }
    }
    uint64_t opts = SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF;
    if (prefer)
        opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    if (!conf->ssl_session_tickets)
        opts |= SSL_OP_NO_TICKET;
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* one recv() per burst rather than one per record header and body: safe
     * because the proxy reads until WANT_READ (or marks the edge pending) */
    SSL_CTX_set_read_ahead(ctx, 1);
    if (set_protocols(ctx, protocols, err, errlen) != 0)
        return TG_EINVAL;
    if (ciphers && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        snprintf(err, errlen, "ssl_ciphers: %s", ssl_errstr(e, sizeof(e)));
        return TG_EINVAL;
    }
    const char *group = conf->ssl_dhparam && !strncmp(conf->ssl_dhparam, "ffdhe", 5)
                            ? conf->ssl_dhparam
                        : !conf->ssl_dhparam && !strcmp(suite, "intermediate")
                            ? "ffdhe2048" /* the suite's */
                            : NULL;
    if (group) {
        EVP_PKEY *dh = dh_group(group);
        if (!dh || SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
            EVP_PKEY_free(dh);
            snprintf(err, errlen, "ssl_dhparam: unknown group '%s' (ffdhe2048, ffdhe3072, "
                                  "ffdhe4096, ffdhe6144, ffdhe8192, or a PEM file)", group);
            ERR_clear_error();
            return TG_EINVAL;
        }
    } else if (conf->ssl_dhparam) {
        BIO *b = pem_bio(conf->ssl_dhparam);
        EVP_PKEY *dh = b ? PEM_read_bio_Parameters(b, NULL) : NULL;
        BIO_free(b);
        if (!dh || SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
            EVP_PKEY_free(dh);
            snprintf(err, errlen, "ssl_dhparam: could not load %s: %s", conf->ssl_dhparam,
                     ssl_errstr(e, sizeof(e)));
            return TG_EINVAL;
        }
    }
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_timeout(ctx, conf->ssl_session_timeout_s > 0 ? conf->ssl_session_timeout_s
                                                             : 86400);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    SSL_CTX_set_info_callback(ctx, on_info);
    SSL_CTX_set_msg_callback(ctx, on_msg);
    return 0;
}

static SSL_CTX *server_ctx_new(const tg_conf_t *conf, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    if (ctx_configure(ctx, conf, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_cert_cb(ctx, on_cert, NULL);
    return ctx;
}

int tg_tls_init(const tg_conf_t *conf, char *err, size_t errlen)
{
    gconf = conf;
    if (ex_conn < 0) {
        ex_conn = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        ex_flags = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    }
    if (client_init(conf, err, errlen) != 0)
        return TG_ERROR;
    if (!any_ssl_listener(conf) || default_ctx)
        return 0;
    SSL_CTX *ctx = server_ctx_new(conf, err, errlen);
    if (!ctx)
        return TG_EINVAL;
    for (int i = 0; i < (conf->nssl_cert ? (int)conf->nssl_cert : 2); i++) {
        char crt[4096], key[4096];
        if (conf->nssl_cert) {
            snprintf(crt, sizeof(crt), "%s", conf->ssl_cert[i]);
            snprintf(key, sizeof(key), "%s", conf->ssl_cert_key[i]);
        } else {
            default_paths(conf, i == 1, crt, key, sizeof(crt));
        }
        char e[512];
        if (ctx_use_pair(ctx, crt, key, e, sizeof(e)) != 0) {
            snprintf(err, errlen, "ssl_cert: %s", e);
            SSL_CTX_free(ctx);
            return TG_EINVAL;
        }
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    default_ctx = ctx;
    return 0;
}

void tg_tls_shutdown(void)
{
    SSL_CTX_free(default_ctx);
    SSL_CTX_free(client_ctx);
    default_ctx = client_ctx = NULL;
}

/* ------------------------------------------------------------------ I/O -- */

SSL *tg_tls_accept_new(int fd, void *conn)
{
    if (!default_ctx)
        return NULL;
    SSL *ssl = SSL_new(default_ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_accept_state(ssl);
    SSL_set_ex_data(ssl, ex_conn, conn);
    return ssl;
}

/* Maps SSL_get_error onto errno: EAGAIN (and the direction), or a failure. */
static ssize_t io_error(SSL *ssl, int r, bool *want_other, bool reading)
{
    int e = SSL_get_error(ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want_other = !reading;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want_other = reading;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_X509_LOOKUP: /* the certificate phase is parked */
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (errno == 0 || errno == EAGAIN)
            errno = ECONNRESET;
        return r == 0 && reading ? 0 : -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

ssize_t tg_tls_recv(SSL *ssl, void *buf, size_t n, bool *want_other)
{
    *want_other = false;
    errno = 0;
    int r = SSL_read(ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    if ((intptr_t)SSL_get_ex_data(ssl, ex_flags) & TLSF_RENEGOTIATE) {
        errno = EPROTO;
        return -1;
    }
    if (r > 0)
        return r;
    return io_error(ssl, r, want_other, true);
}

ssize_t tg_tls_send(SSL *ssl, const void *buf, size_t n, bool *want_other)
{
    *want_other = false;
    errno = 0;
    int r = SSL_write(ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0)
        return r;
    return io_error(ssl, r, want_other, false);
}

void tg_tls_close(SSL *ssl)
{
    if (!ssl)
        return;
    if (SSL_is_init_finished(ssl)) {
        SSL_set_quiet_shutdown(ssl, 0);
        SSL_shutdown(ssl); /* close_notify, best effort: never waits */
    }
    ERR_clear_error();
    SSL_free(ssl);
}

const char *tg_tls_last_error(SSL *ssl, char *buf, size_t len)
{
    if (ssl && ((intptr_t)SSL_get_ex_data(ssl, ex_flags) & TLSF_RENEGOTIATE)) {
        snprintf(buf, len, "client renegotiation refused");
        return buf;
    }
    if (ssl && !SSL_is_server(ssl)) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK) {
            snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
            ERR_clear_error();
            return buf;
        }
    }
    return ssl_errstr(buf, len);
}

/* -------------------------------------------------------- certificates -- */

typedef struct {
    char *name; /* lowercase; "*.example.com", "example.*", "*" or exact */
    SSL_CTX *ctx;
} sni_entry_t;

struct tg_tls_certs_s {
    SSL_CTX **ctxs;
    size_t nctxs;
    sni_entry_t *snis; /* sorted by name */
    size_t nsnis;
};

static int sni_cmp(const void *a, const void *b)
{
    return strcmp(((const sni_entry_t *)a)->name, ((const sni_entry_t *)b)->name);
}

static SSL_CTX *find(const tg_tls_certs_t *c, const char *name)
{
    sni_entry_t k = {.name = (char *)name};
    sni_entry_t *e = bsearch(&k, c->snis, c->nsnis, sizeof(*c->snis), sni_cmp);
    return e ? e->ctx : NULL;
}

SSL_CTX *tg_tls_certs_lookup(const tg_tls_certs_t *c, const char *sni)
{
    if (!c || !c->nsnis)
        return NULL;
    char name[256];
    size_t n = strlen(sni);
    if (n == 0 || n >= sizeof(name) - 2)
        return find(c, "*");
    for (size_t i = 0; i <= n; i++)
        name[i] = (char)((sni[i] >= 'A' && sni[i] <= 'Z') ? sni[i] + 32 : sni[i]);
    if (name[n - 1] == '.')
        name[--n] = 0; /* a trailing dot names the same host */
    SSL_CTX *ctx = find(c, name);
    if (ctx)
        return ctx;
    /* *.example.com: replace the first label (of three or more, as Kong) */
    const char *dot = strchr(name, '.');
    if (dot && strchr(dot + 1, '.')) {
        char w[260];
        snprintf(w, sizeof(w), "*%s", dot);
        if ((ctx = find(c, w)) != NULL)
            return ctx;
    }
    /* example.*: replace the last label */
    const char *last = strrchr(name, '.');
    if (last) {
        char w[260];
        snprintf(w, sizeof(w), "%.*s.*", (int)(last - name), name);
        if ((ctx = find(c, w)) != NULL)
            return ctx;
    }
    return find(c, "*");
}

static const char *strfield(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* the string stays alive in the row */
    return s;
}

void tg_tls_certs_free(tg_tls_certs_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nctxs; i++)
        SSL_CTX_free(c->ctxs[i]);
    for (size_t i = 0; i < c->nsnis; i++)
        free(c->snis[i].name);
    free(c->ctxs);
    free(c->snis);
    free(c);
}

int tg_tls_certs_build(lua_State *L, int idx, tg_tls_certs_t **out, char *err, size_t errlen)
{
    *out = NULL;
    int top = lua_gettop(L);
    idx = idx < 0 ? top + idx + 1 : idx;
    lua_getfield(L, idx, "entities");
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_settop(L, top);
        return 0;
    }
    int ents = lua_gettop(L);
    lua_getfield(L, ents, "certificates");
    int certs = lua_gettop(L);
    lua_getfield(L, ents, "snis");
    int snis = lua_gettop(L);
    size_t ncert = lua_type(L, certs) == LUA_TTABLE ? lua_objlen(L, certs) : 0;
    size_t nsni = lua_type(L, snis) == LUA_TTABLE ? lua_objlen(L, snis) : 0;
    if (!ncert || !gconf) {
        lua_settop(L, top);
        return 0;
    }
    tg_tls_certs_t *c = calloc(1, sizeof(*c));
    c->ctxs = calloc(ncert, sizeof(SSL_CTX *));
    c->snis = calloc(nsni + 1, sizeof(sni_entry_t));
    const char **ids = calloc(ncert, sizeof(char *));
    int rc = 0;
    for (size_t i = 1; i <= ncert && rc == 0; i++) {
        lua_rawgeti(L, certs, (int)i);
        int t = lua_gettop(L);
        const char *id = strfield(L, t, "id");
        const char *crt = strfield(L, t, "cert"), *key = strfield(L, t, "key");
        const char *crt2 = strfield(L, t, "cert_alt"), *key2 = strfield(L, t, "key_alt");
        SSL_CTX *ctx = crt && key ? server_ctx_new(gconf, err, errlen) : NULL;
        char e[512];
        if (!ctx || ctx_use_pair(ctx, crt, key, e, sizeof(e)) != 0 ||
            (crt2 && key2 && ctx_use_pair(ctx, crt2, key2, e, sizeof(e)) != 0)) {
            if (ctx)
                snprintf(err, errlen, "certificates: %s: %s", id ? id : "?", e);
            SSL_CTX_free(ctx);
            rc = TG_EINVAL;
        } else {
            ids[c->nctxs] = id;
            c->ctxs[c->nctxs++] = ctx;
        }
        lua_pop(L, 1);
    }
    for (size_t i = 1; i <= nsni && rc == 0; i++) {
        lua_rawgeti(L, snis, (int)i);
        int t = lua_gettop(L);
        const char *name = strfield(L, t, "name");
        const char *cid = NULL;
        lua_getfield(L, t, "certificate");
        if (lua_type(L, -1) == LUA_TTABLE)
            cid = strfield(L, lua_gettop(L), "id");
        for (size_t j = 0; cid && name && j < c->nctxs; j++) {
            if (ids[j] && !strcmp(ids[j], cid)) {
                sni_entry_t *s = &c->snis[c->nsnis++];
                s->name = strdup(name);
                for (char *p = s->name; *p; p++)
                    if (*p >= 'A' && *p <= 'Z')
                        *p += 32;
                s->ctx = c->ctxs[j];
                break;
            }
        }
        lua_pop(L, 2);
    }
    free(ids);
    lua_settop(L, top);
    if (rc != 0) {
        tg_tls_certs_free(c);
        return rc;
    }
    qsort(c->snis, c->nsnis, sizeof(*c->snis), sni_cmp);
    *out = c;
    return 0;
}

/* -------------------------------------------------------- upstream side -- */


static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The row of `list` whose id is `id` pushed on the stack, or nothing (0). */
static int find_row(lua_State *L, int list, const char *id)
{
    size_t n = lua_type(L, list) == LUA_TTABLE ? lua_objlen(L, list) : 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, list, (int)i);
        const char *rid = strfield(L, lua_gettop(L), "id");
        if (rid && !strcmp(rid, id))
            return 1;
        lua_pop(L, 1);
    }
    return 0;
}

void tg_tls_upstream_free(tg_tls_upstream_t *p)
{
    if (!p)
        return;
    X509_STORE_free(p->store);
    X509_free(p->client_cert);
    sk_X509_pop_free(p->client_chain, X509_free);
    EVP_PKEY_free(p->client_key);
    free(p);
}

tg_tls_upstream_t *tg_tls_upstream_build(lua_State *L, int svc, int cas, int certs, char *err,
                                         size_t errlen)
{
    tg_tls_upstream_t *p = calloc(1, sizeof(*p));
    uint64_t h = 0xcbf29ce484222325ull;
    lua_getfield(L, svc, "tls_verify");
    p->verify = lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1); /* null: off */
    lua_pop(L, 1);
    lua_getfield(L, svc, "tls_verify_depth");
    /* null: nginx's proxy_ssl_verify_depth default, 1 */
    p->verify_depth = lua_type(L, -1) == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : 1;
    lua_pop(L, 1);
    h = fnv(h, &p->verify, sizeof(p->verify));
    h = fnv(h, &p->verify_depth, sizeof(p->verify_depth));

    lua_getfield(L, svc, "ca_certificates");
    int ids = lua_gettop(L);
    size_t nids = lua_type(L, ids) == LUA_TTABLE ? lua_objlen(L, ids) : 0;
    for (size_t i = 1; i <= nids; i++) {
        lua_rawgeti(L, ids, (int)i);
        const char *id = lua_tostring(L, -1);
        if (!id || !find_row(L, cas, id)) {
            snprintf(err, errlen, "ca_certificates: no CA certificate with id '%s'",
                     id ? id : "?");
            lua_settop(L, ids - 1);
            tg_tls_upstream_free(p);
            return NULL;
        }
        const char *pem = strfield(L, lua_gettop(L), "cert");
        BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
        X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (!p->store)
            p->store = X509_STORE_new();
        if (!x || X509_STORE_add_cert(p->store, x) != 1) {
            char e[256];
            snprintf(err, errlen, "ca_certificates: '%s': %s", id, ssl_errstr(e, sizeof(e)));
            X509_free(x);
            lua_settop(L, ids - 1);
            tg_tls_upstream_free(p);
            return NULL;
        }
        X509_free(x);
        h = fnv(h, id, strlen(id));
        lua_pop(L, 2);
    }
    lua_pop(L, 1);

    lua_getfield(L, svc, "client_certificate");
    const char *cid = lua_type(L, -1) == LUA_TTABLE ? strfield(L, lua_gettop(L), "id") : NULL;
    if (cid) {
        if (!find_row(L, certs, cid)) {
            snprintf(err, errlen, "client_certificate: no certificate with id '%s'", cid);
            lua_pop(L, 1);
            tg_tls_upstream_free(p);
            return NULL;
        }
        int row = lua_gettop(L);
        const char *crt = strfield(L, row, "cert"), *key = strfield(L, row, "key");
        BIO *b = crt ? BIO_new_mem_buf(crt, -1) : NULL;
        p->client_cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        X509 *ca;
        while (b && (ca = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
            if (!p->client_chain)
                p->client_chain = sk_X509_new_null();
            sk_X509_push(p->client_chain, ca);
        }
        ERR_clear_error();
        BIO_free(b);
        b = key ? BIO_new_mem_buf(key, -1) : NULL;
        p->client_key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        lua_pop(L, 1);
        if (!p->client_cert || !p->client_key) {
            char e[256];
            snprintf(err, errlen, "client_certificate '%s': %s", cid, ssl_errstr(e, sizeof(e)));
            lua_pop(L, 1);
            tg_tls_upstream_free(p);
            return NULL;
        }
        h = fnv(h, cid, strlen(cid));
    }
    lua_pop(L, 1);
    p->key = h ? h : 1;
    return p;
}

uint64_t tg_tls_upstream_target(const tg_tls_upstream_t *p, const char *host, size_t len,
                                char *buf, size_t buflen, const char **sni)
{
    *sni = NULL;
    const char *colon = len && host[0] != '[' ? memchr(host, ':', len) : NULL;
    if (colon)
        len = (size_t)(colon - host);
    struct in_addr a4;
    if (len && len < buflen && host[0] != '[') {
        memcpy(buf, host, len);
        buf[len] = 0;
        /* RFC 6066: no IP literals in SNI (nor does nginx send them) */
        if (inet_pton(AF_INET, buf, &a4) != 1)
            *sni = buf;
    }
    uint64_t h = p ? p->key : 1;
    if (*sni)
        h = fnv(h, *sni, strlen(*sni));
    return h ? h : 1;
}

SSL *tg_tls_connect_new(int fd, const tg_tls_upstream_t *p, const char *sni, const char *host)
{
    if (!client_ctx)
        return NULL;
    SSL *ssl = SSL_new(client_ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    if (sni)
        SSL_set_tlsext_host_name(ssl, sni);
    if (p) {
        if (p->verify) {
            SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
            if (p->verify_depth >= 0)
                SSL_set_verify_depth(ssl, p->verify_depth);
            if (p->store)
                SSL_set1_verify_cert_store(ssl, p->store);
            X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
            if (host && X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
                ERR_clear_error();
                SSL_set1_host(ssl, host);
            }
        }
        if (p->client_cert && p->client_key) {
            SSL_use_certificate(ssl, p->client_cert);
            SSL_use_PrivateKey(ssl, p->client_key);
            if (p->client_chain)
                SSL_set1_chain(ssl, p->client_chain);
        }
    }
    return ssl;
}

int tg_tls_handshake(SSL *ssl, bool *want_write, char *why, size_t whylen)
{
    *want_write = false;
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        *want_write = true;
        return 0;
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        snprintf(why, whylen, "TLS handshake failed: %s",
                 errno ? strerror(errno) : "connection closed");
    else {
        char b[256];
        snprintf(why, whylen, "TLS handshake failed: %s", tg_tls_last_error(ssl, b, sizeof(b)));
    }
    ERR_clear_error();
    return -1;
}

static int client_init(const tg_conf_t *conf, char *err, size_t errlen)
{
    if (client_ctx)
        return 0;
    client_ctx = SSL_CTX_new(TLS_client_method());
    if (!client_ctx) {
        snprintf(err, errlen, "SSL_CTX_new failed");
        return TG_ERROR;
    }
    SSL_CTX_set_options(client_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(client_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                     SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(client_ctx, 1);
    SSL_CTX_set_min_proto_version(client_ctx, TLS1_2_VERSION);
    SSL_CTX_set_default_verify_paths(client_ctx);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    if (conf->client_ssl) {
        char crt[4096], key[4096], e[512];
        if (conf->client_ssl_cert) {
            snprintf(crt, sizeof(crt), "%s", conf->client_ssl_cert);
            snprintf(key, sizeof(key), "%s", conf->client_ssl_cert_key);
        } else {
            default_paths(conf, false, crt, key, sizeof(crt));
        }
        if (ctx_use_pair(client_ctx, crt, key, e, sizeof(e)) != 0) {
            snprintf(err, errlen, "client_ssl_cert: %s", e);
            SSL_CTX_free(client_ctx);
            client_ctx = NULL;
            return TG_EINVAL;
        }
    }
    return 0;
}
