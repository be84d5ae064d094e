-- Hostile and malformed input (DESIGN.md, "The hot path"): every malformed or
-- ambiguous request is answered 4xx, the connection is closed, and nothing
-- reaches the upstream.
local helpers = require "spec.helpers"

local CRLF = "\r\n"

-- Sends raw bytes, expects `status` (or any 4xx when nil), a closed connection
-- and an untouched upstream. Returns the response body.
local function refused(data, status, timeout, pause)
  assert(helpers.mock_upstream_reset())
  local out, state = helpers.raw_request(data, timeout or 5, nil, pause)
  local got, _, body = helpers.parse_raw_response(out or "")
  if status then
    assert.equal(status, got, "response was: " .. tostring(out))
  else
    assert.truthy(got and got >= 400 and got < 500, "response was: " .. tostring(out))
  end
  assert.equal("closed", state, "the connection was left open")
  assert.equal(0, helpers.mock_upstream_count(), "the upstream received the request")
  return body
end

describe("hostile input", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off")
    local s = bp.services:insert()
    bp.routes:insert { service = s, paths = { "/" } }
    bp.routes:insert { service = s, paths = { "/streaming" }, request_buffering = false }
    assert(helpers.start_kong {
      database = "off",
      nginx_http_client_max_body_size = "1k",
      nginx_http_client_header_timeout = "1s",
      nginx_http_client_body_timeout = "1s",
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("forwards a well-formed request (the upstream counter works)", function()
    assert(helpers.mock_upstream_reset())
    local out = helpers.raw_request("GET /anything HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.equal(200, (helpers.parse_raw_response(out)))
    assert.equal(1, helpers.mock_upstream_count())
  end)

  local cases = {
    { "bare LF line endings", "GET / HTTP/1.1\nHost: x\n\n" },
    { "a bare LF inside the head", "GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n" },
    { "obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n" },
    { "Content-Length with Transfer-Encoding",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "0\r\n\r\n" },
    { "two different Content-Length headers",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" },
    { "two equal Content-Length headers",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello" },
    { "a Content-Length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello" },
    { "a signed Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello" },
    { "a non-numeric Content-Length",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5a\r\n\r\nhello" },
    { "a Transfer-Encoding whose last coding is not chunked",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" },
    { "an unknown Transfer-Encoding",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nhello" },
    { "a bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "zz\r\nhello\r\n0\r\n\r\n" },
    { "an overflowing chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
      .. "\r\nfffffffffffffffffffff\r\nhello\r\n0\r\n\r\n" },
    { "chunk data not followed by CRLF",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n" },
    { "a chunk size line ending in bare LF",
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n" },
    { "a control character in a header value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\1b\r\n\r\n" },
    { "a NUL in a header value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n" },
    { "a space in a header name", "GET / HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n" },
    { "whitespace before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n" },
    { "a header line without a colon", "GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n" },
    { "an invalid method token", "G@T / HTTP/1.1\r\nHost: x\r\n\r\n" },
    { "a space in the target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n" },
    { "a control character in the target", "GET /a\1b HTTP/1.1\r\nHost: x\r\n\r\n" },
    { "a tab in the target", "GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n" },
    { "a malformed version", "GET / HTTX/1.1\r\nHost: x\r\n\r\n" },
    { "an HTTP/1.1 request without Host", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n" },
    { "two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" },
  }

  for _, case in ipairs(cases) do
    it("refuses " .. case[1] .. " with 400", function()
      refused(case[2], 400)
    end)
  end

  it("cuts a streamed (request_buffering = false) body that turns out malformed", function()
    assert(helpers.mock_upstream_reset())
    local out, state = helpers.raw_request({
      "POST /streaming/anything HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "5\r\nhello\r\n", "zz\r\nbad\r\n0\r\n\r\n" }, 5, nil, 0.3)
    assert.equal("closed", state)
    local status = helpers.parse_raw_response(out or "")
    if status then assert.truthy(status >= 400, "answered " .. status) end
    assert.equal(0, helpers.mock_upstream_count())
  end)

  it("answers 414 to an oversized request line", function()
    refused("GET /" .. string.rep("a", 20000) .. " HTTP/1.1\r\nHost: x\r\n\r\n", 414)
  end)

  it("answers 400 'Request header or cookie too large' to oversized headers", function()
    local head = { "GET / HTTP/1.1", "Host: x" }
    for i = 1, 12 do head[#head + 1] = "X-Big-" .. i .. ": " .. string.rep("b", 6000) end
    local body = refused(table.concat(head, CRLF) .. CRLF .. CRLF, 400)
    assert.matches("Request header or cookie too large", body, 1, true)
  end)

  it("answers 400 to a single header line over the buffer size", function()
    local body = refused("GET / HTTP/1.1\r\nHost: x\r\nCookie: " .. string.rep("c", 20000)
                         .. "\r\n\r\n", 400)
    assert.matches("Request header or cookie too large", body, 1, true)
  end)

  it("answers 413 to a Content-Length over client_max_body_size", function()
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n" .. string.rep("p", 2048),
            413)
  end)

  it("answers 413 to a chunked body growing over client_max_body_size", function()
    local chunk = string.format("%x\r\n%s\r\n", 1500, string.rep("q", 1500))
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" .. chunk
            .. "0\r\n\r\n", 413)
  end)

  it("closes a connection whose head does not arrive within client_header_timeout", function()
    assert(helpers.mock_upstream_reset())
    local t0 = require("socket").gettime()
    local out, state = helpers.raw_request("GET / HTTP/1.1\r\nHost: x\r\n", 6)
    assert.equal("closed", state)
    assert.truthy(require("socket").gettime() - t0 < 5)
    local status = helpers.parse_raw_response(out or "")
    assert.is_not.equal(200, status)
    assert.equal(0, helpers.mock_upstream_count())
  end)

  it("closes a connection whose body stalls past client_body_timeout", function()
    assert(helpers.mock_upstream_reset())
    local out, state = helpers.raw_request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                                           .. "\r\nabc", 6)
    assert.equal("closed", state)
    local status = helpers.parse_raw_response(out or "")
    assert.is_not.equal(200, status)
    assert.equal(0, helpers.mock_upstream_count())
  end)

  it("keeps serving after hostile input", function()
    local client = helpers.proxy_client()
    assert.res_status(200, assert(client:get("/anything")))
    client:close()
  end)
end)
