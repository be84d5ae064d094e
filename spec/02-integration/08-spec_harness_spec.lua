-- The spec harness itself: the mock upstream, the HTTP client and the
-- DB-less blueprints (no gateway needed).
local helpers = require "spec.helpers"
local http = require "spec.helpers.http"
local blueprints = require "spec.helpers.blueprints"
local cjson = require "cjson"

local adler32 = helpers.adler32

describe("mock upstream (tg_echo_server)", function()
  local client

  lazy_setup(function()
    assert(helpers.start_mock_upstream())
  end)

  lazy_teardown(function()
    helpers.stop_mock_upstream()
  end)

  before_each(function()
    client = helpers.mock_upstream_client()
  end)

  after_each(function()
    client:close()
  end)

  it("echoes method, raw target, path, query, headers and body as JSON", function()
    local res = assert(client:send {
      method = "POST", path = "/anything/a%20b?x=1&y=2",
      headers = { ["X-Multi"] = { "1", "2" }, ["Content-Type"] = "text/plain" },
      body = "hello",
    })
    local json = cjson.decode(assert.res_status(200, res))
    assert.equal("POST", json.method)
    assert.equal("/anything/a%20b?x=1&y=2", json.path)
    assert.equal("/anything/a%20b", json.uri)
    assert.equal("x=1&y=2", json.query)
    assert.same({ "1", "2" }, json.headers["x-multi"])
    assert.equal("hello", json.body)
    assert.equal(5, json.body_length)
    assert.equal("HTTP/1.1", json.http_version)
    assert.equal("127.0.0.1", json.remote_addr)
    assert.equal(tostring(helpers.mock_upstream_port), res.headers["X-Echo-Server-Port"])
  end)

  it("keeps the connection alive across requests", function()
    for i = 1, 3 do
      local res = assert(client:get("/anything/" .. i))
      assert.res_status(200, res)
    end
    assert.truthy(client.sock)
  end)

  it("decodes a chunked request body and reports its adler32", function()
    local chunks = { "abc", string.rep("x", 70000), "end" }
    local res = assert(client:post("/anything", { chunks = chunks }))
    local json = cjson.decode(assert.res_status(200, res))
    local body = table.concat(chunks)
    assert.equal(#body, json.body_length)
    assert.equal(adler32(body), json.body_adler32)
  end)

  it("answers /status/NNN, without a body for 204 and 304", function()
    assert.res_status(418, assert(client:get("/status/418")))
    local res = assert(client:get("/status/204"))
    assert.equal(204, res.status)
    assert.is_nil(res.headers["content-length"])
    assert.equal(304, assert(client:get("/status/304")).status)
  end)

  it("streams /stream/N as N chunked JSON lines", function()
    local res = assert(client:get("/stream/3"))
    local body = assert.res_status(200, res)
    assert.equal("chunked", res.headers["transfer-encoding"])
    local n = 0
    for line in body:gmatch("[^\n]+") do
      assert.equal(n, cjson.decode(line).id)
      n = n + 1
    end
    assert.equal(3, n)
  end)

  it("serves /bytes/N with Content-Length and HEAD without a body", function()
    local res = assert(client:get("/bytes/100000"))
    local body = assert.res_status(200, res)
    assert.equal(100000, #body)
    assert.equal("abcdefghij", body:sub(1, 10))
    res = assert(client:head("/bytes/100000"))
    assert.equal("100000", res.headers["content-length"])
    assert.equal("", res:read_body())
  end)

  it("delays /delay/S", function()
    local t0 = require("socket").gettime()
    assert.res_status(200, assert(client:get("/delay/0.3")))
    assert.truthy(require("socket").gettime() - t0 >= 0.3)
  end)

  it("adds /response-headers from the query", function()
    local res = assert(client:get("/response-headers?X-Foo=bar"))
    assert.res_status(200, res)
    assert.equal("bar", assert.response(res).has.header("x-foo"))
  end)

  it("honours Expect: 100-continue", function()
    local data = http.raw("127.0.0.1", helpers.mock_upstream_port, {
      "POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
      .. "Connection: close\r\n\r\n", "ok" }, 2, 0.2)
    assert.matches("^HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", data)
  end)

  it("turns an Upgrade: websocket request into a byte echo", function()
    local res = assert(client:send { path = "/ws", headers = {
      Connection = "Upgrade", Upgrade = "websocket",
      ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ==", ["Sec-WebSocket-Version"] = "13" } })
    assert.equal(101, res.status)
    assert.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", res.headers["sec-websocket-accept"])
    assert(res.socket:send("ping-bytes"))
    assert.equal("ping-bytes", res.socket:receive(10))
    res.socket:close()
  end)

  it("closes without answering on /close", function()
    local data, state = http.raw("127.0.0.1", helpers.mock_upstream_port, "GET /close HTTP/1.1\r\nHost: x\r\n\r\n", 2)
    assert.equal("", data)
    assert.equal("closed", state)
  end)

  it("counts complete requests only", function()
    assert(helpers.mock_upstream_reset())
    http.raw("127.0.0.1", helpers.mock_upstream_port, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 0.3)
    assert.equal(0, helpers.mock_upstream_count())
    assert.res_status(200, assert(client:get("/anything")))
    assert.equal(1, helpers.mock_upstream_count())
  end)
end)

describe("DB-less blueprints", function()
  it("export one declarative file per workspace with foreign keys as ids", function()
    local bp = blueprints.new(helpers)
    local s = bp.services:insert { name = "s1" }
    assert.equal("127.0.0.1", s.host)
    assert.equal(helpers.mock_upstream_port, s.port)
    local r = bp.routes:insert { service = s, paths = { "/x" } }
    bp.plugins:insert { name = "key-auth", route = { id = r.id } }
    local u = bp.upstreams:insert { name = "u1" }
    bp.targets:insert { upstream = u, target = "127.0.0.1:15556" }
    local ws = bp.workspaces:insert { name = "team-a" }
    bp.services:insert({ name = "s1" }, { workspace = ws.id })
    local files = blueprints.export(bp)
    assert.equal(2, #files)
    local def, other = files[1].config, files[2].config
    assert.equal("3.0", def._format_version)
    assert.is_nil(def._workspace)
    assert.equal(s.id, def.routes[1].service)
    assert.equal(r.id, def.plugins[1].route)
    assert.equal("127.0.0.1:15556", def.upstreams[1].targets[1].target)
    assert.is_nil(def.targets)
    assert.equal("team-a", other._workspace)
    assert.equal("s1", other.services[1].name)
  end)

  it("routes given service = helpers.null have no service", function()
    local bp = blueprints.new(helpers)
    bp.routes:insert { paths = { "/n" }, service = helpers.null }
    local conf = blueprints.export(bp)[1].config
    assert.is_nil(conf.routes[1].service)
    assert.is_nil(conf.services)
  end)
end)
