/* conf.c: loading tollgate.conf (kong.conf syntax, Kong's keys and defaults).
 *
 * One table lists every key tollgate knows: Kong 3.10's kong_defaults (those
 * tollgate implements or parses for later subsystems, and those it only
 * recognises, which warn), tollgate's own keys, and aliases (nginx_* names of
 * the same setting). Raw values are merged in precedence order, then every key
 * is validated and converted into tg_conf_t; all bad values are reported. */
#include "conf.h"
#include "shdict.h"
#include "log.h"
#include "respond.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

extern char **environ;

#define TG_DEFAULT_PREFIX "/usr/local/tollgate"

_Static_assert((int)TG_CONF_FMT_JSON == (int)TG_FMT_JSON &&
                   (int)TG_CONF_FMT_HTML == (int)TG_FMT_HTML &&
                   (int)TG_CONF_FMT_XML == (int)TG_FMT_XML &&
                   (int)TG_CONF_FMT_TEXT == (int)TG_FMT_TEXT,
               "error_default_fmt must use respond.h's TG_FMT_* values");

enum {
    K_STR,     /* any string */
    K_BOOL,    /* on/off/true/false */
    K_INT,     /* integer >= 0 */
    K_NUM,     /* number */
    K_SIZE,    /* nginx size: 8k, 10m */
    K_TIME,    /* nginx time, plain number = seconds */
    K_LIST,    /* comma-separated list */
    K_LISTEN,  /* listen addresses */
    K_ENUM,    /* one of `extra` ("a|b|c") */
    K_ALIAS,   /* another name of `extra` */
};

enum {
    F_IMPL = 1,   /* implemented, or parsed for a subsystem that uses it */
    F_UNIMPL = 2, /* a Kong key tollgate recognises but does not implement */
};

typedef struct {
    const char *name;
    const char *def; /* NULL = NONE */
    unsigned char type, flags;
    const char *extra;
} keydef_t;

#define I(n, d, t) {n, d, t, F_IMPL, NULL}
#define IE(n, d, e) {n, d, K_ENUM, F_IMPL, e}
#define U(n, d, t) {n, d, t, F_UNIMPL, NULL}
#define A(n, target) {n, NULL, K_ALIAS, F_IMPL, target}
#define UA(n, target) {n, NULL, K_ALIAS, F_UNIMPL, target}

