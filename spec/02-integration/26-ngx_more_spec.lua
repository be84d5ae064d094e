-- ngx.req functions through a real request that the other specs leave out
-- (read_body, get_body_data, get_body_file, get_post_args, clear_header,
-- set_uri_args, start_time, http_version), ngx.status in header_filter,
-- ngx.update_time, and a request body that spilled to a file read with
-- kong.request.get_raw_body(max_allowed_file_size) as Kong 3.10. The fixture
-- is spec/fixtures/custom_plugins/kong/plugins/ngx-more.
local helpers = require "spec.helpers"
local cjson = require "cjson"
local socket = require "socket"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local function request(op, method, path, headers, body)
  headers = headers or {}
  headers["X-Op"] = op
  local client = helpers.proxy_client()
  local res = assert(client:send { method = method or "GET", path = path or "/ngx",
                                   headers = headers, body = body })
  local rbody = res:read_body()
  client:close()
  return res, rbody
end

local function sha256_hex(s)
  local path = os.tmpname()
  local out = assert(io.open(path, "wb"))
  out:write(s)
  out:close()
  local p = assert(io.popen("openssl dgst -sha256 -r " .. path))
  local line = p:read("*l")
  p:close()
  os.remove(path)
  return line:match("^(%x+)")
end

describe("ngx.req and request bodies", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "ngx-more" })
    local s = bp.services:insert { name = "ngx-svc" }
    local r = bp.routes:insert { service = s, paths = { "/ngx" } }
    bp.plugins:insert { name = "ngx-more", route = r, config = {} }
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,ngx-more",
      lua_package_path = PLUGINS_PATH,
      client_body_buffer_size = "1k",
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong(nil, true)
  end)

  it("a body in memory: get_body_data, no file, get_raw_body whatever the limit", function()
    local body = '{"n":5}'
    local res, rbody = request("body", "POST", "/ngx", { ["Content-Type"] = "application/json" }, body)
    assert.equal(200, res.status, rbody)
    local json = cjson.decode(rbody)
    assert.equal(#body, json.data)
    assert.is_false(json.file)
    assert.equal(#body, json.raw)
    assert.equal(#body, json.any)
    assert.equal(#body, json.small)
    assert.equal(5, json.json_n)
  end)

  it("a body that spilled to a file: get_body_file, and get_raw_body as Kong 3.10", function()
    local body = '{"n":7,"pad":"' .. string.rep("abcdefghij", 500) .. '"}'
    local res, rbody = request("body", "POST", "/ngx", { ["Content-Type"] = "application/json" }, body)
    assert.equal(200, res.status, rbody)
    local json = cjson.decode(rbody)
    local sha = sha256_hex(body)
    assert.equal(cjson.null, json.data)
    assert.is_true(json.file)
    assert.equal(#body, json.file_len)
    assert.equal(sha, json.file_sha)
    -- without a size allowed, Kong's message; with 0, any size is read
    assert.equal(cjson.null, json.raw)
    assert.equal("request body did not fit into client body buffer, consider raising " ..
                 "'client_body_buffer_size'", json.raw_err)
    assert.equal(#body, json.any)
    assert.equal(sha, json.any_sha)
    assert.equal(cjson.null, json.small)
    assert.equal(string.format("request body file too big: %d > 10", #body), json.small_err)
    -- kong.request.get_body with max_allowed_file_size reads the JSON from it
    assert.equal(7, json.json_n)
  end)

  it("the spilled body still reaches the upstream whole", function()
    local body = string.rep("0123456789", 1000)
    local res, rbody = request("none", "POST", "/ngx", { ["Content-Type"] = "text/plain" }, body)
    assert.equal(200, res.status)
    local echo = cjson.decode(rbody)
    assert.equal(#body, echo.body_length)
  end)

  it("get_post_args reads a form body", function()
    local res, rbody = request("body", "POST", "/ngx",
                               { ["Content-Type"] = "application/x-www-form-urlencoded" }, "k=v&z=1")
    assert.equal(200, res.status, rbody)
    assert.equal("v", cjson.decode(rbody).post_args)
  end)

  it("ngx.req.clear_header and set_uri_args (table and string) reach the upstream", function()
    local res, rbody = request("headers_args", "GET", "/ngx/p?old=1", { ["X-Drop"] = "gone" })
    assert.equal(200, res.status)
    local echo = cjson.decode(rbody)
    assert.is_nil(echo.headers["x-drop"])
    assert.equal("a=1&b=x&b=y", echo.query)
    assert.equal("/p?a=1&b=x&b=y", echo.vars.request_uri) -- strip_path

    res, rbody = request("headers_args", "GET", "/ngx/p?old=1", { ["X-Args"] = "string" })
    assert.equal(200, res.status)
    echo = cjson.decode(rbody)
    assert.equal("/p?s=1&t=two", echo.vars.request_uri)
  end)

  it("ngx.req.start_time, ngx.update_time, ngx.now and ngx.req.http_version", function()
    local before = socket.gettime()
    local res, rbody = request("times")
    local after = socket.gettime()
    assert.equal(200, res.status)
    local json = cjson.decode(rbody)
    assert.is_true(json.start >= math.floor(before) - 1 and json.start <= after + 1)
    assert.is_true(json.now >= json.start and json.now >= json.before)
    assert.is_true(json.time >= math.floor(before) - 1 and json.time <= after + 1)
    assert.equal(1.1, json.http_version)
    assert.equal(math.floor(json.start * 1000 + 0.5), json.kong_start)

    -- an HTTP/1.0 request
    local sock = assert(socket.connect(helpers.test_conf.proxy_ip, helpers.test_conf.proxy_port))
    sock:settimeout(10)
    assert(sock:send("GET /ngx HTTP/1.0\r\nHost: x\r\nX-Op: times\r\n\r\n"))
    local all = sock:receive("*a")
    sock:close()
    local jbody = all:match("\r\n\r\n(.*)$")
    assert.equal(1.0, cjson.decode(jbody).http_version)
  end)

  it("ngx.status reads the upstream's status in header_filter and sets the client's", function()
    local res = request("status", "GET", "/ngx/status/201")
    assert.equal(299, res.status)
    assert.equal("201", res.headers["x-was"])
  end)
end)
