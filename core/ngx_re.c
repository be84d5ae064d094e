/* ngx_re.c: the C side of ngx.re (core/lua/tollgate/ngx_re.lua) on PCRE2:
 * compile with OpenResty's option letters, exec into an ovector the Lua side
 * reads, the named-group table. Match data is per thread. */
#include "ngx_re.h"
#include "tg.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DFA_WORKSPACE 100

struct tg_re_s {
    pcre2_code *code;
    int flags;     /* TG_RE_* */
    int ncaptures; /* groups, not counting the whole match */
    int nnames;
    const unsigned char *name_table;
    int name_entry_size;
};

static __thread pcre2_match_data *tl_md;
static __thread uint32_t tl_md_pairs;
static __thread pcre2_match_context *tl_mctx;
static __thread uint32_t tl_limit;
static __thread int tl_dfa_ws[DFA_WORKSPACE];

static int jit_stack_size; /* 0: PCRE2's default */
static __thread pcre2_jit_stack *tl_jit_stack;
static __thread int tl_jit_stack_size;

/* The thread's match data and context are freed when the thread ends. */
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;

static void thread_end(void *arg)
{
    TG_UNUSED(arg);
    pcre2_match_data_free(tl_md);
    pcre2_match_context_free(tl_mctx);
    pcre2_jit_stack_free(tl_jit_stack);
    tl_jit_stack = NULL;
    tl_md = NULL;
    tl_mctx = NULL;
    tl_md_pairs = 0;
}

static void make_key(void)
{
    pthread_key_create(&tl_key, thread_end);
}

static void at_thread_end(void)
{
    pthread_once(&tl_once, make_key);
    pthread_setspecific(tl_key, (void *)1);
}

tg_re_t *tg_re_compile(const char *pat, size_t len, int flags, char *err, size_t errlen)
{
    uint32_t opts = 0;
    if (flags & TG_RE_CASELESS)
        opts |= PCRE2_CASELESS;
    if (flags & TG_RE_MULTILINE)
        opts |= PCRE2_MULTILINE;
    if (flags & TG_RE_DOTALL)
        opts |= PCRE2_DOTALL;
    if (flags & TG_RE_EXTENDED)
        opts |= PCRE2_EXTENDED;
    if (flags & TG_RE_ANCHORED)
        opts |= PCRE2_ANCHORED;
    if (flags & (TG_RE_UTF8 | TG_RE_UTF8_NOCHECK))
        opts |= PCRE2_UTF;
    if (flags & TG_RE_DUPNAMES)
        opts |= PCRE2_DUPNAMES;
    if (flags & TG_RE_JAVASCRIPT)
        opts |= PCRE2_ALT_BSUX | PCRE2_MATCH_UNSET_BACKREF | PCRE2_ALLOW_EMPTY_CLASS;
    int ec;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, len, opts, &ec, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        if (off >= len)
            snprintf(err, errlen, "pcre2_compile() failed: %s in \"%.*s\"", (char *)msg,
                     (int)len, pat);
        else
            snprintf(err, errlen, "pcre2_compile() failed: %s in \"%.*s\" at \"%.*s\"",
                     (char *)msg, (int)len, pat, (int)(len - off), pat + off);
        return NULL;
    }
    tg_re_t *re = calloc(1, sizeof(*re));
    if (!re) {
        pcre2_code_free(code);
        snprintf(err, errlen, "no memory");
        return NULL;
    }
    re->code = code;
    re->flags = flags;
    if ((flags & TG_RE_JIT) && !(flags & TG_RE_DFA))
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* the interpreter if JIT is missing */
    uint32_t n;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &n);
    re->ncaptures = (int)n;
    pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &n);
    re->nnames = (int)n;
    pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &n);
    re->name_entry_size = (int)n;
    PCRE2_SPTR table;
    pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table);
    re->name_table = table;
    return re;
}

void tg_re_free(tg_re_t *re)
{
    if (!re)
        return;
    pcre2_code_free(re->code);
    free(re);
}

