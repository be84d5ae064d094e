/* util_lua.h: "tollgate.c.util" (hashes, hex, random bytes, UUIDs, clock) for Lua. */
#ifndef TG_UTIL_LUA_H
#define TG_UTIL_LUA_H

#include <lua.h>
#include <stddef.h>

#include "tg.h"

/* Lowercase hex of `len` bytes into `out` (2 * len chars, not NUL-terminated). */
void tg_util_hex(const unsigned char *in, size_t len, char *out);
/* Canonical 8-4-4-4-12 text of 16 bytes, NUL-terminated. */
void tg_util_uuid_format(const unsigned char b[16], char out[37]);
/* Parses canonical UUID text; TG_EINVAL when malformed. */
int tg_util_uuid_parse(const char *s, size_t len, unsigned char out[16]);
/* RFC 4122 version 5 UUID of `name` in namespace `ns` (UUID text); 0 or TG_EINVAL. */
int tg_util_uuid_v5(const char *ns, size_t nslen, const char *name, size_t namelen, char out[37]);

int luaopen_tollgate_c_util(lua_State *L);

#endif
