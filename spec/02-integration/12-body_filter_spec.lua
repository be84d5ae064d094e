-- body_filter through the real binary: a Kong-style body rewrite with ngx.arg
-- (spec/fixtures/custom_plugins/kong/plugins/bf-rewrite), get_raw_body /
-- set_raw_body, the client's framing chosen again when the body changes,
-- multi-MB bodies, bodiless answers, and a failing body_filter.
local helpers = require "spec.helpers"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local bytes = helpers.mock_bytes

-- what its /stream/N sends (uri: the path it received)
local function stream(n, uri)
  local out = {}
  for i = 0, n - 1 do
    out[#out + 1] = '{"id":' .. i .. ',"uri":"' .. uri .. '"}\n'
  end
  return table.concat(out)
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

-- compares bodies without printing megabytes on a failure
local function same_body(want, got, err)
  assert(got, "no body: " .. tostring(err))
  assert.equal(#want, #got)
  if want ~= got then
    local i = 1
    while want:sub(i, i) == got:sub(i, i) do i = i + 1 end
    error(("bodies differ at byte %d: want %q, got %q"):format(i, want:sub(i, i + 40),
                                                              got:sub(i, i + 40)), 2)
  end
end

-- the log phase's line for one request (the fixture logs what body_filter saw)
local function bf_log(mode)
  local line
  helpers.wait_until(function()
    for l in io.lines(helpers.error_log_path()) do
      local m = l:match("bf%-rewrite log: (mode=" .. mode .. " .*)$")
      if m then
        line = m
      end
    end
    return line ~= nil
  end, 10)
  return line
end

describe("body_filter", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "bf-rewrite" })
    local s = bp.services:insert { name = "bf" }
    local function route(path, config)
      local r = bp.routes:insert { service = s, paths = { path } }
      if config then
        bp.plugins:insert { name = "bf-rewrite", route = r, config = config }
      end
    end
    route("/acc", { mode = "accumulate" })
    route("/acc-keep", { mode = "accumulate", clear_length = false, from = "xyz",
                         to = "<xyz>" })
    route("/upper", { mode = "upper" })
    route("/observe", { mode = "observe", clear_length = false })
    route("/raw", { mode = "raw_body", from = "abc", to = "ABC!" })
    route("/trunc", { mode = "truncate" })
    route("/drop", { mode = "drop" })
    route("/bferr", { mode = "error" })
    route("/plain")
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,bf-rewrite",
      lua_package_path = PLUGINS_PATH,
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  before_each(function()
    helpers.clean_logfile()
  end)

  it("rewrites a body accumulated with ngx.arg, Content-Length cleared in header_filter",
     function()
    local res, body = get("/acc/bytes/1000")
    assert.equal(200, res.status)
    assert.equal("accumulate", res.headers["x-bf-rewrite"])
    assert.equal((bytes(1000):gsub("a", "A")), body)
    -- the whole body came in one turn: its length is known again
    assert.equal(tostring(#body), res.headers["content-length"])
    assert.matches("calls=%d+ bytes=1000 eof=yes after_eof=no status=200", bf_log("accumulate"))
  end)

  it("rewrites a chunked upstream body", function()
    local res, body, err = get("/acc/stream/300")
    assert.equal(200, res.status)
    same_body((stream(300, "/stream/300"):gsub("a", "A")), body, err)
    assert.matches("eof=yes after_eof=no status=200 ctype=application/json",
                   bf_log("accumulate"))
  end)

  it("re-frames a body whose length changed though Content-Length was left", function()
    local res, body, err = get("/acc-keep/bytes/3000000")
    assert.equal(200, res.status)
    same_body((bytes(3000000):gsub("xyz", "<xyz>")), body, err)
    assert.equal("chunked", res.headers["transfer-encoding"])
    assert.is_nil(res.headers["content-length"])
    -- a small one fits in one turn: an exact Content-Length
    res, body = get("/acc-keep/bytes/100")
    assert.equal((bytes(100):gsub("xyz", "<xyz>")), body)
    assert.equal(tostring(#body), res.headers["content-length"])
  end)

  it("ends a re-framed body by closing for an HTTP/1.0 client", function()
    local data, state = helpers.raw_request("GET /acc-keep/bytes/2000000 HTTP/1.0\r\n" ..
                                            "Host: localhost\r\n\r\n", 30)
    assert.equal("closed", state)
    local status, headers, body = helpers.parse_raw_response(data)
    assert.equal(200, status)
    assert.is_nil(headers["content-length"])
    assert.is_nil(headers["transfer-encoding"])
    assert.equal("close", headers["connection"])
    same_body((bytes(2000000):gsub("xyz", "<xyz>")), body)
  end)

  it("passes multi-MB bodies intact, Content-Length and chunked, chunk by chunk", function()
    local res, body, err = get("/upper/bytes/6000000")
    assert.equal(200, res.status)
    same_body(bytes(6000000):upper(), body, err)
    local line = bf_log("upper")
    local calls = tonumber(line:match("calls=(%d+)"))
    assert.is_true(calls > 1, line)
    assert.matches("bytes=6000000 eof=yes after_eof=no", line)

    helpers.clean_logfile()
    res, body, err = get("/upper/stream/60000")
    assert.equal(200, res.status)
    local want = stream(60000, "/stream/60000"):upper()
    assert.is_true(#want > 2000000)
    same_body(want, body, err)
    assert.matches("bytes=" .. #want .. " eof=yes after_eof=no", bf_log("upper"))
  end)

  it("passes an 8 MB body intact through a filter that only reads it", function()
    local res, body, err = get("/observe/bytes/8000000")
    assert.equal(200, res.status)
    same_body(bytes(8000000), body, err)
    assert.matches("bytes=8000000 eof=yes after_eof=no", bf_log("observe"))
  end)

  it("gives the whole body to get_raw_body and sends what set_raw_body sets", function()
    local res, body, err = get("/raw/bytes/500000")
    assert.equal(200, res.status)
    same_body((bytes(500000):gsub("abc", "ABC!")), body, err)
    assert.matches("bytes=500000 eof=yes after_eof=no", bf_log("raw_body"))
  end)

  it("ends the body early when ngx.arg[2] is set, dropping the rest", function()
    local res, body = get("/trunc/bytes/3000000")
    assert.equal(200, res.status)
    assert.equal("abcdefghij", body)
    -- one call: the plugin set eof on the first chunk
    assert.matches("calls=1 .*after_eof=no", bf_log("truncate"))
    -- the connection to the upstream was not reused mid-body: the next one is fine
    res, body = get("/trunc/bytes/30")
    assert.equal("abcdefghij", body)
    res, body = get("/plain/bytes/30")
    assert.equal(bytes(30), body)
  end)

  it("sends nothing of chunks set to empty", function()
    local res, body = get("/drop/bytes/100000")
    assert.equal(200, res.status)
    assert.equal("", body)
  end)

  for _, path in ipairs({ "/observe/bytes/100", "/acc/bytes/100" }) do
    it("runs once with eof and no body for HEAD (" .. path .. ")", function()
      local data = helpers.raw_request("HEAD " .. path .. " HTTP/1.1\r\nHost: localhost\r\n" ..
                                       "Connection: close\r\n\r\n", 10)
      local status, headers, rest = helpers.parse_raw_response(data)
      assert.equal(200, status)
      assert.equal("", rest)
      if path:find("observe") then
        assert.equal("100", headers["content-length"])
      end
      local mode = path:match("^/(%a+)")
      mode = mode == "acc" and "accumulate" or mode
      assert.matches("calls=1 bytes=0 eof=yes after_eof=no", bf_log(mode))
    end)
  end

  for _, code in ipairs({ 204, 304 }) do
    it("runs once with eof and sends no body for a " .. code, function()
      local data = helpers.raw_request("GET /acc/status/" .. code .. " HTTP/1.1\r\n" ..
                                       "Host: localhost\r\nConnection: close\r\n\r\n", 10)
      local status, headers, rest = helpers.parse_raw_response(data)
      assert.equal(code, status)
      assert.is_nil(headers["transfer-encoding"])
      assert.is_nil(headers["content-length"])
      assert.equal("", rest)
      assert.matches("calls=1 bytes=0 eof=yes after_eof=no status=" .. code,
                     bf_log("accumulate"))
    end)
  end

  it("cuts the body when a body_filter fails, still runs log, and serves the next request",
     function()
    local client = helpers.proxy_client(10000)
    local res = client:send { method = "GET", path = "/bferr/bytes/2000000" }
    local body, err
    if res then
      body, err = res:read_body()
    end
    client:close()
    assert.is_true(res == nil or body == nil or #body < 2000000, tostring(err))
    assert.logfile().has.line("%[bf%-rewrite%] body_filter failed: .*body_filter failed on purpose",
                              false, 10)
    assert.matches("calls=1 .* status=200", bf_log("error"))
    local r2, b2 = get("/plain/bytes/10")
    assert.equal(200, r2.status)
    assert.equal(bytes(10), b2)
  end)
end)
