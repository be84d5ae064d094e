-- The PDK from a real request: spec/fixtures/custom_plugins/kong/plugins/pdk-echo
-- runs the operation named by its X-Pdk-Op request header.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local function request(method, path, headers, body)
  local client = helpers.proxy_client()
  local res = assert(client:send { method = method, path = path, headers = headers,
                                   body = body })
  local rbody = res:read_body()
  client:close()
  return res, rbody
end

local function get(path, headers)
  return request("GET", path, headers)
end

describe("PDK from a request", function()
  local route_id, plugin_id

  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "pdk-echo", "pdk-ctx2" })
    local s = bp.services:insert { name = "pdk" }
    local r = bp.routes:insert { service = s, paths = { "/pdk" } }
    local cap = bp.routes:insert { service = s, paths = { [[~/cap/(?<name>[a-z]+)/(\d+)]] } }
    route_id = r.id
    local p = bp.plugins:insert { name = "pdk-echo", route = r, config = { tag = "t1" } }
    plugin_id = p.id
    bp.plugins:insert { name = "pdk-echo", route = cap, config = {} }
    bp.plugins:insert { name = "pdk-ctx2", route = r, config = {} }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,pdk-echo,pdk-ctx2",
      lua_package_path = PLUGINS_PATH,
      trusted_ips = "127.0.0.1",
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("kong.request reads what the client sent", function()
    local res, body = request("POST", "/pdk/a%20b?a=1&a=2&b&c=&d=x+y", {
      ["X-Pdk-Op"] = "request",
      ["X-Foo"] = "foo-value",
      ["X-Multi"] = { "m1", "m2" },
      ["Content-Type"] = "application/json",
      ["X-Forwarded-Host"] = "user@Front.Example:8443",
      ["X-Forwarded-Proto"] = "HTTPS",
    }, '{"k":[1,2]}')
    assert.equal(200, res.status)
    assert.matches("application/json; charset=utf-8", res.headers["content-type"], 1, true)
    local json = cjson.decode(body)
    assert.equal("POST", json.method)
    assert.equal("http", json.scheme)
    assert.equal("127.0.0.1", json.host)
    assert.equal(helpers.test_conf.proxy_port or json.port, json.port)
    assert.equal("front.example", json.forwarded_host)
    assert.equal("https", json.forwarded_scheme)
    assert.equal(8443, json.forwarded_port)
    assert.equal(1.1, json.http_version)
    assert.equal("/pdk/a b", json.path)
    assert.equal("/pdk/a%20b", json.raw_path)
    assert.equal("/pdk/a%20b?a=1&a=2&b&c=&d=x+y", json.path_with_query)
    assert.equal("a=1&a=2&b&c=&d=x+y", json.raw_query)
    assert.same({ a = { "1", "2" }, b = true, c = "", d = "x y" }, json.query)
    assert.equal("1", json.query_arg_a)
    assert.equal("foo-value", json.header_x_foo)
    assert.equal("foo-value", json.header_mixed)
    assert.same({ "m1", "m2" }, json.multi)
    assert.same({ k = { 1, 2 } }, json.body)
    assert.equal("application/json", json.body_mime)
    assert.equal('{"k":[1,2]}', json.raw_body)
    assert.is_true(json.start_time_ok)
    assert.equal("127.0.0.1", json.client_ip)
    assert.equal("127.0.0.1", json.forwarded_ip)
    assert.is_true(json.client_port_ok)
    assert.equal(route_id, json.route_id)
    assert.equal(plugin_id, json.plugin_id)
    assert.is_true(json.trusted_local)
  end)

  it("kong.request.get_body decodes forms and multipart, refuses others", function()
    local _, body = request("POST", "/pdk", {
      ["X-Pdk-Op"] = "request",
      ["Content-Type"] = "application/x-www-form-urlencoded",
    }, "x=1&y=a+b&x=2")
    local json = cjson.decode(body)
    assert.same({ x = { "1", "2" }, y = "a b" }, json.body)
    assert.equal("application/x-www-form-urlencoded", json.body_mime)

    local mp = "--B0\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nval\r\n--B0--\r\n"
    _, body = request("POST", "/pdk", {
      ["X-Pdk-Op"] = "request",
      ["Content-Type"] = "multipart/form-data; boundary=B0",
    }, mp)
    json = cjson.decode(body)
    assert.same({ f = "val" }, json.body)

    _, body = request("POST", "/pdk", {
      ["X-Pdk-Op"] = "request", ["Content-Type"] = "text/csv" }, "a,b")
    json = cjson.decode(body)
    assert.equal(cjson.null, json.body)
    assert.equal("unsupported content type 'text/csv'", json.body_err)

    _, body = request("POST", "/pdk", {
      ["X-Pdk-Op"] = "request", ["Content-Type"] = "application/json" }, "[oops")
    json = cjson.decode(body)
    assert.equal("invalid json body", json.body_err)

    _, body = get("/pdk", { ["X-Pdk-Op"] = "request" })
    json = cjson.decode(body)
    assert.equal("missing content type", json.body_err)
  end)

  it("kong.request.get_uri_captures gives named and unnamed captures", function()
    local _, body = get("/cap/abc/42", { ["X-Pdk-Op"] = "request" })
    local json = cjson.decode(body)
    assert.equal("abc", json.captures.named.name)
    -- unnamed[0] is the whole match; JSON turns the 0-based list into an object
    local un = json.captures.unnamed
    assert.equal("/cap/abc/42", un["0"] or un[1])
  end)

  it("kong.response.exit with a string body, list headers, no body", function()
    local res, body = get("/pdk", { ["X-Pdk-Op"] = "exit_string" })
    assert.equal(201, res.status)
    assert.equal("plain body", body)
    assert.equal("text/plain", res.headers["content-type"])
    local multi = res.headers["x-multi"]
    if type(multi) == "table" then multi = table.concat(multi, ", ") end
    assert.equal("1, 2", multi)
    assert.equal("exit", res.headers["x-source"])
    assert.equal("t1", res.headers["x-pdk-tag"])

    res, body = get("/pdk", { ["X-Pdk-Op"] = "exit_nobody" })
    assert.equal(204, res.status)
    assert.equal("", body or "")
  end)

  it("kong.response.error answers Kong's body by Accept", function()
    local res, body = get("/pdk", { ["X-Pdk-Op"] = "error_default" })
    assert.equal(403, res.status)
    local json = cjson.decode(body)
    assert.equal("Forbidden", json.message)
    assert.matches("^%x+$", json.request_id)
    assert.equal(json.request_id, res.headers["x-kong-request-id"] or json.request_id)

    res, body = get("/pdk", { ["X-Pdk-Op"] = "error_message", Accept = "text/plain" })
    assert.equal(429, res.status)
    assert.matches("^slow down\nrequest_id: %x+\n$", body)
    assert.equal("rate", res.headers["x-why"])
    assert.matches("text/plain", res.headers["content-type"], 1, true)

    res, body = get("/pdk", { ["X-Pdk-Op"] = "error_message", Accept = "text/html" })
    assert.matches("<p>slow down.</p>", body, 1, true)
  end)

  it("argument errors carry Kong's messages", function()
    local _, body = get("/pdk", { ["X-Pdk-Op"] = "args" })
    local json = cjson.decode(body)
    assert.equal("header name must be a string", json.header)
    assert.equal("code must be a number between 100 and 599", json.exit_code)
    assert.equal("max_headers must be >= 1", json.max_headers)
    assert.equal("path must start with /", json.sr_path)
    assert.equal("port must be an integer", json.balancer)
  end)

  it("kong.service.request edits what goes upstream; ctx and log carry across phases",
     function()
    local res, body = get("/pdk/orig?q=0", { ["X-Pdk-Op"] = "upstream",
                                             ["X-Remove-Me"] = "x" })
    assert.equal(200, res.status)
    local json = cjson.decode(body)
    assert.equal("/anything/changed", json.uri)
    assert.equal("y=2&y=3&z=1", json.query)
    assert.equal("1", json.headers["x-up"])
    local multi = json.headers["x-up-multi"]
    if type(multi) == "table" then multi = table.concat(multi, ", ") end
    assert.equal("a, b", multi)
    assert.is_nil(json.headers["x-remove-me"])
    assert.equal("shared-value", res.headers["x-shared"])
    -- kong.ctx.plugin is per plugin: pdk-ctx2 wrote its own "mine" after pdk-echo
    assert.equal("plugin-value", res.headers["x-plugin"])
    assert.equal("ctx2-value", res.headers["x-ctx2-plugin"])
    -- kong.ctx.shared is per request: pdk-ctx2 saw what pdk-echo set
    assert.equal("shared-value", res.headers["x-ctx2-saw"])
    assert.equal("shared-value", res.headers["x-ctx2-pairs"])
    assert.equal("set in access", res.headers["x-early"])
    assert.equal("200", res.headers["x-upstream-status"])
    assert.equal("service", res.headers["x-source"])
    assert.matches("application/json", res.headers["x-upstream-ct"], 1, true)
    assert.equal("set in access", res.headers["x-resp-early"])
    assert.equal("set in access|application/json", res.headers["x-resp-headers"])
    assert.equal("function cannot be called in header_filter phase (only in: rewrite, access)",
                 res.headers["x-phase-error"])
    assert.logfile().has.line("[pdk-echo] serialized GET 200 v route", true, 10)
  end)

  it("the ngx shim: var, req, ctx, say + exit", function()
    local res, body = get("/pdk/n?q=7", { ["X-Pdk-Op"] = "ngx", ["User-Agent"] = "spec-ua",
                                          ["X-Foo"] = "F" })
    assert.equal(202, res.status)
    assert.equal("method=GET uri=/pdk/n args=q=7 ua=spec-ua q=7 ctx=ngx-ctx h=F " ..
                 "ru=/pdk/n?q=7 arg_q=7\n", body)
    assert.equal("yes", res.headers["x-ngx"])
  end)

  it("the ngx shim: upstream_uri and req.set_header", function()
    local res, body = get("/pdk", { ["X-Pdk-Op"] = "ngx_upstream" })
    assert.equal(200, res.status)
    local json = cjson.decode(body)
    assert.equal("/anything/ngx", json.uri)
    assert.equal("PATCH", json.method)
    assert.equal("x=1", json.query)
    assert.equal("1", json.headers["x-ngx-up"])
  end)

  it("kong.service.request.clear_query_arg and set_method", function()
    local _, body = get("/pdk/q?drop=1&keep=a+b&drop&x=%20", { ["X-Pdk-Op"] = "clear_query" })
    local json = cjson.decode(body)
    assert.equal("keep=a%20b&x=%20", json.query)
    assert.equal("PUT", json.method)
  end)

  it("works inside coroutine.wrap in access", function()
    local res, body = get("/pdk", { ["X-Pdk-Op"] = "cowrap", ["X-Foo"] = "bar" })
    assert.equal(200, res.status)
    assert.same({ a = "GET", b = "bar" }, cjson.decode(body))
    assert.logfile().has.no.line("code after kong.response.exit ran in cowrap", true)
  end)

  it("kong.response.exit inside a user coroutine still ends the handler", function()
    local res, body = get("/pdk", { ["X-Pdk-Op"] = "cowrap_exit" })
    assert.equal(409, res.status)
    assert.equal("from a user coroutine", body)
    assert.logfile().has.no.line("code after kong.response.exit ran in cowrap_exit", true)
  end)

  it("kong.client.authenticate is seen in later phases", function()
    local res = get("/pdk", { ["X-Pdk-Op"] = "auth" })
    assert.equal(200, res.status)
    assert.equal("bob", res.headers["x-consumer"])
    assert.equal("cred-1", res.headers["x-credential"])
    -- and not by the next request
    local res2 = get("/pdk", { ["X-Pdk-Op"] = "protocol" })
    assert.is_nil(res2.headers["x-consumer"])
  end)

  it("kong.client.get_protocol from the route", function()
    local _, body = get("/pdk", { ["X-Pdk-Op"] = "protocol" })
    assert.equal("http", cjson.decode(body).protocol)
  end)

  it("forgets a request's ctx after its log phase", function()
    for _ = 1, 5 do
      get("/pdk", { ["X-Pdk-Op"] = "upstream" })
      get("/pdk", { ["X-Pdk-Op"] = "exit_string" })
    end
    local _, body = get("/pdk", { ["X-Pdk-Op"] = "count" })
    -- only the request asking (one worker answers; others hold none either)
    assert.equal(1, cjson.decode(body).count)
  end)

  it("kong.response.exit in header_filter replaces the status and headers", function()
    local res = get("/pdk", { ["X-Pdk-Op"] = "hf_exit" })
    assert.equal(418, res.status)
    assert.equal("1", res.headers["x-hf"])
  end)

  it("kong.response.exit in header_filter replaces the upstream's status and body", function()
    local res, body = get("/pdk", { ["X-Pdk-Op"] = "hf_exit" })
    assert.equal(418, res.status)
    assert.equal("1", res.headers["x-hf"])
    assert.matches("application/json", res.headers["content-type"], 1, true)
    assert.equal(tostring(#body), res.headers["content-length"])
    assert.same({ message = "teapot" }, cjson.decode(body))
  end)

  it("kong.log and ngx.log write Kong-prefixed lines", function()
    local res = get("/pdk", { ["X-Pdk-Op"] = "inspect" })
    assert.equal(200, res.status)
    -- the line of the call in handler.lua (OPS.inspect), as Kong's %file_src:%line_src
    local warn_line, ngx_line
    local i = 0
    for l in io.lines(helpers.root ..
                      "/spec/fixtures/custom_plugins/kong/plugins/pdk-echo/handler.lua") do
      i = i + 1
      if l:find("kong.log.warn(", 1, true) then warn_line = i end
      if l:find("ngx.log(ngx.ERR", 1, true) then ngx_line = i end
    end
    assert.logfile().has.line("%[warn%] %d+#%d+: %[kong%] handler.lua:" .. warn_line ..
                              " %[pdk%-echo%] warned 42 nil true")
    assert.logfile().has.line('inspected = "value"', true)
    assert.logfile().has.line("%[error%] %d+#%d+: %[lua%] handler.lua:" .. ngx_line ..
                              ": .*ngx logged 7")
  end)

  it("get_headers stops at max_headers and says truncated", function()
    local _, body = get("/pdk", { ["X-Pdk-Op"] = "many_headers", A = "1", B = "2", C = "3" })
    local json = cjson.decode(body)
    assert.equal(3, json.n)
    assert.equal("truncated", json.err)
  end)

  it("X-Forwarded-* are trusted from a trusted peer only (here: trusted)", function()
    local _, body = get("/pdk", { ["X-Pdk-Op"] = "untrusted",
                                  ["X-Forwarded-Host"] = "fwd.example",
                                  ["X-Forwarded-Proto"] = "https",
                                  ["X-Forwarded-Port"] = "444",
                                  ["X-Forwarded-Path"] = "/fwd",
                                  ["X-Forwarded-Prefix"] = "/pre" })
    local json = cjson.decode(body)
    assert.equal("fwd.example", json.forwarded_host)
    assert.equal("https", json.forwarded_scheme)
    assert.equal(444, json.forwarded_port)
    assert.equal("/fwd", json.forwarded_path)
    assert.equal("/pre", json.forwarded_prefix)
  end)
end)

describe("PDK from a request, untrusted peer", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "pdk-echo" })
    local s = bp.services:insert { name = "pdk" }
    local r = bp.routes:insert { service = s, paths = { "/pdk" } }
    bp.plugins:insert { name = "pdk-echo", route = r, config = {} }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,pdk-echo",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("ignores X-Forwarded-* from an untrusted peer", function()
    local _, body = get("/pdk/p", { ["X-Pdk-Op"] = "untrusted",
                                    ["X-Forwarded-Host"] = "fwd.example",
                                    ["X-Forwarded-Proto"] = "https",
                                    ["X-Forwarded-Port"] = "444",
                                    ["X-Forwarded-Path"] = "/fwd",
                                    ["X-Forwarded-Prefix"] = "/pre" })
    local json = cjson.decode(body)
    assert.equal("127.0.0.1", json.forwarded_host)
    assert.equal("http", json.forwarded_scheme)
    assert.equal(helpers.test_conf.proxy_port, json.forwarded_port)
    assert.equal("/pdk/p", json.forwarded_path)
    assert.equal(cjson.null, json.forwarded_prefix)
  end)
