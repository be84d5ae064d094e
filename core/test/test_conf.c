/* test_conf.c: tollgate.conf loading — defaults, file syntax, env precedence,
 * listen syntax, sizes and times, refusals, warnings, trusted_ips. */
#include "test.h"
#include "conf.h"
#include "log.h"

#include <arpa/inet.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

static char *const no_env[] = {NULL};

static tg_conf_t *load(const char *text, char *const *env)
{
    char err[4096];
    tg_conf_t *c = NULL;
    int lvl = tg_log_level();
    tg_log_set_level(TG_LOG_EMERG); /* the expected warnings stay out of the output */
    int rc = tg_conf_load_string(text, "test.conf", NULL, env ? env : no_env, &c, err, sizeof(err));
    tg_log_set_level(lvl);
    if (rc != 0)
        tg_test_fail(__FILE__, __LINE__, "load failed: %s", err);
    return c;
}

/* Loads expecting a refusal; returns the message. */
static const char *refuse(const char *text)
{
    static char err[4096];
    tg_conf_t *c = NULL;
    err[0] = '\0';
    int lvl = tg_log_level();
    tg_log_set_level(TG_LOG_EMERG);
    int rc = tg_conf_load_string(text, "test.conf", NULL, no_env, &c, err, sizeof(err));
    tg_log_set_level(lvl);
    if (rc == 0) {
        tg_conf_free(c);
        return NULL;
    }
    return err;
}

static bool has_warning(const tg_conf_t *c, const char *needle)
{
    for (size_t i = 0; i < c->nwarnings; i++)
        if (strstr(c->warnings[i], needle))
            return true;
    return false;
}

TEST(conf_defaults_are_kongs)
{
    tg_conf_t *c = load(NULL, NULL);
    ASSERT(c);
    ASSERT_STREQ(c->prefix, "/usr/local/tollgate");
    ASSERT_STREQ(c->pid_file, "/usr/local/tollgate/pids/tollgate.pid");
    ASSERT_EQ(c->nproxy_listen, 2);
    ASSERT_STREQ(c->proxy_listen[0].host, "0.0.0.0");
    ASSERT_EQ(c->proxy_listen[0].port, 8000);
    ASSERT(c->proxy_listen[0].reuseport);
    ASSERT_EQ(c->proxy_listen[0].backlog, 16384);
    ASSERT(!c->proxy_listen[0].ssl);
    /* Kong's default: 0.0.0.0:8443 http2 ssl reuseport backlog=16384 */
    ASSERT_EQ(c->proxy_listen[1].port, 8443);
    ASSERT(c->proxy_listen[1].ssl);
    ASSERT(c->proxy_listen[1].http2);
    ASSERT(c->proxy_listen[1].reuseport);
    ASSERT_EQ(c->proxy_listen[1].backlog, 16384);
    ASSERT_EQ(c->nadmin_listen, 1);
    ASSERT_STREQ(c->admin_listen[0].host, "127.0.0.1");
    ASSERT_EQ(c->admin_listen[0].port, 8001);
    ASSERT_EQ(c->nstatus_listen, 1);
    ASSERT_EQ(c->status_listen[0].port, 8007);
    ASSERT(c->database_off);
    ASSERT_EQ(c->log_level, TG_LOG_NOTICE);
    ASSERT_STREQ(c->proxy_access_log, "/usr/local/tollgate/logs/access.log");
    ASSERT_STREQ(c->proxy_error_log, "/usr/local/tollgate/logs/error.log");
    ASSERT_STREQ(c->admin_access_log, "/usr/local/tollgate/logs/admin_access.log");
    ASSERT_STREQ(c->status_access_log, "off");
    ASSERT_EQ(c->headers, TG_HDR_SERVER_TOKENS | TG_HDR_LATENCY_TOKENS | TG_HDR_REQUEST_ID);
    ASSERT_EQ(c->headers_upstream, TG_HDR_REQUEST_ID);
    ASSERT_STREQ(c->real_ip_header, "X-Real-IP");
    ASSERT(!c->real_ip_recursive);
    ASSERT_EQ(c->ntrusted_ips, 0);
    ASSERT_EQ(c->error_default_fmt, TG_CONF_FMT_TEXT);
    ASSERT_EQ(c->client_max_body_size, 0);
    ASSERT_EQ(c->client_body_buffer_size, 8192);
    ASSERT_EQ(c->max_request_line, 8192);
    ASSERT_EQ(c->max_header_size, 4 * 8192);
    ASSERT_EQ(c->client_header_timeout_ms, 60000);
    ASSERT_EQ(c->client_body_timeout_ms, 60000);
    ASSERT_EQ(c->keepalive_timeout_ms, 75000);
    ASSERT_EQ(c->upstream_keepalive_pool_size, 512);
    ASSERT_EQ(c->upstream_keepalive_max_requests, 10000);
    ASSERT_EQ(c->upstream_keepalive_idle_timeout_ms, 60000);
    ASSERT(c->nginx_daemon);
    ASSERT_EQ(c->nplugins, 1);
    ASSERT_STREQ(c->plugins[0], "bundled");
    ASSERT_STREQ(c->role, "traditional");
    ASSERT_EQ(c->worker_threads, (int)sysconf(_SC_NPROCESSORS_ONLN));
    ASSERT_EQ(c->mem_cache_size, 128u << 20);
    ASSERT_STREQ(c->pg_host, "127.0.0.1");
    ASSERT_EQ(c->pg_port, 5432);
    ASSERT(c->pg_password == NULL);
    ASSERT_EQ(c->ndns_order, 4);
    ASSERT_EQ(c->dns_stale_ttl, 3600);
    ASSERT_EQ(c->nwarnings, 0);
    tg_conf_free(c);
}

