/* cmd_lua.h: `tollgate lua FILE [ARGS]` and `tollgate busted [ARGS]`.
 *
 * Both run inside tollgate's LuaJIT with tollgate's package.path first
 * (core/lua, pdk, plugins, then the spec tree), so specs and scripts see the
 * same modules the gateway loads. The plugin host will later wrap these in an
 * event loop with the PDK's non-request parts; the entry points stay. */
#ifndef TG_CMD_LUA_H
#define TG_CMD_LUA_H

/* Runs the Lua file argv[0]; argv[1..argc-1] become arg[1..] (arg[0] is the
 * file) and are also passed to the chunk as `...`. Returns the process exit
 * code: 0 on success, 1 when loading or running the file raised an error
 * (printed with its traceback on stderr). os.exit(n) inside the file exits. */
int tg_cmd_lua(int argc, char **argv);

/* Runs busted (Debian's lua-busted) with argv as its command line, as
 * /usr/bin/busted does: require("busted.runner")({ standalone = false }).
 * Returns busted's exit code (0 when every test passed). */
int tg_cmd_busted(int argc, char **argv);

#endif
