-- Plugin phases that yield: a handler parks on ngx.sleep (access, the global
-- rewrite), the worker serves other requests meanwhile, a client that goes
-- away while its request is parked is dropped cleanly, and yielding APIs are
-- refused where OpenResty refuses them.
local helpers = require "spec.helpers"
local cjson = require "cjson"
local socket = require "socket"

local PLUGINS_PATH = helpers.custom_plugins_path

local get = helpers.proxy_get

-- a raw connection that sent a request and has not read the answer
local function send_raw(path)
  local s = assert(socket.tcp())
  s:settimeout(10)
  assert(s:connect(helpers.test_conf.proxy_ip, helpers.test_conf.proxy_port))
  assert(s:send("GET " .. path .. " HTTP/1.1\r\nHost: test\r\n\r\n"))
  return s
end

describe("non-blocking plugin phases", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "y-sleep", "y-response" })
    local s = bp.services:insert { name = "s1" }
    local resp = bp.routes:insert { service = s, paths = { "/response" } }
    bp.plugins:insert { name = "y-response", route = resp,
                        config = { port = helpers.mock_upstream_port } }
    local sleep = bp.routes:insert { service = s, paths = { "/sleep" } }
    local long = bp.routes:insert { service = s, paths = { "/long" } }
    local exit = bp.routes:insert { service = s, paths = { "/sleep-exit" } }
    bp.routes:insert { service = s, paths = { "/plain" } }
    bp.plugins:insert { name = "y-sleep", route = sleep,
                        config = { seconds = 0.1, sleep_in_header_filter = true } }
    bp.plugins:insert { name = "y-sleep", route = long, config = { seconds = 2 } }
    bp.plugins:insert { name = "y-sleep", route = exit, config = { seconds = 0.05, exit_after = true } }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,y-sleep,y-response",
      lua_package_path = PLUGINS_PATH,
      worker_threads = 1,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("ngx.sleep in access parks the request, which then goes on to the upstream", function()
    local res, body = get("/sleep/anything")
    assert.equal(200, res.status)
    -- set after the sleep, from the same request
    assert.equal("/sleep/anything", cjson.decode(body).headers["x-slept"])
    assert.is_not_nil(res.headers["x-woke"])
  end)

  it("kong.response.exit after a sleep answers with the exit", function()
    local res, body = get("/sleep-exit")
    assert.equal(201, res.status)
    assert.same({ slept = 0.05 }, cjson.decode(body))
  end)

  it("the response phase parks (sleep, resty.http, a light thread) and then answers", function()
    local res, body = get("/response/anything")
    assert.equal(200, res.status)
    local j = cjson.decode(body)
    assert.equal(200, j.upstream_status)
    assert.is_true(j.upstream_len > 0)
    assert.equal(200, j.side_status)
    assert.equal("thread", j.thread)
  end)

  it("refuses ngx.sleep and cosockets in header_filter as OpenResty does", function()
    local res = get("/sleep/anything")
    assert.equal("API disabled in the context of header_filter_by_lua*",
                 res.headers["x-header-filter-sleep"]:match("API disabled.*$"))
    assert.equal("API disabled in the context of header_filter_by_lua*",
                 res.headers["x-header-filter-connect"]:match("API disabled.*$"))
  end)

  it("serves other requests while one is parked (one worker)", function()
    local parked = send_raw("/long/anything")
    -- the parked request has no answer yet when the plain one is done
    local res = get("/plain/anything")
    assert.equal(200, res.status)
    local res2 = get("/sleep/anything")
    assert.equal(200, res2.status)
    parked:settimeout(0)
    local data, err = parked:receive(1)
    assert.is_nil(data)
    assert.equal("timeout", err)
    -- and then it comes
    parked:settimeout(10)
    local line = assert(parked:receive("*l"))
    assert.equal("HTTP/1.1 200 OK", line)
    parked:close()
  end)

  it("drops a request whose client left while it was parked, and keeps serving", function()
    for _ = 1, 5 do
      local s = send_raw("/long/anything")
      s:close()
    end
    local s = send_raw("/long/anything")
    s:shutdown("send") -- a half-close counts as gone, as lua_check_client_abort
    s:close()
    helpers.wait_until(function()
      local res = get("/plain/anything")
      return res.status == 200
    end, 10)
    -- the dropped requests never reach the upstream: their plugin never woke
    -- (x-woke keeps counting from where the completed requests left it)
    local before = tonumber(get("/sleep/anything").headers["x-woke"])
    local after = tonumber(get("/sleep/anything").headers["x-woke"])
    assert.equal(before + 1, after)
    assert.logfile().has.no.line("[error]", true)
  end)
end)

describe("non-blocking global rewrite", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "y-sleep" })
    local s = bp.services:insert { name = "s1" }
    bp.routes:insert { service = s, paths = { "/r" } }
    bp.plugins:insert { name = "y-sleep", config = { rewrite_seconds = 0.05, seconds = 0.01 } }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,y-sleep",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("ngx.sleep in rewrite parks before routing, then routes and runs access", function()
    local res, body = get("/r/anything")
    assert.equal(200, res.status)
    local h = cjson.decode(body).headers
    assert.equal("yes", h["x-rewrite-slept"])
    assert.equal("/r/anything", h["x-slept"])
  end)

  it("a request that matches no route after a parked rewrite gets Kong's 404", function()
    local res, body = get("/nothing-here")
    assert.equal(404, res.status)
    assert.equal("no Route matched with those values", cjson.decode(body).message)
  end)
end)
