/* lua_vm.h: creating tollgate's lua_States (control thread, workers, `tollgate lua`). */
#ifndef TG_LUA_VM_H
#define TG_LUA_VM_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* The directory holding core/lua, pdk/ and plugins/: $TOLLGATE_HOME, else the
 * source tree the binary was built from, else the install directory. */
const char *tg_lua_root(void);

/* A new lua_State with the standard libraries, tollgate's package.path first
 * (core/lua, pdk, plugins, then `extra_path` if not NULL, then the system's),
 * and tollgate's C modules in package.preload (tollgate.c.*). Returns NULL on
 * allocation failure. The caller owns the state. */
lua_State *tg_lua_new_state(const char *extra_path);

/* lua_pcall with a traceback handler; on error the message (with traceback)
 * is left on the stack and a non-zero code returned. */
int tg_lua_pcall(lua_State *L, int nargs, int nresults);

/* Runs require(modname) and leaves the module on the stack; on error leaves the
 * message and returns non-zero. */
int tg_lua_require(lua_State *L, const char *modname);

#endif