TEST(conf_file_syntax)
{
    tg_conf_t *c = load("# a comment\n"
                        "  log_level = debug   # trailing comment\n"
                        "\n"
                        "real_ip_header=X-Forwarded-For\n"
                        "pg_password = se\\#cret\n"
                        "nginx_daemon = off\n"
                        "real_ip_recursive = on\n"
                        "LUA_PACKAGE_PATH = /opt/?.lua;;\n"
                        "trusted_ips = NONE\n",
                        NULL);
    ASSERT(c);
    ASSERT_EQ(c->log_level, TG_LOG_DEBUG);
    ASSERT_STREQ(c->real_ip_header, "X-Forwarded-For");
    ASSERT_STREQ(c->pg_password, "se#cret");
    ASSERT(!c->nginx_daemon);
    ASSERT(c->real_ip_recursive);
    ASSERT_STREQ(c->lua_package_path, "/opt/?.lua;;");
    ASSERT_EQ(c->ntrusted_ips, 0);
    tg_conf_free(c);
}

TEST(conf_env_precedence)
{
    const char *file = "log_level = info\nupstream_keepalive_pool_size = 10\n"
                       "pg_user = from_file\n";
    char *env1[] = {"KONG_LOG_LEVEL=warn", NULL};
    tg_conf_t *c = load(file, env1);
    ASSERT(c);
    ASSERT_EQ(c->log_level, TG_LOG_WARN); /* KONG_ beats the file */
    ASSERT_EQ(c->upstream_keepalive_pool_size, 10);
    tg_conf_free(c);

    /* TOLLGATE_ beats KONG_, whatever the order in the environment */
    char *env2[] = {"TOLLGATE_LOG_LEVEL=error", "KONG_LOG_LEVEL=warn",
                    "KONG_PG_USER=kong_env", "TOLLGATE_HOME=/somewhere", NULL};
    c = load(file, env2);
    ASSERT(c);
    ASSERT_EQ(c->log_level, TG_LOG_ERR);
    ASSERT_STREQ(c->pg_user, "kong_env");
    ASSERT(!has_warning(c, "home")); /* TOLLGATE_HOME is not configuration */
    tg_conf_free(c);

    /* aliases: nginx names and tollgate names set the same value */
    char *env3[] = {"KONG_NGINX_HTTP_CLIENT_MAX_BODY_SIZE=1m", "KONG_NGINX_WORKER_PROCESSES=3",
                    NULL};
    c = load("client_max_body_size = 2k\n", env3);
    ASSERT(c);
    ASSERT_EQ(c->client_max_body_size, 1u << 20);
    ASSERT_EQ(c->worker_threads, 3);
    tg_conf_free(c);
}

