/* test_util_lua.c: tollgate.c.util (digests, hex, UUIDs, random bytes, clock). */
#include <lauxlib.h>
#include <lualib.h>

#include "test.h"
#include "util_lua.h"

/* Runs `chunk` with the module as global `u`; returns its string result in buf. */
static int run(const char *chunk, char *buf, size_t bufsz)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaopen_tollgate_c_util(L);
    lua_setglobal(L, "u");
    int rc = luaL_dostring(L, chunk);
    const char *s = lua_tostring(L, -1);
    snprintf(buf, bufsz, "%s", s ? s : "(nil)");
    lua_close(L);
    return rc;
}

#define RUN_EQ(chunk, expect)                                                                      \
    do {                                                                                           \
        char _buf[512];                                                                            \
        ASSERT_EQ(run(chunk, _buf, sizeof(_buf)), 0);                                              \
        ASSERT_STREQ(_buf, expect);                                                                \
    } while (0)

TEST(util_lua_digests)
{
    RUN_EQ("return u.hex(u.md5('abc'))", "900150983cd24fb0d6963f7d28e17f72");
    RUN_EQ("return u.hex(u.sha1('abc'))", "a9993e364706816aba3e25717850c26c9cd0d89d");
    RUN_EQ("return u.hex(u.sha256('abc'))",
           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    RUN_EQ("return u.hex('\\0\\255')", "00ff");
}

TEST(util_lua_uuid_v5)
{
    /* RFC 4122 appendix example (corrected erratum): DNS namespace, "www.example.com". */
    RUN_EQ("return u.uuid_v5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'www.example.com')",
           "2ed6657d-e927-568b-95e1-2665a8aea6a2");
    RUN_EQ("return select(2, u.uuid_v5('not-a-uuid', 'x'))", "invalid namespace uuid");
    char out[37];
    ASSERT_EQ(tg_util_uuid_v5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", 36, "python.org", 10, out),
              0);
    ASSERT_STREQ(out, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

TEST(util_lua_uuid_v4_random_now)
{
    RUN_EQ("local a = u.uuid_v4() return tostring(a:match("
           "'^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$') "
           "~= nil and a ~= u.uuid_v4())",
           "true");
    RUN_EQ("return tostring(#u.random_bytes(16) == 16 and u.random_bytes(8) ~= u.random_bytes(8))",
           "true");
    RUN_EQ("local t = u.now() return tostring(t > 1.6e9 and t < 4e9 and t ~= math.floor(t) or "
           "t == math.floor(t))",
           "true");
}
