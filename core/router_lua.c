/* router_lua.c: "tollgate.c.router", the router's checks for the Lua config validator.
 *
 *   normalize_path(s)      -> normalised path (Kong's normalize(), bad escapes kept) | nil, err
 *   regex_error(pattern)   -> nil | Kong's PCRE text ("pcre2_compile() failed: <msg> in \"<p>\"")
 *                             plus, second, "<msg> at offset N"; pattern without its '~'
 *   validate(routes)       -> nil | i, message, field: the first route the router refuses
 *   find_conflict(routes)  -> nil | i, j, message: two routes of different workspaces that collide
 *
 * `routes` is an array of route rows in Kong's DAO shape: { id, name, ws_id, hosts, paths,
 * methods, snis, headers = { name = { values } }, protocols = { "http", ... },
 * regex_priority, created_at }; ngx.null / missing fields are empty. Indices are 1-based.
 *
 * tg_router_def_from_lua (router.h) reads one such row for C callers too. */
#include "router.h"
#include "uri.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>

int luaopen_tollgate_c_router(lua_State *L);
const char *tg__router_check_route_field(const tg_route_def_t *def, char *err, size_t errlen);

static int l_normalize_path(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char stackbuf[2048];
    char *out = len < sizeof(stackbuf) ? stackbuf : malloc(len + 1);
    if (!out)
        return luaL_error(L, "out of memory");
    int n = tg_uri_normalize_lenient(s, len, out, len + 1);
    if (n < 0) {
        if (out != stackbuf)
            free(out);
        lua_pushnil(L);
        lua_pushstring(L, "invalid path");
        return 2;
    }
    lua_pushlstring(L, out, (size_t)n);
    if (out != stackbuf)
        free(out);
    return 1;
}

static int l_regex_error(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char err[512];
    if (tg_router_regex_error(s, len, err, sizeof(err)) == 0) {
        lua_pushnil(L);
        return 1;
    }
    /* Kong's text is nginx's: "pcre2_compile() failed: <msg> in \"<pattern>\"[ at \"<rest>\"]" */
    char msg[512];
    const char *at = strstr(err, " at offset ");
    size_t off = at ? (size_t)strtoul(at + 11, NULL, 10) : len;
    snprintf(msg, sizeof(msg), "%.*s", at ? (int)(at - err) : (int)strlen(err), err);
    if (off >= len)
        lua_pushfstring(L, "pcre2_compile() failed: %s in \"%s\"", msg, s);
    else
        lua_pushfstring(L, "pcre2_compile() failed: %s in \"%s\" at \"%s\"", msg, s, s + off);
    lua_pushstring(L, err);
    return 2;
}

/* ---- rows -> defs ---- */

typedef struct {
    tg_route_def_t *defs;
    size_t n;
} rows_t;

/* Copies of the strings of an array field; NULL (and *n = 0) when absent or not a table. */
static const char **str_array(lua_State *L, int t, const char *field, size_t *n)
{
    *n = 0;
    lua_getfield(L, t, field);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        return NULL;
    }
    size_t len = lua_objlen(L, -1);
    const char **v = calloc(len + 1, sizeof(*v));
    for (size_t i = 1; v && i <= len; i++) {
        lua_rawgeti(L, -1, (int)i);
        if (lua_type(L, -1) == LUA_TSTRING)
            v[(*n)++] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return v;
}

static void str_array_free(const char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free((void *)v[i]);
    free(v);
}

static const char *str_field(lua_State *L, int t, const char *field)
{
    lua_getfield(L, t, field);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return s;
}