TEST(conf_prefix_and_paths)
{
    char err[1024];
    tg_conf_t *c = NULL;
    ASSERT_EQ(tg_conf_load_string("prefix = /srv/gw/\nproxy_access_log = /var/log/a.log\n"
                                  "admin_access_log = off\nproxy_error_log = /dev/stderr\n"
                                  "declarative_config = a.yaml, /etc/b.yaml\n",
                                  "t.conf", NULL, no_env, &c, err, sizeof(err)),
              0);
    ASSERT_STREQ(c->prefix, "/srv/gw");
    ASSERT_STREQ(c->proxy_access_log, "/var/log/a.log");
    ASSERT_STREQ(c->admin_access_log, "off");
    ASSERT_STREQ(c->proxy_error_log, "/dev/stderr");
    ASSERT_EQ(c->ndeclarative_config, 2);
    ASSERT(c->declarative_config[0][0] == '/'); /* made absolute against the cwd */
    ASSERT(strstr(c->declarative_config[0], "/a.yaml"));
    ASSERT_STREQ(c->declarative_config[1], "/etc/b.yaml");
    tg_conf_free(c);

    /* -p beats the file, and a relative -p is made absolute */
    ASSERT_EQ(tg_conf_load_string("prefix = /srv/gw\n", "t.conf", "rel/pfx", no_env, &c, err,
                                  sizeof(err)),
              0);
    char cwd[1024];
    ASSERT(getcwd(cwd, sizeof(cwd)));
    ASSERT(strncmp(c->prefix, cwd, strlen(cwd)) == 0);
    ASSERT(strstr(c->prefix, "/rel/pfx"));
    ASSERT(strstr(c->proxy_error_log, "/rel/pfx/logs/error.log"));
    tg_conf_free(c);
}

