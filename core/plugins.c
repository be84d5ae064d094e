/* plugins.c: the plugin host's C side — the worker's lua_State and running a
 * request phase in the request's coroutine. */
#include "plugins.h"
#include "log.h"
#include "lua_vm.h"
#include "pdk.h"
#include "proxy_int.h"
#include "lthread.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the per-request arena (proxy_int.h) ---- */

char *tg__arena_dup(tg_arena_t *a, const char *p, size_t n)
{
    tg_arena_block_t *b = a->head;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > 4000 ? n + 1 : 4000;
        tg_arena_block_t *nb = malloc(sizeof(*nb) + cap);
        if (!nb)
            return NULL;
        nb->used = 0;
        nb->cap = cap;
        nb->next = b;
        a->head = b = nb;
    }
    char *dst = b->data + b->used;
    if (n && p)
        memcpy(dst, p, n);
    dst[n] = 0;
    b->used += n + 1;
    return dst;
}

void *tg__arena_alloc(tg_arena_t *a, size_t n)
{
    size_t align = _Alignof(max_align_t);
    char *p = tg__arena_dup(a, NULL, n + align - 1);
    if (!p)
        return NULL;
    size_t pad = (align - ((uintptr_t)p % align)) % align;
    return p + pad;
}

void tg__arena_reset(tg_arena_t *a)
{
    /* keep the newest block for the next request */
    tg_arena_block_t *b = a->head;
    if (!b)
        return;
    tg_arena_block_t *rest = b->next;
    b->next = NULL;
    b->used = 0;
    while (rest) {
        tg_arena_block_t *n = rest->next;
        free(rest);
        rest = n;
    }
}

/* ---- worker state ---- */

static const char *phase_name(int phase)
{
    switch (phase) {
    case TG_PHASE_CERTIFICATE: return "certificate";
    case TG_PHASE_REWRITE: return "rewrite";
    case TG_PHASE_ACCESS: return "access";
    case TG_PHASE_RESPONSE: return "response";
    case TG_PHASE_HEADER_FILTER: return "header_filter";
    case TG_PHASE_BODY_FILTER: return "body_filter";
    case TG_PHASE_LOG: return "log";
    }
    return "?";
}

/* Requires tollgate.runloop and calls runloop.init(configuration, id, count).
 * Leaves the runloop table on the stack. */
static int runloop_init(lua_State *L, const tg_conf_t *conf, int id, int count, char *err,
                        size_t errlen)
{
    if (tg_lua_require(L, "tollgate.runloop") != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        return TG_EINVAL;
    }
    lua_getfield(L, -1, "init");
    tg_conf_push_lua(L, conf);
    lua_pushinteger(L, id);
    lua_pushinteger(L, count);
    if (tg_lua_pcall(L, 3, 2) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return TG_EINVAL;
    }
    if (!lua_toboolean(L, -2)) {
        snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "plugins failed");
        lua_pop(L, 2);
        return TG_EINVAL;
    }
    int none = lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), "none");
    lua_pop(L, 2);
    return none ? 1 : 0;
}

static void wake_request(void *owner, const char *res);

static int request_phase(void *owner, int set)
{
    tg_conn_t *c = owner;
    int old = c->phase;
    if (set >= 0)
        c->phase = set;
    return old;
}

int tg_plugins_check(const tg_conf_t *conf, char *err, size_t errlen)
{
    lua_State *L = tg_lua_new_state(conf->lua_package_path);
    if (!L) {
        snprintf(err, errlen, "out of memory");
        return TG_ENOMEM;
    }
    int rc = runloop_init(L, conf, -1, 0, err, errlen);
    lua_close(L);
    return rc < 0 ? rc : 0;
}

int tg_plugins_worker_init(tg_worker_t *w, char *err, size_t errlen)
{
    lua_State *L = tg_lua_new_state(w->conf->lua_package_path);
    if (!L) {
        snprintf(err, errlen, "out of memory");
        return TG_ENOMEM;
    }
    /* timers and cosockets run on the worker's loop, from init_worker on */
    w->sched = tg_sched_attach(L, w->base, wake_request, request_phase);
    int rc = w->sched ? runloop_init(L, w->conf, w->id, tg_workers_count(), err, errlen)
                      : TG_ENOMEM;
    if (rc != 0) {
        /* 1: no plugin enabled, requests never enter Lua */
        tg_sched_detach(w->sched);
        w->sched = NULL;
        lua_close(L);
        return rc < 0 ? rc : 0;
    }
    lua_getfield(L, -1, "execute");
    w->execute_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "configure");
    w->configure_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "phase_mask");
    w->phase_mask_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    /* what kong.response.exit yields */
    if (tg_lua_require(L, "tollgate.ctx") != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        tg_sched_detach(w->sched);
        w->sched = NULL;
        lua_close(L);
        return TG_EINVAL;
    }
    lua_getfield(L, -1, "EXIT");
    w->exit_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    w->L = L;
    return 0;
}

