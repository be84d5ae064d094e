-- The response phase (buffered proxying) through the real binary: a plugin
-- implementing `response` makes Kong read the upstream's whole answer first;
-- kong.service.response's getters see it, kong.response.exit replaces it
-- (spec/fixtures/custom_plugins/kong/plugins/bf-response).
local helpers = require "spec.helpers"
local cjson = require "cjson"
local util = require "tollgate.c.util"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local bytes = helpers.mock_bytes

local function md5_hex(s)
  return util.hex(util.md5(s))
end

local function request(method, path, headers)
  local client = helpers.proxy_client(30000)
  local res = assert(client:send { method = method, path = path, headers = headers })
  local body, err = res:read_body()
  client:close()
  return res, body, err
end

local function get(path, headers)
  return request("GET", path, headers)
end

describe("response phase", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "bf-response", "bf-rewrite" })
    local s = bp.services:insert { name = "resp" }
    local function route(path, config, extra)
      local r = bp.routes:insert { service = s, paths = { path } }
      bp.plugins:insert { name = "bf-response", route = r, config = config }
      if extra then
        bp.plugins:insert { name = "bf-rewrite", route = r, config = extra }
      end
    end
    route("/getters", { mode = "getters" })
    route("/modify", { mode = "modify-json" })
    route("/setbody", { mode = "set-body" })
    route("/empty", { mode = "exit-empty" })
    route("/resperr", { mode = "error" })
    route("/filtered", { mode = "getters" }, { mode = "upper", clear_length = false })
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,bf-response,bf-rewrite",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  before_each(function()
    helpers.clean_logfile()
  end)

  it("runs after the whole upstream answer with kong.service.response's getters", function()
    local res, body = get("/getters/bytes/1000")
    assert.equal(200, res.status)
    assert.equal(bytes(1000), body)
    assert.equal("1000", res.headers["content-length"])
    assert.equal("200", res.headers["x-svc-status"])
    assert.equal("application/octet-stream", res.headers["x-svc-ctype"])
    assert.equal("yes", res.headers["x-svc-echo"])
    assert.equal("1000", res.headers["x-svc-body-len"])
    assert.equal(md5_hex(bytes(1000)), res.headers["x-svc-body-md5"])
    assert.equal("200", res.headers["x-resp-status"])
    assert.equal("service", res.headers["x-resp-source"])
    assert.logfile().has.line("bf-response log: mode=getters status=200 svc_status=200 " ..
                              "body_len=1000", true, 10)
  end)

  it("buffers a chunked upstream body and answers with its length", function()
    local res, body = get("/getters/stream/2000")
    assert.equal(200, res.status)
    assert.is_nil(res.headers["transfer-encoding"])
    assert.equal(tostring(#body), res.headers["content-length"])
    assert.equal(tostring(#body), res.headers["x-svc-body-len"])
    assert.equal(md5_hex(body), res.headers["x-svc-body-md5"])
    local lines = 0
    for _ in body:gmatch("[^\n]+") do lines = lines + 1 end
    assert.equal(2000, lines)
  end)

  it("buffers a multi-MB body intact", function()
    local res, body = get("/getters/bytes/5000000")
    assert.equal(200, res.status)
    assert.equal("5000000", res.headers["content-length"])
    assert.equal("5000000", res.headers["x-svc-body-len"])
    assert.is_true(body == bytes(5000000), "body differs")
  end)

  it("passes the upstream's status and headers to the getters, and through", function()
    local res = get("/getters/status/404")
    assert.equal(404, res.status)
    assert.equal("404", res.headers["x-svc-status"])
    assert.equal("404", res.headers["x-resp-status"])
    res = get("/getters/response-headers?X-Foo=bar")
    assert.equal("bar", res.headers["x-foo"])
  end)

  it("keeps the upstream's Content-Length for HEAD, with no body", function()
    local data = helpers.raw_request("HEAD /getters/bytes/100 HTTP/1.1\r\nHost: localhost\r\n" ..
                                     "Connection: close\r\n\r\n", 10)
    local status, headers, rest = helpers.parse_raw_response(data)
    assert.equal(200, status)
    assert.equal("100", headers["content-length"])
    assert.equal("0", headers["x-svc-body-len"])
    assert.equal("", rest)
  end)

  it("answers with kong.response.exit from response: status, body, upstream headers",
     function()
    local res, body = get("/modify/anything")
    assert.equal(200, res.status)
    assert.equal("yes", res.headers["modified"])
    assert.matches("application/json", res.headers["content-type"], 1, true)
    assert.truthy(res.headers["x-echo-server-port"])
    assert.equal(tostring(#body), res.headers["content-length"])
    local json = cjson.decode(body)
    assert.is_true(json.modified)
    assert.equal("/anything", json.uri)
  end)

  it("ends the response handler at kong.response.exit", function()
    local res, body = get("/setbody/bytes/300")
    assert.equal(201, res.status)
    assert.equal("replaced:300", body)
    assert.equal("1", res.headers["x-set-body"])
    assert.logfile().has.line("bf-response log: mode=set-body status=201", true, 10)
    assert.logfile().has.no.line("code after kong.response.exit ran", true)
  end)

  it("answers an exit without a body", function()
    local res, body = get("/empty/bytes/300")
    assert.equal(204, res.status)
    assert.equal("", body or "")
  end)

  it("runs body_filter of the route's other plugins over the buffered body", function()
    local res, body = get("/filtered/bytes/100000")
    assert.equal(200, res.status)
    assert.is_true(body == bytes(100000):upper(), "body differs")
    assert.equal("100000", res.headers["content-length"])
    assert.equal(md5_hex(bytes(100000)), res.headers["x-svc-body-md5"])
    assert.logfile().has.line("bf-rewrite log: mode=upper calls=1 bytes=100000 eof=yes", true,
                              10)
  end)

  it("answers a failing response phase through the error handler, still runs log", function()
    local res, body = get("/resperr/bytes/10")
    assert.equal(500, res.status)
    assert.matches("An unexpected error occurred", body, 1, true)
    assert.matches("request_id: " .. res.headers["x-kong-request-id"], body, 1, true)
    assert.logfile().has.line("%[bf%-response%] response failed: .*response phase failed on " ..
                              "purpose", false, 10)
    assert.logfile().has.line("bf-response log: mode=error status=500", true, 10)
    res = get("/getters/bytes/10")
    assert.equal(200, res.status)
  end)
end)