TEST(conf_listen_table)
{
    static const struct {
        const char *in;
        int n;           /* -1 = refused */
        const char *host; /* first entry */
        int port, reuseport, backlog, proxy_protocol, family;
    } cases[] = {
        {"off", 0, NULL, 0, 0, 0, 0, 0},
        {"0.0.0.0:8000", 1, "0.0.0.0", 8000, 0, -1, 0, AF_INET},
        {"127.0.0.1:9000 reuseport backlog=511", 1, "127.0.0.1", 9000, 1, 511, 0, AF_INET},
        {"[::1]:8000", 1, "[::1]", 8000, 0, -1, 0, AF_INET6},
        {"[::]:80 proxy_protocol", 1, "[::]", 80, 0, -1, 1, AF_INET6},
        {"0.0.0.0:8000, 127.0.0.1:8100 proxy_protocol", 2, "0.0.0.0", 8000, 0, -1, 0, AF_INET},
        {"*:8000", 1, "0.0.0.0", 8000, 0, -1, 0, AF_INET},
        {"localhost:8000 deferred bind", 1, "localhost", 8000, 0, -1, 0, -2},
        {"0.0.0.0:8000 so_keepalive=30m::10", 1, "0.0.0.0", 8000, 0, -1, 0, AF_INET},
        {"0.0.0.0:8000 ipv6only=on", 1, "0.0.0.0", 8000, 0, -1, 0, AF_INET},
        {"0.0.0.0", -1, NULL, 0, 0, 0, 0, 0},
        {"0.0.0.0:99999", -1, NULL, 0, 0, 0, 0, 0},
        {"0.0.0.0:8000 fast", -1, NULL, 0, 0, 0, 0, 0},
        {"0.0.0.0:8000 backlog=x", -1, NULL, 0, 0, 0, 0, 0},
        {"::1:8000", -1, NULL, 0, 0, 0, 0, 0},
        {"", -1, NULL, 0, 0, 0, 0, 0},
        {"1.2.3.4:80 5.6.7.8:90", -1, NULL, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(cases); i++) {
        tg_listen_t *ls = NULL;
        size_t n = 0;
        char err[512] = "";
        int rc = tg_conf_parse_listen(cases[i].in, &ls, &n, err, sizeof(err));
        if (cases[i].n < 0) {
            CHECK(rc == TG_EINVAL, "'%s' should be refused", cases[i].in);
            CHECK(strstr(err, "must be of form: [off] | <ip>:<port> [ssl]") != NULL,
                  "'%s': message '%s'", cases[i].in, err);
            free(ls);
            continue;
        }
        CHECK(rc == 0, "'%s' refused: %s", cases[i].in, err);
        CHECK((int)n == cases[i].n, "'%s': %zu entries", cases[i].in, n);
        if (rc == 0 && n > 0) {
            CHECK(strcmp(ls[0].host, cases[i].host) == 0, "'%s': host %s", cases[i].in,
                  ls[0].host);
            CHECK(ls[0].port == cases[i].port, "'%s': port %u", cases[i].in, ls[0].port);
            CHECK(ls[0].reuseport == (bool)cases[i].reuseport, "'%s': reuseport", cases[i].in);
            CHECK(ls[0].backlog == cases[i].backlog, "'%s': backlog %d", cases[i].in,
                  ls[0].backlog);
            CHECK(ls[0].proxy_protocol == (bool)cases[i].proxy_protocol, "'%s': proxy_protocol",
                  cases[i].in);
            if (cases[i].family > 0)
                CHECK(ls[0].addr.ss_family == cases[i].family, "'%s': family", cases[i].in);
            CHECK(ls[0].addrlen > 0, "'%s': addrlen", cases[i].in);
        }
        free(ls);
    }
    /* the second entry's flags are its own */
    tg_listen_t *ls;
    size_t n;
    char err[256];
    ASSERT_EQ(tg_conf_parse_listen("0.0.0.0:8000, 127.0.0.1:8100 proxy_protocol backlog=7", &ls,
                                   &n, err, sizeof(err)),
              0);
    ASSERT(!ls[0].proxy_protocol);
    ASSERT(ls[1].proxy_protocol);
    ASSERT_EQ(ls[1].backlog, 7);
    ASSERT_EQ(ntohs(((struct sockaddr_in *)&ls[1].addr)->sin_port), 8100);
    free(ls);
    ASSERT_EQ(tg_conf_parse_listen("0.0.0.0:1 so_keepalive=30m::10", &ls, &n, err, sizeof(err)),
              0);
    ASSERT_EQ(ls[0].so_keepalive, 1);
    ASSERT_EQ(ls[0].keepidle, 1800);
    ASSERT_EQ(ls[0].keepintvl, 0);
    ASSERT_EQ(ls[0].keepcnt, 10);
    free(ls);
}

TEST(conf_http2_warns_when_asked_for)
{
    tg_conf_t *c = load("proxy_listen = 127.0.0.1:9443 ssl http2\n", NULL);
    ASSERT(c);
    ASSERT(c->proxy_listen[0].ssl);
    ASSERT(has_warning(c, "HTTP/2 is not available yet"));
    tg_conf_free(c);
}

TEST(conf_client_ssl_pairs)
{
    const char *e = refuse("client_ssl = on\nclient_ssl_cert = /x.crt\n");
    ASSERT(e && strstr(e, "client_ssl_cert_key must be specified"));
    tg_conf_t *c = load("client_ssl = on\nclient_ssl_cert = /x.crt\nclient_ssl_cert_key = /x.key\n",
                        NULL);
    ASSERT(c);
    ASSERT(c->client_ssl);
    ASSERT_STREQ(c->client_ssl_cert_key, "/x.key");
    tg_conf_free(c);
}

TEST(conf_ssl_only_on_proxy_listen)
{
    const char *e = refuse("admin_listen = 127.0.0.1:8444 ssl\n");
    ASSERT(e && strstr(e, "admin_listen"));
    e = refuse("proxy_listen = nonsense\n");
    ASSERT(e && strstr(e, "proxy_listen must be of form"));
}

TEST(conf_sizes_and_times)
{
    static const struct {
        const char *in;
        long long out; /* -1 = invalid */
    } sizes[] = {
        {"0", 0},          {"512", 512},     {"8k", 8192},   {"8K", 8192}, {"10m", 10 << 20},
        {"1g", 1ll << 30}, {"1.5m", -1},     {"k", -1},      {"", -1},     {"10mb", -1},
        {"-1", -1},        {"12 k", -1},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(sizes); i++) {
        size_t v = 0;
        int rc = tg_conf_parse_size(sizes[i].in, &v);
        if (sizes[i].out < 0)
            CHECK(rc != 0, "size '%s' accepted", sizes[i].in);
        else
            CHECK(rc == 0 && (long long)v == sizes[i].out, "size '%s' = %zu", sizes[i].in, v);
    }
    static const struct {
        const char *in;
        int ms;
    } times[] = {
        {"60", 60000}, {"60s", 60000}, {"500ms", 500},   {"1m", 60000}, {"1h", 3600000},
        {"1d", 86400000}, {"1m30s", 90000}, {"x", -1},   {"", -1},      {"5y", -1},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(times); i++) {
        int v = 0;
        int rc = tg_conf_parse_time_ms(times[i].in, &v);
        if (times[i].ms < 0)
            CHECK(rc != 0, "time '%s' accepted", times[i].in);
        else
            CHECK(rc == 0 && v == times[i].ms, "time '%s' = %d", times[i].in, v);
    }
    tg_conf_t *c = load("nginx_http_client_max_body_size = 10m\nclient_body_buffer_size = 1m\n"
                        "nginx_http_large_client_header_buffers = 8 16k\n"
                        "client_header_timeout = 5s\nnginx_http_client_body_timeout = 750ms\n",
                        NULL);
    ASSERT(c);
    ASSERT_EQ(c->client_max_body_size, 10u << 20);
    ASSERT_EQ(c->client_body_buffer_size, 1u << 20);
    ASSERT_EQ(c->max_request_line, 16384);
    ASSERT_EQ(c->max_header_line, 16384);
    ASSERT_EQ(c->max_header_size, 8 * 16384);
    ASSERT_EQ(c->client_header_timeout_ms, 5000);
    ASSERT_EQ(c->client_body_timeout_ms, 750);
    tg_conf_free(c);
}

TEST(conf_bad_values_refused_with_key_and_reason)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"log_level = loud\n", "log_level has an invalid value: 'loud' (debug, info, notice, "
                               "warn, error, crit, alert, emerg)"},
        {"database = mysql\n", "database has an invalid value: 'mysql'"},
        {"pg_ssl = maybe\n", "pg_ssl is not a boolean: 'maybe'"},
        {"pg_port = abc\n", "pg_port is not a number: 'abc'"},
        {"upstream_keepalive_pool_size = -1\n", "upstream_keepalive_pool_size must be 0 or "
                                                "greater"},
        {"client_body_buffer_size = lots\n", "client_body_buffer_size is not a size: 'lots'"},
        {"nginx_http_client_max_body_size = 1q\n", "nginx_http_client_max_body_size is not a "
                                                   "size"},
        {"headers = server_tokens, X-Bogus\n", "headers: invalid entry 'X-Bogus'"},
        {"headers_upstream = Via\n", "headers_upstream: invalid entry 'Via'"},
        {"trusted_ips = 10.0.0.0/8, 300.1.1.1\n",
         "trusted_ips must be a comma separated list in the form of IPv4 or IPv6 address or "
         "CIDR block or 'unix:', got '300.1.1.1'"},
        {"trusted_ips = 10.0.0.0/33\n", "got '10.0.0.0/33'"},
        {"error_default_type = text/xml\n", "error_default_type has an invalid value"},
        {"worker_threads = many\n", "worker_threads has an invalid value: 'many'"},
        {"nginx_worker_processes = 0\n", "worker_threads has an invalid value: '0'"},
        {"nginx_daemon = perhaps\n", "nginx_daemon is not a boolean"},
        {"lua_max_req_headers = 5000\n", "lua_max_req_headers must be an integer between 1 and "
                                         "1000"},
        {"dns_order = LAST,MX\n", "dns_order: invalid entry 'MX'"},
        {"dns_resolver = 8.8.8.8, nowhere\n", "dns_resolver must be a comma separated list"},
        {"node_id = 1234\n", "node_id must be a valid UUID"},
        {"ssl_cert = /a.crt\n", "ssl_cert_key must be specified"},
        {"ssl_protocols = TLSv1.2 SSLv3\n", "ssl_protocols: invalid entry 'SSLv3'"},
        {"router_flavor = expressions\n", "router_flavor: 'expressions' is not supported"},
        {"database = cassandra\n", "Cassandra as a datastore"},
        {"role = data_plane\ncluster_cert = /c\ncluster_cert_key = /k\ndatabase = postgres\n",
         "only in-memory storage can be used when role = \"data_plane\""},
        {"role = control_plane\n", "cluster certificate and key must be provided"},
        {"nginx_http_large_client_header_buffers = 4\n",
         "nginx_http_large_client_header_buffers has an invalid value"},
        {"cluster_max_payload = 1024\n", "cluster_max_payload must be 4194304 (4MB) or greater"},
        {"nginx_http_client_header_timeout = soon\n", "nginx_http_client_header_timeout is not "
                                                      "a time"},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(cases); i++) {
        const char *e = refuse(cases[i].text);
        CHECK(e != NULL, "not refused: %s", cases[i].text);
        if (e)
            CHECK(strstr(e, cases[i].want) != NULL, "for %s: got '%s'", cases[i].text, e);
    }
    /* every bad key is reported, one per line */
    const char *e = refuse("log_level = x\npg_port = y\n");
    ASSERT(e);
    ASSERT(strstr(e, "log_level"));
    ASSERT(strstr(e, "\npg_port"));
}

