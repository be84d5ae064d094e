/* lua_vm.c: creating tollgate's lua_States. */
#include "lua_vm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* C modules offered to Lua through package.preload. Each is a weak symbol so
 * that a subsystem can be built (and tested) before the others exist. */
#define TG_LUA_MODULES(X)                                                                          \
    X("tollgate.c.router", luaopen_tollgate_c_router)                                              \
    X("tollgate.c.control", luaopen_tollgate_c_control)                                            \
    X("tollgate.c.util", luaopen_tollgate_c_util)                                                  \
    X("tollgate.c.sched", luaopen_tollgate_c_sched)                                                \
    X("tollgate.c.socket", luaopen_tollgate_c_socket)                                              \
    X("tollgate.c.balancer", luaopen_tollgate_c_balancer)

#define DECLARE(name, fn) __attribute__((weak)) int fn(lua_State *L);
TG_LUA_MODULES(DECLARE)
#undef DECLARE

static int dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *tg_lua_root(void)
{
    static char root[4096];
    if (root[0])
        return root;
    const char *env = getenv("TOLLGATE_HOME");
    char probe[4200];
    if (env && *env) {
        snprintf(root, sizeof(root), "%s", env);
        return root;
    }
    snprintf(probe, sizeof(probe), "%s/core/lua", TG_SOURCE_DIR);
    if (dir_exists(probe)) {
        snprintf(root, sizeof(root), "%s", TG_SOURCE_DIR);
        return root;
    }
    snprintf(root, sizeof(root), "%s", TG_INSTALL_DIR);
    return root;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int tg_lua_pcall(lua_State *L, int nargs, int nresults)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return rc;
}

int tg_lua_require(lua_State *L, const char *modname)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, modname);
    return tg_lua_pcall(L, 1, 1);
}

lua_State *tg_lua_new_state(const char *extra_path)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return NULL;
    luaL_openlibs(L);

    const char *root = tg_lua_root();
    lua_getglobal(L, "package");
    int pkg = lua_gettop(L);
    lua_pushfstring(L,
                    "%s/core/lua/?.lua;%s/core/lua/?/init.lua;"
                    "%s/pdk/?.lua;%s/pdk/?/init.lua;",
                    root, root, root, root);
    if (extra_path && *extra_path)
        lua_pushfstring(L, "%s;", extra_path);
    else
        lua_pushliteral(L, "");
    lua_getfield(L, pkg, "path");
    lua_concat(L, 3);
    lua_setfield(L, pkg, "path");

    lua_getfield(L, -1, "preload");
#define PRELOAD(name, fn)                                                                          \
    if (fn) {                                                                                      \
        lua_pushcfunction(L, fn);                                                                  \
        lua_setfield(L, -2, name);                                                                 \
    }
    TG_LUA_MODULES(PRELOAD)
#undef PRELOAD
    lua_pop(L, 2);
    /* the module families tollgate implements (resty.openssl.*, ngx.*...)
     * load only from its own files; a state without it still works */
    tg_lua_require(L, "tollgate.modules");
    lua_pop(L, 1);
    return L;
}
