-- Cosockets and resty.http from a plugin's access phase, through the binary:
-- receive modes, receiveuntil, keepalive pools (getreusedtimes), timeouts,
-- refused connections, and a resty.http call to a local server.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local PLUGINS_PATH = helpers.custom_plugins_path

local get = helpers.proxy_get

describe("cosockets in access", function()
  local port = helpers.mock_upstream_port

  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "y-cosocket", "y-http" })
    local s = bp.services:insert { name = "s1" }
    local function route(path, name, config)
      local r = bp.routes:insert { service = s, paths = { path } }
      bp.plugins:insert { name = name, route = r, config = config }
    end
    route("/receive", "y-cosocket", { port = port, mode = "receive" })
    route("/until", "y-cosocket", { port = port, mode = "until-size" })
    route("/keepalive", "y-cosocket", { port = port, mode = "keepalive" })
    route("/timeout", "y-cosocket", { port = port, mode = "timeout", read_timeout = 200 })
    route("/refused", "y-cosocket", { port = port, mode = "refused",
                                      closed_port = helpers.test_conf.proxy_port + 99 })
    route("/http", "y-http", { port = port, mode = "request_uri" })
    route("/http-keepalive", "y-http", { port = port, mode = "keepalive" })
    route("/http-stream", "y-http", { port = port, mode = "stream" })
    route("/http-timeout", "y-http", { port = port, mode = "timeout", timeout = 200 })
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,y-cosocket,y-http",
      lua_package_path = PLUGINS_PATH,
      worker_threads = 1,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("receive by line, by size and *a; send of an array table", function()
    local res, body = get("/receive")
    assert.equal(200, res.status)
    local j = cjson.decode(body)
    assert.equal("HTTP/1.1 200 OK", j.status)
    assert.is_true(j.body_len > 10)
    assert.equal(3000, j.all_tail_len)
    assert.equal("closed", j.after_close)
  end)

  it("receiveuntil with a size gives pieces, then nil at the pattern; inclusive keeps it", function()
    local res, body = get("/until")
    assert.equal(200, res.status)
    local j = cjson.decode(body)
    assert.same({ "HTTP", "/1.1", " 200", " OK" }, j.pieces)
    assert.equal("Server: tg-echo\r\n", j.inclusive)
  end)

  it("setkeepalive pools the connection: getreusedtimes counts its reuses", function()
    local seen = {}
    for i = 1, 3 do
      local res, body = get("/keepalive")
      assert.equal(200, res.status)
      local j = cjson.decode(body)
      assert.equal("HTTP/1.1 200 OK", j.status)
      assert.equal(1, j.keepalive)
      assert.equal("closed", j.after_keepalive)
      seen[i] = j.reused
    end
    assert.same({ 0, 1, 2 }, seen)
  end)

  it("a read timeout answers nil, 'timeout'", function()
    local res, body = get("/timeout")
    assert.equal(200, res.status)
    local j = cjson.decode(body)
    assert.equal("timeout", j.err)
    assert.equal("", j.partial)
    assert.equal(1, j.close)
  end)

  it("refused connections and unknown names fail with OpenResty's messages", function()
    local res, body = get("/refused")
    assert.equal(200, res.status)
    local j = cjson.decode(body)
    assert.equal("connection refused", j.err)
    assert.equal("no-such-host.invalid could not be resolved (3: Host not found)", j.name_err)
    assert.equal("closed", j.unconnected)
  end)

  it("resty.http request_uri from access reaches a local server", function()
    local res, body = get("/http/anything")
    assert.equal(200, res.status)
    local h = cjson.decode(body).headers
    assert.equal("200", h["x-side-status"])
    assert.equal("hello side", h["x-side-body"])
    assert.equal("from=y-http", h["x-side-query"])
    assert.equal("y-http", h["x-side-header"])
    assert.equal("application/json", res.headers["x-side-content-type"])
  end)

  it("resty.http keeps connections alive across requests", function()
    -- the pool (127.0.0.1:port) may hold request_uri's connection already
    local reused = {}
    for i = 1, 3 do
      local res = get("/http-keepalive/anything")
      assert.equal(200, res.status)
      reused[i] = tonumber(res.headers["x-side-reused"])
      assert.is_true(tonumber(res.headers["x-side-length"]) > 0)
    end
    assert.same({ reused[1], reused[1] + 1, reused[1] + 2 }, reused)
  end)

  it("resty.http streams a chunked body with body_reader", function()
    local res, body = get("/http-stream")
    assert.equal(200, res.status)
    local j = cjson.decode(body)
    assert.equal("chunked", j.chunked)
    assert.is_true(j.chunks >= 1)
    assert.is_true(j.bytes > 0)
  end)

  it("resty.http times out", function()
    local res, body = get("/http-timeout")
    assert.equal(504, res.status)
    assert.equal("timeout", cjson.decode(body).message)
  end)
end)
