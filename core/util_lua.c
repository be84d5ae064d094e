/* util_lua.c: "tollgate.c.util", small OpenSSL-backed helpers for Lua.
 *
 *   sha1(s), sha256(s), md5(s) -> raw digest bytes
 *   hex(s)                     -> lowercase hex of s
 *   random_bytes(n)            -> n bytes from RAND_bytes (n <= 65536)
 *   uuid_v4()                  -> random UUID string
 *   uuid_v5(ns, name)          -> RFC 4122 name-based (SHA-1) UUID string; nil, err on a bad ns
 *   now()                      -> wall clock, float seconds
 *   pem_cert_check(pem)        -> true | nil, err (a PEM X.509 certificate parses)
 *   pem_key_check(pem)         -> true | nil, err (a PEM private or public key parses)
 *   x509_info(pem)             -> { pubkey = PEM, key_type = "rsa"|"ec"|..., not_after = epoch,
 *                                   is_ca = bool, sha256 = hex of DER } | nil, err
 *   pkey_public_pem(pem)       -> PEM of the public half of a private or public key | nil, err
 */
#include "util_lua.h"

#include <lauxlib.h>
#include <lua.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int digest(lua_State *L, const EVP_MD *md)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    if (!EVP_Digest(s, len, out, &outlen, md, NULL))
        return luaL_error(L, "digest failed");
    lua_pushlstring(L, (const char *)out, outlen);
    return 1;
}

static int l_sha1(lua_State *L) { return digest(L, EVP_sha1()); }
static int l_sha256(lua_State *L) { return digest(L, EVP_sha256()); }
static int l_md5(lua_State *L) { return digest(L, EVP_md5()); }

void tg_util_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
}

static int l_hex(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        char two[2];
        tg_util_hex(s + i, 1, two);
        luaL_addlstring(&b, two, 2);
    }
    luaL_pushresult(&b);
    return 1;
}

static int l_random_bytes(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 0 || n > 65536)
        return luaL_argerror(L, 1, "must be between 0 and 65536");
    unsigned char buf[65536];
    if (n > 0 && RAND_bytes(buf, (int)n) != 1)
        return luaL_error(L, "RAND_bytes failed");
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

void tg_util_uuid_format(const unsigned char b[16], char out[37])
{
    char hex[32];
    tg_util_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tg_util_uuid_parse(const char *s, size_t len, unsigned char out[16])
{
    if (len != 36)
        return TG_EINVAL;
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return TG_EINVAL;
            continue;
        }
        int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0 || i + 1 == 8 || i + 1 == 13 || i + 1 == 18 || i + 1 == 23)
            return TG_EINVAL;
        out[n++] = (unsigned char)(hi << 4 | lo);
        i++;
    }
    return n == 16 ? TG_OK : TG_EINVAL;
}

int tg_util_uuid_v5(const char *ns, size_t nslen, const char *name, size_t namelen, char out[37])
{
    unsigned char nsb[16], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (tg_util_uuid_parse(ns, nslen, nsb) != TG_OK)
        return TG_EINVAL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return TG_ENOMEM;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) && EVP_DigestUpdate(ctx, nsb, 16) &&
             EVP_DigestUpdate(ctx, name, namelen) && EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return TG_ERROR;
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    tg_util_uuid_format(md, out);
    return TG_OK;
}

static int l_uuid_v4(lua_State *L)
{
    unsigned char b[16];
    char out[37];
    if (RAND_bytes(b, 16) != 1)
        return luaL_error(L, "RAND_bytes failed");
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    tg_util_uuid_format(b, out);
    lua_pushlstring(L, out, 36);
    return 1;
}

static int l_uuid_v5(lua_State *L)
{
    size_t nslen, namelen;
    const char *ns = luaL_checklstring(L, 1, &nslen);
    const char *name = luaL_checklstring(L, 2, &namelen);
    char out[37];
    int rc = tg_util_uuid_v5(ns, nslen, name, namelen, out);
    if (rc != TG_OK) {
        lua_pushnil(L);
        lua_pushstring(L, rc == TG_EINVAL ? "invalid namespace uuid" : tg_strerror(rc));
        return 2;
    }
    lua_pushlstring(L, out, 36);
    return 1;
}

