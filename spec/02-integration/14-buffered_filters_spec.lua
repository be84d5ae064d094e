-- Buffered proxying without a response phase (kong.service.request
-- .enable_buffering, the body read in header_filter), kong.response.exit from
-- header_filter, body_filter over answers plugins produce, and the phase
-- restrictions of kong.service.response and the body functions
-- (spec/fixtures/custom_plugins/kong/plugins/bf-buffering, bf-rewrite).
local helpers = require "spec.helpers"
local cjson = require "cjson"
local util = require "tollgate.c.util"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local bytes = helpers.mock_bytes

local function get(path, headers)
  local client = helpers.proxy_client(30000)
  local res = assert(client:send { method = "GET", path = path, headers = headers })
  local body = res:read_body()
  client:close()
  return res, body
end

describe("buffered proxying and filters", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "bf-buffering", "bf-rewrite", "tg-exit" })
    local s = bp.services:insert { name = "buf" }
    local function route(path, plugins)
      local r = bp.routes:insert { service = s, paths = { path } }
      for name, config in pairs(plugins) do
        bp.plugins:insert { name = name, route = r, config = config }
      end
    end
    route("/md5", { ["bf-buffering"] = { mode = "md5-header" } })
    route("/modjson", { ["bf-buffering"] = { mode = "modify-json" } })
    route("/hfexit", { ["bf-buffering"] = { mode = "exit", buffering = false },
                       ["bf-rewrite"] = { mode = "observe" } })
    route("/hfexit-buf", { ["bf-buffering"] = { mode = "exit" } })
    route("/nolength", { ["bf-buffering"] = { mode = "clear-length", buffering = false } })
    route("/restr", { ["bf-buffering"] = { mode = "restrictions", buffering = false } })
    route("/aexit", { ["tg-exit"] = { status = 403, message = "no way" },
                      ["bf-rewrite"] = { mode = "accumulate", from = "no way", to = "NO WAY!" } })
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,bf-buffering,bf-rewrite,tg-exit",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  before_each(function()
    helpers.clean_logfile()
  end)

  it("gives header_filter the upstream's body after enable_buffering", function()
    local res, body = get("/md5/bytes/300000")
    assert.equal(200, res.status)
    assert.equal(util.hex(util.md5(bytes(300000))), res.headers["x-body-md5"])
    assert.equal("300000", res.headers["content-length"])
    assert.is_true(body == bytes(300000), "body differs")
  end)

  it("answers kong.response.exit from header_filter with the new body (buffered)", function()
    local res, body = get("/modjson/anything")
    assert.equal(200, res.status)
    assert.equal("yes", res.headers["modified"])
    assert.equal(tostring(#body), res.headers["content-length"])
    local json = cjson.decode(body)
    assert.is_true(json.modified)
    assert.equal("/anything", json.uri)
  end)

  for _, path in ipairs({ "/hfexit/bytes/4000000", "/hfexit/stream/50000",
                          "/hfexit-buf/bytes/1000" }) do
    it("replaces the upstream's answer by an exit in header_filter (" .. path .. ")",
       function()
      local res, body = get(path)
      assert.equal(418, res.status)
      assert.equal("1", res.headers["x-hf"])
      assert.same({ message = "teapot" }, cjson.decode(body))
      assert.equal(tostring(#body), res.headers["content-length"])
      assert.is_nil(res.headers["transfer-encoding"])
      assert.logfile().has.no.line("code after kong.response.exit ran", true)
      -- the upstream's unread rest is dropped with its connection
      local res2, body2 = get("/md5/bytes/10")
      assert.equal(200, res2.status)
      assert.equal(bytes(10), body2)
    end)
  end

  it("runs body_filter once over the body of an exit in header_filter", function()
    local res, body = get("/hfexit/bytes/100")
    assert.logfile().has.line("bf-rewrite log: mode=observe calls=1 bytes=" .. #body ..
                              " eof=yes after_eof=no status=418", true, 10)
    -- the exit skipped the rest of header_filter
    assert.is_nil(res.headers["x-bf-rewrite"])
  end)

  it("runs body_filter over the body of an exit from access", function()
    local res, body = get("/aexit/anything")
    assert.equal(403, res.status)
    assert.equal("1", res.headers["x-exit"])
    assert.same({ message = "NO WAY!" }, cjson.decode(body))
    assert.equal(tostring(#body), res.headers["content-length"])
    assert.logfile().has.line("bf-rewrite log: mode=accumulate calls=1 bytes=20 eof=yes " ..
                              "after_eof=no status=403", true, 10)
  end)

  it("re-frames a body whose Content-Length header_filter cleared", function()
    local res, body = get("/nolength/bytes/3000000")
    assert.equal(200, res.status)
    assert.is_nil(res.headers["content-length"])
    assert.equal("chunked", res.headers["transfer-encoding"])
    assert.is_true(body == bytes(3000000), "body differs")
    local data = helpers.raw_request("GET /nolength/bytes/1000000 HTTP/1.0\r\n" ..
                                     "Host: localhost\r\n\r\n", 30)
    local status, headers, rest = helpers.parse_raw_response(data)
    assert.equal(200, status)
    assert.equal("close", headers["connection"])
    assert.is_true(rest == bytes(1000000), "body differs")
  end)

  it("applies Kong's phase restrictions to kong.service.response and the body functions",
     function()
    local res = get("/restr/bytes/10")
    assert.equal(200, res.status)
    local h = res.headers
    assert.equal("function cannot be called in access phase (only in: response, " ..
                 "header_filter, body_filter, log)", h["x-svc-status-access"])
    assert.equal("function cannot be called in access phase (only in: body_filter)",
                 h["x-raw-body-access"])
    local not_buffered = "service body is only available with buffered proxying " ..
                         "(see: kong.service.request.enable_buffering function)"
    assert.equal(not_buffered, h["x-svc-body-unbuffered"])
    assert.equal(not_buffered, h["x-svc-json-unbuffered"])
    assert.equal("function cannot be called in header_filter phase (only in: body_filter)",
                 h["x-raw-body-hf"])
    assert.equal("function cannot be called in header_filter phase (only in: body_filter)",
                 h["x-set-raw-body-hf"])
    assert.equal("API disabled in the current context", h["x-arg-set-hf"])
    assert.equal("nil", h["x-arg-get-hf"])
    assert.equal("yes", h["x-svc-headers"])
    assert.equal("name must be a string", h["x-svc-header-bad"])
  end)
end)
