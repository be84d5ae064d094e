-- kong.tools.* (Kong 3.10's function set), kong.meta, kong.constants, kong.reports.
local utils = require "kong.tools.utils"
local cjson = require "cjson"

local MODULES = { "table", "uuid", "rand", "time", "string", "ip", "http" }

-- Kong 3.10's exports of each module (read from Kong's source)
local KONG_EXPORTS = {
  table = { "EMPTY", "pack", "unpack", "table_merge", "null_aware_table_merge", "table_contains",
            "is_array", "is_lapis_array", "deep_copy", "shallow_copy", "deep_merge",
            "cycle_aware_deep_copy", "cycle_aware_deep_merge", "concat", "add_error",
            "table_path" },
  uuid = { "uuid", "is_valid_uuid" },
  rand = { "get_rand_bytes", "random_string" },
  time = { "nginx_conf_time_to_seconds", "time_ns", "get_updated_now", "get_now_ms",
           "get_updated_now_ms", "get_start_time_ms", "get_updated_monotonic_ms" },
  string = { "join", "split", "split_once", "psplit_once", "splitn", "psplitn", "isplitn",
             "ipsplitn", "strip", "validate_utf8", "bytes_to_str", "parse_ngx_size",
             "try_decode_base64", "replace_dashes", "replace_dashes_lower" },
  ip = { "is_valid_ipv4", "is_valid_ipv6", "is_valid_ip", "is_valid_cidr_v4", "is_valid_cidr_v6",
         "is_valid_cidr", "is_valid_ip_or_cidr_v4", "is_valid_ip_or_cidr_v6",
         "is_valid_ip_or_cidr", "hostname_type", "normalize_ipv4", "normalize_ipv6",
         "check_hostname", "normalize_ip", "format_host" },
  http = { "CONTENT_TYPES", "encode_args", "decode_args", "check_https", "validate_http_token",
           "validate_header_name", "validate_cookie_name", "get_default_exit_body",
           "get_response_type", "get_mime_type", "get_error_template", "get_header",
           "parse_directive_header", "calculate_resource_ttl" },
}