TEST(conf_unknown_keys_warn_with_suggestion)
{
    tg_conf_t *c = load("proxy_lisen = 0.0.0.0:9000\n"
                        "trusted_ip = 10.0.0.0/8\n"
                        "completely_made_up_thing = 1\n"
                        "anonymous_reports = off\n"
                        "nginx_http_gzip = on\n",
                        NULL);
    ASSERT(c); /* warnings, never a refusal */
    ASSERT(has_warning(c, "unknown configuration key 'proxy_lisen' (did you mean "
                          "'proxy_listen'?)"));
    ASSERT(has_warning(c, "'trusted_ip' (did you mean 'trusted_ips'?)"));
    ASSERT(has_warning(c, "unknown configuration key 'completely_made_up_thing'; ignored"));
    ASSERT(has_warning(c, "'anonymous_reports' is a Kong setting tollgate does not implement"));
    ASSERT(has_warning(c, "'nginx_http_gzip' is a Kong nginx directive injection"));
    ASSERT(has_warning(c, "test.conf:1:")); /* where it came from */
    ASSERT_EQ(c->proxy_listen[0].port, 8000); /* the typo changed nothing */
    tg_conf_free(c);

    char *env[] = {"KONG_ADMIN_LISTN=off", NULL};
    c = load(NULL, env);
    ASSERT(c);
    ASSERT(has_warning(c, "KONG_ADMIN_LISTN: unknown configuration key 'admin_listn' (did you "
                          "mean 'admin_listen'?)"));
    tg_conf_free(c);
    ASSERT_STREQ(tg_conf_suggest("upstream_keepalive_pool"), "upstream_keepalive_pool_size");
    ASSERT(tg_conf_suggest("zzzz") == NULL);
}