int tg_re_ncaptures(const tg_re_t *re)
{
    return re->ncaptures;
}

int tg_re_name_count(const tg_re_t *re)
{
    return re->nnames;
}

const char *tg_re_name_at(const tg_re_t *re, int i, int *group)
{
    if (i < 0 || i >= re->nnames)
        return NULL;
    const unsigned char *e = re->name_table + (size_t)i * (size_t)re->name_entry_size;
    *group = (e[0] << 8) | e[1];
    return (const char *)e + 2;
}

static pcre2_match_context *match_context(uint32_t limit)
{
    if (!tl_mctx) {
        tl_mctx = pcre2_match_context_create(NULL);
        if (!tl_mctx)
            return NULL;
        tl_limit = 0;
    }
    int want = __atomic_load_n(&jit_stack_size, __ATOMIC_RELAXED);
    if (want != tl_jit_stack_size) {
        pcre2_jit_stack *st = want ? pcre2_jit_stack_create(32 * 1024, (PCRE2_SIZE)want, NULL)
                                   : NULL;
        pcre2_jit_stack_assign(tl_mctx, NULL, st);
        pcre2_jit_stack_free(tl_jit_stack);
        tl_jit_stack = st;
        tl_jit_stack_size = want;
    }
    if (limit != tl_limit) {
        pcre2_set_match_limit(tl_mctx, limit ? limit : 10000000);
        tl_limit = limit;
    }
    return tl_mctx;
}

int tg_re_exec(const tg_re_t *re, const char *s, size_t len, size_t pos, uint32_t match_limit,
               int *ovec, int ovec_pairs)
{
    uint32_t want = (uint32_t)re->ncaptures + 1;
    if (want < 2)
        want = 2;
    if (!tl_md || tl_md_pairs < want) {
        at_thread_end();
        if (tl_md)
            pcre2_match_data_free(tl_md);
        tl_md_pairs = want < 32 ? 32 : want;
        tl_md = pcre2_match_data_create(tl_md_pairs, NULL);
        if (!tl_md) {
            tl_md_pairs = 0;
            return PCRE2_ERROR_NOMEMORY;
        }
    }
    pcre2_match_context *mctx = match_context(match_limit);
    if (!mctx)
        return PCRE2_ERROR_NOMEMORY;
    if (pos > len)
        return PCRE2_ERROR_NOMATCH;
    uint32_t opts = (re->flags & TG_RE_UTF8_NOCHECK) ? PCRE2_NO_UTF_CHECK : 0;
    int rc;
    if (re->flags & TG_RE_DFA)
        rc = pcre2_dfa_match(re->code, (PCRE2_SPTR)s, len, pos, opts, tl_md, mctx, tl_dfa_ws,
                             DFA_WORKSPACE);
    else
        rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, pos, opts, tl_md, mctx);
    if (rc < 0)
        return rc;
    if (re->flags & TG_RE_DFA)
        rc = 1; /* the longest match only; DFA mode has no groups */
    else if (rc == 0)
        rc = (int)tl_md_pairs;
    PCRE2_SIZE *v = pcre2_get_ovector_pointer(tl_md);
    int n = rc < ovec_pairs ? rc : ovec_pairs;
    for (int i = 0; i < n; i++) {
        ovec[2 * i] = v[2 * i] == PCRE2_UNSET ? -1 : (int)v[2 * i];
        ovec[2 * i + 1] = v[2 * i + 1] == PCRE2_UNSET ? -1 : (int)v[2 * i + 1];
    }
    for (int i = n; i < ovec_pairs; i++)
        ovec[2 * i] = ovec[2 * i + 1] = -1;
    return rc;
}

int tg_re_set_jit_stack_size(int size, char *err, size_t errlen)
{
    if (size < 32 * 1024) {
        snprintf(err, errlen, "jit stack size must be at least 32768 bytes");
        return TG_EINVAL;
    }
    __atomic_store_n(&jit_stack_size, size, __ATOMIC_RELAXED);
    return 0;
}
