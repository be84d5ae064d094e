-- The declarative loader: Kong's format 3.0, ids, nesting, workspaces, errors.
local env = require "spec.fixtures.declarative.unit_env"

local declarative = require "tollgate.declarative"
local util = require "tollgate.c.util"
local cjson = require "cjson"

local null = require("tollgate.schema").null
local FIX = env.fixtures
local PLUGINS = { plugins = { "key-auth", "cors", "rate-limiting" } }
local DEFAULT_WS = "0dc6f45b-8f8d-40d2-a504-473544ee190b"

-- Kong's formula, spelled out here with the C helper (not tollgate.uuid):
-- UUIDv5(UUIDv5(fd02801f-0957-4a15-a55a-c8d9606f30b5, entity), key)
local function kong_id(entity, key)
  return util.uuid_v5(util.uuid_v5("fd02801f-0957-4a15-a55a-c8d9606f30b5", entity), key)
end

local function by_name(rows, name, field)
  for _, r in ipairs(rows) do
    if r[field or "name"] == name then
      return r
    end
  end
end

local function load(text, opts)
  return declarative.load_string(text, opts or PLUGINS)
end

describe("declarative config", function()
  describe("loading a file", function()
    local config

    setup(function()
      local err_t
      config, err_t = declarative.load_files({ FIX .. "/basic.yaml" }, PLUGINS)
      assert(config, err_t and declarative.error_text(err_t))
    end)

    it("keeps file order, parents before their nested children", function()
      local names = {}
      for _, r in ipairs(config.entities.routes) do names[#names + 1] = r.name end
      assert.same({ "hello", "top" }, names)
      local plugins = {}
      for _, p in ipairs(config.entities.plugins) do plugins[#plugins + 1] = p.name end
      assert.same({ "cors", "key-auth", "rate-limiting" }, plugins)
    end)

    it("fills service defaults from the url shorthand", function()
      local s = config.entities.services[1]
      assert.same({
        id = kong_id("services", "example"), name = "example", protocol = "http",
        host = "127.0.0.1", port = 18080, path = "/base", retries = 5,
        connect_timeout = 60000, write_timeout = 60000, read_timeout = 60000,
        enabled = true, tags = { "demo" }, client_certificate = null, tls_verify = null,
        tls_verify_depth = null, ca_certificates = null, ws_id = DEFAULT_WS,
        created_at = s.created_at, updated_at = s.updated_at,
      }, s)
      assert.equal(math.floor(s.created_at), s.created_at)
    end)

    it("fills route defaults and links nested routes to their service", function()
      local r = by_name(config.entities.routes, "hello")
      assert.same({
        id = kong_id("routes", "hello"), name = "hello", paths = { "/hello" },
        protocols = { "http", "https" }, strip_path = true, preserve_host = false,
        regex_priority = 0, path_handling = "v0", https_redirect_status_code = 426,
        request_buffering = true, response_buffering = true,
        service = { id = kong_id("services", "example") },
        methods = null, hosts = null, headers = null, snis = null, sources = null,
        destinations = null, tags = null, ws_id = DEFAULT_WS,
        created_at = r.created_at, updated_at = r.updated_at,
      }, r)
    end)

    it("resolves top-level references by name", function()
      local top = by_name(config.entities.routes, "top")
      assert.same({ id = kong_id("services", "example") }, top.service)
      local rl = by_name(config.entities.plugins, "rate-limiting")
      assert.same({ id = kong_id("services", "example") }, rl.service)
      assert.equal(null, rl.route)
      assert.equal(null, rl.consumer)
    end)

    it("derives ids with Kong's keys", function()
      local svc = kong_id("services", "example")
      local hello = kong_id("routes", "hello")
      local up = kong_id("upstreams", "up1")
      -- values computed independently with Python's uuid.uuid5
      assert.equal("89dd9e9d-3f98-5e11-ab72-c90b6c2d30a2", svc)
      assert.equal("a8471fc8-50df-5906-8672-446cbaf9c4e9", hello)
      assert.equal(kong_id("plugins", "plugins:*:key-auth::" .. svc .. ":"),
                   by_name(config.entities.plugins, "key-auth").id)
      assert.equal("77a9f618-1d75-5fb0-8932-8dc59a90198d",
                   by_name(config.entities.plugins, "key-auth").id)
      assert.equal(kong_id("plugins", "plugins:*:cors:" .. hello .. "::"),
                   by_name(config.entities.plugins, "cors").id)
      -- a top-level plugin's cache key carries the reference as written
      assert.equal(kong_id("plugins", "plugins:*:rate-limiting::example:"),
                   by_name(config.entities.plugins, "rate-limiting").id)
      assert.equal(kong_id("consumers", "alice"),
                   by_name(config.entities.consumers, "alice", "username").id)
      assert.equal("58b6ef1e-3e2f-5791-a96d-4fbcd89d405c",
                   by_name(config.entities.targets, "10.0.0.1:8000", "target").id)
      assert.equal(kong_id("targets", "targets:*:" .. up .. ":10.0.0.2:9000"),
                   by_name(config.entities.targets, "10.0.0.2:9000", "target").id)
    end)

    it("gives unnamed entities a stable position-based id", function()
      local c2 = by_name(config.entities.consumers, "c-2", "custom_id")
      assert.equal(kong_id("consumers", "default:1:consumers.2"), c2.id)
    end)

    it("adds the default port to targets and fills upstream defaults", function()
      local t = by_name(config.entities.targets, "10.0.0.1:8000", "target")
      assert.equal(100, t.weight)
      assert.same({ id = kong_id("upstreams", "up1") }, t.upstream)
      local u = config.entities.upstreams[1]
      assert.equal("round-robin", u.algorithm)
      assert.equal(10000, u.slots)
      assert.equal("none", u.hash_on)
      assert.equal("/", u.hash_on_cookie_path)
      assert.same({ 200, 302 }, u.healthchecks.active.healthy.http_statuses)
      assert.same({ 429, 404, 500, 501, 502, 503, 504, 505 },
                  u.healthchecks.active.unhealthy.http_statuses)
      assert.same({ 429, 500, 503 }, u.healthchecks.passive.unhealthy.http_statuses)
      assert.equal(1, u.healthchecks.active.timeout)
      assert.equal(10, u.healthchecks.active.concurrency)
      assert.equal(true, u.healthchecks.active.https_verify_certificate)
      assert.equal(null, u.healthchecks.active.https_sni)
    end)

    it("has the default workspace with Kong's DB-less id", function()
      assert.equal(1, #config.workspaces)
      assert.equal(DEFAULT_WS, config.workspaces[1].id)
      assert.equal("default", config.workspaces[1].name)
    end)

    it("is stable across reloads: ids, timestamps and hash", function()
      local again = assert(declarative.load_files({ FIX .. "/basic.yaml" }, PLUGINS))
      assert.equal(config.hash, again.hash)
      assert.same(config.entities, again.entities)
      assert.truthy(config.hash:match("^%x+$") and #config.hash == 32)
    end)

    it("gives the same rows and hash for the same config in JSON", function()
      local json = assert(declarative.load_files({ FIX .. "/basic.json" }, PLUGINS))
      assert.equal(config.hash, json.hash)
    end)

    it("exports YAML that loads back to the same config", function()
      local yaml = declarative.export(config)
      assert.truthy(yaml:find('^_format_version: "3.0"\n_transform: false\n'))
      assert.truthy(yaml:find("\n  service: " .. kong_id("services", "example"), 1, true))
      assert.falsy(yaml:find("ws_id", 1, true))
      local back = assert(load(yaml))
      assert.equal(config.hash, back.hash)
    end)
  end)

  it("loads the quick start's tollgate.yaml", function()
    local c, e = declarative.load_files({ env.root .. "/tollgate.yaml" })
    assert(c, e and declarative.error_text(e))
    assert.equal(2, #c.entities.routes)
    assert.equal("http", c.entities.services[1].protocol)
    assert.equal(18080, c.entities.services[1].port)
  end)

  describe("format", function()
    it("accepts 1.1 and 2.1 and marks their regex paths", function()
      local c = assert(load('{"_format_version":"2.1","services":[{"name":"s","host":"h",' ..
                            '"routes":[{"name":"r","paths":["/v\\\\d+/x","/plain"]}]}]}'))
      assert.same({ "~/v\\d+/x", "/plain" }, c.entities.routes[1].paths)
    end)

    it("refuses a missing or unknown _format_version and unknown keys", function()
      local _, err_t = load("services: []")
      assert.same({ _format_version = "required field missing" }, err_t.fields)
      _, err_t = load('{"_format_version":"4.0","servicez":[]}')
      assert.same({ _format_version = "expected one of: 1.1, 2.1, 3.0", servicez = "unknown field" },
                  err_t.fields)
    end)

    it("reports unparsable text as Kong does", function()
      local _, err_t = load("{ this is: [ not yaml")
      assert.equal(14, err_t.code)
      assert.truthy(err_t.fields.error:find("^failed parsing declarative configuration: "))
      assert.truthy(declarative.error_text(err_t):find("^Failed parsing:\nfailed parsing declarative configuration: "))
    end)

    it("accepts path_handling v1 (routed as v0, with a warning)", function()
      local c = assert(load('{"_format_version":"3.0","routes":[{"name":"r","paths":["/p"],' ..
                            '"path_handling":"v1"}]}'))
      assert.equal("v1", c.entities.routes[1].path_handling)
    end)

    it("validates plugin config with the plugin's Kong-style schema", function()
      local typedefs = require "kong.db.schema.typedefs"
      local opts = { plugins = { "demo-limit" }, plugin_schema = function(name)
        assert.equal("demo-limit", name)
        return { name = "demo-limit", fields = {
          { consumer = typedefs.no_consumer },
          { protocols = typedefs.protocols_http },
          { config = { type = "record", fields = {
            { minute = { type = "number", gt = 0 } },
            { policy = { type = "string", default = "local", one_of = { "local", "redis" } } },
            { limits = { type = "record", fields = { { burst = { type = "integer", default = 2 } } } } },
          } } },
        } }
      end }
      local c = assert(load('{"_format_version":"3.0","plugins":[{"name":"demo-limit",' ..
                            '"config":{"minute":5}}]}', opts))
      local p = c.entities.plugins[1]
      assert.same({ minute = 5, policy = "local", limits = { burst = 2 } }, p.config)
      assert.same({ "grpc", "grpcs", "http", "https" }, p.protocols)
      local _, e = load('{"_format_version":"3.0","consumers":[{"username":"u","plugins":' ..
                        '[{"name":"demo-limit","config":{"minute":0,"policy":"cluster"}}]}]}', opts)
      assert.same({ consumers = { { plugins = { {
        consumer = "value must be null",
        config = { minute = "value must be greater than 0", policy = "expected one of: local, redis" },
      } } } } }, e.fields)
    end)

    it("refuses plugins that are not enabled with Kong's message", function()
      local _, err_t = load('{"_format_version":"3.0","plugins":[{"name":"nope"}]}')
      assert.same({ plugins = { { name = "plugin 'nope' not enabled; add it to the 'plugins' configuration property" } } },
                  err_t.fields)
    end)
  end)

  describe("refused configs", function()
    local err_t

    setup(function()
      local config
      config, err_t = declarative.load_files({ FIX .. "/invalid.yaml" }, PLUGINS)
      assert.is_nil(config)
    end)

    it("has Kong's error shape", function()
      assert.equal(14, err_t.code)
      assert.equal("invalid declarative configuration", err_t.name)
      assert.truthy(err_t.message:find("^declarative config is invalid: {"))
      assert.same({
        services = { {
          name = "invalid value 'bad service': the only accepted ascii characters are alphanumerics or ., -, _, and ~",
          port = "value should be between 0 and 65535",
          routes = { {
            paths = { "should start with: / (fixed path) or ~/ (regex path)" },
            protocols = "these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp')",
          } },
        } },
      }, err_t.fields)
    end)

    it("gives POST /config's body, flattened only on request", function()
      local body = declarative.error_body(err_t)
      assert.same({ "code", "fields", "message", "name" }, (function()
        local keys = {}
        for k in pairs(body) do keys[#keys + 1] = k end
        table.sort(keys)
        return keys
      end)())
      assert.equal(2, #declarative.error_body(err_t, true).flattened_errors)
      assert.truthy(cjson.encode(body))
    end)

    it("prints Kong's `config parse` text", function()
      assert.equal(table.concat({
        "Failed parsing:",
        "in 'services':",
        "  - in entry 1 of 'services':",
        "    in 'name': invalid value 'bad service': the only accepted ascii characters are alphanumerics or ., -, _, and ~",
        "    in 'port': value should be between 0 and 65535",
        "    in 'routes':",
        "      - in entry 1 of 'routes':",
        "        in 'paths':",
        "          - in entry 1 of 'paths': should start with: / (fixed path) or ~/ (regex path)",
        "        in 'protocols': these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp')",
      }, "\n"), declarative.error_text(err_t))
    end)

    it("flattens errors per entity as Kong's flatten_errors", function()
      local f = err_t.flattened_errors
      assert.equal(2, #f)
      local route, service = f[1], f[2]
      assert.equal("route", route.entity_type)
      -- as in Kong, the parent's key is only given when the input carried an id
      assert.is_nil(route.entity.service)
      assert.same({ { type = "field", field = "paths.1",
                      message = "should start with: / (fixed path) or ~/ (regex path)" },
                    { type = "field", field = "protocols",
                      message = "these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp')" } },
                  route.errors)
      assert.equal("service", service.entity_type)
      assert.equal("bad service", service.entity_name)
    end)

    it("reports unknown references once entities are valid", function()
      local _, e = load('{"_format_version":"3.0","routes":[{"name":"orphan","paths":["/x"],' ..
                        '"service":"missing"}]}')
      assert.same({ routes = { orphan = { "invalid reference 'service: missing' (no such entry in 'services')" } } },
                  e.fields)
    end)

    it("refuses nested entities that set their parent's foreign key", function()
      local _, e = load('{"_format_version":"3.0","services":[{"name":"s","host":"h",' ..
                        '"routes":[{"paths":["/x"],"service":"s"}]}]}')
      assert.same({ services = { { routes = { { service = "value must be null" } } } } }, e.fields)
    end)

    it("refuses duplicate names and ids", function()
      local _, e = load('{"_format_version":"3.0","services":[{"name":"s","host":"h"},' ..
                        '{"name":"s","host":"h2"}]}')
      assert.same({ services = { [2] = "uniqueness violation: 'services' entity with name set to 's' already declared" } },
                  e.fields)
      _, e = load('{"_format_version":"3.0","consumers":[{"username":"a","custom_id":"x"},' ..
                  '{"username":"b","custom_id":"x"}]}')
      assert.same({ consumers = { b = "uniqueness violation: 'consumers' entity with custom_id set to 'x' already declared" } },
                  e.fields)
    end)

    it("reports the first failing check in route paths", function()
      local _, e = load('{"_format_version":"3.0","routes":[{"paths":["/a/../b"]}]}')
      assert.same({ routes = { { paths = { "non-normalized path, consider use '/b' instead" } } } },
                  e.fields)
      _, e = load('{"_format_version":"3.0","routes":[{"protocols":["http"]}]}')
      assert.same({ routes = { { ["@entity"] = {
        "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'" } } } },
        e.fields)
    end)
  end)

  describe("certificates", function()
    local function read(name)
      local f = assert(io.open(FIX .. "/" .. name))
      local s = f:read("*a")
      f:close()
      return s
    end

    it("loads certificates with nested snis and CA certificates with their digest", function()
      local c = assert(declarative.load_files({ FIX .. "/certs.yaml" }, PLUGINS))
      local ws = kong_id("workspaces", "workspaces:*:w1")
      local cert = c.entities.certificates[1]
      local sha = util.hex(util.sha256(read("test.crt")))
      assert.equal(kong_id("certificates", sha .. ":" .. ws), cert.id)
      assert.same({ "a.test" }, cert.snis)
      assert.equal(ws, cert.ws_id)
      local sni = c.entities.snis[1]
      assert.equal(kong_id("snis", "a.test"), sni.id)
      assert.same({ id = cert.id }, sni.certificate)
      local ca = c.entities.ca_certificates[1]
      assert.is_nil(ca.ws_id)
      assert.equal(64, #ca.cert_digest)
      assert.equal(util.x509_info(read("test.crt")).sha256, ca.cert_digest)
    end)

    it("refuses a key that does not match its certificate", function()
      local other = io.popen("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null")
      local key = other:read("*a")
      other:close()
      local _, e = declarative.load_tables({ { _format_version = "3.0",
        certificates = { { cert = read("test.crt"), key = key } } } }, PLUGINS)
      assert.same({ certificates = { { ["@entity"] = { "certificate does not match key" } } } },
                  e.fields)
    end)
  end)

  describe("workspaces", function()
    it("loads each file into its _workspace with stable ids", function()
      local c = assert(declarative.load_files({ FIX .. "/workspaces" }, PLUGINS))
      local ids = {}
      for _, ws in ipairs(c.workspaces) do ids[ws.name] = ws.id end
      assert.equal(DEFAULT_WS, ids.default)
      assert.equal(kong_id("workspaces", "workspaces:*:teamA"), ids.teamA)
      assert.equal("6803be4e-d2f3-5e08-afc0-6c3d12049f85", ids.teamA)
      assert.equal(2, #c.entities.services)
      local a, b = c.entities.services[1], c.entities.services[2]
      assert.equal(ids.teamA, a.ws_id)
      assert.equal(ids.teamB, b.ws_id)
      assert.equal(kong_id("services", "example:" .. ids.teamA), a.id)
      assert.not_equal(a.id, b.id)
      assert.equal(ids.teamB, c.entities.routes[2].ws_id)
    end)

    it("refuses routes of different workspaces whose traffic collides, naming both", function()
      local c, e = declarative.load_files({ FIX .. "/conflict" }, PLUGINS)
      assert.is_nil(c)
      local msg = e.fields.services[1].routes[1]["@entity"][1]
      assert.truthy(msg:find("^API route collides with an existing API: "), msg)
      assert.truthy(msg:find("'b-route'", 1, true), msg)
      assert.truthy(msg:find("'a-route'", 1, true), msg)
      assert.equal(2, e.sources)
      assert.truthy(declarative.error_text(e):find("^Failed parsing:\nin file '.*conflict/b.yaml':\n"))
    end)

    it("keeps SNI names unique across workspaces", function()
      local c, e = declarative.load_files({ FIX .. "/sni_clash" }, PLUGINS)
      assert.is_nil(c)
      assert.same({ certificates = { { snis = {
        "uniqueness violation: 'snis' entity with name set to 'a.test' already declared" } } } },
        e.fields)
      assert.truthy(e.source:find("sni_clash/2.yaml$"))
    end)

    it("refuses workspace names that shadow entities or endpoints", function()
      local _, e = load('{"_format_version":"3.0","_workspace":"services"}')
      assert.truthy(e.fields._workspace:find("^must not be one of: workspaces, consumers, "))
    end)
  end)
end)