static struct sockaddr_storage ip(const char *s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s, &s4->sin_addr) == 1)
        s4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1)
        s6->sin6_family = AF_INET6;
    return ss;
}

TEST(conf_trusted_ips_matching)
{
    tg_conf_t *c = load("trusted_ips = 10.0.0.0/8, 192.168.1.7, 172.16.0.0/12, 2001:db8::/32, "
                        "::1, unix:\n",
                        NULL);
    ASSERT(c);
    static const struct {
        const char *ip;
        bool trusted;
    } cases[] = {
        {"10.0.0.1", true},       {"10.255.255.255", true}, {"11.0.0.1", false},
        {"192.168.1.7", true},    {"192.168.1.8", false},   {"172.16.0.1", true},
        {"172.31.255.255", true}, {"172.32.0.0", false},    {"2001:db8::1", true},
        {"2001:db9::1", false},   {"::1", true},            {"::2", false},
        {"::ffff:10.1.2.3", true}, /* v4-mapped matched as IPv4 */
        {"::ffff:11.1.2.3", false}, {"127.0.0.1", false},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(cases); i++) {
        struct sockaddr_storage ss = ip(cases[i].ip);
        CHECK(tg_conf_ip_trusted(c, (struct sockaddr *)&ss) == cases[i].trusted, "%s: %s",
              cases[i].ip, cases[i].trusted ? "should be trusted" : "should not be trusted");
    }
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    ASSERT(tg_conf_ip_trusted(c, (struct sockaddr *)&un));
    tg_conf_free(c);

    c = load("trusted_ips = 0.0.0.0/0\n", NULL);
    ASSERT(c);
    struct sockaddr_storage a = ip("203.0.113.9"), b = ip("2001:db8::9");
    ASSERT(tg_conf_ip_trusted(c, (struct sockaddr *)&a));
    ASSERT(!tg_conf_ip_trusted(c, (struct sockaddr *)&b));
    ASSERT(!tg_conf_ip_trusted(c, (struct sockaddr *)&un));
    tg_conf_free(c);

    c = load("trusted_ips = ::/0\n", NULL);
    ASSERT(c);
    ASSERT(!tg_conf_ip_trusted(c, (struct sockaddr *)&a));
    ASSERT(tg_conf_ip_trusted(c, (struct sockaddr *)&b));
    tg_conf_free(c);

    c = load(NULL, NULL); /* NONE: nobody */
    ASSERT(!tg_conf_ip_trusted(c, (struct sockaddr *)&a));
    tg_conf_free(c);
}

