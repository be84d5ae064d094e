/* cosocket.c: the non-blocking primitives under ngx.socket.tcp (the cosocket
 * logic — buffering, patterns, timeouts, pools — is Lua:
 * core/lua/tollgate/ngx_socket.lua). Module tollgate.c.socket:
 *   tcp(family) -> sock          family: "inet", "inet6" or "unix"
 *   sock:connect(addr[, port])   -> "ok" | "again" | nil, err
 *   sock:connect_result()        -> true | nil, err      (after a write wait)
 *   sock:recv(max)               -> data | nil, "again" | nil, "closed" | nil, err
 *   sock:send(s, from)           -> n | nil, "again" | nil, err   (from: 1-based)
 *   sock:fd()  sock:close()
 *   sock:ssl_init(server_name|nil, verify)   -> true | nil, err
 *   sock:ssl_handshake()         -> true | nil, "again", "r"|"w" | nil, err
 * recv/send go through TLS once the handshake is done. A sock closes its
 * descriptor when collected. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SOCK_MT "tollgate.sock"
#define SSL_CTX_KEY "tollgate.ssl_client_ctx"

typedef struct {
    int fd;
    SSL *ssl;
    bool tls;  /* the handshake is done: recv/send use ssl */
    char want; /* what a TLS operation waits for: 'r' or 'w' */
} tg_sock_t;

static tg_sock_t *check_sock(lua_State *L)
{
    tg_sock_t *s = luaL_checkudata(L, 1, SOCK_MT);
    if (s->fd < 0)
        luaL_error(L, "closed");
    return s;
}

static int push_err(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

static int l_tcp(lua_State *L)
{
    const char *fam = luaL_optstring(L, 1, "inet");
    int af = !strcmp(fam, "inet6") ? AF_INET6 : !strcmp(fam, "unix") ? AF_UNIX : AF_INET;
    int fd = socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return push_err(L, strerror(errno));
    if (af != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    tg_sock_t *s = lua_newuserdata(L, sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    luaL_getmetatable(L, SOCK_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static int l_connect(lua_State *L)
{
    tg_sock_t *s = check_sock(L);
    const char *addr = luaL_checkstring(L, 2);
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    if (lua_isnoneornil(L, 3)) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        if (strlen(addr) >= sizeof(un->sun_path))
            return push_err(L, "path too long");
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, addr);
        len = sizeof(*un);
    } else {
        int port = (int)luaL_checkinteger(L, 3);
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            in4->sin_port = htons((uint16_t)port);
            len = sizeof(*in4);
        } else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons((uint16_t)port);
            len = sizeof(*in6);
        } else {
            return push_err(L, "not a numeric address");
        }
    }
    if (connect(s->fd, (struct sockaddr *)&ss, len) == 0) {
        lua_pushliteral(L, "ok");
        return 1;
    }
    if (errno == EINPROGRESS || errno == EAGAIN) {
        lua_pushliteral(L, "again");
        return 1;
    }
    return push_err(L, errno == ECONNREFUSED ? "connection refused" : strerror(errno));
}

static int l_connect_result(lua_State *L)
{
    tg_sock_t *s = check_sock(L);
    int e = 0;
    socklen_t el = sizeof(e);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
        e = errno;
    if (e)
        return push_err(L, e == ECONNREFUSED ? "connection refused" : strerror(e));
    lua_pushboolean(L, 1);
    return 1;
}

static int ssl_fail(lua_State *L, tg_sock_t *s, int rc, const char *what)
{
    int e = SSL_get_error(s->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        s->want = e == SSL_ERROR_WANT_READ ? 'r' : 'w';
        lua_pushnil(L);
        lua_pushliteral(L, "again");
        lua_pushlstring(L, &s->want, 1);
        return 3;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return push_err(L, "closed");
    unsigned long code = ERR_get_error();
    char buf[256];
    if (code) {
        ERR_error_string_n(code, buf, sizeof(buf));
    } else if (e == SSL_ERROR_SYSCALL) {
        snprintf(buf, sizeof(buf), "%s", errno ? strerror(errno) : "closed");
        if (!errno)
            return push_err(L, "closed");
    } else {
        snprintf(buf, sizeof(buf), "%s failed (%d)", what, e);
    }
    ERR_clear_error();
    return push_err(L, buf);
}

static int l_recv(lua_State *L)
{
    tg_sock_t *s = check_sock(L);
    lua_Integer max = luaL_optinteger(L, 2, 16384);
    if (max <= 0 || max > 1 << 20)
        max = 16384;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char *p = luaL_prepbuffer(&b);
    size_t cap = LUAL_BUFFERSIZE < (size_t)max ? LUAL_BUFFERSIZE : (size_t)max;
    if (s->tls) {
        int n = SSL_read(s->ssl, p, (int)cap);
        if (n <= 0)
            return ssl_fail(L, s, n, "SSL_read");
        luaL_addsize(&b, (size_t)n);
        luaL_pushresult(&b);
        return 1;
    }
    ssize_t n = recv(s->fd, p, cap, 0);
    if (n > 0) {
        luaL_addsize(&b, (size_t)n);
        luaL_pushresult(&b);
        return 1;
    }
    if (n == 0)
        return push_err(L, "closed");
    if (errno == EAGAIN || errno == EINTR)
        return push_err(L, "again");
    return push_err(L, errno == ECONNRESET ? "connection reset by peer" : strerror(errno));
}

static int l_send(lua_State *L)
{
    tg_sock_t *s = check_sock(L);
    size_t len;
    const char *p = luaL_checklstring(L, 2, &len);
    lua_Integer from = luaL_optinteger(L, 3, 1);
    if (from < 1 || (size_t)from > len + 1)
        return luaL_argerror(L, 3, "out of range");
    p += from - 1;
    len -= (size_t)(from - 1);
    if (s->tls) {
        if (len == 0) {
            lua_pushinteger(L, 0);
            return 1;
        }
        int n = SSL_write(s->ssl, p, len > 1 << 30 ? 1 << 30 : (int)len);
        if (n <= 0)
            return ssl_fail(L, s, n, "SSL_write");
        lua_pushinteger(L, n);
        return 1;
    }
    ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL);
    if (n >= 0) {
        lua_pushinteger(L, (lua_Integer)n);
        return 1;
    }
    if (errno == EAGAIN || errno == EINTR)
        return push_err(L, "again");
    return push_err(L, errno == EPIPE        ? "broken pipe"
                       : errno == ECONNRESET ? "connection reset by peer"
                                             : strerror(errno));
}

static int l_fd(lua_State *L)
{
    tg_sock_t *s = check_sock(L);
    lua_pushinteger(L, s->fd);
    return 1;
}

static void sock_close(tg_sock_t *s)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    s->tls = false;
}