static int l_now(lua_State *L)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
    return 1;
}

static int pem_result(lua_State *L, int ok)
{
    if (ok) {
        lua_pushboolean(L, 1);
        return 1;
    }
    unsigned long e = ERR_peek_last_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    lua_pushnil(L);
    lua_pushstring(L, e ? buf : "could not parse PEM");
    return 2;
}

/* Reads the first PEM certificate of s; NULL when none parses. Caller frees. */
static X509 *read_x509(const char *s, size_t len)
{
    BIO *bio = BIO_new_mem_buf(s, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return x;
}

static int l_pem_cert_check(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    X509 *x = read_x509(s, len);
    int ok = x != NULL;
    X509_free(x);
    return pem_result(L, ok);
}

/* Reads a PEM private key, or failing that a PEM public key; NULL when neither parses. */
static EVP_PKEY *read_pkey(const char *s, size_t len)
{
    BIO *bio = BIO_new_mem_buf(s, (int)len);
    if (!bio)
        return NULL;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (!k) {
        ERR_clear_error();
        (void)BIO_reset(bio);
        k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    }
    BIO_free(bio);
    return k;
}

static int l_pem_key_check(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    EVP_PKEY *k = read_pkey(s, len);
    int ok = k != NULL;
    EVP_PKEY_free(k);
    return pem_result(L, ok);
}

static int push_pubkey_pem(lua_State *L, EVP_PKEY *k)
{
    BIO *out = BIO_new(BIO_s_mem());
    if (!out || !PEM_write_bio_PUBKEY(out, k)) {
        BIO_free(out);
        return 0;
    }
    char *data;
    long n = BIO_get_mem_data(out, &data);
    lua_pushlstring(L, data, (size_t)n);
    BIO_free(out);
    return 1;
}

static int l_x509_info(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    X509 *x = read_x509(s, len);
    if (!x)
        return pem_result(L, 0);
    lua_newtable(L);
    EVP_PKEY *k = X509_get0_pubkey(x);
    if (k && push_pubkey_pem(L, k))
        lua_setfield(L, -2, "pubkey");
    if (k) {
        int id = EVP_PKEY_get_base_id(k);
        const char *t = id == EVP_PKEY_RSA ? "rsa" : id == EVP_PKEY_EC ? "ec"
                      : id == EVP_PKEY_ED25519 ? "ed25519" : id == EVP_PKEY_DSA ? "dsa" : "other";
        lua_pushstring(L, t);
        lua_setfield(L, -2, "key_type");
    }
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm)) {
        lua_pushnumber(L, (lua_Number)timegm(&tm));
        lua_setfield(L, -2, "not_after");
    }
    lua_pushboolean(L, X509_check_ca(x) > 0 && (X509_get_extension_flags(x) & EXFLAG_BCONS) &&
                           (X509_get_extension_flags(x) & EXFLAG_CA));
    lua_setfield(L, -2, "is_ca");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(x, EVP_sha256(), md, &mdlen)) {
        char hex[2 * EVP_MAX_MD_SIZE];
        tg_util_hex(md, mdlen, hex);
        lua_pushlstring(L, hex, 2 * mdlen);
        lua_setfield(L, -2, "sha256");
    }
    X509_free(x);
    return 1;
}

static int l_pkey_public_pem(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    EVP_PKEY *k = read_pkey(s, len);
    if (!k)
        return pem_result(L, 0);
    int ok = push_pubkey_pem(L, k);
    EVP_PKEY_free(k);
    return ok ? 1 : pem_result(L, 0);
}

int luaopen_tollgate_c_util(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"sha1", l_sha1},
        {"sha256", l_sha256},
        {"md5", l_md5},
        {"hex", l_hex},
        {"random_bytes", l_random_bytes},
        {"uuid_v4", l_uuid_v4},
        {"uuid_v5", l_uuid_v5},
        {"now", l_now},
        {"pem_cert_check", l_pem_cert_check},
        {"pem_key_check", l_pem_key_check},
        {"x509_info", l_x509_info},
        {"pkey_public_pem", l_pkey_public_pem},
        {NULL, NULL},
    };
    lua_newtable(L);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    return 1;
}