TEST(conf_headers_tokens)
{
    static const struct {
        const char *in;
        unsigned mask;
    } cases[] = {
        {"off", 0},
        {"off, server_tokens", 0},
        {"server_tokens, off", TG_HDR_SERVER | TG_HDR_VIA},
        {"server_tokens", TG_HDR_SERVER | TG_HDR_VIA},
        {"latency_tokens", TG_HDR_LATENCY_TOKENS},
        {"Server, X-Kong-Upstream-Status", TG_HDR_SERVER | TG_HDR_UPSTREAM_STATUS},
        {"via,x-kong-proxy-latency", TG_HDR_VIA | TG_HDR_PROXY_LATENCY},
        {"X-Kong-Response-Latency, X-Kong-Admin-Latency, X-Kong-Upstream-Latency",
         TG_HDR_RESPONSE_LATENCY | TG_HDR_ADMIN_LATENCY | TG_HDR_UPSTREAM_LATENCY},
        {"X-Kong-Request-Id", TG_HDR_REQUEST_ID},
    };
    for (size_t i = 0; i < TG_ARRAY_SIZE(cases); i++) {
        char text[256];
        snprintf(text, sizeof(text), "headers = %s\n", cases[i].in);
        tg_conf_t *c = load(text, NULL);
        CHECK(c && c->headers == cases[i].mask, "headers = %s: %x", cases[i].in,
              c ? c->headers : 0);
        tg_conf_free(c);
    }
    tg_conf_t *c = load("headers_upstream = off\nerror_default_type = application/json\n", NULL);
    ASSERT(c);
    ASSERT_EQ(c->headers_upstream, 0);
    ASSERT_EQ(c->error_default_fmt, TG_CONF_FMT_JSON);
    tg_conf_free(c);
}