static const keydef_t keys[] = {
    I("prefix", TG_DEFAULT_PREFIX, K_STR),
    IE("log_level", "notice", "debug|info|notice|warn|error|crit|alert|emerg"),
    I("proxy_access_log", "logs/access.log", K_STR),
    I("proxy_error_log", "logs/error.log", K_STR),
    U("proxy_stream_access_log", "logs/access.log basic", K_STR),
    U("proxy_stream_error_log", "logs/error.log", K_STR),
    I("admin_access_log", "logs/admin_access.log", K_STR),
    I("admin_error_log", "logs/error.log", K_STR),
    U("admin_gui_access_log", "logs/admin_gui_access.log", K_STR),
    U("admin_gui_error_log", "logs/admin_gui_error.log", K_STR),
    I("status_access_log", "off", K_STR),
    I("status_error_log", "logs/status_error.log", K_STR),
    U("vaults", "bundled", K_LIST),
    I("plugins", "bundled", K_LIST),
    U("port_maps", NULL, K_LIST),
    U("host_ports", NULL, K_LIST),
    U("anonymous_reports", "on", K_BOOL),
    U("proxy_server", NULL, K_STR),
    U("proxy_server_ssl_verify", "on", K_BOOL),
    U("error_template_html", NULL, K_STR),
    U("error_template_json", NULL, K_STR),
    U("error_template_xml", NULL, K_STR),
    U("error_template_plain", NULL, K_STR),
    I("node_id", NULL, K_STR),

    I("proxy_listen",
      "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384",
      K_LISTEN),
    U("stream_listen", "off", K_STR),
    I("admin_listen", "127.0.0.1:8001 reuseport backlog=16384", K_LISTEN),
    U("admin_gui_listen", "0.0.0.0:8002, 0.0.0.0:8445 ssl", K_STR),
    I("status_listen", "127.0.0.1:8007 reuseport backlog=16384", K_LISTEN),
    I("cluster_listen", "0.0.0.0:8005", K_LISTEN),
    I("cluster_control_plane", "127.0.0.1:8005", K_STR),
    I("cluster_cert", NULL, K_STR),
    I("cluster_cert_key", NULL, K_STR),
    IE("cluster_mtls", "shared", "shared|pki"),
    I("cluster_ca_cert", NULL, K_STR),
    I("cluster_server_name", NULL, K_STR),
    I("cluster_data_plane_purge_delay", "1209600", K_INT),
    U("cluster_ocsp", "off", K_STR),
    I("cluster_max_payload", "16777216", K_INT),
    I("cluster_use_proxy", "off", K_BOOL),
    U("cluster_dp_labels", NULL, K_LIST),
    U("cluster_rpc", "off", K_BOOL),
    U("cluster_rpc_sync", "off", K_BOOL),
    U("cluster_cjson", "off", K_BOOL),

    U("lmdb_environment_path", "dbless.lmdb", K_STR),
    U("lmdb_map_size", "2048m", K_STR),
    I("mem_cache_size", "128m", K_SIZE),
    U("worker_events_max_payload", "65535", K_NUM),
    I("ssl_cert", NULL, K_LIST),
    I("ssl_cert_key", NULL, K_LIST),
    I("client_ssl", "off", K_BOOL),
    I("client_ssl_cert", NULL, K_STR),
    I("client_ssl_cert_key", NULL, K_STR),
    IE("ssl_cipher_suite", "intermediate", "modern|intermediate|old|fips|custom"),
    I("ssl_ciphers", NULL, K_STR),
    I("ssl_protocols", "TLSv1.2 TLSv1.3", K_STR),
    I("ssl_prefer_server_ciphers", "on", K_BOOL),
    I("ssl_dhparam", NULL, K_STR),
    I("ssl_session_tickets", "on", K_BOOL),
    I("ssl_session_timeout", "1d", K_TIME),
    U("ssl_session_cache_size", "10m", K_STR),
    U("admin_ssl_cert", NULL, K_LIST),
    U("admin_ssl_cert_key", NULL, K_LIST),
    U("admin_gui_ssl_cert", NULL, K_LIST),
    U("admin_gui_ssl_cert_key", NULL, K_LIST),
    U("status_ssl_cert", NULL, K_LIST),
    U("status_ssl_cert_key", NULL, K_LIST),
    I("headers", "server_tokens, latency_tokens, x-kong-request-id", K_LIST),
    I("headers_upstream", "x-kong-request-id", K_LIST),
    I("trusted_ips", NULL, K_LIST),
    IE("error_default_type", "text/plain", "application/json|application/xml|text/html|text/plain"),
    I("upstream_keepalive_pool_size", "512", K_INT),
    I("upstream_keepalive_max_requests", "10000", K_INT),
    I("upstream_keepalive_idle_timeout", "60", K_INT),
    U("allow_debug_header", "off", K_BOOL),

    U("nginx_user", "kong kong", K_STR),
    A("nginx_worker_processes", "worker_threads"),
    I("nginx_daemon", "on", K_BOOL),
    A("nginx_main_daemon", "nginx_daemon"),
    U("nginx_main_user", "kong kong", K_STR),
    A("nginx_main_worker_processes", "worker_threads"),
    U("nginx_main_worker_rlimit_nofile", "auto", K_STR),
    U("nginx_events_worker_connections", "auto", K_STR),
    U("nginx_events_multi_accept", "on", K_STR),
    U("nginx_http_charset", "UTF-8", K_STR),
    I("nginx_http_client_max_body_size", "0", K_SIZE),
    A("nginx_http_client_body_buffer_size", "client_body_buffer_size"),
    I("nginx_http_lua_regex_match_limit", "100000", K_NUM),
    I("nginx_http_lua_regex_cache_max_entries", "8192", K_NUM),
    I("nginx_http_lua_shared_dict", NULL, K_STR),
    I("nginx_http_keepalive_requests", "10000", K_INT),
    A("nginx_proxy_real_ip_header", "real_ip_header"),
    A("nginx_proxy_real_ip_recursive", "real_ip_recursive"),
    I("nginx_admin_client_max_body_size", "10m", K_SIZE),
    I("nginx_admin_client_body_buffer_size", "10m", K_SIZE),
    /* nginx defaults Kong inherits (tollgate implements them). */
    I("nginx_http_large_client_header_buffers", "4 8k", K_STR),
    I("nginx_http_client_header_timeout", "60s", K_TIME),
    I("nginx_http_client_body_timeout", "60s", K_TIME),
    I("nginx_http_send_timeout", "60s", K_TIME),
    I("nginx_http_keepalive_timeout", "75s", K_TIME),

    I("client_body_buffer_size", "8k", K_SIZE),
    I("real_ip_header", "X-Real-IP", K_STR),
    I("real_ip_recursive", "off", K_BOOL),

    IE("database", "off", "postgres|off|cassandra"),
    I("pg_host", "127.0.0.1", K_STR),
    I("pg_port", "5432", K_INT),
    I("pg_database", "kong", K_STR),
    I("pg_schema", NULL, K_STR),
    I("pg_timeout", "5000", K_INT),
    I("pg_user", "kong", K_STR),
    I("pg_password", NULL, K_STR),
    I("pg_ssl", "off", K_BOOL),
    I("pg_ssl_verify", "off", K_BOOL),
    U("pg_max_concurrent_queries", "0", K_NUM),
    U("pg_semaphore_timeout", "60000", K_NUM),
    U("pg_keepalive_timeout", NULL, K_NUM),
    U("pg_pool_size", NULL, K_NUM),
    U("pg_backlog", NULL, K_NUM),
    U("_debug_pg_ttl_cleanup_interval", "300", K_NUM),
    U("pg_ro_host", NULL, K_STR),
    U("pg_ro_port", NULL, K_NUM),
    U("pg_ro_database", NULL, K_STR),
    U("pg_ro_schema", NULL, K_STR),
    U("pg_ro_timeout", NULL, K_NUM),
    U("pg_ro_user", NULL, K_STR),
    U("pg_ro_password", NULL, K_STR),
    U("pg_ro_ssl", NULL, K_BOOL),
    U("pg_ro_ssl_verify", NULL, K_BOOL),
    U("pg_ro_max_concurrent_queries", NULL, K_NUM),
    U("pg_ro_semaphore_timeout", NULL, K_NUM),
    U("pg_ro_keepalive_timeout", NULL, K_NUM),
    U("pg_ro_pool_size", NULL, K_NUM),
    U("pg_ro_backlog", NULL, K_NUM),

    I("declarative_config", NULL, K_LIST),
    I("declarative_config_string", NULL, K_STR),

    U("db_update_frequency", "5", K_NUM),
    U("db_update_propagation", "0", K_NUM),
    I("db_cache_ttl", "0", K_NUM),
    I("db_cache_neg_ttl", NULL, K_NUM),
    I("db_resurrect_ttl", "30", K_NUM),
    U("db_cache_warmup_entities", "services", K_LIST),

    I("dns_resolver", NULL, K_LIST),
    I("dns_hostsfile", "/etc/hosts", K_STR),
    I("dns_order", "LAST,SRV,A,CNAME", K_LIST),
    I("dns_valid_ttl", NULL, K_INT),
    I("dns_stale_ttl", "3600", K_INT),
    I("dns_cache_size", "10000", K_INT),
    I("dns_not_found_ttl", "30", K_INT),
    I("dns_error_ttl", "1", K_INT),
    I("dns_no_sync", "off", K_BOOL),
    U("new_dns_client", "off", K_BOOL),
    U("resolver_address", NULL, K_LIST),
    U("resolver_hosts_file", "/etc/hosts", K_STR),
    U("resolver_family", "A,SRV", K_LIST),
    U("resolver_valid_ttl", NULL, K_NUM),
    U("resolver_stale_ttl", "3600", K_NUM),
    U("resolver_lru_cache_size", "10000", K_NUM),
    U("resolver_mem_cache_size", "5m", K_STR),
    U("resolver_error_ttl", "1", K_NUM),

    U("dedicated_config_processing", "on", K_BOOL),
    U("worker_consistency", "eventual", K_STR),
    U("worker_state_update_frequency", "5", K_NUM),
    IE("router_flavor", "traditional_compatible", "traditional|traditional_compatible|expressions"),

    U("lua_socket_pool_size", "256", K_NUM),
    U("lua_ssl_trusted_certificate", "system", K_LIST),
    U("lua_ssl_verify_depth", "1", K_NUM),
    U("lua_ssl_protocols", "TLSv1.2 TLSv1.3", K_STR),
    I("lua_package_path", "./?.lua;./?/init.lua;", K_STR),
    I("lua_package_cpath", NULL, K_STR),
    I("lua_max_req_headers", "100", K_INT),
    I("lua_max_resp_headers", "100", K_INT),
    I("lua_max_uri_args", "100", K_INT),
    I("lua_max_post_args", "100", K_INT),

    IE("role", "traditional", "data_plane|control_plane|traditional"),
    U("kic", "off", K_BOOL),
    U("pluginserver_names", NULL, K_LIST),
    U("untrusted_lua", "sandbox", K_STR),
    U("untrusted_lua_sandbox_requires", "", K_LIST),
    U("untrusted_lua_sandbox_environment", "", K_LIST),
    U("admin_gui_url", "", K_LIST),
    U("admin_gui_path", "/", K_STR),
    U("admin_gui_api_url", NULL, K_STR),
    U("admin_gui_csp_header", "off", K_BOOL),
    U("openresty_path", "", K_STR),
    U("opentelemetry_tracing", "off", K_LIST),
    U("opentelemetry_tracing_sampling_rate", "0.01", K_NUM),
    U("tracing_instrumentations", "off", K_LIST),
    U("tracing_sampling_rate", "0.01", K_NUM),
    U("wasm", "off", K_BOOL),
    U("wasm_filters_path", NULL, K_STR),
    U("wasm_dynamic_module", NULL, K_STR),
    U("wasm_filters", "bundled,user", K_LIST),
    U("request_debug", "on", K_BOOL),
    U("request_debug_token", "", K_STR),

    /* tollgate's own keys */
    I("worker_threads", "auto", K_STR),
    I("max_request_headers", "1000", K_INT),
    A("client_max_body_size", "nginx_http_client_max_body_size"),
    A("client_header_timeout", "nginx_http_client_header_timeout"),
    A("client_body_timeout", "nginx_http_client_body_timeout"),
    A("large_client_header_buffers", "nginx_http_large_client_header_buffers"),
};