int tg_plugins_worker_stopping(tg_worker_t *w)
{
    return tg_sched_shutdown(w->sched);
}

void tg_plugins_worker_close(tg_worker_t *w)
{
    tg_sched_detach(w->sched);
    w->sched = NULL;
    if (w->L)
        lua_close(w->L);
    w->L = NULL;
    free(w->plugin_pos);
    w->plugin_pos = NULL;
    w->nplugin_pos = 0;
}

int tg_plugins_configure(tg_worker_t *w, tg_snapshot_t *s)
{
    lua_State *L = w->L;
    if (!L || !s->lua_json)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->configure_ref);
    lua_pushlstring(L, s->lua_json, s->lua_json_len);
    if (tg_lua_pcall(L, 1, 2) != 0 || !lua_toboolean(L, -2)) {
        tg_log(TG_LOG_ERR, "worker %d: configuring plugins failed: %s", w->id,
               lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
        lua_settop(L, 0);
        return TG_EINVAL;
    }
    lua_settop(L, 0);
    /* which route positions have plugins, asked once per snapshot so that a
     * request without plugins never enters Lua */
    free(w->plugin_pos);
    w->nplugin_pos = s->nroute_rows + 1;
    w->plugin_pos = calloc(w->nplugin_pos, sizeof(uint16_t));
    for (size_t i = 0; i < w->nplugin_pos; i++) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, w->phase_mask_ref);
        lua_pushinteger(L, (lua_Integer)i);
        if (lua_pcall(L, 1, 1, 0) == 0)
            w->plugin_pos[i] = (uint16_t)lua_tointeger(L, -1);
        lua_settop(L, 0);
    }
    return 0;
}

static int phase_mask(const tg_worker_t *w, int pos)
{
    return w->plugin_pos && pos >= 0 && (size_t)pos < w->nplugin_pos ? w->plugin_pos[pos] : 0;
}

bool tg_plugins_wants(const tg_conn_t *c, int phase)
{
    return c->plugins && (phase_mask(c->w, c->route_pos) & phase);
}

bool tg_plugins_active(const tg_worker_t *w, int pos)
{
    return phase_mask(w, pos) != 0;
}

/* Drops the request's coroutine, or keeps it for the next request when it
 * finished cleanly. */
static void co_release(tg_conn_t *c, bool reusable)
{
    tg_worker_t *w = c->w;
    if (!c->co)
        return;
    if (reusable && lua_status(c->co) == 0 && w->nco_pool < (int)TG_ARRAY_SIZE(w->co_pool)) {
        lua_settop(c->co, 0);
        w->co_pool[w->nco_pool] = c->co;
        w->co_pool_ref[w->nco_pool] = c->co_ref;
        w->nco_pool++;
    } else {
        luaL_unref(w->L, LUA_REGISTRYINDEX, c->co_ref);
    }
    c->co = NULL;
}

/* What a resume of the request's coroutine came to: the phase's status, or
 * TG_PLUGINS_PENDING when it parked on I/O (TG_PLUGINS_YIELDABLE phases; the
 * others' APIs refuse before yielding, as OpenResty's). */
