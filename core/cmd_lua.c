/* cmd_lua.c: `tollgate lua` and `tollgate busted` (see cmd_lua.h). */
#include "cmd_lua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lthread.h"
#include "lua_vm.h"
#include "tg.h"

#include <event2/event.h>

/* Specs require "spec.helpers" relative to the repo root (Kong's layout) and
 * plain "helpers"-style modules from spec/; both work from the root. Then
 * tollgate's own root, so that a plugin's specs run from the plugin's
 * directory find tollgate's spec.helpers. */
#define SPEC_PATH "./?.lua;./?/init.lua;./spec/?.lua;./spec/?/init.lua"

static lua_State *spec_state(void)
{
    char path[4400];
    snprintf(path, sizeof(path), SPEC_PATH ";%s/?.lua", tg_lua_root());
    return tg_lua_new_state(path);
}

/* Sets the global `arg`: arg[0] = progname, arg[1..n] = argv[first..argc-1]. */
static void set_arg(lua_State *L, const char *progname, int argc, char **argv, int first)
{
    lua_createtable(L, argc > first ? argc - first : 0, 2);
    lua_pushstring(L, "tollgate");
    lua_rawseti(L, -2, -1);
    lua_pushstring(L, progname);
    lua_rawseti(L, -2, 0);
    for (int i = first; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - first + 1);
    }
    lua_setglobal(L, "arg");
}

/* Sets the global `ngx` (tollgate.ngx_shim: ngx.shared, ngx.re, ...), as
 * OpenResty's `resty` runner has one. Returns 0, or non-zero with the error on
 * the stack. */
static int install_ngx(lua_State *L)
{
    if (tg_lua_require(L, "tollgate.ngx_shim") != 0)
        return 1;
    lua_getfield(L, -1, "install");
    lua_remove(L, -2);
    return tg_lua_pcall(L, 0, 0);
}

static void report(lua_State *L, const char *what)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "tollgate %s: %s\n", what, msg ? msg : "(error object is not a string)");
    fflush(stderr);
}

/* Runs the function below the `nargs` arguments on top of the stack
 * as a light thread on an event loop of its own, so that it may call
 * ngx.sleep, timers and cosockets; returns when it ended (pending timers then
 * run with premature = true, for at most 5 s). Leaves true, or false and the
 * error, on the stack. */
static void run_on_loop(lua_State *L, int nargs)
{
    static const char boot[] =
        "local fn = ...\n"
        "local st = { done = false }\n"
        "require('tollgate.c.sched').spawn(function(...)\n"
        "  st.ok, st.err = xpcall(fn, function(e)\n"
        "    if e == nil then return '(error object is a nil value)' end\n"
        "    return debug.traceback(e, 2)\n"
        "  end, ...)\n"
        "  st.done = true\n"
        "end, select(2, ...))\n"
        "return st\n";
    struct event_base *base = event_base_new();
    tg_sched_t *s = base ? tg_sched_attach(L, base, NULL, NULL) : NULL;
    if (!s) {
        lua_settop(L, 0);
        lua_pushboolean(L, 0);
        lua_pushstring(L, tg_strerror(TG_ENOMEM));
        if (base)
            event_base_free(base);
        return;
    }
    int fn = lua_gettop(L) - nargs;
    luaL_loadbuffer(L, boot, sizeof(boot) - 1, "=tollgate");
    lua_insert(L, fn);
    if (lua_pcall(L, nargs + 1, 1, 0) != 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
    } else {
        for (;;) {
            lua_getfield(L, -1, "done");
            int done = lua_toboolean(L, -1);
            lua_pop(L, 1);
            if (done)
                break;
            if (event_base_loop(base, EVLOOP_ONCE) != 0) {
                fprintf(stderr, "tollgate: the main thread waits for nothing that can happen\n");
                break;
            }
        }
        if (tg_sched_shutdown(s) > 0) {
            struct timeval grace = {5, 0};
            event_base_loopexit(base, &grace);
            event_base_dispatch(base);
        }
        lua_getfield(L, -1, "err");
        lua_getfield(L, -2, "ok");
        lua_remove(L, -3);
        lua_insert(L, -2);
    }
    tg_sched_detach(s);
    /* the loop's events live in Lua objects: collect them before the base */
    lua_gc(L, LUA_GCCOLLECT, 0);
    event_base_free(base);
}

int tg_cmd_lua(int argc, char **argv)
{
    if (argc < 1 || !argv[0]) {
        fprintf(stderr, "usage: tollgate lua FILE [ARGS...]\n");
        return 1;
    }
    lua_State *L = spec_state();
    if (!L) {
        fprintf(stderr, "tollgate lua: %s\n", tg_strerror(TG_ENOMEM));
        return 1;
    }
    int rc = 0;
    set_arg(L, argv[0], argc, argv, 1);
    if (install_ngx(L) != 0) {
        report(L, "lua");
        rc = 1;
        goto out;
    }
    const char *file = strcmp(argv[0], "-") == 0 ? NULL : argv[0];
    if (luaL_loadfile(L, file) != 0) {
        report(L, "lua");
        rc = 1;
        goto out;
    }
    for (int i = 1; i < argc; i++)
        lua_pushstring(L, argv[i]);
    run_on_loop(L, argc - 1);
    if (!lua_toboolean(L, -2)) {
        report(L, "lua");
        rc = 1;
    }
out:
    fflush(stdout);
    lua_close(L);
    return rc;
}

int tg_cmd_busted(int argc, char **argv)
{
    lua_State *L = spec_state();
    if (!L) {
        fprintf(stderr, "tollgate busted: %s\n", tg_strerror(TG_ENOMEM));
        return 1;
    }
    int rc = 0;
    set_arg(L, "busted", argc, argv, 0);
    if (install_ngx(L) != 0) {
        report(L, "busted");
        rc = 1;
        goto out;
    }
    /* The runner reads its caller's chunk name (debug level 2) as the program
     * name; "@busted" makes it behave as /usr/bin/busted does. */
    static const char boot[] = "require('busted.runner')({ standalone = false })";
    if (luaL_loadbuffer(L, boot, sizeof(boot) - 1, "@busted") != 0) {
        report(L, "busted");
        rc = 1;
        goto out;
    }
    /* busted ends a passing run by returning; on failures it raises error()
     * with no message (Lua 5.1 rules), which is our cue for exit code 1. */
    run_on_loop(L, 0);
    if (!lua_toboolean(L, -2)) {
        const char *msg = lua_tostring(L, -1);
        if (msg && strncmp(msg, "(error object is a nil value)", 29) != 0)
            report(L, "busted");
        rc = 1;
    }
out:
    fflush(stdout);
    fflush(stderr);
    lua_close(L);
    return rc;
}
