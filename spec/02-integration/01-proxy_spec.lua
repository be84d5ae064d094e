-- The proxy, end to end: a real tollgate in front of the mock upstream.
local helpers = require "spec.helpers"
local cjson = require "cjson"
local socket = require "socket"

local PROXY_PORT = helpers.test_conf.proxy_port

local adler32 = helpers.adler32

-- Splits raw bytes holding several responses (each with Content-Length, or
-- none for bodyless ones) into { status, headers, body } tables.
local function split_responses(data)
  local out = {}
  while #data > 0 do
    local status, headers, rest = helpers.parse_raw_response(data)
    if not status then break end
    local len = tonumber(headers["content-length"] or "0")
    out[#out + 1] = { status = status, headers = headers, body = rest:sub(1, len) }
    data = rest:sub(len + 1)
  end
  return out
end

local function echo(res)
  return cjson.decode(assert.res_status(200, res))
end

describe("proxy", function()
  local client

  lazy_setup(function()
    local bp = helpers.get_db_utils("off")
    local echo_svc = bp.services:insert { name = "echo" }
    bp.routes:insert { service = echo_svc, paths = { "/echo" } }
    bp.routes:insert { service = echo_svc, hosts = { "preserve.test" }, preserve_host = true }
    bp.routes:insert { service = echo_svc, hosts = { "nopreserve.test" }, preserve_host = false }
    bp.routes:insert { service = echo_svc, hosts = { "abs.test" } }
    bp.routes:insert { service = echo_svc, paths = { "/streaming" }, request_buffering = false }
    bp.routes:insert { service = echo_svc, paths = { "/nostrip" }, strip_path = false }
    local base = bp.services:insert { name = "base", path = "/anything/base" }
    bp.routes:insert { service = base, paths = { "/svcpath" } }
    local slow = bp.services:insert { name = "slow", read_timeout = 500 }
    bp.routes:insert { service = slow, paths = { "/slow" } }
    local refused = bp.services:insert { name = "refused", host = "127.0.0.1", port = 1 }
    bp.routes:insert { service = refused, paths = { "/refused" } }
    bp.routes:insert { paths = { "/noservice" }, service = helpers.null }
    assert(helpers.start_kong { database = "off", nginx_http_client_max_body_size = "0" })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  before_each(function()
    client = helpers.proxy_client(10000)
  end)

  after_each(function()
    if client then client:close() end
  end)

  describe("basic proxying", function()
    it("forwards method, path, query, headers and body to the upstream", function()
      local res = assert(client:send {
        method = "POST", path = "/echo/anything/x", query = { a = "1", b = "two" },
        headers = { ["X-Custom"] = "yes", ["Content-Type"] = "text/plain" }, body = "payload",
      })
      local json = echo(res)
      assert.equal("POST", json.method)
      assert.equal("/anything/x?a=1&b=two", json.path)
      assert.equal("yes", json.headers["x-custom"])
      assert.equal("payload", json.body)
      assert.equal("tg-echo", res.headers["server"])
      assert.equal(tostring(helpers.mock_upstream_port), res.headers["x-echo-server-port"])
    end)

    it("strips the matched prefix by default", function()
      assert.equal("/anything/y", echo(assert(client:get("/echo/anything/y"))).uri)
      assert.equal("/", echo(assert(client:get("/echo"))).uri)
    end)

    it("keeps the prefix with strip_path = false", function()
      assert.equal("/nostrip/z", echo(assert(client:get("/nostrip/z"))).uri)
    end)

    it("joins the service path and the stripped request path", function()
      assert.equal("/anything/base/x", echo(assert(client:get("/svcpath/x"))).uri)
      assert.equal("/anything/base", echo(assert(client:get("/svcpath"))).uri)
    end)

    it("keeps the client connection alive across requests", function()
      for i = 1, 5 do
        assert.equal("/anything/" .. i, echo(assert(client:get("/echo/anything/" .. i))).uri)
      end
      assert.truthy(client.sock, "connection was closed")
    end)

    it("answers pipelined requests in order", function()
      local req = ""
      for i = 1, 4 do
        req = req .. "GET /echo/anything/p" .. i .. " HTTP/1.1\r\nHost: localhost\r\n"
              .. (i == 4 and "Connection: close\r\n" or "") .. "\r\n"
      end
      local data = helpers.raw_request(req, 5)
      local responses = split_responses(data)
      assert.equal(4, #responses)
      for i, r in ipairs(responses) do
        assert.equal(200, r.status)
        assert.equal("/anything/p" .. i, cjson.decode(r.body).uri)
      end
    end)

    it("answers HEAD without a body", function()
      local data = helpers.raw_request("HEAD /echo/bytes/100 HTTP/1.1\r\nHost: localhost\r\n"
                                       .. "Connection: close\r\n\r\n", 5)
      local status, headers, rest = helpers.parse_raw_response(data)
      assert.equal(200, status)
      assert.equal("100", headers["content-length"])
      assert.equal("", rest)
    end)

    for _, code in ipairs({ 204, 304 }) do
      it("passes a " .. code .. " without a body", function()
        local data = helpers.raw_request("GET /echo/status/" .. code .. " HTTP/1.1\r\n"
                                         .. "Host: localhost\r\nConnection: close\r\n\r\n", 5)
        local status, headers, rest = helpers.parse_raw_response(data)
        assert.equal(code, status)
        assert.is_nil(headers["transfer-encoding"])
        assert.equal("", rest)
      end)
    end

    it("honours Expect: 100-continue before reading the body", function()
      local data = helpers.raw_request({
        "POST /echo/anything HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
        .. "Expect: 100-continue\r\nConnection: close\r\n\r\n",
        "hello" }, 5, nil, 0.3)
      assert.matches("^HTTP/1.1 100 Continue\r\n\r\n", data)
      local final = data:gsub("^HTTP/1.1 100 Continue\r\n\r\n", "")
      local status, _, body = helpers.parse_raw_response(final)
      assert.equal(200, status)
      assert.equal("hello", cjson.decode(body).body)
    end)

    it("forwards a chunked request body", function()
      local chunks = { "first,", string.rep("m", 20000), ",last" }
      local json = echo(assert(client:post("/echo/anything", { chunks = chunks })))
      assert.equal(table.concat(chunks), json.body)
    end)

    it("streams a chunked response", function()
      local res = assert(client:get("/echo/stream/5"))
      local body = assert.res_status(200, res)
      local n = 0
      for line in body:gmatch("[^\n]+") do
        assert.equal(n, cjson.decode(line).id)
        n = n + 1
      end
      assert.equal(5, n)
    end)

    it("forwards a large request body intact (buffered to a file)", function()
      local body = string.rep("0123456789abcdef", 5 * 65536) -- 5 MiB
      local json = echo(assert(client:post("/echo/anything", { body = body })))
      assert.equal(#body, json.body_length)
      assert.equal(adler32(body), json.body_adler32)
    end)

    it("streams a large request body with request_buffering = false", function()
      local body = string.rep("z", 3 * 1024 * 1024 + 7)
      local json = echo(assert(client:post("/streaming/anything", { body = body })))
      assert.equal(#body, json.body_length)
      assert.equal(adler32(body), json.body_adler32)
    end)

    it("streams a large response body intact", function()
      local n = 20 * 1024 * 1024
      local res = assert(client:get("/echo/bytes/" .. n))
      local body = assert.res_status(200, res)
      assert.equal(n, #body)
      assert.equal(string.rep("abcdefghijklmnopqrstuvwxyz", 4), body:sub(1, 104))
    end)

    it("forwards server-sent events as they come", function()
      local t0 = socket.gettime()
      local res = assert(client:get("/echo/sse", { query = { n = 3, interval = 0.2 } }))
      local body = assert.res_status(200, res)
      assert.equal(3, select(2, body:gsub("data: event", "")))
      assert.truthy(socket.gettime() - t0 >= 0.4)
    end)

    it("turns a 101 Switching Protocols into a two-way tunnel", function()
      local res = assert(client:send { path = "/echo/ws", headers = {
        Connection = "Upgrade", Upgrade = "websocket",
        ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ==", ["Sec-WebSocket-Version"] = "13",
      } })
      assert.equal(101, res.status)
      assert.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", res.headers["sec-websocket-accept"])
      assert.equal("websocket", res.headers["upgrade"]:lower())
      local sock = res.socket
      sock:settimeout(5)
      for _, msg in ipairs({ "hello", string.rep("w", 100000) }) do
        assert(sock:send(msg))
        assert.equal(msg, sock:receive(#msg))
      end
      sock:close()
    end)

    it("routes an absolute-form target by its host", function()
      local data = helpers.raw_request("GET http://abs.test/anything/abs HTTP/1.1\r\n"
                                       .. "Host: ignored.test\r\nConnection: close\r\n\r\n", 5)
      local status, _, body = helpers.parse_raw_response(data)
      assert.equal(200, status)
      assert.equal("/anything/abs", cjson.decode(body).uri)
    end)
  end)

  describe("headers to the upstream", function()
    it("appends the client address to X-Forwarded-For", function()
      local json = echo(assert(client:get("/echo/anything",
                                          { headers = { ["X-Forwarded-For"] = "10.1.1.1" } })))
      assert.equal("10.1.1.1, 127.0.0.1", json.headers["x-forwarded-for"])
      json = echo(assert(client:get("/echo/anything")))
      assert.equal("127.0.0.1", json.headers["x-forwarded-for"])
    end)

    it("replaces X-Forwarded-* from an untrusted client with its own values", function()
      local json = echo(assert(client:get("/echo/anything/fw", { headers = {
        Host = "example.test:" .. PROXY_PORT,
        ["X-Forwarded-Proto"] = "https", ["X-Forwarded-Host"] = "evil.test",
        ["X-Forwarded-Port"] = "1", ["X-Forwarded-Path"] = "/evil",
        ["X-Forwarded-Prefix"] = "/evil", ["X-Real-IP"] = "10.9.9.9",
      } })))
      assert.equal("http", json.headers["x-forwarded-proto"])
      assert.equal("example.test", json.headers["x-forwarded-host"])
      assert.equal(tostring(PROXY_PORT), json.headers["x-forwarded-port"])
      assert.equal("/echo/anything/fw", json.headers["x-forwarded-path"])
      assert.equal("/echo", json.headers["x-forwarded-prefix"])
      assert.equal("127.0.0.1", json.headers["x-real-ip"])
    end)

    it("sets no X-Forwarded-Prefix when nothing was stripped", function()
      local json = echo(assert(client:get("/nostrip/a")))
      assert.is_nil(json.headers["x-forwarded-prefix"])
    end)

    it("removes hop-by-hop headers", function()
      local json = echo(assert(client:get("/echo/anything", { headers = {
        Connection = "keep-alive, X-Hop", ["X-Hop"] = "1", ["Keep-Alive"] = "timeout=5",
        ["Proxy-Connection"] = "keep-alive",
      } })))
      assert.is_nil(json.headers["x-hop"])
      assert.is_nil(json.headers["keep-alive"])
      assert.is_nil(json.headers["proxy-connection"])
      assert.is_nil(json.headers["upgrade"])
    end)

    it("sends the service's host as Host unless preserve_host", function()
      local json = echo(assert(client:get("/", { headers = { Host = "nopreserve.test" } })))
      assert.equal("127.0.0.1:" .. helpers.mock_upstream_port, json.headers["host"])
      json = echo(assert(client:get("/", { headers = { Host = "preserve.test" } })))
      assert.equal("preserve.test", json.headers["host"])
    end)

    it("sends the same X-Kong-Request-Id to the upstream and the client", function()
      local res = assert(client:get("/echo/anything"))
      local json = echo(res)
      local id = res.headers["x-kong-request-id"]
      assert.matches("^%x+$", id)
      assert.equal(32, #id)
      assert.equal(id, json.headers["x-kong-request-id"])
    end)

    it("sends Via to the upstream", function()
      local json = echo(assert(client:get("/echo/anything")))
      assert.matches("^1%.1 tollgate/%d+%.%d+%.%d+", json.headers["via"])
    end)
  end)

  describe("headers to the client", function()
    it("adds Via and the latency headers on proxied responses and keeps the upstream's Server",
       function()
      local res = assert(client:get("/echo/anything"))
      assert.res_status(200, res)
      assert.matches("1%.1 tollgate/", res.headers["via"])
      assert.equal("tg-echo", res.headers["server"])
      assert.matches("^%d+$", res.headers["x-kong-proxy-latency"])
      assert.matches("^%d+$", res.headers["x-kong-upstream-latency"])
      assert.is_nil(res.headers["x-kong-response-latency"])
    end)

    it("adds Server and X-Kong-Response-Latency on responses it generates", function()
      local res = assert(client:get("/no-such-route"))
      assert.res_status(404, res)
      assert.matches("^tollgate/", res.headers["server"])
      assert.matches("^%d+$", res.headers["x-kong-response-latency"])
      assert.is_nil(res.headers["x-kong-upstream-latency"])
    end)
  end)

  describe("errors", function()
    it("answers 404 in JSON by default when no route matches", function()
      local res = assert(client:get("/no-such-route"))
      local json = cjson.decode(assert.res_status(404, res))
      assert.equal("no Route matched with those values", json.message)
      assert.equal(res.headers["x-kong-request-id"], json.request_id)
      assert.matches("application/json", res.headers["content-type"], 1, true)
    end)

    local formats = {
      { "text/html", "text/html", "<title>Error</title>" },
      { "application/xml", "application/xml", "<message>no Route matched with those values</message>" },
      { "text/plain", "text/plain", "no Route matched with those values" },
      { "text/plain;q=0.5, text/html;q=0.9", "text/html", "<h1>Error</h1>" },
    }
    for _, f in ipairs(formats) do
      it("answers 404 as " .. f[2] .. " for Accept: " .. f[1], function()
        local res = assert(client:get("/no-such-route", { headers = { Accept = f[1] } }))
        local body = assert.res_status(404, res)
        assert.matches(f[2], res.headers["content-type"], 1, true)
        assert.matches(f[3], body, 1, true)
        assert.matches(res.headers["x-kong-request-id"], body, 1, true)
      end)
    end

    it("answers 503 for a route without a service", function()
      local res = assert(client:get("/noservice"))
      local json = cjson.decode(assert.res_status(503, res))
      assert.equal("no Service found with those values", json.message)
    end)

    it("answers 504 when the upstream does not answer within read_timeout", function()
      local res = assert(client:get("/slow/delay/3", { headers = { Accept = "application/json" } }))
      local json = cjson.decode(assert.res_status(504, res))
      assert.equal("The upstream server is timing out", json.message)
    end)

    it("answers 502 when the upstream refuses the connection", function()
      local res = assert(client:get("/refused", { headers = { Accept = "application/json" } }))
      local json = cjson.decode(assert.res_status(502, res))
      assert.equal("An invalid response was received from the upstream server", json.message)
    end)

    it("answers 502 when the upstream closes without answering", function()
      local res = assert(client:get("/echo/close", { headers = { Accept = "application/json" } }))
      assert.res_status(502, res)
    end)
  end)
end)

describe("proxy with trusted_ips = 127.0.0.1 and headers = off", function()
  local client

  lazy_setup(function()
    local bp = helpers.get_db_utils("off")
    local s = bp.services:insert()
    bp.routes:insert { service = s, paths = { "/echo" } }
    assert(helpers.start_kong {
      database = "off", trusted_ips = "127.0.0.1", real_ip_header = "X-Real-IP",
      headers = "off",
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  before_each(function() client = helpers.proxy_client() end)
  after_each(function() client:close() end)

  it("passes X-Forwarded-* through from a trusted peer", function()
    local json = echo(assert(client:get("/echo/anything", { headers = {
      ["X-Forwarded-Proto"] = "https", ["X-Forwarded-Host"] = "front.test",
      ["X-Forwarded-Port"] = "8443", ["X-Forwarded-Path"] = "/orig",
      ["X-Forwarded-Prefix"] = "/pre",
    } })))
    assert.equal("https", json.headers["x-forwarded-proto"])
    assert.equal("front.test", json.headers["x-forwarded-host"])
    assert.equal("8443", json.headers["x-forwarded-port"])
    assert.equal("/orig", json.headers["x-forwarded-path"])
    assert.equal("/pre", json.headers["x-forwarded-prefix"])
  end)

  it("takes the client address from real_ip_header of a trusted peer", function()
    local json = echo(assert(client:get("/echo/anything",
                                        { headers = { ["X-Real-IP"] = "10.0.0.9" } })))
    assert.equal("10.0.0.9", json.headers["x-real-ip"])
  end)

  it("sends no Via, Server or latency headers to the client", function()
    local res = assert(client:get("/echo/anything"))
    assert.res_status(200, res)
    assert.is_nil(res.headers["via"])
    assert.is_nil(res.headers["x-kong-proxy-latency"])
    assert.is_nil(res.headers["x-kong-upstream-latency"])
    res = assert(client:get("/nothing-here"))
    assert.res_status(404, res)
    assert.is_nil(res.headers["server"])
    assert.is_nil(res.headers["x-kong-response-latency"])
  end)

  it("still sends Via and X-Kong-Request-Id to the upstream", function()
    local json = echo(assert(client:get("/echo/anything")))
    assert.truthy(json.headers["via"])
    assert.truthy(json.headers["x-kong-request-id"])
  end)
end)