#define NKEYS TG_ARRAY_SIZE(keys)

/* Key prefixes Kong turns into injected nginx directives (or plugin server /
 * vault settings): recognised, not implemented, warned about. */
static const char *const dynamic_prefixes[] = {
    "nginx_main_",     "nginx_events_",   "nginx_http_",   "nginx_upstream_", "nginx_proxy_",
    "nginx_location_", "nginx_status_",   "nginx_admin_",  "nginx_stream_",   "nginx_supstream_",
    "nginx_sproxy_",   "nginx_wasm_",     "pluginserver_", "vault_",
};

/* Environment variables with our prefixes that are not configuration. */
static const char *const env_not_conf[] = {
    "TOLLGATE_HOME", "TOLLGATE_BIN", "TOLLGATE_BUILD", "TOLLGATE_SPEC_PORT_BASE",
};

static int key_index(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The index a value is stored under (aliases resolved). */
static int key_target(int i)
{
    if (keys[i].type == K_ALIAS)
        return key_index(keys[i].extra);
    return i;
}

/* ---- small string helpers (more in conf_value.c) ---- */

static bool ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* Splits a comma list into trimmed, non-empty items. */
static int parse_bool(const char *v, bool *out)
{
    if (ieq(v, "on") || ieq(v, "true")) {
        *out = true;
        return 0;
    }
    if (ieq(v, "off") || ieq(v, "false")) {
        *out = false;
        return 0;
    }
    return TG_EINVAL;
}

static bool parse_number(const char *v)
{
    if (!*v)
        return false;
    char *end;
    strtod(v, &end);
    return *end == '\0';
}

/* ---- edit distance ---- */

static size_t levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

const char *tg_conf_suggest(const char *key)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    for (size_t i = 0; i < NKEYS; i++) {
        size_t d = levenshtein(key, keys[i].name);
        if (d < bestd) {
            bestd = d;
            best = keys[i].name;
        }
    }
    size_t len = strlen(key);
    size_t limit = len / 3 > 3 ? len / 3 : 3;
    return bestd <= limit && bestd < len ? best : NULL;
}

/* ---- the loader's state ---- */

typedef struct {
    char *raw[NKEYS];   /* effective raw value per key (aliases resolved); NULL = NONE */
    bool set[NKEYS];    /* given by the file or env (not the default) */
    tg__conf_strv_t warnings;
    tg__conf_strv_t errors;
} loader_t;

static void add_msg(tg__conf_strv_t *v, bool warn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_msg(tg__conf_strv_t *v, bool warn, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (warn)
        tg_log(TG_LOG_WARN, "%s", buf);
    tg__conf_strv_push(v, strdup(buf));
}

#define WARN(ld, ...) add_msg(&(ld)->warnings, true, __VA_ARGS__)
#define ERR(ld, ...) add_msg(&(ld)->errors, false, __VA_ARGS__)

static bool has_dynamic_prefix(const char *key)
{
    for (size_t i = 0; i < TG_ARRAY_SIZE(dynamic_prefixes); i++)
        if (strncmp(key, dynamic_prefixes[i], strlen(dynamic_prefixes[i])) == 0)
            return true;
    return false;
}

/* Applies one key = value from `source` ("tollgate.conf line 3", "KONG_X"). */
static void apply(loader_t *ld, const char *key, const char *value, const char *source)
{
    int i = key_index(key);
    if (i < 0) {
        if (has_dynamic_prefix(key)) {
            WARN(ld, "%s: '%s' is a Kong nginx directive injection, not implemented by "
                     "tollgate; ignored", source, key);
            return;
        }
        const char *s = tg_conf_suggest(key);
        if (s)
            WARN(ld, "%s: unknown configuration key '%s' (did you mean '%s'?); ignored", source,
                 key, s);
        else
            WARN(ld, "%s: unknown configuration key '%s'; ignored", source, key);
        return;
    }
    if (keys[i].flags & F_UNIMPL)
        WARN(ld, "%s: '%s' is a Kong setting tollgate does not implement; ignored", source, key);
    int t = key_target(i);
    free(ld->raw[t]);
    ld->raw[t] = strcmp(value, "NONE") == 0 ? NULL : strdup(value);
    ld->set[t] = true;
}

/* kong.conf syntax: `key = value`, `#` starts a comment unless escaped `\#`. */
static void parse_text(loader_t *ld, const char *text, const char *path)
{
    const char *p = text;
    int lineno = 0;
    while (*p) {
        lineno++;
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = malloc(n + 1);
        if (!line)
            return;
        size_t o = 0;
        for (size_t k = 0; k < n; k++) {
            if (p[k] == '\\' && k + 1 < n && p[k + 1] == '#') {
                line[o++] = '#';
                k++;
            } else if (p[k] == '#') {
                break;
            } else {
                line[o++] = p[k];
            }
        }
        line[o] = '\0';
        char *l = tg__conf_trim(line);
        if (*l) {
            char src[512];
            snprintf(src, sizeof(src), "%s:%d", path ? path : "(conf)", lineno);
            char *eq = strchr(l, '=');
            if (!eq) {
                WARN(ld, "%s: not a 'key = value' line; ignored", src);
            } else {
                *eq = '\0';
                char *k = tg__conf_trim(l), *v = tg__conf_trim(eq + 1);
                for (char *c = k; *c; c++)
                    *c = (char)tolower((unsigned char)*c);
                apply(ld, k, v, src);
            }
        }
        free(line);
        p = nl ? nl + 1 : p + n;
    }
}

static void apply_env(loader_t *ld, char *const *envp, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, prefix, pl) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e + pl)
            continue;
        char name[256];
        size_t nlen = (size_t)(eq - *e);
        if (nlen >= sizeof(name))
            continue;
        memcpy(name, *e, nlen);
        name[nlen] = '\0';
        bool skip = false;
        for (size_t i = 0; i < TG_ARRAY_SIZE(env_not_conf); i++)
            skip |= strcmp(name, env_not_conf[i]) == 0;
        if (skip || strncmp(name + pl, "TEST_", 5) == 0 || strncmp(name + pl, "SPEC_", 5) == 0)
            continue;
        char key[256];
        size_t k = 0;
        for (const char *c = name + pl; *c && k < sizeof(key) - 1; c++)
            key[k++] = (char)tolower((unsigned char)*c);
        key[k] = '\0';
        char value[8192];
        snprintf(value, sizeof(value), "%s", eq + 1);
        apply(ld, key, tg__conf_trim(value), name);
    }
}

/* ---- values ---- */

static const char *rawv(const loader_t *ld, const char *name)
{
    int i = key_index(name);
    return i >= 0 ? ld->raw[i] : NULL;
}

static char *dupv(const loader_t *ld, const char *name)
{
    const char *v = rawv(ld, name);
    return v ? strdup(v) : NULL;
}

static bool boolv(const loader_t *ld, const char *name)
{
    bool b = false;
    const char *v = rawv(ld, name);
    if (v)
        parse_bool(v, &b);
    return b;
}