static int l_close(lua_State *L)
{
    tg_sock_t *s = luaL_checkudata(L, 1, SOCK_MT);
    sock_close(s);
    return 0;
}

static int l_ctx_gc(lua_State *L)
{
    SSL_CTX **p = lua_touserdata(L, 1);
    if (p && *p)
        SSL_CTX_free(*p);
    return 0;
}

static SSL_CTX *client_ctx(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SSL_CTX_KEY);
    SSL_CTX **pctx = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (pctx)
        return *pctx;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_default_verify_paths(ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    pctx = lua_newuserdata(L, sizeof(*pctx));
    *pctx = ctx;
    lua_newtable(L);
    lua_pushcfunction(L, l_ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, SSL_CTX_KEY);
    return ctx;
}

static int l_ssl_init(lua_State *L)
{
    tg_sock_t *s = check_sock(L);
    const char *sni = luaL_optstring(L, 2, NULL);
    int verify = lua_toboolean(L, 3);
    SSL_CTX *ctx = client_ctx(L);
    if (!ctx)
        return push_err(L, "SSL_CTX_new failed");
    if (s->ssl)
        SSL_free(s->ssl);
    s->tls = false;
    s->ssl = SSL_new(ctx);
    if (!s->ssl)
        return push_err(L, "SSL_new failed");
    SSL_set_fd(s->ssl, s->fd);
    SSL_set_connect_state(s->ssl);
    if (sni && *sni) {
        SSL_set_tlsext_host_name(s->ssl, sni);
        if (verify)
            SSL_set1_host(s->ssl, sni);
    }
    SSL_set_verify(s->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_ssl_handshake(lua_State *L)
{
    tg_sock_t *s = check_sock(L);
    if (!s->ssl)
        return push_err(L, "no TLS state");
    ERR_clear_error();
    int rc = SSL_do_handshake(s->ssl);
    if (rc == 1) {
        s->tls = true;
        lua_pushboolean(L, 1);
        return 1;
    }
    long v = SSL_get_verify_result(s->ssl);
    if (v != X509_V_OK && SSL_get_error(s->ssl, rc) == SSL_ERROR_SSL) {
        ERR_clear_error();
        char buf[256];
        snprintf(buf, sizeof(buf), "certificate verify failed (%ld: %s)", v,
                 X509_verify_cert_error_string(v));
        return push_err(L, buf);
    }
    return ssl_fail(L, s, rc, "handshake");
}

static int l_gc(lua_State *L)
{
    sock_close(luaL_checkudata(L, 1, SOCK_MT));
    return 0;
}

int luaopen_tollgate_c_socket(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"connect", l_connect},
        {"connect_result", l_connect_result},
        {"recv", l_recv},
        {"send", l_send},
        {"fd", l_fd},
        {"close", l_close},
        {"ssl_init", l_ssl_init},
        {"ssl_handshake", l_ssl_handshake},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, SOCK_MT)) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, l_tcp);
    lua_setfield(L, -2, "tcp");
    return 1;
}
