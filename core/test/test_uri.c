/* test_uri.c: path normalisation and escaping, against the behaviour of Kong's
 * kong/tools/uri.lua (normalize with merge_slashes, escape) and nginx's refusals. */
#include "test.h"
#include "uri.h"

static const struct {
    const char *in, *out; /* out NULL: TG_EINVAL */
} NORM[] = {
    {"", ""},
    {"/", "/"},
    {"/foo", "/foo"},
    {"/foo/", "/foo/"},
    {"/foo?a=1&b=/../x", "/foo"},
    {"/foo%3Fbar?x", "/foo%3Fbar"},
    /* double slashes merged */
    {"//", "/"},
    {"//foo//bar///", "/foo/bar/"},
    {"/foo//", "/foo/"},
    /* percent-decoding: unreserved and "other" decoded, reserved kept upper-cased */
    {"/%61%62%63", "/abc"},
    {"/%7euser", "/~user"},
    {"/a%2fb", "/a%2Fb"},
    {"/a%2Fb", "/a%2Fb"},
    {"/a%3a%40%21%2a%27%28%29%3b%26%3d%2b%24%2c%3f%25%23%5b%5d",
     "/a%3A%40%21%2A%27%28%29%3B%26%3D%2B%24%2C%3F%25%23%5B%5D"},
    {"/caf%C3%A9", "/caf\xC3\xA9"},
    {"/a%20b", "/a b"},
    {"/%2525", "/%2525"},
    /* dot segments (RFC 3986 5.2.4) */
    {"/.", "/"},
    {"/..", "/"},
    {"/./", "/"},
    {"/../", "/"},
    {"/a/./b", "/a/b"},
    {"/a/../b", "/b"},
    {"/a/b/..", "/a/"},
    {"/a/b/../", "/a/"},
    {"/a/b/.", "/a/b/"},
    {"/a/b/c/./../../g", "/a/g"},
    {"/../../a", "/a"},
    {"/a/..b/c", "/a/..b/c"},
    {"/a/b../c", "/a/b../c"},
    {"/a/.../c", "/a/.../c"},
    {"/a.b/c.d", "/a.b/c.d"},
    /* a just-decoded %2e is a dot */
    {"/a/%2e%2e/b", "/b"},
    {"/a/%2E/b", "/a/b"},
    {"/a/.%2e/b", "/b"},
    {"/a/%2e%2e", "/"},
    {"/a/b/%2e%2e%2fc", "/a/b/..%2Fc"},
    /* slashes and dots together */
    {"/a//../b", "/b"},
    {"//../a", "/a"},
    {"/a/b//./c", "/a/b/c"},
    /* nginx refuses bad escapes and %00 with 400 */
    {"/%zz", NULL},
    {"/a%2", NULL},
    {"/a%", NULL},
    {"/a%00b", NULL},
};

TEST(uri_normalize_table)
{
    char out[256];
    for (size_t i = 0; i < TG_ARRAY_SIZE(NORM); i++) {
        int n = tg_uri_normalize(NORM[i].in, strlen(NORM[i].in), out, sizeof(out));
        if (!NORM[i].out) {
            CHECK(n == TG_EINVAL, "row %zu '%s': expected TG_EINVAL, got %d", i, NORM[i].in, n);
            continue;
        }
        CHECK(n >= 0 && (size_t)n == strlen(NORM[i].out) && memcmp(out, NORM[i].out, n) == 0,
              "row %zu '%s': expected '%s', got %d '%.*s'", i, NORM[i].in, NORM[i].out, n,
              n < 0 ? 0 : n, out);
    }
}

TEST(uri_normalize_lenient_keeps_bad_escapes)
{
    char out[64];
    int n = tg_uri_normalize_lenient("/a%zz/%4", 8, out, sizeof(out));
    ASSERT_MEMEQ(out, n, "/a%zz/%4");
    n = tg_uri_normalize_lenient("/x/%2e%2e/%zz", 13, out, sizeof(out));
    ASSERT_MEMEQ(out, n, "/%zz");
}

TEST(uri_normalize_too_large)
{
    char out[4];
    ASSERT_EQ(tg_uri_normalize("/abcdef", 7, out, sizeof(out)), TG_ETOOLARGE);
    ASSERT_EQ(tg_uri_normalize("/abc", 4, out, sizeof(out)), 4);
}

TEST(uri_normalize_deep_path)
{
    /* many segments, then as many "..": all popped */
    char in[8192], out[8192];
    size_t n = 0;
    for (int i = 0; i < 1500; i++) {
        memcpy(in + n, "/s", 2);
        n += 2;
    }
    for (int i = 0; i < 1499; i++) {
        memcpy(in + n, "/..", 3);
        n += 3;
    }
    int m = tg_uri_normalize(in, n, out, sizeof(out));
    ASSERT_MEMEQ(out, m, "/s/");
}

static const struct {
    const char *in, *out;
} ESC[] = {
    {"/abc", "/abc"},
    {"/a b", "/a%20b"},
    {"/caf\xC3\xA9", "/caf%C3%A9"},
    {"/a%2Fb", "/a%2Fb"},
    {"/~user/-_.!*'();:@&=+$,?#[]", "/~user/-_.!*'();:@&=+$,?#[]"},
    {"/\"<>\\^`{|}", "/%22%3C%3E%5C%5E%60%7B%7C%7D"},
    {"/\x01\x7f", "/%01%7F"},
};

TEST(uri_escape_table)
{
    char out[256];
    for (size_t i = 0; i < TG_ARRAY_SIZE(ESC); i++) {
        int n = tg_uri_escape_path(ESC[i].in, strlen(ESC[i].in), out, sizeof(out));
        CHECK(n >= 0 && (size_t)n == strlen(ESC[i].out) && memcmp(out, ESC[i].out, n) == 0,
              "row %zu: expected '%s', got '%.*s'", i, ESC[i].out, n < 0 ? 0 : n, out);
    }
    char small[5];
    ASSERT_EQ(tg_uri_escape_path("/a b", 4, small, sizeof(small)), TG_ETOOLARGE);
}

TEST(uri_is_normalized)
{
    static const struct {
        const char *path;
        bool ok;
        const char *norm;
    } T[] = {
        {"/", true, NULL},
        {"/foo/bar", true, NULL},
        {"/foo/", true, NULL},
        {"/foo%2Fbar", true, NULL},
        {"/foo%2fbar", false, "/foo%2Fbar"},
        {"/foo/../bar", false, "/bar"},
        {"/%7Efoo", false, "/~foo"},
        {"/foo/.", false, "/foo/"},
        {"/foo%zz", true, NULL}, /* the schema's percent check reports that one */
    };
    char norm[128];
    for (size_t i = 0; i < TG_ARRAY_SIZE(T); i++) {
        norm[0] = 0;
        bool ok = tg_uri_is_normalized(T[i].path, strlen(T[i].path), norm, sizeof(norm));
        CHECK(ok == T[i].ok, "row %zu '%s': expected %d", i, T[i].path, T[i].ok);
        if (!T[i].ok)
            CHECK(strcmp(norm, T[i].norm) == 0, "row %zu: norm '%s' != '%s'", i, norm,
                  T[i].norm);
    }
}
