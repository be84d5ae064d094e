/* admin.c: the Admin API and status listeners over evhttp, answered by Lua. */
#include "admin.h"
#include "log.h"
#include "lua_vm.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    struct evhttp *http;
    const char *module; /* the Lua module answering: "tollgate.admin" | "tollgate.status" */
    const char *kind;   /* "admin" | "status" */
    tg_accesslog_t *log;
} tg_admin_server_t;

enum { SRV_ADMIN, SRV_STATUS, SRV_COUNT };

static tg_admin_server_t servers[SRV_COUNT];
static lua_State *AL;
static const tg_conf_t *aconf;

static const char INTERNAL_ERROR_BODY[] = "{\"message\":\"An unexpected error occurred\"}";

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "GET";
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Pushes the headers table: lowercase names, repeated headers joined with ", ". */
static void push_headers(lua_State *L, struct evkeyvalq *hdrs)
{
    lua_newtable(L);
    struct evkeyval *kv;
    char name[256];
    for (kv = hdrs->tqh_first; kv; kv = kv->next.tqe_next) {
        size_t n = strlen(kv->key);
        if (n >= sizeof(name))
            n = sizeof(name) - 1;
        for (size_t i = 0; i < n; i++)
            name[i] = (char)tolower((unsigned char)kv->key[i]);
        name[n] = '\0';
        lua_getfield(L, -1, name);
        if (lua_isstring(L, -1)) {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, kv->value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, kv->value);
        }
        lua_setfield(L, -2, name);
    }
}

static void push_request(lua_State *L, struct evhttp_request *req, const tg_admin_server_t *s)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, method_name(evhttp_request_get_command(req)));
    lua_setfield(L, -2, "method");

    const char *uri = evhttp_request_get_uri(req);
    if (!uri)
        uri = "/";
    const char *q = strchr(uri, '?');
    if (q) {
        lua_pushlstring(L, uri, (size_t)(q - uri));
        lua_setfield(L, -2, "path");
        lua_pushstring(L, q + 1);
    } else {
        lua_pushstring(L, uri);
        lua_setfield(L, -2, "path");
        lua_pushliteral(L, "");
    }
    lua_setfield(L, -2, "query");

    push_headers(L, evhttp_request_get_input_headers(req));
    lua_setfield(L, -2, "headers");

    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t blen = in ? evbuffer_get_length(in) : 0;
    if (blen > 0)
        lua_pushlstring(L, (const char *)evbuffer_pullup(in, -1), blen);
    else
        lua_pushliteral(L, "");
    lua_setfield(L, -2, "body");

    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (conn)
        evhttp_connection_get_peer(conn, &addr, &port);
    lua_pushstring(L, addr ? addr : "");
    lua_setfield(L, -2, "remote_addr");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "remote_port");

    lua_pushstring(L, s->kind);
    lua_setfield(L, -2, "listener");
}

/* Adds one header from the Lua table entry at the top (string, number or array). */
static void add_header(struct evkeyvalq *out, const char *name, lua_State *L)
{
    if (lua_type(L, -1) == LUA_TTABLE) {
        int n = (int)lua_objlen(L, -1);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            const char *v = lua_tostring(L, -1);
            if (v)
                evhttp_add_header(out, name, v);
            lua_pop(L, 1);
        }
        return;
    }
    const char *v = lua_tostring(L, -1);
    if (v)
        evhttp_add_header(out, name, v);
}

static void log_access(const tg_admin_server_t *s, struct evhttp_request *req, int status,
                       size_t bytes)
{
    if (!s->log)
        return;
    char ts[64], line[2048];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%d/%b/%Y:%H:%M:%S %z", &tm);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *ua = evhttp_find_header(in, "User-Agent");
    const char *ref = evhttp_find_header(in, "Referer");
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (conn)
        evhttp_connection_get_peer(conn, &addr, &port);
    const char *uri = evhttp_request_get_uri(req);
    int n = snprintf(line, sizeof(line), "%s - - [%s] \"%s %.1024s HTTP/%d.%d\" %d %zu \"%.256s\" \"%.256s\"\n",
                     addr ? addr : "-", ts, method_name(evhttp_request_get_command(req)),
                     uri ? uri : "/", req->major, req->minor, status, bytes, ref ? ref : "-",
                     ua ? ua : "-");
    if (n > 0)
        tg_accesslog_write(s->log, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    tg_admin_server_t *s = arg;
    int64_t t0 = now_us();
    lua_State *L = AL;
    int top = lua_gettop(L);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();
    int status = 500;
    bool failed = true;

    if (!body) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (tg_lua_require(L, s->module) != 0) {
        tg_log(TG_LOG_ERR, "%s API: %s", s->kind, lua_tostring(L, -1));
        goto done;
    }
    lua_getfield(L, -1, "handle");
    push_request(L, req, s);
    if (tg_lua_pcall(L, 1, 3) != 0) {
        tg_log(TG_LOG_ERR, "%s API: %s", s->kind, lua_tostring(L, -1));
        goto done;
    }
    /* stack: module, status, headers, body */
    if (!lua_isnumber(L, -3)) {
        tg_log(TG_LOG_ERR, "%s API: %s.handle returned no status", s->kind, s->module);
        goto done;
    }
    status = (int)lua_tointeger(L, -3);
    if (status < 100 || status > 599) {
        tg_log(TG_LOG_ERR, "%s API: %s.handle returned status %d", s->kind, s->module, status);
        status = 500;
        goto done;
    }
    if (lua_type(L, -2) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -3) != 0) {
            if (lua_type(L, -2) == LUA_TSTRING)
                add_header(out, lua_tostring(L, -2), L);
            lua_pop(L, 1);
        }
    }
    size_t blen = 0;
    const char *b = lua_tolstring(L, -1, &blen);
    if (b && blen > 0)
        evbuffer_add(body, b, blen);
    failed = false;

