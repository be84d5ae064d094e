/* control.c: the control thread's lua_State, config loading and publishing. */
#include "control.h"
#include "balancer.h"
#include "health.h"
#include "log.h"
#include "lua_vm.h"
#include "snapshot.h"
#include "worker.h"
#include "dns.h"

#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lua_State *CL;
static struct event_base *cbase;
static const tg_conf_t *cconf;
/* The declarative files in force: the start's, then those of the effective
 * configuration a reload wrote (.tollgate_env). */
static char **decl_files;
static size_t ndecl_files;

static void set_decl_files(char *const *files, size_t n)
{
    for (size_t i = 0; i < ndecl_files; i++)
        free(decl_files[i]);
    free(decl_files);
    decl_files = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        decl_files[i] = strdup(files[i]);
    ndecl_files = n;
}

lua_State *tg_control_lua(void)
{
    return CL;
}

/* tollgate.c.control.apply(config) -> true | nil, err */
static int l_apply(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    char err[1024];
    tg_snapshot_t *s = NULL;
    if (tg_snapshot_build(L, 1, &s, err, sizeof(err)) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    tg_dns_wait(5000); /* its names answer from the first request */
    tg_snapshot_publish(s);
    tg_workers_notify();
    /* active health checks follow the published upstreams */
    s = tg_snapshot_current();
    tg_health_probe_set_t *ps = NULL;
    size_t nps = tg_balancer_probe_set(s->upstreams, s->nupstreams, &ps);
    tg_health_sync(cbase, ps, nps);
    tg_balancer_probe_set_free(ps, nps);
    tg_snapshot_unref(s);
    lua_pushboolean(L, 1);
    return 1;
}

/* tollgate.c.control.trim(): hands memory freed by a load back to the system
 * (glibc keeps it otherwise). */
static int l_trim(lua_State *L)
{
    malloc_trim(0);
    return 0;
}

static int l_stats(lua_State *L)
{
    lua_createtable(L, 0, 8);
#define F(name, v)                                                                                 \
    lua_pushnumber(L, (lua_Number)(v));                                                            \
    lua_setfield(L, -2, name)
    F("connections_accepted", atomic_load(&tg_stats.connections_accepted));
    F("connections_handled", atomic_load(&tg_stats.connections_handled));
    F("connections_active", atomic_load(&tg_stats.connections_active));
    F("connections_reading", atomic_load(&tg_stats.connections_reading));
    F("connections_writing", atomic_load(&tg_stats.connections_writing));
    long waiting = atomic_load(&tg_stats.connections_active) -
                   atomic_load(&tg_stats.connections_reading) -
                   atomic_load(&tg_stats.connections_writing);
    F("connections_waiting", waiting > 0 ? waiting : 0);
    F("total_requests", atomic_load(&tg_stats.total_requests));
#undef F
    return 1;
}

static int l_ready(lua_State *L)
{
    if (tg_workers_ready()) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_pushstring(L, tg_workers_count() ? "workers have not yet loaded the configuration"
                                         : "no configuration loaded");
    return 2;
}

static int l_workers(lua_State *L)
{
    lua_pushinteger(L, tg_workers_count());
    return 1;
}

int luaopen_tollgate_c_control(lua_State *L)
{
    static const luaL_Reg fns[] = {{"apply", l_apply},
                                   {"trim", l_trim},
                                   {"stats", l_stats},
                                   {"ready", l_ready},
                                   {"workers", l_workers},
                                   {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}

/* Runs state.load(files) in Lua: returns 0, or TG_EINVAL with Kong's text. */
static int load_declarative(char *err, size_t errlen)
{
    lua_State *L = CL;
    int top = lua_gettop(L);
    if (tg_lua_require(L, "tollgate.state") != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return TG_EINVAL;
    }
    lua_getfield(L, -1, "load_declarative");
    lua_createtable(L, (int)ndecl_files, 0);
    for (size_t i = 0; i < ndecl_files; i++) {
        lua_pushstring(L, decl_files[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    if (tg_lua_pcall(L, 1, 2) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return TG_EINVAL;
    }
    if (!lua_toboolean(L, -2)) {
        snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "unknown error");
        lua_settop(L, top);
        return TG_EINVAL;
    }
    lua_settop(L, top);
    return 0;
}

/* An upstream target's addresses changed (dns.c, at its TTL): the running
 * configuration is built again shortly after (one rebuild for changes that
 * come together), so the balancer follows them; target health is kept by
 * address. */
static struct event *rebuild_ev;

static void on_rebuild(evutil_socket_t fd, short what, void *arg)
{
    lua_State *L = CL;
    int top = lua_gettop(L);
    if (tg_lua_require(L, "tollgate.state") != 0) {
        lua_settop(L, top);
        return;
    }
    lua_getfield(L, -1, "config");
    if (lua_isnil(L, -1)) {
        lua_settop(L, top);
        return;
    }
    lua_getfield(L, -2, "apply");
    lua_insert(L, -2);
    if (tg_lua_pcall(L, 1, 2) != 0 || !lua_toboolean(L, -2))
        tg_log(TG_LOG_ERR, "rebuilding the balancers after a DNS change failed: %s",
               lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    else
        tg_log(TG_LOG_INFO, "upstream target addresses changed: balancers rebuilt");
    lua_settop(L, top);
}

static void schedule_rebuild(void)
{
    if (!rebuild_ev)
        rebuild_ev = evtimer_new(cbase, on_rebuild, NULL);
    if (rebuild_ev && !evtimer_pending(rebuild_ev, NULL)) {
        struct timeval tv = {0, 100 * 1000};
        evtimer_add(rebuild_ev, &tv);
    }
}

int tg_control_init(struct event_base *base, const tg_conf_t *conf, char *err, size_t errlen)
{
    cbase = base;
    cconf = conf;
    CL = tg_lua_new_state(conf->lua_package_path);
    if (!CL) {
        snprintf(err, errlen, "could not create the control lua_State");
        return TG_ENOMEM;
    }
    /* kong.configuration for the control side */
    if (tg_lua_require(CL, "tollgate.state") != 0) {
        snprintf(err, errlen, "%s", lua_tostring(CL, -1));
        return TG_EINVAL;
    }
    tg_conf_push_lua(CL, conf);
    lua_setfield(CL, -2, "conf");
    lua_pop(CL, 1);

    int rc = tg_dns_init(base, conf, err, errlen);
    if (rc != 0)
        return rc;
    tg_dns_on_change(schedule_rebuild);
    tg_snapshot_publish(tg_snapshot_empty());
    set_decl_files(conf->declarative_config, conf->ndeclarative_config);
    if (conf->database_off && conf->ndeclarative_config > 0)
        return load_declarative(err, errlen);
    return 0;
}

int tg_control_reload(void)
{
    char err[8192];
    if (!cconf->database_off)
        return 0;
    /* `tollgate reload -c` wrote the configuration to reload with */
    tg_conf_t *fresh = NULL;
    if (cconf->env_file && access(cconf->env_file, R_OK) == 0 &&
        tg_conf_load(cconf->env_file, cconf->prefix, &fresh, err, sizeof(err)) == 0) {
        set_decl_files(fresh->declarative_config, fresh->ndeclarative_config);
        tg_conf_free(fresh);
    }
    if (ndecl_files == 0)
        return 0;
    if (load_declarative(err, sizeof(err)) != 0) {
        tg_log(TG_LOG_ERR, "reload refused, the running configuration stays: %s", err);
        return TG_EINVAL;
    }
    tg_log(TG_LOG_NOTICE, "configuration reloaded");
    return 0;
}

void tg_control_shutdown(void)
{
    tg_health_shutdown();
    if (CL)
        lua_close(CL);
    CL = NULL;
    set_decl_files(NULL, 0);
    tg_dns_shutdown();
}