static long long intv(const loader_t *ld, const char *name, long long dflt)
{
    long long x = dflt;
    const char *v = rawv(ld, name);
    if (v)
        tg__conf_parse_int(v, LLONG_MIN, LLONG_MAX, &x);
    return x;
}

static size_t sizev(const loader_t *ld, const char *name)
{
    size_t x = 0;
    const char *v = rawv(ld, name);
    if (v)
        tg_conf_parse_size(v, &x);
    return x;
}

static int timev(const loader_t *ld, const char *name)
{
    int x = 0;
    const char *v = rawv(ld, name);
    if (v)
        tg_conf_parse_time_ms(v, &x);
    return x;
}

static char **listv(const loader_t *ld, const char *name, size_t *n)
{
    char **v = NULL;
    *n = 0;
    const char *raw = rawv(ld, name);
    if (raw)
        tg__conf_split(raw, &v, n);
    return v;
}

/* The generic checks by type (Kong's messages). */
static void check_types(loader_t *ld)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const keydef_t *k = &keys[i];
        const char *v = ld->raw[i];
        if (!v || k->type == K_ALIAS || (k->flags & F_UNIMPL))
            continue;
        bool b;
        long long x;
        size_t sz;
        int ms;
        switch (k->type) {
        case K_BOOL:
            if (parse_bool(v, &b) != 0)
                ERR(ld, "%s is not a boolean: '%s'", k->name, v);
            break;
        case K_INT:
            if (tg__conf_parse_int(v, LLONG_MIN, LLONG_MAX, &x) != 0)
                ERR(ld, "%s is not a number: '%s'", k->name, v);
            break;
        case K_NUM:
            if (!parse_number(v))
                ERR(ld, "%s is not a number: '%s'", k->name, v);
            break;
        case K_SIZE:
            if (tg_conf_parse_size(v, &sz) != 0)
                ERR(ld, "%s is not a size: '%s' (a number with an optional k, m or g unit)",
                    k->name, v);
            break;
        case K_TIME:
            if (tg_conf_parse_time_ms(v, &ms) != 0)
                ERR(ld, "%s is not a time: '%s' (e.g. 60s, 500ms, 5m)", k->name, v);
            break;
        case K_ENUM: {
            bool ok = false;
            const char *e = k->extra;
            size_t vl = strlen(v);
            while (e && *e) {
                const char *bar = strchr(e, '|');
                size_t el = bar ? (size_t)(bar - e) : strlen(e);
                ok |= el == vl && strncmp(e, v, el) == 0;
                e = bar ? bar + 1 : NULL;
            }
            if (!ok) {
                char list[256];
                snprintf(list, sizeof(list), "%s", k->extra);
                for (char *c = list; *c; c++)
                    if (*c == '|') {
                        /* "a|b" → "a, b" */
                        memmove(c + 2, c + 1, strlen(c + 1) + 1);
                        c[0] = ',';
                        c[1] = ' ';
                    }
                ERR(ld, "%s has an invalid value: '%s' (%s)", k->name, v, list);
            }
            break;
        }
        default:
            break;
        }
    }
}

/* ---- building tg_conf_t ---- */

static char *join_path(const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

static char *absolute(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return strdup(path);
    return join_path(cwd, path);
}

/* A log value: "off", "/dev/stderr", an absolute path, or relative to the prefix.
 * nginx allows "path format" — only the path is used. */
static char *log_path(loader_t *ld, const char *key, const char *prefix)
{
    const char *v = rawv(ld, key);
    if (!v || strcmp(v, "off") == 0)
        return strdup("off");
    char first[PATH_MAX];
    snprintf(first, sizeof(first), "%s", v);
    char *sp = strpbrk(first, " \t");
    if (sp) {
        *sp = '\0';
        WARN(ld, "%s: only the path '%s' is used (log formats are not configurable)", key,
             first);
    }
    if (first[0] == '/')
        return strdup(first);
    return join_path(prefix, first);
}

static unsigned header_bit(const char *t)
{
    static const struct {
        const char *name;
        unsigned bits;
    } map[] = {
        {"server_tokens", TG_HDR_SERVER_TOKENS},
        {"latency_tokens", TG_HDR_LATENCY_TOKENS},
        {"server", TG_HDR_SERVER},
        {"via", TG_HDR_VIA},
        {"x-kong-proxy-latency", TG_HDR_PROXY_LATENCY},
        {"x-kong-upstream-latency", TG_HDR_UPSTREAM_LATENCY},
        {"x-kong-response-latency", TG_HDR_RESPONSE_LATENCY},
        {"x-kong-admin-latency", TG_HDR_ADMIN_LATENCY},
        {"x-kong-upstream-status", TG_HDR_UPSTREAM_STATUS},
        {"x-kong-request-id", TG_HDR_REQUEST_ID},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(map); i++)
        if (ieq(t, map[i].name))
            return map[i].bits;
    return 0;
}

/* Kong: `off` as the first token means none; elsewhere it is ignored. */
static unsigned parse_headers(loader_t *ld, const char *key, bool upstream)
{
    size_t n;
    char **v = listv(ld, key, &n);
    unsigned mask = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], "off") == 0)
            continue;
        unsigned b = header_bit(v[i]);
        if (!b || (upstream && b != TG_HDR_REQUEST_ID))
            ERR(ld, "%s: invalid entry '%s'", key, v[i]);
        mask |= b;
    }
    bool off = n > 0 && strcmp(v[0], "off") == 0;
    tg__conf_strv_free(v, n);
    return off ? 0 : mask;
}

static void build_listen(loader_t *ld, const char *key, tg_listen_t **out, size_t *n)
{
    char err[512];
    const char *v = rawv(ld, key);
    if (!v) {
        *out = NULL;
        *n = 0;
        return;
    }
    if (tg_conf_parse_listen(v, out, n, err, sizeof(err)) != 0) {
        ERR(ld, "%s %s", key, err);
        return;
    }
    for (size_t i = 0; i < *n; i++) {
        tg_listen_t *l = &(*out)[i];
        /* proxy_listen terminates TLS (tls.c); the others do not yet */
        if (l->ssl && strcmp(key, "proxy_listen") != 0)
            ERR(ld, "%s: '%s:%u ssl': TLS on this listener is not available yet in tollgate; "
                    "remove the ssl flag",
                key, l->host, l->port);
        /* Kong's own default carries http2: worth a warning only when asked for */
        int ki = key_index(key);
        bool dflt = ki >= 0 && keys[ki].def && !strcmp(v, keys[ki].def);
        if (l->http2 && !dflt)
            WARN(ld, "%s: %s:%u http2: HTTP/2 is not available yet; served as HTTP/1.1 "
                     "(ALPN offers http/1.1 only)",
                 key, l->host, l->port);
    }
}

static void build_trusted(loader_t *ld, tg_conf_t *c)
{
    size_t n;
    char **v = listv(ld, "trusted_ips", &n);
    c->trusted_ips = n ? calloc(n, sizeof(tg_cidr_t)) : NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], "unix:") == 0) {
            c->trusted_unix = true;
            continue;
        }
        tg_cidr_t cidr;
        if (tg_conf_parse_cidr(v[i], &cidr) != 0) {
            ERR(ld, "trusted_ips must be a comma separated list in the form of IPv4 or IPv6 "
                    "address or CIDR block or 'unix:', got '%s'", v[i]);
            continue;
        }
        if (cidr.bits == 0) {
            if (cidr.family == AF_INET)
                c->trusted_all4 = true;
            else
                c->trusted_all6 = true;
        }
        if (c->trusted_ips)
            c->trusted_ips[c->ntrusted_ips++] = cidr;
    }
    tg__conf_strv_free(v, n);
}