done:
    lua_settop(L, top);
    if (failed) {
        evhttp_clear_headers(out);
        evbuffer_drain(body, evbuffer_get_length(body));
        status = 500;
        evhttp_add_header(out, "Content-Type", "application/json; charset=utf-8");
        evbuffer_add(body, INTERNAL_ERROR_BODY, sizeof(INTERNAL_ERROR_BODY) - 1);
    }
    if (aconf->headers & TG_HDR_ADMIN_LATENCY) {
        char lat[32];
        snprintf(lat, sizeof(lat), "%lld", (long long)((now_us() - t0) / 1000));
        evhttp_add_header(out, "X-Kong-Admin-Latency", lat);
    }
    if (aconf->headers & TG_HDR_SERVER)
        evhttp_add_header(out, "Server", TG_SERVER_TOKEN);
    size_t sent = evbuffer_get_length(body);
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
        sent = 0;
    log_access(s, req, status, sent);
    evhttp_send_reply(req, status, NULL, body);
    evbuffer_free(body);
}

/* A listening socket for one address; -1 with a reason in err. */
static evutil_socket_t open_listener(const char *key, const tg_listen_t *l, char *err,
                                     size_t errlen)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket() failed for %s:%u: %s", key, l->host, l->port,
                 strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (l->reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (l->addr.ss_family == AF_INET6 && l->ipv6only >= 0) {
        int v = l->ipv6only;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof(v));
    }
    if (l->so_keepalive > 0)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) != 0) {
        snprintf(err, errlen, "%s: bind() to %s:%u failed (%d: %s)", key, l->host, l->port,
                 errno, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, l->backlog > 0 ? l->backlog : 511) != 0) {
        snprintf(err, errlen, "%s: listen() on %s:%u failed: %s", key, l->host, l->port,
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int start_server(tg_admin_server_t *s, struct event_base *base, const char *key,
                        const tg_listen_t *ls, size_t n, size_t max_body, char *err,
                        size_t errlen)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (ls[i].ssl) {
            snprintf(err, errlen,
                     "%s: ssl is not supported on this listener yet (%s:%u ssl); "
                     "remove the ssl flag or the address",
                     key, ls[i].host, ls[i].port);
            return TG_EINVAL;
        }
    }
    s->http = evhttp_new(base);
    if (!s->http) {
        snprintf(err, errlen, "%s: evhttp_new() failed", key);
        return TG_ENOMEM;
    }
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(s->http, "application/json");
    evhttp_set_timeout(s->http, 60);
    if (max_body > 0)
        evhttp_set_max_body_size(s->http, (ev_ssize_t)max_body);
    evhttp_set_gencb(s->http, on_request, s);
    for (size_t i = 0; i < n; i++) {
        evutil_socket_t fd = open_listener(key, &ls[i], err, errlen);
        if (fd < 0)
            return TG_EIO;
        if (!evhttp_accept_socket_with_handle(s->http, fd)) {
            snprintf(err, errlen, "%s: cannot accept on %s:%u", key, ls[i].host, ls[i].port);
            close(fd);
            return TG_EIO;
        }
    }
    return 0;
}

int tg_admin_start(struct event_base *base, lua_State *L, const tg_conf_t *conf, char *err,
                   size_t errlen)
{
    tg_admin_stop();
    AL = L;
    aconf = conf;
    servers[SRV_ADMIN] = (tg_admin_server_t){.module = "tollgate.admin", .kind = "admin"};
    servers[SRV_STATUS] = (tg_admin_server_t){.module = "tollgate.status", .kind = "status"};
    if (!L) {
        snprintf(err, errlen, "admin API: no control lua_State");
        return TG_EINVAL;
    }
    int rc = start_server(&servers[SRV_ADMIN], base, "admin_listen", conf->admin_listen,
                          conf->nadmin_listen, conf->admin_client_max_body_size, err, errlen);
    if (rc == 0)
        rc = start_server(&servers[SRV_STATUS], base, "status_listen", conf->status_listen,
                          conf->nstatus_listen, conf->admin_client_max_body_size, err, errlen);
    if (rc != 0) {
        tg_admin_stop();
        return rc;
    }
    if (servers[SRV_ADMIN].http)
        servers[SRV_ADMIN].log = tg_accesslog_open(conf->admin_access_log);
    if (servers[SRV_STATUS].http)
        servers[SRV_STATUS].log = tg_accesslog_open(conf->status_access_log);
    return 0;
}

void tg_admin_stop(void)
{
    for (int i = 0; i < SRV_COUNT; i++) {
        if (servers[i].http)
            evhttp_free(servers[i].http);
        servers[i].http = NULL;
        servers[i].log = NULL; /* owned by the log subsystem */
    }
}
