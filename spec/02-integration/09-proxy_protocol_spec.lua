-- The proxy_protocol listen flag (PROXY protocol v1 and v2): the header is
-- required on such a listener, and the address it carries becomes the client
-- address only as nginx's realip module makes it: real_ip_header =
-- proxy_protocol, from a peer in trusted_ips.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local CRLF = "\r\n"
local REQ = "GET /pp/anything HTTP/1.1" .. CRLF .. "Host: pp.test" .. CRLF ..
            "Connection: close" .. CRLF .. CRLF

local function v1(src)
  return "PROXY TCP4 " .. src .. " 127.0.0.1 56324 9000" .. CRLF
end

-- A v2 header: signature, version 2 / PROXY, AF_INET over STREAM, 12 bytes.
local function v2(a, b, c, d)
  return "\r\n\r\n\0\r\nQUIT\n" .. string.char(0x21, 0x11, 0, 12, a, b, c, d, 127, 0, 0, 1,
                                                0xDC, 0x04, 0x23, 0x28)
end

local function echoed(data)
  local out = helpers.raw_request(data, 5)
  local status, _, body = helpers.parse_raw_response(out or "")
  return status, body and body ~= "" and cjson.decode(body) or nil
end

for _, trusted in ipairs { true, false } do
  describe("proxy_protocol listener, peer " .. (trusted and "trusted" or "not trusted"), function()
    lazy_setup(function()
      local bp = helpers.get_db_utils("off")
      local s = bp.services:insert()
      bp.routes:insert { service = s, paths = { "/pp" } }
      assert(helpers.start_kong {
        database = "off",
        proxy_listen = helpers.test_conf.proxy_listen .. " proxy_protocol",
        real_ip_header = "proxy_protocol",
        trusted_ips = trusted and "127.0.0.1" or "10.255.255.255",
      })
    end)

    lazy_teardown(function()
      helpers.stop_kong()
    end)

    it("reads a v1 header " .. (trusted and "and takes its address" or "and keeps the peer's"),
       function()
      local status, json = echoed(v1("192.0.2.7") .. REQ)
      assert.equal(200, status)
      local want = trusted and "192.0.2.7" or "127.0.0.1"
      assert.equal(want, json.headers["x-real-ip"])
      assert.equal(want, json.headers["x-forwarded-for"])
    end)

    it("reads a v2 header " .. (trusted and "and takes its address" or "and keeps the peer's"),
       function()
      local status, json = echoed(v2(198, 51, 100, 9) .. REQ)
      assert.equal(200, status)
      assert.equal(trusted and "198.51.100.9" or "127.0.0.1", json.headers["x-real-ip"])
    end)

    it("closes a connection that does not start with a PROXY header", function()
      assert(helpers.mock_upstream_reset())
      local out, state = helpers.raw_request(REQ, 5)
      assert.equal("", out or "")
      assert.equal("closed", state)
      assert.equal(0, helpers.mock_upstream_count())
    end)
  end)
end