static void build_worker_threads(loader_t *ld, tg_conf_t *c)
{
    const char *v = rawv(ld, "worker_threads");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    long long x;
    if (!v || strcmp(v, "auto") == 0)
        c->worker_threads = (int)cores;
    else if (tg__conf_parse_int(v, 1, 1024, &x) == 0)
        c->worker_threads = (int)x;
    else
        ERR(ld, "worker_threads has an invalid value: '%s' (auto or a number from 1 to 1024)",
            v);
}

static void build_header_buffers(loader_t *ld, tg_conf_t *c)
{
    const char *v = rawv(ld, "nginx_http_large_client_header_buffers");
    char num[32], size[32], extra[2];
    long long nbuf;
    size_t sz;
    if (!v || sscanf(v, "%31s %31s %1s", num, size, extra) != 2 ||
        tg__conf_parse_int(num, 1, 1024, &nbuf) != 0 || tg_conf_parse_size(size, &sz) != 0 ||
        sz < 1024) {
        ERR(ld, "nginx_http_large_client_header_buffers has an invalid value: '%s' "
                "(<number> <size>, e.g. 4 8k; size at least 1k)", v ? v : "NONE");
        return;
    }
    c->max_request_line = sz;
    c->max_header_line = sz;
    c->max_header_size = (size_t)nbuf * sz;
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void build_dns(loader_t *ld, tg_conf_t *c)
{
    c->dns_resolver = listv(ld, "dns_resolver", &c->ndns_resolver);
    for (size_t i = 0; i < c->ndns_resolver; i++) {
        /* an IP, or IP:port ([IPv6]:port); never a name */
        const char *e = c->dns_resolver[i];
        unsigned char buf[16];
        tg_listen_t *l = NULL;
        size_t n = 0;
        char lerr[8];
        bool ok = inet_pton(AF_INET, e, buf) == 1 || inet_pton(AF_INET6, e, buf) == 1;
        if (!ok && strchr(e, ' ') == NULL &&
            tg_conf_parse_listen(e, &l, &n, lerr, sizeof(lerr)) == 0 && n == 1)
            ok = isdigit((unsigned char)l[0].host[0]) || l[0].host[0] == '[';
        free(l);
        if (!ok)
            ERR(ld, "dns_resolver must be a comma separated list in the form of IPv4/6 or "
                    "IPv4/6:port, got '%s'", e);
    }
    c->dns_hostsfile = dupv(ld, "dns_hostsfile");
    if (c->dns_hostsfile && !file_exists(c->dns_hostsfile))
        ERR(ld, "dns_hostsfile: file does not exist");
    c->dns_order = listv(ld, "dns_order", &c->ndns_order);
    for (size_t i = 0; i < c->ndns_order; i++) {
        const char *o = c->dns_order[i];
        if (!ieq(o, "LAST") && !ieq(o, "A") && !ieq(o, "AAAA") && !ieq(o, "CNAME") &&
            !ieq(o, "SRV"))
            ERR(ld, "dns_order: invalid entry '%s'", o);
    }
    c->dns_valid_ttl = (int)intv(ld, "dns_valid_ttl", -1);
    c->dns_stale_ttl = (int)intv(ld, "dns_stale_ttl", 3600);
    c->dns_not_found_ttl = (int)intv(ld, "dns_not_found_ttl", 30);
    c->dns_error_ttl = (int)intv(ld, "dns_error_ttl", 1);
    c->dns_cache_size = (int)intv(ld, "dns_cache_size", 10000);
    c->dns_no_sync = boolv(ld, "dns_no_sync");
}

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

static void check_range(loader_t *ld, const char *key, long long lo, long long hi,
                        const char *msg)
{
    const char *v = rawv(ld, key);
    long long x;
    if (v && tg__conf_parse_int(v, LLONG_MIN, LLONG_MAX, &x) == 0 && (x < lo || x > hi))
        ERR(ld, "%s %s", key, msg);
}

static void build(loader_t *ld, tg_conf_t *c, const char *prefix_override)
{
    check_types(ld);

    const char *pv = prefix_override ? prefix_override : rawv(ld, "prefix");
    char *prefix = absolute(pv ? pv : TG_DEFAULT_PREFIX);
    size_t pl = strlen(prefix);
    while (pl > 1 && prefix[pl - 1] == '/')
        prefix[--pl] = '\0';
    c->prefix = prefix;
    free(ld->raw[key_index("prefix")]);
    ld->raw[key_index("prefix")] = strdup(prefix);
    c->pid_file = join_path(prefix, "pids/tollgate.pid");
    c->env_file = join_path(prefix, ".tollgate_env");

    build_listen(ld, "proxy_listen", &c->proxy_listen, &c->nproxy_listen);
    build_listen(ld, "admin_listen", &c->admin_listen, &c->nadmin_listen);
    build_listen(ld, "status_listen", &c->status_listen, &c->nstatus_listen);
    build_listen(ld, "cluster_listen", &c->cluster_listen, &c->ncluster_listen);

    build_worker_threads(ld, c);
    c->database = dupv(ld, "database");
    if (c->database && strcmp(c->database, "cassandra") == 0)
        ERR(ld, "Cassandra as a datastore for Kong is not supported in versions 3.4 and above. "
                "Please use Postgres.");
    c->database_off = !c->database || strcmp(c->database, "off") == 0;
    c->declarative_config = listv(ld, "declarative_config", &c->ndeclarative_config);
    for (size_t i = 0; i < c->ndeclarative_config; i++) {
        char *a = absolute(c->declarative_config[i]);
        if (a) {
            free(c->declarative_config[i]);
            c->declarative_config[i] = a;
        }
    }
    c->declarative_config_string = dupv(ld, "declarative_config_string");

    const char *lvl = rawv(ld, "log_level");
    c->log_level = lvl ? tg_log_level_parse(lvl) : TG_LOG_NOTICE;
    if (c->log_level < 0)
        c->log_level = TG_LOG_NOTICE;
    c->proxy_access_log = log_path(ld, "proxy_access_log", prefix);
    c->proxy_error_log = log_path(ld, "proxy_error_log", prefix);
    c->admin_access_log = log_path(ld, "admin_access_log", prefix);
    c->admin_error_log = log_path(ld, "admin_error_log", prefix);
    c->status_access_log = log_path(ld, "status_access_log", prefix);
    c->status_error_log = log_path(ld, "status_error_log", prefix);

    c->headers = parse_headers(ld, "headers", false);
    c->headers_upstream = parse_headers(ld, "headers_upstream", true);
    c->real_ip_header = dupv(ld, "real_ip_header");
    c->real_ip_recursive = boolv(ld, "real_ip_recursive");
    build_trusted(ld, c);

    c->error_default_type = dupv(ld, "error_default_type");
    const char *et = c->error_default_type ? c->error_default_type : "text/plain";
    c->error_default_fmt = strcmp(et, "application/json") == 0  ? TG_CONF_FMT_JSON
                           : strcmp(et, "text/html") == 0       ? TG_CONF_FMT_HTML
                           : strcmp(et, "application/xml") == 0 ? TG_CONF_FMT_XML
                                                                : TG_CONF_FMT_TEXT;

    c->client_max_body_size = sizev(ld, "nginx_http_client_max_body_size");
    c->client_body_buffer_size = sizev(ld, "client_body_buffer_size");
    c->admin_client_max_body_size = sizev(ld, "nginx_admin_client_max_body_size");
    c->admin_client_body_buffer_size = sizev(ld, "nginx_admin_client_body_buffer_size");
    build_header_buffers(ld, c);
    c->max_headers = (size_t)intv(ld, "max_request_headers", 1000);
    check_range(ld, "max_request_headers", 1, 100000, "must be between 1 and 100000");
    c->client_header_timeout_ms = timev(ld, "nginx_http_client_header_timeout");
    c->client_body_timeout_ms = timev(ld, "nginx_http_client_body_timeout");
    c->send_timeout_ms = timev(ld, "nginx_http_send_timeout");
    c->keepalive_timeout_ms = timev(ld, "nginx_http_keepalive_timeout");
    c->keepalive_requests = (int)intv(ld, "nginx_http_keepalive_requests", 10000);
    check_range(ld, "nginx_http_keepalive_requests", 0, INT_MAX, "must be 0 or greater");

    c->upstream_keepalive_pool_size = (int)intv(ld, "upstream_keepalive_pool_size", 512);
    c->upstream_keepalive_max_requests = (int)intv(ld, "upstream_keepalive_max_requests", 10000);
    c->upstream_keepalive_idle_timeout_ms =
        (int)intv(ld, "upstream_keepalive_idle_timeout", 60) * 1000;
    check_range(ld, "upstream_keepalive_pool_size", 0, INT_MAX, "must be 0 or greater");
    check_range(ld, "upstream_keepalive_max_requests", 0, INT_MAX, "must be 0 or greater");
    check_range(ld, "upstream_keepalive_idle_timeout", 0, INT_MAX / 1000, "must be 0 or greater");

    c->nginx_daemon = boolv(ld, "nginx_daemon");
    c->plugins = listv(ld, "plugins", &c->nplugins);
    c->lua_package_path = dupv(ld, "lua_package_path");
    c->lua_package_cpath = dupv(ld, "lua_package_cpath");
    c->role = dupv(ld, "role");
    c->router_flavor = dupv(ld, "router_flavor");
    if (c->router_flavor && strcmp(c->router_flavor, "expressions") == 0)
        ERR(ld, "router_flavor: 'expressions' is not supported by tollgate "
                "(traditional_compatible is)");
    else if (c->router_flavor && strcmp(c->router_flavor, "traditional") == 0)
        WARN(ld, "router_flavor: 'traditional' is served by tollgate's traditional_compatible "
                 "router");
    c->mem_cache_size = sizev(ld, "mem_cache_size");
    c->lua_shared_dict = dupv(ld, "nginx_http_lua_shared_dict");
    if (c->lua_shared_dict) {
        char why[256];
        if (tg_shdict_parse(c->lua_shared_dict, 0, why, sizeof(why)) != 0)
            ERR(ld, "nginx_http_lua_shared_dict: %s", why);
    }
    c->lua_max_req_headers = (int)intv(ld, "lua_max_req_headers", 100);
    c->lua_max_resp_headers = (int)intv(ld, "lua_max_resp_headers", 100);
    c->lua_max_uri_args = (int)intv(ld, "lua_max_uri_args", 100);
    c->lua_max_post_args = (int)intv(ld, "lua_max_post_args", 100);
    check_range(ld, "lua_max_req_headers", 1, 1000, "must be an integer between 1 and 1000");
    check_range(ld, "lua_max_resp_headers", 1, 1000, "must be an integer between 1 and 1000");
    check_range(ld, "lua_max_uri_args", 1, 1000, "must be an integer between 1 and 1000");
    check_range(ld, "lua_max_post_args", 1, 1000, "must be an integer between 1 and 1000");
    c->node_id = dupv(ld, "node_id");
    if (c->node_id && !is_uuid(c->node_id))
        ERR(ld, "node_id must be a valid UUID");

    c->pg_host = dupv(ld, "pg_host");
    c->pg_user = dupv(ld, "pg_user");
    c->pg_password = dupv(ld, "pg_password");
    c->pg_database = dupv(ld, "pg_database");
    c->pg_schema = dupv(ld, "pg_schema");
    c->pg_port = (int)intv(ld, "pg_port", 5432);
    check_range(ld, "pg_port", 1, 65535, "must be between 1 and 65535");
    c->pg_timeout_ms = (int)intv(ld, "pg_timeout", 5000);
    c->pg_ssl = boolv(ld, "pg_ssl");
    c->pg_ssl_verify = boolv(ld, "pg_ssl_verify");

    c->ssl_cert = listv(ld, "ssl_cert", &c->nssl_cert);
    c->ssl_cert_key = listv(ld, "ssl_cert_key", &c->nssl_cert_key);
    if (c->nssl_cert && !c->nssl_cert_key)
        ERR(ld, "ssl_cert_key must be specified");
    else if (c->nssl_cert_key && !c->nssl_cert)
        ERR(ld, "ssl_cert must be specified");
    else if (c->nssl_cert != c->nssl_cert_key)
        ERR(ld, "ssl_cert was specified %zu times while ssl_cert_key was specified %zu times",
            c->nssl_cert, c->nssl_cert_key);
    c->ssl_protocols = dupv(ld, "ssl_protocols");
    if (c->ssl_protocols) {
        char tmp[256], *save = NULL;
        snprintf(tmp, sizeof(tmp), "%s", c->ssl_protocols);
        for (char *t = strtok_r(tmp, " ", &save); t; t = strtok_r(NULL, " ", &save))
            if (strcmp(t, "TLSv1") && strcmp(t, "TLSv1.1") && strcmp(t, "TLSv1.2") &&
                strcmp(t, "TLSv1.3"))
                ERR(ld, "ssl_protocols: invalid entry '%s'", t);
    }
    c->ssl_cipher_suite = dupv(ld, "ssl_cipher_suite");
    c->ssl_ciphers = dupv(ld, "ssl_ciphers");
    c->ssl_dhparam = dupv(ld, "ssl_dhparam");
    c->ssl_prefer_server_ciphers = boolv(ld, "ssl_prefer_server_ciphers");
    c->ssl_session_tickets = boolv(ld, "ssl_session_tickets");
    c->ssl_session_timeout_s = timev(ld, "ssl_session_timeout") / 1000;
    c->client_ssl = boolv(ld, "client_ssl");
    c->client_ssl_cert = dupv(ld, "client_ssl_cert");
    c->client_ssl_cert_key = dupv(ld, "client_ssl_cert_key");
    if (c->client_ssl_cert && !c->client_ssl_cert_key)
        ERR(ld, "client_ssl_cert_key must be specified");
    else if (c->client_ssl_cert_key && !c->client_ssl_cert)
        ERR(ld, "client_ssl_cert must be specified");

    build_dns(ld, c);

    c->cluster_control_plane = dupv(ld, "cluster_control_plane");
    c->cluster_cert = dupv(ld, "cluster_cert");
    c->cluster_cert_key = dupv(ld, "cluster_cert_key");
    c->cluster_ca_cert = dupv(ld, "cluster_ca_cert");
    c->cluster_mtls = dupv(ld, "cluster_mtls");
    c->cluster_server_name = dupv(ld, "cluster_server_name");
    c->cluster_data_plane_purge_delay = (int)intv(ld, "cluster_data_plane_purge_delay", 1209600);
    c->cluster_max_payload = (size_t)intv(ld, "cluster_max_payload", 16777216);
    c->cluster_use_proxy = boolv(ld, "cluster_use_proxy");
    check_range(ld, "cluster_data_plane_purge_delay", 60, INT_MAX, "must be 60 or greater");
    check_range(ld, "cluster_max_payload", 4194304, LLONG_MAX,
                "must be 4194304 (4MB) or greater");
    bool cp = c->role && strcmp(c->role, "control_plane") == 0;
    bool dp = c->role && strcmp(c->role, "data_plane") == 0;
    if (cp || dp) {
        if (!c->cluster_cert || !c->cluster_cert_key)
            ERR(ld, "cluster certificate and key must be provided to use Hybrid mode");
        if (c->cluster_mtls && strcmp(c->cluster_mtls, "pki") == 0 && !c->cluster_ca_cert)
            ERR(ld, "cluster_ca_cert must be specified when cluster_mtls = \"pki\"");
    }
    if (cp) {
        if (!c->nadmin_listen)
            ERR(ld, "admin_listen must be specified when role = \"control_plane\"");
        if (!c->ncluster_listen)
            ERR(ld, "cluster_listen must be specified when role = \"control_plane\"");
        if (c->cluster_use_proxy)
            ERR(ld, "cluster_use_proxy can not be used when role = \"control_plane\"");
    }
    if (dp && !c->nproxy_listen)
        ERR(ld, "proxy_listen must be specified when role = \"data_plane\"");
    if (dp && !c->database_off)
        ERR(ld, "only in-memory storage can be used when role = \"data_plane\"\n"
                "Hint: set database = off in your kong.conf");
}

/* ---- public ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

int tg_conf_load_string(const char *text, const char *path, const char *prefix_override,
                        char *const *envp, tg_conf_t **out, char *err, size_t errlen)
{
    *out = NULL;
    loader_t *ld = calloc(1, sizeof(*ld));
    tg_conf_t *c = calloc(1, sizeof(*c));
    if (!ld || !c) {
        free(ld);
        free(c);
        snprintf(err, errlen, "out of memory");
        return TG_ENOMEM;
    }
    for (size_t i = 0; i < NKEYS; i++)
        ld->raw[i] = keys[i].def ? strdup(keys[i].def) : NULL;
    if (text)
        parse_text(ld, text, path);
    if (!envp)
        envp = environ;
    apply_env(ld, envp, "KONG_");
    apply_env(ld, envp, "TOLLGATE_");

    build(ld, c, prefix_override);
    c->conf_path = path ? absolute(path) : NULL;

    /* every key's effective value, for Lua, the env file and `check` */
    tg__conf_strv_t ks = {0}, vs = {0};
    c->raw_set = calloc(NKEYS, sizeof(bool));
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == K_ALIAS || !ld->raw[i])
            continue;
        if (c->raw_set && ks.n < NKEYS)
            c->raw_set[ks.n] = ld->set[i];
        tg__conf_strv_push(&ks, strdup(keys[i].name));
        tg__conf_strv_push(&vs, strdup(ld->raw[i]));
    }
    c->raw_keys = ks.v;
    c->raw_values = vs.v;
    c->nraw = ks.n < vs.n ? ks.n : vs.n;
    c->warnings = ld->warnings.v;
    c->nwarnings = ld->warnings.n;

    int rc = 0;
    if (ld->errors.n > 0) {
        size_t o = 0;
        err[0] = '\0';
        for (size_t i = 0; i < ld->errors.n && o + 1 < errlen; i++)
            o += (size_t)snprintf(err + o, errlen - o, "%s%s", i ? "\n" : "", ld->errors.v[i]);
        rc = TG_EINVAL;
    }
    tg__conf_strv_free(ld->errors.v, ld->errors.n);
    for (size_t i = 0; i < NKEYS; i++)
        free(ld->raw[i]);
    free(ld);
    if (rc != 0) {
        tg_conf_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int tg_conf_load(const char *path, const char *prefix_override, tg_conf_t **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    if (!path) {
        if (access("/etc/tollgate/tollgate.conf", R_OK) == 0)
            path = "/etc/tollgate/tollgate.conf";
        else if (access("/etc/kong/kong.conf", R_OK) == 0)
            path = "/etc/kong/kong.conf";
    }
    char *text = NULL;
    if (path) {
        text = read_file(path);
        if (!text) {
            snprintf(err, errlen, "no file at: %s", path);
            return TG_ENOTFOUND;
        }
    }
    int rc = tg_conf_load_string(text, path, prefix_override, NULL, out, err, errlen);
    free(text);
    return rc;
}

void tg_conf_free(tg_conf_t *c)
{
    if (!c)
        return;
    char **strs[] = {
        &c->conf_path, &c->prefix, &c->pid_file, &c->env_file, &c->database,
        &c->declarative_config_string, &c->proxy_access_log, &c->proxy_error_log,
        &c->admin_access_log, &c->admin_error_log, &c->status_access_log, &c->status_error_log,
        &c->real_ip_header, &c->error_default_type, &c->lua_package_path, &c->lua_package_cpath,
        &c->role, &c->router_flavor, &c->lua_shared_dict, &c->node_id, &c->pg_host, &c->pg_user, &c->pg_password,
        &c->pg_database, &c->pg_schema, &c->ssl_protocols, &c->ssl_cipher_suite,
        &c->ssl_ciphers, &c->ssl_dhparam, &c->client_ssl_cert, &c->client_ssl_cert_key, &c->dns_hostsfile, &c->cluster_control_plane,
        &c->cluster_cert, &c->cluster_cert_key, &c->cluster_ca_cert, &c->cluster_mtls,
        &c->cluster_server_name,
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(strs); i++)
        free(*strs[i]);
    free(c->proxy_listen);
    free(c->admin_listen);
    free(c->status_listen);
    free(c->cluster_listen);
    free(c->trusted_ips);
    tg__conf_strv_free(c->declarative_config, c->ndeclarative_config);
    tg__conf_strv_free(c->plugins, c->nplugins);
    tg__conf_strv_free(c->ssl_cert, c->nssl_cert);
    tg__conf_strv_free(c->ssl_cert_key, c->nssl_cert_key);
    tg__conf_strv_free(c->dns_resolver, c->ndns_resolver);
    tg__conf_strv_free(c->dns_order, c->ndns_order);
    tg__conf_strv_free(c->raw_keys, c->nraw);
    tg__conf_strv_free(c->raw_values, c->nraw);
    free(c->raw_set);
    tg__conf_strv_free(c->warnings, c->nwarnings);
    free(c);
}

int tg_conf_write_env(const tg_conf_t *c)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", c->env_file);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return TG_EIO;
    fchmod(fileno(f), 0600);
    for (size_t i = 0; i < c->nraw; i++) {
        int k = key_index(c->raw_keys[i]);
        if (k >= 0 && (keys[k].flags & F_UNIMPL) && !(c->raw_set && c->raw_set[i]))
            continue;
        fprintf(f, "%s = ", c->raw_keys[i]);
        for (const char *p = c->raw_values[i]; *p; p++) {
            if (*p == '#')
                fputc('\\', f);
            fputc(*p == '\n' ? ' ' : *p, f);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0 || rename(tmp, c->env_file) != 0) {
        unlink(tmp);
        return TG_EIO;
    }
    return 0;
}

/* ---- kong.configuration ---- */

static void push_list(lua_State *L, const char *v)
{
    char **items = NULL;
    size_t n = 0;
    tg__conf_split(v, &items, &n);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, items[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    tg__conf_strv_free(items, n);
}

static void push_listeners(lua_State *L, const tg_listen_t *ls, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const tg_listen_t *l = &ls[i];
        lua_createtable(L, 0, 12);
        lua_pushstring(L, l->host);
        lua_setfield(L, -2, "ip");
        lua_pushinteger(L, l->port);
        lua_setfield(L, -2, "port");
        const struct {
            const char *k;
            bool v;
        } flags[] = {{"ssl", l->ssl},           {"http2", l->http2},
                     {"proxy_protocol", l->proxy_protocol}, {"deferred", l->deferred},
                     {"bind", l->bind},         {"reuseport", l->reuseport}};
        char listener[400];
        int o = snprintf(listener, sizeof(listener), "%s:%u", l->host, l->port);
        for (size_t f = 0; f < TG_ARRAY_SIZE(flags); f++) {
            lua_pushboolean(L, flags[f].v);
            lua_setfield(L, -2, flags[f].k);
            if (flags[f].v && strcmp(flags[f].k, "http2") != 0 && o < (int)sizeof(listener))
                o += snprintf(listener + o, sizeof(listener) - (size_t)o, " %s", flags[f].k);
        }
        if (l->backlog > 0) {
            char b[32];
            snprintf(b, sizeof(b), "backlog=%d", l->backlog);
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, b);
            if (o < (int)sizeof(listener))
                snprintf(listener + o, sizeof(listener) - (size_t)o, " %s", b);
        }
        lua_pushstring(L, listener);
        lua_setfield(L, -2, "listener");
        lua_rawseti(L, -2, (int)i + 1);
    }
}