TEST(conf_default_file_documents_the_defaults)
{
    /* tollgate.conf.default with every `#key = value` line uncommented must
     * load without a warning and give exactly the built-in defaults. */
    char path[1024];
    snprintf(path, sizeof(path), "%s/tollgate.conf.default", TG_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    ASSERT(f != NULL);
    static char text[65536];
    size_t o = 0;
    int nkeys = 0;
    char line[1024];
    while (fgets(line, sizeof(line), f) && o + sizeof(line) < sizeof(text)) {
        const char *p = line;
        if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strstr(line, " = ")) {
            p = line + 1;
            nkeys++;
        }
        o += (size_t)snprintf(text + o, sizeof(text) - o, "%s", p);
    }
    fclose(f);
    ASSERT(nkeys > 60);
    tg_conf_t *doc = load(text, NULL), *dflt = load(NULL, NULL);
    ASSERT(doc && dflt);
    for (size_t i = 0; i < doc->nwarnings; i++)
        CHECK(0, "warning from the default file: %s", doc->warnings[i]);
    ASSERT_EQ(doc->nraw, dflt->nraw);
    for (size_t i = 0; i < doc->nraw; i++) {
        CHECK(strcmp(doc->raw_keys[i], dflt->raw_keys[i]) == 0, "key %s vs %s", doc->raw_keys[i],
              dflt->raw_keys[i]);
        CHECK(strcmp(doc->raw_values[i], dflt->raw_values[i]) == 0,
              "%s: documented '%s', built in '%s'", doc->raw_keys[i], doc->raw_values[i],
              dflt->raw_values[i]);
    }
    tg_conf_free(doc);
    tg_conf_free(dflt);
}

TEST(conf_push_lua_kong_configuration)
{
    char *env[] = {"KONG_DECLARATIVE_CONFIG=/etc/kong.yml", "KONG_ANONYMOUS_REPORTS=off", NULL};
    tg_conf_t *c = load("proxy_listen = 0.0.0.0:9000 reuseport backlog=100, [::1]:9001\n"
                        "headers = server_tokens\ntrusted_ips = 10.0.0.0/8, ::1\n",
                        env);
    ASSERT(c);
    lua_State *L = luaL_newstate();
    ASSERT(L);
    luaL_openlibs(L);
    tg_conf_push_lua(L, c);
    lua_setglobal(L, "conf");
    const char *checks =
        "assert(conf.prefix == '/usr/local/tollgate')\n"
        "assert(conf.proxy_listen[1] == '0.0.0.0:9000 reuseport backlog=100', conf.proxy_listen[1])\n"
        "assert(conf.proxy_listen[2] == '[::1]:9001')\n"
        "local l = conf.proxy_listeners\n"
        "assert(#l == 2 and l[1].ip == '0.0.0.0' and l[1].port == 9000 and l[1].reuseport)\n"
        "assert(l[1]['backlog=100'] == true and l[1].ssl == false)\n"
        "assert(l[1].listener == '0.0.0.0:9000 reuseport backlog=100', l[1].listener)\n"
        "assert(l[2].ip == '[::1]' and l[2].port == 9001)\n"
        "assert(conf.status_listeners[1].port == 8007)\n"
        "assert(conf.pg_port == 5432 and conf.pg_ssl == false and conf.pg_password == nil)\n"
        "assert(conf.upstream_keepalive_pool_size == 512)\n"
        "assert(conf.nginx_daemon == 'on' and conf.real_ip_recursive == 'off')\n"
        "assert(conf.anonymous_reports == false)\n"
        "assert(conf.trusted_ips[1] == '10.0.0.0/8' and conf.trusted_ips[2] == '::1')\n"
        "assert(conf.headers[1] == 'server_tokens' and #conf.headers == 1)\n"
        "assert(conf.enabled_headers.Server == true and conf.enabled_headers.Via == true)\n"
        "assert(conf.enabled_headers['X-Kong-Proxy-Latency'] == false)\n"
        "assert(conf.enabled_headers.server_tokens and not conf.enabled_headers.latency_tokens)\n"
        "assert(conf.enabled_headers_upstream['X-Kong-Request-Id'] == true)\n"
        "assert(conf.declarative_config == '/etc/kong.yml')\n"
        "assert(conf.database == 'off' and conf.role == 'traditional')\n"
        "assert(conf.client_max_body_size == conf.nginx_http_client_max_body_size)\n"
        "assert(conf.nginx_worker_processes == 'auto')\n"
        "assert(conf.plugins[1] == 'bundled')\n"
        "assert(conf.lua_package_path == './?.lua;./?/init.lua;')\n"
        "assert(conf.nginx_pid == '/usr/local/tollgate/pids/tollgate.pid')\n"
        "assert(type(conf.worker_threads) == 'number')\n";
    int rc = luaL_dostring(L, checks);
    CHECK(rc == 0, "%s", rc ? lua_tostring(L, -1) : "");
    lua_close(L);
    tg_conf_free(c);
}
