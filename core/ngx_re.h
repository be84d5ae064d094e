/* ngx_re.h: PCRE2 for ngx.re.* (the FFI ABI of core/lua/tollgate/ngx_re.lua). */
#ifndef TG_NGX_RE_H
#define TG_NGX_RE_H

#include <stddef.h>
#include <stdint.h>

/* OpenResty's option letters, parsed on the Lua side. */
enum {
    TG_RE_CASELESS = 1 << 0,     /* i */
    TG_RE_DOTALL = 1 << 1,       /* s */
    TG_RE_MULTILINE = 1 << 2,    /* m */
    TG_RE_EXTENDED = 1 << 3,     /* x */
    TG_RE_UTF8 = 1 << 4,         /* u */
    TG_RE_UTF8_NOCHECK = 1 << 5, /* U: UTF-8, subject not checked */
    TG_RE_ANCHORED = 1 << 6,     /* a */
    TG_RE_DUPNAMES = 1 << 7,     /* D */
    TG_RE_JAVASCRIPT = 1 << 8,   /* J */
    TG_RE_DFA = 1 << 9,          /* d */
    TG_RE_JIT = 1 << 10,         /* j */
    TG_RE_ONCE = 1 << 11,        /* o: cached by the Lua side */
};

typedef struct tg_re_s tg_re_t;

/* Compiles `pat`; NULL with nginx's message in err ("pcre2_compile() failed:
 * <reason> in \"<pattern>\" at \"<rest>\""). The caller owns the result
 * (tg_re_free). */
tg_re_t *tg_re_compile(const char *pat, size_t len, int flags, char *err, size_t errlen);
void tg_re_free(tg_re_t *re);
int tg_re_ncaptures(const tg_re_t *re);
int tg_re_name_count(const tg_re_t *re);
/* The i-th name of the name table (sorted by name) and its group number. */
const char *tg_re_name_at(const tg_re_t *re, int i, int *group);
/* Matches from byte offset `pos`; match_limit 0 = PCRE2's default. Returns the
 * number of pairs set (>= 1) with offsets in ovec (-1 for unset groups, pairs
 * up to ovec_pairs), PCRE2_ERROR_NOMATCH (-1), or another negative PCRE2 error.
 * In DFA mode only the longest match (pair 0) is set. */
int tg_re_exec(const tg_re_t *re, const char *s, size_t len, size_t pos, uint32_t match_limit,
               int *ovec, int ovec_pairs);
/* ngx.re.opt("jit_stack_size", n): the JIT stack of every thread's later
 * matches (at least PCRE2's 32k). Returns 0 or TG_EINVAL with a reason. */
int tg_re_set_jit_stack_size(int size, char *err, size_t errlen);

#endif