end)

describe("PDK from a request, global plugin in rewrite", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "pdk-echo" })
    local s = bp.services:insert { name = "pdk" }
    bp.routes:insert { service = s, paths = { "/g" } }
    bp.plugins:insert { name = "pdk-echo", config = {} }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,pdk-echo",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("kong.response.exit in rewrite ends the handler and skips routing", function()
    assert(helpers.mock_upstream_reset())
    local res, body = get("/nowhere", { ["X-Pdk-Rewrite"] = "exit" })
    assert.equal(451, res.status)
    assert.equal("rewrite exit", body)
    assert.equal("1", res.headers["x-rewrite"])
    assert.equal(0, helpers.mock_upstream_count())
    assert.logfile().has.no.line("code after kong.response.exit ran in rewrite", true)
  end)

  it("kong.router is refused in rewrite with Kong's message", function()
    local _, body = get("/g", { ["X-Pdk-Rewrite"] = "router" })
    local json = cjson.decode(body)
    assert.equal("function cannot be called in rewrite phase (only in: access, response, " ..
                 "header_filter, body_filter, log)", json.err)
    assert.equal("rewrite", json.phase)
  end)

  it("ngx.print + ngx.exit(200) answer from rewrite", function()
    local res, body = get("/g", { ["X-Pdk-Rewrite"] = "ngx_exit" })
    assert.equal(200, res.status)
    assert.equal("from rewrite", body)
    assert.logfile().has.no.line("code after ngx.exit ran in rewrite", true)
  end)
end)