static int resumed(tg_conn_t *c, int phase, int rc)
{
    tg_worker_t *w = c->w;
    lua_State *L = w->L;
    lua_State *co = c->co;
    if (rc == 0) {
        int st = (int)lua_tointeger(co, -1);
        lua_settop(co, 0);
        return st;
    }
    if (rc == LUA_YIELD) {
        if ((phase & TG_PLUGINS_YIELDABLE) && lua_gettop(co) == 1 && tg_sched_is_wait(co, -1)) {
            tg_sched_arm_owner(w->sched, co, -1, c);
            lua_settop(co, 0);
            c->parked = true;
            c->park_phase = phase;
            return TG_PLUGINS_PENDING;
        }
        /* kong.response.exit: the handler ends here; the coroutine stays
         * suspended mid-handler, so it is dropped */
        bool exit = false;
        if (lua_gettop(co) > 0) {
            lua_rawgeti(co, LUA_REGISTRYINDEX, w->exit_ref);
            exit = lua_rawequal(co, -1, -2);
        }
        co_release(c, false);
        if (exit)
            return 0;
        tg_log(TG_LOG_ERR, "%s phase yielded outside of a non-blocking API", phase_name(phase));
        return 500;
    }
    const char *msg = lua_tostring(co, -1);
    luaL_traceback(L, co, msg ? msg : "(error object is not a string)", 0);
    tg_log(TG_LOG_ERR, "%s phase failed: %s", phase_name(phase), lua_tostring(L, -1));
    lua_pop(L, 1);
    co_release(c, false);
    return 500;
}

int tg_plugins_run(tg_conn_t *c, int phase)
{
    tg_worker_t *w = c->w;
    lua_State *L = w->L;
    /* only the phases some plugin of this route implements enter Lua */
    if (!L || !(phase_mask(w, phase == TG_PHASE_REWRITE ? 0 : c->route_pos) & phase))
        return 0;
    if (c->parked)
        return 500; /* not reached: the proxy waits for the parked phase */
    bool first = false;
    if (!c->co) {
        first = !c->co_used;
        c->co_used = true;
        if (w->nco_pool > 0) {
            w->nco_pool--;
            c->co = w->co_pool[w->nco_pool];
            c->co_ref = w->co_pool_ref[w->nco_pool];
        } else {
            c->co = lua_newthread(L);
            c->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        lua_setexdata(c->co, c);
    }
    lua_State *co = c->co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, w->execute_ref);
    lua_pushinteger(co, __builtin_ctz((unsigned)phase)); /* runloop's PHASE_NAMES */
    lua_pushinteger(co, c->route_pos);
    lua_pushboolean(co, first);
    lua_pushnumber(co, (lua_Number)(uintptr_t)c); /* tollgate.ctx's key */
    c->phase = phase; /* the PDK's phase checks */
    int rc = lua_resume(co, 4);
    c->phase = 0;
    return resumed(c, phase, rc);
}

/* A parked request's wait fired (lthread.c): the phase goes on where it
 * stopped; once it ends the proxy carries on. */
static void wake_request(void *owner, const char *res)
{
    tg_conn_t *c = owner;
    int phase = c->park_phase;
    c->parked = false;
    lua_pushstring(c->co, res);
    c->phase = phase;
    int rc = lua_resume(c->co, 1);
    c->phase = 0;
    int st = resumed(c, phase, rc);
    if (st != TG_PLUGINS_PENDING)
        tg__proxy_plugins_done(c, phase, st);
}

void tg_plugins_abort(tg_conn_t *c)
{
    if (!c->parked)
        return;
    c->parked = false;
    tg_sched_cancel_owner(c->w->sched, c);
    co_release(c, false);
}

void tg_plugins_request_done(tg_conn_t *c)
{
    tg_plugins_abort(c);
    if (c->co_used)
        tg_sched_cancel_children(c->w->sched, c); /* ngx.thread children left */
    co_release(c, true);
    c->co_used = false;
    tg__arena_reset(&c->arena);
    c->plugins = false;
    c->route_pos = 0;
    c->up_path = c->up_query = c->up_method = c->up_body = NULL;
    c->up_path_len = c->up_query_len = c->up_method_len = c->up_body_len = 0;
    c->up_body_set = false;
    tg__ov_reset(c);
    c->exit_status = 0;
    c->exit_body = NULL;
    c->exit_body_len = 0;
    c->npending_resp = 0;
    c->resp_h = NULL;
    c->resp_n = c->resp_cap = 0;
    c->logged = false;
    c->source = NULL;
    c->svc_h = NULL;
    c->svc_n = 0;
    c->buffering = c->bf = c->up_eof = false;
    c->out_mode = TG_OUT_RAW;
    c->bf_chunk = NULL;
    c->chunk_len = 0;
    c->chunk_eof = c->chunk_set = false;
    /* a buffered body does not stay with a keepalive connection */
    if (c->bf_in.cap > 1024 * 1024)
        tg_buf_free(&c->bf_in);
    if (c->bf_out.cap > 1024 * 1024)
        tg_buf_free(&c->bf_out);
    tg_buf_reset(&c->bf_in);
    tg_buf_reset(&c->bf_out);
}