void tg_conf_push_lua(lua_State *L, const tg_conf_t *c)
{
    lua_createtable(L, 0, (int)c->nraw + 16);
    for (size_t i = 0; i < c->nraw; i++) {
        int k = key_index(c->raw_keys[i]);
        const char *v = c->raw_values[i];
        bool b;
        switch (k >= 0 ? keys[k].type : K_STR) {
        case K_BOOL:
            if (parse_bool(v, &b) == 0)
                lua_pushboolean(L, b);
            else
                lua_pushstring(L, v);
            break;
        case K_INT:
        case K_NUM:
            if (parse_number(v))
                lua_pushnumber(L, strtod(v, NULL));
            else
                lua_pushstring(L, v);
            break;
        case K_LIST:
        case K_LISTEN:
            push_list(L, v);
            break;
        default:
            lua_pushstring(L, v);
        }
        lua_setfield(L, -2, c->raw_keys[i]);
    }
    /* aliases carry their target's value, under Kong's names too */
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type != K_ALIAS)
            continue;
        lua_getfield(L, -1, keys[i].extra);
        lua_setfield(L, -2, keys[i].name);
    }
    /* nginx_daemon and real_ip_recursive are strings in Kong ("on"/"off") */
    lua_pushstring(L, c->nginx_daemon ? "on" : "off");
    lua_setfield(L, -2, "nginx_daemon");
    lua_pushstring(L, c->real_ip_recursive ? "on" : "off");
    lua_setfield(L, -2, "real_ip_recursive");

    lua_pushstring(L, c->prefix);
    lua_setfield(L, -2, "prefix");
    push_listeners(L, c->proxy_listen, c->nproxy_listen);
    lua_setfield(L, -2, "proxy_listeners");
    push_listeners(L, c->admin_listen, c->nadmin_listen);
    lua_setfield(L, -2, "admin_listeners");
    push_listeners(L, c->status_listen, c->nstatus_listen);
    lua_setfield(L, -2, "status_listeners");
    push_listeners(L, c->cluster_listen, c->ncluster_listen);
    lua_setfield(L, -2, "cluster_listeners");

    /* Kong's derived tables */
    static const struct {
        const char *name;
        unsigned bit;
    } hdrs[] = {
        {"Server", TG_HDR_SERVER},
        {"Via", TG_HDR_VIA},
        {"X-Kong-Proxy-Latency", TG_HDR_PROXY_LATENCY},
        {"X-Kong-Upstream-Latency", TG_HDR_UPSTREAM_LATENCY},
        {"X-Kong-Response-Latency", TG_HDR_RESPONSE_LATENCY},
        {"X-Kong-Admin-Latency", TG_HDR_ADMIN_LATENCY},
        {"X-Kong-Upstream-Status", TG_HDR_UPSTREAM_STATUS},
        {"X-Kong-Request-Id", TG_HDR_REQUEST_ID},
    };
    for (int up = 0; up < 2; up++) {
        unsigned mask = up ? c->headers_upstream : c->headers;
        lua_createtable(L, 0, 8);
        for (size_t i = 0; i < TG_ARRAY_SIZE(hdrs); i++) {
            if (up && hdrs[i].bit != TG_HDR_REQUEST_ID)
                continue;
            lua_pushboolean(L, (mask & hdrs[i].bit) != 0);
            lua_setfield(L, -2, hdrs[i].name);
        }
        if (!up) {
            lua_pushboolean(L, (mask & TG_HDR_SERVER_TOKENS) == TG_HDR_SERVER_TOKENS);
            lua_setfield(L, -2, "server_tokens");
            lua_pushboolean(L, (mask & TG_HDR_LATENCY_TOKENS) == TG_HDR_LATENCY_TOKENS);
            lua_setfield(L, -2, "latency_tokens");
        }
        lua_setfield(L, -2, up ? "enabled_headers_upstream" : "enabled_headers");
    }
    lua_pushinteger(L, c->worker_threads);
    lua_setfield(L, -2, "worker_threads");
    lua_pushstring(L, c->pid_file);
    lua_setfield(L, -2, "nginx_pid");
    lua_pushstring(L, c->pid_file);
    lua_setfield(L, -2, "pid_file");
    lua_pushstring(L, c->env_file);
    lua_setfield(L, -2, "kong_env");
    lua_pushstring(L, c->proxy_error_log);
    lua_setfield(L, -2, "nginx_err_logs");
    lua_pushstring(L, c->proxy_access_log);
    lua_setfield(L, -2, "nginx_acc_logs");
    lua_pushstring(L, c->admin_access_log);
    lua_setfield(L, -2, "admin_acc_logs");
    if (c->ndeclarative_config == 1) {
        lua_pushstring(L, c->declarative_config[0]);
        lua_setfield(L, -2, "declarative_config");
    } else if (c->ndeclarative_config > 1) {
        lua_createtable(L, (int)c->ndeclarative_config, 0);
        for (size_t i = 0; i < c->ndeclarative_config; i++) {
            lua_pushstring(L, c->declarative_config[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
        lua_setfield(L, -2, "declarative_config");
    }
    lua_pushstring(L, TG_VERSION);
    lua_setfield(L, -2, "tollgate_version");
}