static double num_field(lua_State *L, int t, const char *field, double dflt)
{
    lua_getfield(L, t, field);
    double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

static bool bool_field(lua_State *L, int t, const char *field, bool dflt)
{
    lua_getfield(L, t, field);
    bool v = lua_type(L, -1) == LUA_TBOOLEAN ? lua_toboolean(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

static unsigned protocols(lua_State *L, int t)
{
    size_t n;
    const char **p = str_array(L, t, "protocols", &n);
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(p[i], "http"))
            bits |= TG_PROTO_HTTP;
        else if (!strcmp(p[i], "https"))
            bits |= TG_PROTO_HTTPS;
        else if (!strcmp(p[i], "grpc"))
            bits |= TG_PROTO_GRPC;
        else if (!strcmp(p[i], "grpcs"))
            bits |= TG_PROTO_GRPCS;
    }
    bool absent = p == NULL;
    str_array_free(p, n);
    return absent ? (TG_PROTO_HTTP | TG_PROTO_HTTPS) : bits;
}

void tg_router_def_clear(tg_route_def_t *d)
{
    free((void *)d->id);
    free((void *)d->name);
    free((void *)d->ws_id);
    str_array_free(d->hosts, d->nhosts);
    str_array_free(d->paths, d->npaths);
    str_array_free(d->methods, d->nmethods);
    str_array_free(d->snis, d->nsnis);
    for (size_t k = 0; k < d->nheaders; k++) {
        free((void *)d->headers[k].name);
        str_array_free(d->headers[k].values, d->headers[k].nvalues);
    }
    free((void *)d->headers);
    memset(d, 0, sizeof(*d));
}

int tg_router_def_from_lua(lua_State *L, int t, tg_route_def_t *d)
{
    memset(d, 0, sizeof(*d));
    if (t < 0)
        t = lua_gettop(L) + t + 1;
    if (lua_type(L, t) != LUA_TTABLE)
        return TG_EINVAL;
    d->id = str_field(L, t, "id");
    d->name = str_field(L, t, "name");
    d->ws_id = str_field(L, t, "ws_id");
    d->hosts = str_array(L, t, "hosts", &d->nhosts);
    d->paths = str_array(L, t, "paths", &d->npaths);
    d->methods = str_array(L, t, "methods", &d->nmethods);
    d->snis = str_array(L, t, "snis", &d->nsnis);
    d->protocols = protocols(L, t);
    d->regex_priority = (int)num_field(L, t, "regex_priority", 0);
    d->created_at = (int64_t)num_field(L, t, "created_at", 0);
    d->strip_path = bool_field(L, t, "strip_path", true);
    d->preserve_host = bool_field(L, t, "preserve_host", false);
    lua_getfield(L, t, "path_handling");
    d->path_handling = lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "v1");
    lua_pop(L, 1);
    lua_getfield(L, t, "headers");
    if (lua_type(L, -1) == LUA_TTABLE) {
        int h = lua_gettop(L);
        size_t cnt = 0;
        lua_pushnil(L);
        while (lua_next(L, h)) {
            cnt++;
            lua_pop(L, 1);
        }
        tg_route_header_t *hs = calloc(cnt + 1, sizeof(*hs));
        size_t k = 0;
        lua_pushnil(L);
        while (hs && lua_next(L, h)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TTABLE && k < cnt) {
                hs[k].name = strdup(lua_tostring(L, -2));
                lua_pushvalue(L, -2);
                hs[k].values = str_array(L, h, lua_tostring(L, -1), &hs[k].nvalues);
                lua_pop(L, 1);
                k++;
            }
            lua_pop(L, 1);
        }
        d->headers = hs;
        d->nheaders = k;
    }
    lua_pop(L, 1);
    return 0;
}

static void rows_free(rows_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        tg_router_def_clear(&r->defs[i]);
    free(r->defs);
    r->defs = NULL;
    r->n = 0;
}

static int rows_read(lua_State *L, int idx, rows_t *r)
{
    size_t n = lua_objlen(L, idx);
    r->n = 0;
    r->defs = calloc(n ? n : 1, sizeof(tg_route_def_t));
    if (!r->defs)
        return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        tg_route_def_t *d = &r->defs[r->n++];
        tg_router_def_from_lua(L, -1, d);
        d->position = (uint32_t)i;
        lua_pop(L, 1);
    }
    return 0;
}

static int l_validate(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    rows_t rows;
    if (rows_read(L, 1, &rows)) {
        rows_free(&rows);
        return luaL_error(L, "out of memory");
    }
    char err[600];
    for (size_t i = 0; i < rows.n; i++) {
        const char *field = tg__router_check_route_field(&rows.defs[i], err, sizeof(err));
        if (field) {
            lua_pushinteger(L, (lua_Integer)i + 1);
            lua_pushstring(L, err);
            lua_pushstring(L, field);
            rows_free(&rows);
            return 3;
        }
    }
    tg_router_t *r = NULL;
    size_t bad = 0;
    int rc = tg_router_build(rows.defs, rows.n, &r, &bad, err, sizeof(err));
    rows_free(&rows);
    if (rc) {
        lua_pushinteger(L, (lua_Integer)bad + 1);
        lua_pushstring(L, rc == TG_EINVAL ? err : tg_strerror(rc));
        return 2;
    }
    tg_router_free(r);
    lua_pushnil(L);
    return 1;
}

static int l_find_conflict(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    rows_t rows;
    if (rows_read(L, 1, &rows)) {
        rows_free(&rows);
        return luaL_error(L, "out of memory");
    }
    size_t a = 0, b = 0;
    char err[600];
    int rc = tg_router_find_conflict(rows.defs, rows.n, &a, &b, err, sizeof(err));
    rows_free(&rows);
    if (rc == TG_ECONFLICT) {
        lua_pushinteger(L, (lua_Integer)a + 1);
        lua_pushinteger(L, (lua_Integer)b + 1);
        lua_pushstring(L, err);
        return 3;
    }
    if (rc)
        return luaL_error(L, "%s", tg_strerror(rc));
    lua_pushnil(L);
    return 1;
}

int luaopen_tollgate_c_router(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"normalize_path", l_normalize_path},
        {"regex_error", l_regex_error},
        {"validate", l_validate},
        {"find_conflict", l_find_conflict},
        {NULL, NULL},
    };
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
