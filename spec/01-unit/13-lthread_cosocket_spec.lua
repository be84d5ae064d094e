-- `tollgate busted` runs specs on an event loop: ngx.sleep, timers, light
-- threads, semaphores, cosockets (plain and TLS) and resty.http work in a
-- spec as they do in a handler. Servers: the mock upstream, and
-- `openssl s_server` for TLS.
local helpers = require "spec.helpers"
local shim = require "tollgate.ngx_shim"
local cjson = require "cjson"

local ngx = shim.install()
local http = require "resty.http"
local semaphore = require "ngx.semaphore"

local MOCK = helpers.mock_upstream_port

describe("event loop in specs", function()
  lazy_setup(function()
    assert(helpers.start_mock_upstream())
  end)

  lazy_teardown(function()
    helpers.stop_mock_upstream()
  end)

  it("ngx.sleep waits and lets timers run meanwhile", function()
    local ran = {}
    assert(ngx.timer.at(0, function(premature, a, b)
      ran[#ran + 1] = { premature, a, b }
    end, "x", 2))
    assert.equal(1, ngx.timer.pending_count())
    assert.same({}, ran)
    ngx.sleep(0.01)
    assert.same({ { false, "x", 2 } }, ran)
    assert.equal(0, ngx.timer.pending_count())
  end)

  it("ngx.timer.every repeats; a timer may sleep", function()
    local n = 0
    assert(ngx.timer.every(0.005, function()
      ngx.sleep(0.001)
      n = n + 1
    end))
    local deadline = ngx.now() + 5
    while n < 3 and ngx.now() < deadline do
      ngx.sleep(0.005)
    end
    assert.is_true(n >= 3)
    assert.has_error(function() ngx.timer.every(0, function() end) end,
                     "bad argument #1 to 'every' (delay must be greater than 0)")
  end)

  it("ngx.thread.spawn / wait / kill and ngx.semaphore", function()
    local sema = semaphore.new(0)
    local t = ngx.thread.spawn(function(v)
      local ok, err = sema:wait(2)
      return ok, err, v
    end, "v")
    assert.equal(-1, sema:count())
    sema:post()
    assert.same({ true, true, nil, "v" }, { ngx.thread.wait(t) })
    local k = ngx.thread.spawn(function() ngx.sleep(10) end)
    assert.is_true(ngx.thread.kill(k))
    assert.same({ nil, "already waited or killed" }, { ngx.thread.kill(k) })
    assert.same({ nil, "timeout" }, { sema:wait(0.001) })
  end)

  it("coroutine.wrap passes the loop's yields through", function()
    local gen = coroutine.wrap(function()
      for i = 1, 3 do
        ngx.sleep(0.001)
        coroutine.yield(i)
      end
    end)
    assert.same({ 1, 2, 3 }, { gen(), gen(), gen() })
  end)

  describe("ngx.socket.tcp", function()
    local function connect()
      local s = ngx.socket.tcp()
      s:settimeouts(1000, 1000, 1000)
      assert(s:connect("127.0.0.1", MOCK))
      return s
    end

    it("receives by line, size, pattern, any and all", function()
      local s = connect()
      local req = "GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n"
      assert.equal(#req, s:send(req))
      assert.equal("HTTP/1.1 200 OK", s:receive())
      local head = s:receiveuntil("\r\n\r\n")
      assert.matches("Content%-Length: 10", head())
      assert.equal("ababcdefgh", s:receive(8, "ab")) -- the prefix, then 8 bytes
      assert.equal(2, #s:receiveany(100))
      -- "*a" ends at the peer's close
      assert(s:send({ "GET /anything HTTP/1.1\r\n", { "Host: x\r\n", "Connection: close\r\n" },
                      "\r\n" }))
      local all = assert(s:receive("*a"))
      assert.matches("^HTTP/1.1 200 OK\r\n", all)
      assert.same({ nil, "closed", "" }, { s:receive() })
      assert.same({ nil, "closed" }, { s:close() })
    end)

    it("reads large bodies by size and to the close", function()
      local s = connect()
      assert(s:send("GET /bytes/4000000 HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert(s:receiveuntil("\r\n\r\n")())
      local body = assert(s:receive(4000000))
      assert.equal(4000000, #body)
      assert.equal("abcdefgh", body:sub(1, 8))
      assert(s:send("GET /bytes/3000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
      local all = assert(s:receive("*a"))
      assert.equal(3000000, #all:match("\r\n\r\n(.*)$"))
      s:close()
    end)

    it("a read timeout leaves the socket usable", function()
      local s = connect()
      s:settimeout(50)
      assert(s:send("GET /delay/0.3 HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert.same({ nil, "timeout", "" }, { s:receive() })
      s:settimeout(2000)
      assert.equal("HTTP/1.1 200 OK", s:receive())
      s:close()
    end)

    it("pools connections per host:port and pool name", function()
      local s = connect()
      assert.equal(0, s:getreusedtimes())
      assert.equal(1, s:setkeepalive(1000, 4))
      assert.same({ nil, "closed" }, { s:getreusedtimes() })
      local s2 = connect()
      assert.equal(1, s2:getreusedtimes())
      s2:close()
      local s3 = connect()
      assert.equal(0, s3:getreusedtimes())
      -- unread data refuses the pool
      assert(s3:send("GET /anything HTTP/1.1\r\nHost: x\r\n\r\n"))
      assert(s3:receive())
      assert.same({ nil, "unread data in buffer" }, { s3:setkeepalive() })
      local named = ngx.socket.tcp()
      assert(named:connect("127.0.0.1", MOCK, { pool = "mine" }))
      named:setkeepalive()
      local other = connect()
      assert.equal(0, other:getreusedtimes())
      other:close()
    end)

    it("refuses what OpenResty refuses", function()
      local s = ngx.socket.tcp()
      assert.same({ nil, "closed" }, { s:send("x") })
      assert.same({ nil, "bad port number: 70000" }, { s:connect("127.0.0.1", 70000) })
      assert(s:connect("127.0.0.1", MOCK))
      assert.has_error(function() s:send(function() end) end,
        "bad argument #1 to 'send' (string, number, boolean, nil, or array table expected, got function)")
      s:close()
      assert.same({ nil, "pattern is empty" }, { s:receiveuntil("") })
    end)
  end)

  describe("resty.http", function()
    it("resty.http_headers: names in any case", function()
      local h = require("resty.http_headers").new()
      h["Content-Type"] = "text/plain"
      assert.equal("text/plain", h["content-type"])
      h["CONTENT-TYPE"] = "application/json"
      assert.equal("application/json", h["Content-Type"])
      local n = 0
      for _ in pairs(h) do n = n + 1 end
      assert.equal(1, n)
    end)

    it("parse_uri", function()
      local h = http.new()
      assert.same({ "http", "example.com", 80, "/a/b?x=1" }, h:parse_uri("http://example.com/a/b?x=1"))
      assert.same({ "https", "[::1]", 8443, "/", "q=2" }, h:parse_uri("https://u:p@[::1]:8443?q=2", false))
      assert.same({ nil, "bad uri: ftp://x" }, { h:parse_uri("ftp://x") })
    end)

    it("request with a query table and a chunked body; HEAD has no body", function()
      local h = http.new()
      assert(h:connect("127.0.0.1", MOCK))
      local parts = { "a", "bb", "ccc" }
      local i = 0
      local res = assert(h:request {
        method = "POST", path = "/anything", query = { x = "1 2" },
        body = function() i = i + 1 return parts[i] end,
      })
      assert.equal(200, res.status)
      assert.is_true(res.has_body)
      local body = res:read_body()
      local j = cjson.decode(body)
      assert.equal("abbccc", j.body)
      assert.equal("x=1%202", j.query)
      assert.equal("chunked", j.headers["transfer-encoding"])
      res = assert(h:request { method = "HEAD", path = "/anything" })
      assert.is_false(res.has_body)
      assert.equal("application/json", res.headers["CONTENT-TYPE"])
      assert.equal(1, h:set_keepalive())
    end)

    it("set_keepalive answers 2 when the server closes", function()
      local h = http.new()
      assert(h:connect("127.0.0.1", MOCK))
      local res = assert(h:request { path = "/anything", headers = { Connection = "close" } })
      assert(res:read_body())
      assert.same({ 2, "connection must be closed" }, { h:set_keepalive() })
    end)

    it("request_uri reports connection errors", function()
      local res, err = http.new():request_uri("http://127.0.0.1:1/")
      assert.is_nil(res)
      assert.equal("connection refused", err)
    end)
  end)

  describe("TLS", function()
    local dir = os.tmpname() .. ".d"
    local port = MOCK + 5
    local pid

    lazy_setup(function()
      assert(os.execute("mkdir -p " .. dir))
      assert(os.execute("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                        .. "-nodes -days 1 -subj /CN=localhost -keyout " .. dir .. "/k.pem -out "
                        .. dir .. "/c.pem >/dev/null 2>&1"))
      -- a port of the range can be taken (an ephemeral source port): try three
      local log = ""
      for p = MOCK + 5, MOCK + 7 do
        port = p
        local f = io.popen("openssl s_server -quiet -accept 127.0.0.1:" .. port .. " -cert "
                           .. dir .. "/c.pem -key " .. dir .. "/k.pem -www >" .. dir
                           .. "/s.log 2>&1 & echo $!")
        pid = f:read("*l")
        f:close()
        if pcall(helpers.wait_for_port, port, 5) then
          return
        end
        os.execute("kill " .. pid .. " 2>/dev/null")
        pid = nil
        local l = io.open(dir .. "/s.log")
        log = log .. (l and l:read("*a") or "")
      end
      error("openssl s_server did not start: " .. log)
    end)

    lazy_teardown(function()
      if pid then os.execute("kill " .. pid) end
      os.execute("rm -rf " .. dir)
    end)

    it("sslhandshake without verification, then HTTP over TLS", function()
      local s = ngx.socket.tcp()
      s:settimeout(10000) -- generous: the machine may be loaded
      assert(s:connect("127.0.0.1", port))
      assert.is_true(s:sslhandshake(nil, "localhost", false))
      assert(s:send("GET / HTTP/1.0\r\n\r\n"))
      assert.matches("^HTTP/1.0 200", s:receive())
      s:close()
    end)

    it("verification fails on a self-signed certificate", function()
      local s = ngx.socket.tcp()
      s:settimeout(10000)
      assert(s:connect("127.0.0.1", port))
      local ok, err = s:sslhandshake(nil, "localhost", true)
      assert.is_nil(ok)
      assert.matches("certificate verify failed", err, 1, true)
    end)

    it("resty.http over https", function()
      local res, err = http.new():request_uri("https://127.0.0.1:" .. port .. "/",
                                               { ssl_verify = false })
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.matches("s_server", res.body, 1, true)
    end)
  end)
end)