local function collect(iter, a, b)
  local out = {}
  for v in iter, a, b do
    out[#out + 1] = v
  end
  return out
end

describe("kong.tools", function()
  it("each module exports exactly Kong 3.10's names, all re-exported by utils", function()
    local total = 0
    for _, m in ipairs(MODULES) do
      local mod = require("kong.tools." .. m)
      local want, have = {}, {}
      for _, n in ipairs(KONG_EXPORTS[m]) do want[n] = true end
      for n in pairs(mod) do have[n] = true end
      assert.same(want, have, m)
      for n, v in pairs(mod) do
        assert.equal(v, utils[n], m .. "." .. n)
        total = total + 1
      end
    end
    local n = 0
    for _ in pairs(utils) do n = n + 1 end
    assert.equal(total, n)
    assert.equal(71, n)
  end)

  describe("table", function()
    local t = require "kong.tools.table"

    it("EMPTY is read-only and empty", function()
      assert.is_nil(next(t.EMPTY))
      assert.has_error(function() t.EMPTY.x = 1 end)
    end)

    it("pack and unpack keep nils", function()
      local p = t.pack(1, nil, 3, nil)
      assert.equal(4, p.n)
      assert.same({ 1, nil, 3, nil }, { t.unpack(p) })
      assert.equal(4, select("#", t.unpack(p)))
      assert.same({ 2, 3 }, { t.unpack({ 1, 2, 3 }, 2) })
    end)

    it("table_merge and null_aware_table_merge", function()
      assert.same({ a = 1, b = 3, c = 4 }, t.table_merge({ a = 1, b = 2 }, { b = 3, c = 4 }))
      assert.same({ a = 1 }, t.table_merge(nil, { a = 1 }))
      assert.same({ a = 1, b = 2, c = cjson.null },
                  t.null_aware_table_merge({ a = 1, b = 2 }, { b = cjson.null, c = cjson.null }))
    end)

    it("table_contains", function()
      assert.is_true(t.table_contains({ "a", "b" }, "b"))
      assert.is_false(t.table_contains({ "a" }, "c"))
      assert.is_false(t.table_contains(nil, "c"))
    end)

    it("is_array in its three modes, and is_lapis_array", function()
      assert.is_true(t.is_array({ 1, 2, 3 }))
      assert.is_true(t.is_array({}))
      assert.is_false(t.is_array({ [1] = 1, [3] = 3 }))
      assert.is_false(t.is_array({ a = 1 }))
      assert.is_false(t.is_array("x"))
      assert.is_true(t.is_array({ [1] = 1, [3] = 3 }, "fast"))
      assert.is_true(t.is_array({ ["1"] = "a", ["2"] = "b" }, "lapis"))
      assert.is_false(t.is_array({ ["1"] = "a", ["3"] = "b" }, "lapis"))
      assert.is_true(t.is_lapis_array({ "a", ["2"] = "b" }))
      assert.is_false(t.is_lapis_array(1))
    end)

    it("deep_copy copies values, keys and metatables", function()
      local mt = { __index = { z = 9 } }
      local key = { k = 1 }
      local orig = setmetatable({ a = { b = { 1 } }, [key] = "v" }, mt)
      local c = t.deep_copy(orig)
      assert.not_equal(orig.a, c.a)
      assert.same(orig.a, c.a)
      assert.equal(9, c.z)
      assert.not_equal(mt, getmetatable(c))
      for k, v in pairs(c) do
        if type(k) == "table" then
          assert.not_equal(key, k)
          assert.equal("v", v)
        end
      end
      assert.is_nil(getmetatable(t.deep_copy(orig, false)))
      assert.equal(5, t.deep_copy(5))
    end)

    it("shallow_copy copies one level", function()
      local inner = {}
      local c = t.shallow_copy({ x = inner })
      assert.equal(inner, c.x)
      assert.equal("s", t.shallow_copy("s"))
    end)

    it("deep_merge", function()
      local a, b = { x = { y = 1, z = 2 }, k = 1 }, { x = { y = 3 }, n = { 1 } }
      local m = t.deep_merge(a, b)
      assert.same({ x = { y = 3, z = 2 }, k = 1, n = { 1 } }, m)
      assert.not_equal(b.n, m.n)
      assert.same({ x = { y = 1, z = 2 }, k = 1 }, a)
    end)

    it("cycle_aware_deep_copy keeps cycles and shared tables", function()
      local shared = { 1 }
      local orig = { a = shared, b = shared }
      orig.self = orig
      local c = t.cycle_aware_deep_copy(orig)
      assert.equal(c, c.self)
      assert.equal(c.a, c.b)
      assert.not_equal(shared, c.a)
      local mt = {}
      assert.equal(mt, getmetatable(t.cycle_aware_deep_copy(setmetatable({}, mt))))
      assert.is_nil(getmetatable(t.cycle_aware_deep_copy(setmetatable({}, mt), true)))
      local k = {}
      local ck = t.cycle_aware_deep_copy({ [k] = 1 }, false, true)
      local newk = next(ck)
      assert.not_equal(k, newk)
      assert.equal(1, ck[newk])
    end)

    it("cycle_aware_deep_merge", function()
      local m = t.cycle_aware_deep_merge({ a = { b = 1 }, c = 1 }, { a = { d = 2 }, c = { 3 } })
      assert.same({ a = { b = 1, d = 2 }, c = { 3 } }, m)
    end)

    it("concat", function()
      assert.same({ 1, 2, 3, 4 }, t.concat({ 1 }, { 2, 3 }, {}, { 4 }))
    end)

    it("add_error builds lists for repeated keys", function()
      local e = t.add_error(nil, "k", "one")
      assert.same({ k = "one" }, e)
      t.add_error(e, "k", "two")
      t.add_error(e, "k", "three")
      assert.same({ k = { "one", "two", "three" } }, e)
      -- a table value is not taken for a list
      local e2 = t.add_error({ k = { "a" } }, "k", "b")
      assert.same({ k = { { "a" }, "b" } }, e2)
    end)

    it("table_path", function()
      assert.equal(3, t.table_path({ a = { b = { c = 3 } } }, { "a", "b", "c" }))
      assert.is_nil(t.table_path({ a = {} }, { "a", "b", "c" }))
    end)
  end)

  describe("uuid", function()
    local u = require "kong.tools.uuid"
    it("generates v4 uuids", function()
      local a, b = u.uuid(), u.uuid()
      assert.not_equal(a, b)
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x+$", a)
      assert.is_true(u.is_valid_uuid(a))
    end)
    it("validates as Kong (any version, either case, nil uuid)", function()
      assert.is_true(u.is_valid_uuid("00000000-0000-0000-0000-000000000000"))
      assert.is_true(u.is_valid_uuid("ABCDEF01-2345-6789-ABCD-EF0123456789"))
      assert.is_false(u.is_valid_uuid("abcdef01-2345-6789-abcd-ef012345678"))
      assert.is_false(u.is_valid_uuid("abcdef0102345-6789-abcd-ef0123456789"))
      assert.is_false(u.is_valid_uuid("gbcdef01-2345-6789-abcd-ef0123456789"))
      assert.is_false(u.is_valid_uuid(42))
    end)
  end)

  describe("rand", function()
    local r = require "kong.tools.rand"
    it("get_rand_bytes from urandom and OpenSSL", function()
      assert.equal(16, #r.get_rand_bytes(16))
      assert.equal(32, #r.get_rand_bytes(32, true))
      assert.not_equal(r.get_rand_bytes(16), r.get_rand_bytes(16))
      assert.equal("", r.get_rand_bytes(0))
    end)
    it("random_string: 32 alphanumerics", function()
      local seen = {}
      for _ = 1, 50 do
        local s = r.random_string()
        assert.matches("^[%w]+$", s)
        assert.equal(32, #s)
        assert.is_nil(seen[s])
        seen[s] = true
      end
    end)
  end)

  describe("time", function()
    local tm = require "kong.tools.time"
    it("nginx_conf_time_to_seconds as nginx parses seconds", function()
      assert.equal(10, tm.nginx_conf_time_to_seconds("10"))
      assert.equal(10, tm.nginx_conf_time_to_seconds("10s"))
      assert.equal(5400, tm.nginx_conf_time_to_seconds("1h 30m"))
      assert.equal(5400, tm.nginx_conf_time_to_seconds("1h30m"))
      assert.equal(86400 * 7 + 1, tm.nginx_conf_time_to_seconds("1w 1"))
      assert.equal(365 * 86400 + 30 * 86400, tm.nginx_conf_time_to_seconds("1y1M"))
      for _, bad in ipairs({ "", "abc", "10ms", "1m1h", "1s1s", "10x", "1 2", "-1" }) do
        assert.has_error(function() tm.nginx_conf_time_to_seconds(bad) end, "bad argument #1 'str'")
      end
    end)
    it("time_ns and the millisecond clocks agree with os.time", function()
      local ns = tm.time_ns()
      assert.is_true(math.abs(ns / 1e9 - os.time()) < 2)
      local now = tm.get_updated_now()
      assert.is_true(math.abs(now - os.time()) < 2)
      assert.is_true(math.abs(tm.get_now_ms() - now * 1000) < 2000)
      assert.is_true(tm.get_updated_now_ms() >= now * 1000)
      local m1 = tm.get_updated_monotonic_ms()
      local m2 = tm.get_updated_monotonic_ms()
      assert.is_true(m2 >= m1 and m1 > 0)
    end)
    it("get_start_time_ms needs a request", function()
      if rawget(_G, "ngx") then
        return -- inside a worker: covered by the integration specs
      end
      assert.has_error(function() tm.get_start_time_ms() end, "no request found")
    end)
  end)

  describe("string", function()
    local s = require "kong.tools.string"
    it("join and split (Penlight's)", function()
      assert.equal("a,b", s.join(",", { "a", "b" }))
      assert.same({ "a", "b" }, s.split("a,b", ","))
    end)
    it("split_once and psplit_once", function()
      assert.same({ "a", "b=c" }, { s.split_once("a=b=c", "=") })
      assert.same({ "abc" }, { s.split_once("abc", "=") })
      assert.same({ "", "abc" }, { s.split_once("abc", "") })
      assert.same({ "" }, { s.split_once("", "=") })
      assert.same({ "x" }, { s.split_once("x", nil) })
      assert.same({ "a", "b.c" }, { s.split_once("a.b.c", ".") })
      assert.same({ "", ".b.c" }, { s.psplit_once("a.b.c", ".") })
      assert.same({ "k", "v" }, { s.psplit_once("k  =  v", "%s*=%s*") })
    end)
    it("splitn and psplitn", function()
      assert.same({ { "a", "b", "c" }, 3 }, { s.splitn("a,b,c", ",") })
      assert.same({ { "a", "b,c" }, 2 }, { s.splitn("a,b,c", ",", 2) })
      assert.same({ { "a,b,c" }, 1 }, { s.splitn("a,b,c", ",", 1) })
      assert.same({ {}, 0 }, { s.splitn("a", ",", 0) })
      assert.same({ { "" }, 1 }, { s.splitn("", ",") })
      assert.same({ { "", "", "" }, 3 }, { s.splitn(",,", ",") })
      assert.same({ { "", "a", "b", "" }, 4 }, { s.splitn("ab", "") })
      assert.same({ { "", "ab" }, 2 }, { s.splitn("ab", "", 2) })
      assert.same({ { "", "a", "b" }, 3 }, { s.splitn("ab", "", 3) })
      assert.same({ { "", "" }, 2 }, { s.splitn("", "") })
      assert.same({ { "a", "b", "c" }, 3 }, { s.psplitn("a1b22c", "%d+") })
    end)
    it("isplitn and ipsplitn iterate the same parts", function()
      assert.same({ "a", "b", "" }, collect(s.isplitn("a.b.", ".")))
      assert.same({ "a", "b.c" }, collect(s.isplitn("a.b.c", ".", 2)))
      assert.same({}, collect(s.isplitn(nil, ".")))
      assert.same({ "x" }, collect(s.isplitn("x", ".")))
      assert.same({ "a", "b" }, collect(s.ipsplitn("a  b", "%s+")))
    end)
    it("strip", function()
      assert.equal("a b", s.strip(" \t\na b\r\n "))
      assert.equal("", s.strip("   "))
      assert.equal("", s.strip(nil))
      assert.equal("12", s.strip(12))
    end)
    it("validate_utf8", function()
      assert.is_true(s.validate_utf8("héllo €𝄞"))
      assert.same({ false, 2 }, { s.validate_utf8("a\255b") })
      assert.same({ false, 1 }, { s.validate_utf8("\237\160\128") }) -- a surrogate
      assert.is_false(s.validate_utf8("\244\144\128\128")) -- beyond U+10FFFF
      assert.is_true(s.validate_utf8(123))
    end)
    it("bytes_to_str", function()
      assert.equal("5497558", s.bytes_to_str(5497558))
      assert.equal("5.24 MiB", s.bytes_to_str(5497558, "m"))
      assert.equal("5.243 GiB", s.bytes_to_str(5497558 * 1024, "G", 3))
      assert.equal("1 KiB", s.bytes_to_str(1024, "k", 0))
      assert.has_error(function() s.bytes_to_str(1, "x") end,
                       "invalid unit 'x' (expected 'k/K', 'm/M', or 'g/G')")
      assert.has_error(function() s.bytes_to_str(1, "k", -1) end,
                       "scale must be equal or greater than 0")
    end)
    it("parse_ngx_size", function()
      assert.equal(10, s.parse_ngx_size("10"))
      assert.equal(8192, s.parse_ngx_size("8k"))
      assert.equal(2 * 1048576, s.parse_ngx_size("2M"))
      assert.equal(1073741824, s.parse_ngx_size("1g"))
      assert.equal(0, s.parse_ngx_size("abc"))
      assert.has_error(function() s.parse_ngx_size(1) end)
    end)
    it("try_decode_base64", function()
      assert.equal("hello", s.try_decode_base64("aGVsbG8="))
      assert.equal("\251\255", s.try_decode_base64("-_8")) -- base64url
      assert.equal("not base64!", s.try_decode_base64("not base64!"))
      assert.same({ "hello", "?!" }, s.try_decode_base64({ "aGVsbG8=", "?!" }))
      assert.equal(5, s.try_decode_base64(5))
    end)
    it("replace_dashes and replace_dashes_lower", function()
      assert.equal("X_My_Header", s.replace_dashes("X-My-Header"))
      assert.equal("plain", s.replace_dashes("plain"))
      assert.equal("x_my_header", s.replace_dashes_lower("X-My-Header"))
    end)
  end)

  describe("ip", function()
    local ip = require "kong.tools.ip"
    it("validates addresses and CIDRs", function()
      assert.is_true(ip.is_valid_ipv4("10.0.0.1"))
      assert.is_false(ip.is_valid_ipv4("10.0.0.256"))
      assert.is_false(ip.is_valid_ipv4("::1"))
      assert.is_true(ip.is_valid_ipv6("::1"))
      assert.is_true(ip.is_valid_ipv6("2001:db8::ff00:42:8329"))
      assert.is_false(ip.is_valid_ipv6("2001:db8:::1"))
      assert.is_true(ip.is_valid_ip("1.2.3.4"))
      assert.is_true(ip.is_valid_ip("fe80::1"))
      assert.is_false(ip.is_valid_ip("example.com"))
      assert.is_false(ip.is_valid_ip(nil))
      assert.is_true(ip.is_valid_cidr_v4("10.0.0.0/8"))
      assert.is_false(ip.is_valid_cidr_v4("10.0.0.0/33"))
      assert.is_false(ip.is_valid_cidr_v4("10.0.0.0"))
      assert.is_true(ip.is_valid_cidr_v6("::/0"))
      assert.is_false(ip.is_valid_cidr_v6("::/129"))
      assert.is_true(ip.is_valid_cidr("fe80::/10"))
      assert.is_true(ip.is_valid_cidr("192.168.0.0/16"))
      assert.is_true(ip.is_valid_ip_or_cidr_v4("1.2.3.4"))
      assert.is_true(ip.is_valid_ip_or_cidr_v4("1.2.3.0/24"))
      assert.is_false(ip.is_valid_ip_or_cidr_v4("::1"))
      assert.is_true(ip.is_valid_ip_or_cidr_v6("::1/128"))
      assert.is_false(ip.is_valid_ip_or_cidr_v6("1.2.3.4"))
      assert.is_true(ip.is_valid_ip_or_cidr("::1"))
      assert.is_true(ip.is_valid_ip_or_cidr("1.2.3.4/32"))
      assert.is_false(ip.is_valid_ip_or_cidr("1.2.3.4/"))
    end)
    it("hostname_type", function()
      assert.equal("ipv4", ip.hostname_type("1.2.3.4"))
      assert.equal("ipv4", ip.hostname_type("1.2.3.4:80"))
      assert.equal("ipv6", ip.hostname_type("::1"))
      assert.equal("ipv6", ip.hostname_type("some::thing"))
      assert.equal("name", ip.hostname_type("example.com:80"))
    end)
    it("normalize_ipv4", function()
      assert.same({ "1.2.3.4", 123 }, { ip.normalize_ipv4("001.002.003.004:123") })
      assert.same({ nil, "invalid ipv4 address: 1.2.3.256" }, { ip.normalize_ipv4("1.2.3.256") })
      assert.same({ nil, "invalid port number" }, { ip.normalize_ipv4("1.2.3.4:65536") })
    end)
    it("normalize_ipv6", function()
      assert.same({ "0000:0000:0000:0000:0000:0000:0000:0001" }, { ip.normalize_ipv6("::1") })
      assert.same({ "2001:0db8:0000:0000:0000:0000:0000:00ff", 8080 },
                  { ip.normalize_ipv6("[2001:DB8::FF]:8080") })
      assert.same({ nil, "invalid ipv6 address" }, { ip.normalize_ipv6("[::1]x") })
      assert.same({ nil, "invalid port number" }, { ip.normalize_ipv6("[::1]:70000") })
      assert.same({ nil, "invalid ipv6 address: 1:2:3" }, { ip.normalize_ipv6("1:2:3") })
    end)
    it("check_hostname", function()
      assert.same({ "example.com", 80 }, { ip.check_hostname("example.com:80") })
      assert.same({ "example.com." }, { ip.check_hostname("example.com.") })
      assert.same({ nil, "invalid hostname: bad-.com" }, { ip.check_hostname("bad-.com") })
      assert.same({ nil, "invalid hostname: a..b" }, { ip.check_hostname("a..b") })
      assert.same({ nil, "invalid hostname: a b" }, { ip.check_hostname("a b") })
      assert.same({ nil, "invalid port number" }, { ip.check_hostname("a:99999") })
    end)
    it("normalize_ip", function()
      assert.same({ type = "ipv4", host = "1.2.3.4", port = 5 }, ip.normalize_ip("01.2.3.4:5"))
      assert.same({ type = "name", host = "x.org" }, ip.normalize_ip("x.org"))
      assert.same({ type = "ipv6", host = "0000:0000:0000:0000:0000:0000:0000:0001", port = 8 },
                  ip.normalize_ip("[::1]:8"))
      assert.same({ nil, "invalid hostname: x_?" }, { ip.normalize_ip("x_?") })
    end)
    it("format_host", function()
      assert.equal("1.2.3.4:123", ip.format_host(ip.normalize_ip("001.002.003.004:123")))
      assert.equal("[0000:0000:0000:0000:0000:0000:0000:0001]:80", ip.format_host("::1", 80))
      assert.equal("[::1]:80", ip.format_host("[::1]", 80))
      assert.equal("example.com", ip.format_host("example.com"))
      assert.equal("h:1", ip.format_host({ host = "h" }, 1))
      assert.same({ nil, "boom" }, { ip.format_host(nil, "boom") })
      assert.same({ nil, "cannot format type 'number'" }, { ip.format_host(5) })
    end)
  end)

  describe("http", function()
    local h = require "kong.tools.http"
    it("CONTENT_TYPES", function()
      assert.same({ CONTENT_TYPE = "Content-Type",
                    CONTENT_TYPE_POST = "application/x-www-form-urlencoded",
                    CONTENT_TYPE_JSON = "application/json",
                    CONTENT_TYPE_FORM_DATA = "multipart/form-data" }, h.CONTENT_TYPES)
    end)
    it("encode_args as Kong (sorted, escaped, nested, null, booleans)", function()
      assert.equal("a=1&b=x%20y&c=true&d=false", h.encode_args({ b = "x y", a = 1, c = true, d = false }))
      assert.equal("arr%5b1%5d=x&arr%5b2%5d=y&s%2ek=v", h.encode_args({ arr = { "x", "y" }, s = { k = "v" } }))
      assert.equal("arr[1]=x&arr[2]=y", h.encode_args({ arr = { "x", "y" } }, true))
      assert.equal("arr%5b%5d=x&arr%5b%5d=y", h.encode_args({ arr = { "x", "y" } }, false, true))
      assert.equal("e&n=", h.encode_args({ n = cjson.null, e = "" }))
      assert.equal("a b=c d", h.encode_args({ ["a b"] = "c d" }, true))
    end)
    it("decode_args", function()
      assert.same({ x = { "a", "b" }, y = cjson.null, t = true, f = false, s = "s",
                    m = { ["1"] = "a", ["3"] = "c" } },
                  h.decode_args({ x = { ["1"] = "a", ["2"] = "b" }, y = "", t = "true",
                                  f = "false", s = "s", m = { ["1"] = "a", ["3"] = "c" } }))
    end)
    it("validate_http_token and validate_cookie_name", function()
      assert.equal("abc-1", h.validate_http_token("abc-1"))
      assert.same({ nil, "no token provided" }, { h.validate_http_token("") })
      local _, err = h.validate_http_token("a b")
      assert.equal("contains one or more invalid characters. ASCII control characters (0-31;127), "
                   .. "space, tab and the characters ()<>@,;:\\\"/?={}[] are not allowed.", err)
      for _, bad in ipairs({ "a(b", "a\1", "a\200", "a[b", "a]b", "a/b", "a\"b" }) do
        assert.is_nil(h.validate_cookie_name(bad), bad)
      end
    end)
    it("validate_header_name", function()
      assert.equal("X-My_Header1", h.validate_header_name("X-My_Header1"))
      assert.same({ nil, "no header name provided" }, { h.validate_header_name(nil) })
      assert.same({ nil, "bad header name 'a b', allowed characters are A-Z, a-z, 0-9, '_', and '-'" },
                  { h.validate_header_name("a b") })
    end)
    it("get_default_exit_body", function()
      assert.is_nil(h.get_default_exit_body(204, "x"))
      assert.same({ message = "Bad gateway" }, h.get_default_exit_body(502, "ignored"))
      assert.same({ message = "Method not allowed" }, h.get_default_exit_body(405))
      assert.same({ ok = true }, h.get_default_exit_body(200, { ok = true }))
      assert.same({ message = "ok" }, h.get_default_exit_body(200, "ok"))
      assert.same({ message = "Not found" }, h.get_default_exit_body(404))
      assert.same({ message = "Unauthorized" }, h.get_default_exit_body(401))
      assert.is_nil(h.get_default_exit_body(200))
      assert.has_error(function() h.get_default_exit_body("200") end, "code must be a number")
      assert.has_error(function() h.get_default_exit_body(600) end,
                       "code must be a number between 100 and 599")
    end)
    it("get_mime_type", function()
      assert.equal("text/html; charset=utf-8", h.get_mime_type("text/html; q=1"))
      assert.equal("text/plain; charset=utf-8", h.get_mime_type("text/*"))
      assert.equal("application/json; charset=utf-8", h.get_mime_type("*/*"))
      assert.equal("application/json; charset=utf-8", h.get_mime_type("image/png"))
      assert.same({ nil, "could not find MIME type" }, { h.get_mime_type("image/png", false) })
      assert.equal("", h.get_mime_type("application/grpc"))
    end)
    it("get_response_type by quality", function()
      assert.equal("application/json; charset=utf-8", h.get_response_type(nil))
      assert.equal("application/xml; charset=utf-8",
                   h.get_response_type("text/html;q=0.5, application/xml"))
      assert.equal("text/html; charset=utf-8",
                   h.get_response_type("text/plain;q=0.2, text/html;q=0.9"))
      assert.equal("text/plain; charset=utf-8", h.get_response_type({ "text/plain", "text/html" }))
      assert.equal("application/json; charset=utf-8", h.get_response_type("garbage"))
      assert.equal("text/html; charset=utf-8", h.get_response_type("text/html;level=1;q=0.7"))
    end)
    it("get_error_template", function()
      assert.equal("%s\nrequest_id: %s\n", h.get_error_template("text/plain"))
      assert.equal("{\n  \"message\":\"%s\",\n  \"request_id\":\"%s\"\n}",
                   h.get_error_template("application/json; charset=utf-8"))
      assert.truthy(h.get_error_template("text/html"):find("<p>%s.</p>", 1, true))
      assert.truthy(h.get_error_template("application/xml"):find("<requestid>%s</requestid>", 1, true))
      assert.equal("", h.get_error_template("application/grpc"))
      assert.same({ nil, "no template found for MIME type image/png" },
                  { h.get_error_template("image/png") })
      assert.same({ nil, "no template found for MIME type empty" }, { h.get_error_template(nil) })
    end)
    it("parse_directive_header", function()
      assert.same({ public = true, ["max-age"] = 3600, ["x-name"] = "abc" },
                  h.parse_directive_header("Public, max-age=3600, X-Name=abc"))
      assert.same({ ["no-cache"] = true, ["s-maxage"] = 10 },
                  h.parse_directive_header({ "no-cache", "s-maxage=10" }))
      assert.is_nil(next(h.parse_directive_header(nil)))
    end)
    it("calculate_resource_ttl from s-maxage, max-age", function()
      assert.equal(20, h.calculate_resource_ttl({ ["s-maxage"] = 20, ["max-age"] = 10 }))
      assert.equal(10, h.calculate_resource_ttl({ ["max-age"] = 10 }))
      assert.equal(0, h.calculate_resource_ttl({ ["max-age"] = -5 }))
    end)
    it("calculate_resource_ttl from Expires, check_https and get_header over ngx", function()
      local saved = rawget(_G, "ngx")
      local in_an_hour = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 3600)
      local vars = { sent_http_expires = in_an_hour, scheme = "http",
                     http_x_forwarded_proto = "https", http_x_multi = "a, b", http_x_one = "1" }
      local fake = { null = cjson.null, var = vars, time = os.time,
                     req = { get_headers = function() return { ["x-multi"] = { "a", "b" } } end } }
      rawset(_G, "ngx", fake)
      local ok, err = pcall(function()
        local ttl = h.calculate_resource_ttl(nil)
        assert.is_true(ttl >= 3598 and ttl <= 3600, tostring(ttl))
        vars.sent_http_expires = "Thu, 01 Jan 1970 00:00:00 GMT"
        assert.equal(0, h.calculate_resource_ttl({}))
        assert.is_false(h.check_https(false, true))
        assert.is_true(h.check_https(true, true))
        assert.is_false(h.check_https(true, false))
        vars.http_x_forwarded_proto = "https, http"
        assert.same({ nil, "Only one X-Forwarded-Proto header allowed" }, { h.check_https(true, true) })
        vars.scheme = "HTTPS"
        assert.is_true(h.check_https(false, false))
        assert.equal("1", h.get_header("x-one"))
        assert.equal("a", h.get_header("x-multi"))
        local ctx = {}
        assert.equal("a", h.get_header("x-multi", ctx))
        assert.is_table(ctx.cached_request_headers)
      end)
      rawset(_G, "ngx", saved)
      assert(ok, err)
    end)
  end)
end)

describe("kong.meta", function()
  local meta = require "kong.meta"
  it("reports Kong 3.10.0 and tollgate's own version", function()
    assert.equal("3.10.0", meta.version)
    assert.equal("3.10.0", meta._VERSION)
    assert.equal("kong", meta._NAME)
    assert.equal("kong/3.10.0", meta._SERVER_TOKENS)
    assert.same({ major = 3, minor = 10, patch = 0 }, {
      major = meta._VERSION_TABLE.major, minor = meta._VERSION_TABLE.minor,
      patch = meta._VERSION_TABLE.patch })
    assert.equal("3.10.0", tostring(meta._VERSION_TABLE))
    assert.matches("^%d+%.%d+%.%d+", meta.tollgate_version)
  end)
end)

describe("kong.constants", function()
  local c = require "kong.constants"
  it("has Kong 3.10's tables", function()
    assert.is_true(c.BUNDLED_PLUGINS["key-auth"])
    assert.is_true(c.BUNDLED_PLUGINS["redirect"])
    local n = 0
    for _ in pairs(c.BUNDLED_PLUGINS) do n = n + 1 end
    assert.equal(45, n)
    assert.equal("X-Kong-Request-Id", c.HEADERS.REQUEST_ID)
    assert.equal("X-Consumer-ID", c.HEADERS.CONSUMER_ID)
    assert.same({ "grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp" },
                c.PROTOCOLS)
    assert.equal("stream", c.PROTOCOLS_WITH_SUBSYSTEM.tls_passthrough)
    assert.equal("workspaces", c.CORE_ENTITIES[1])
    assert.is_true(c.CORE_ENTITIES.routes)
    assert.equal("core_cache", c.ENTITY_CACHE_STORE.routes)
    assert.equal("cache", c.ENTITY_CACHE_STORE.consumers)
    assert.equal("cache", c.ENTITY_CACHE_STORE.anything_else)
    assert.equal("normal", c.CLUSTERING_SYNC_STATUS.NORMAL)
    assert.equal("error", c.LOG_LEVELS[c.LOG_LEVELS.error])
    assert.equal("0dc6f45b-8f8d-40d2-a504-473544ee190b", c.DECLARATIVE_DEFAULT_WORKSPACE_ID)
    assert.same({ "second", "minute", "hour", "day", "month", "year" }, c.RATELIMIT.PERIODS)
    assert.equal(("0"):rep(32), c.DECLARATIVE_EMPTY_CONFIG_HASH)
  end)
end)

describe("kong.reports", function()
  it("has Kong's functions, each doing nothing", function()
    local reports = require "kong.reports"
    for _, name in ipairs({ "init", "init_worker", "add_immutable_value", "configure_ping",
                            "add_ping_value", "get_ping_value", "send_ping", "log",
                            "admin_gui_log", "toggle", "send", "retrieve_redis_version" }) do
      assert.is_function(reports[name], name)
    end
    reports.toggle(true)
    reports.add_ping_value("k", "v")
    assert.is_nil(reports.get_ping_value("k"))
    assert.is_nil(reports.send("ping", "127.0.0.1", 1))
  end)
end)
