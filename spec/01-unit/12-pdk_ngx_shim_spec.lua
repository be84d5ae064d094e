-- tollgate.ngx_shim outside a request: encoders, digests, time, constants,
-- what is deliberately absent.
local shim = require "tollgate.ngx_shim"
local cjson = require "cjson"

describe("ngx shim", function()
  local ngx = shim.new()

  it("base64 as ngx.encode_base64 / decode_base64", function()
    assert.equal("", ngx.encode_base64(""))
    assert.equal("Zg==", ngx.encode_base64("f"))
    assert.equal("Zm8=", ngx.encode_base64("fo"))
    assert.equal("Zm9v", ngx.encode_base64("foo"))
    assert.equal("Zm8", ngx.encode_base64("fo", true))
    assert.equal("AP8=", ngx.encode_base64("\0\255"))
    assert.equal("foo", ngx.decode_base64("Zm9v"))
    assert.equal("fo", ngx.decode_base64("Zm8="))
    assert.equal("fo", ngx.decode_base64("Zm8"))
    assert.equal("\0\255", ngx.decode_base64("AP8="))
    assert.is_nil(ngx.decode_base64("Zm9v!"))
    assert.is_nil(ngx.decode_base64("Z"))
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all)
    assert.equal(all, ngx.decode_base64(ngx.encode_base64(all)))
  end)

  it("digests and crc32", function()
    assert.equal("d41d8cd98f00b204e9800998ecf8427e", ngx.md5(""))
    assert.equal(16, #ngx.md5_bin("x"))
    assert.equal("2aae6c35c94fcfb415dbe95f408b9ce91ee846ed",
                 (ngx.sha1_bin("hello world"):gsub(".", function(c)
                   return string.format("%02x", c:byte())
                 end)))
    -- RFC 2202 test case 2
    assert.equal("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
                 (ngx.hmac_sha1("Jefe", "what do ya want for nothing?"):gsub(".", function(c)
                   return string.format("%02x", c:byte())
                 end)))
    assert.equal(907060870, ngx.crc32_long("hello"))
    assert.equal(0, ngx.crc32_short(""))
  end)

  it("args and URI escaping", function()
    assert.equal("a=1&b=2", ngx.encode_args({ a = 1, b = 2 }))
    assert.same({ a = "1", b = true }, ngx.decode_args("a=1&b"))
    assert.equal("a%20b", ngx.escape_uri("a b"))
    assert.equal("a b", ngx.unescape_uri("a%20b"))
  end)

  it("time functions", function()
    local t = ngx.now()
    assert.truthy(math.abs(t - os.time()) < 5)
    assert.equal(math.floor(ngx.now()), ngx.time())
    assert.matches("^%d%d%d%d%-%d%d%-%d%d$", ngx.today())
    assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$", ngx.localtime())
    assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$", ngx.utctime())
    assert.equal("Thu, 18 Nov 2010 11:27:35 GMT", ngx.http_time(1290079655))
    assert.equal("Thu, 18-Nov-2010 11:27:35 GMT", ngx.cookie_time(1290079655))
  end)

  it("constants, null, config, worker", function()
    assert.equal(cjson.null, ngx.null)
    assert.equal(0, ngx.OK)
    assert.equal(-1, ngx.ERROR)
    assert.equal(4, ngx.ERR)
    assert.equal(8, ngx.DEBUG)
    assert.equal(200, ngx.HTTP_OK)
    assert.equal(404, ngx.HTTP_NOT_FOUND)
    assert.equal(500, ngx.HTTP_INTERNAL_SERVER_ERROR)
    assert.equal("http", ngx.config.subsystem)
    assert.is_number(ngx.config.ngx_lua_version)
    assert.is_number(ngx.worker.id())
    assert.is_number(ngx.worker.count())
    assert.is_number(ngx.worker.pid())
    assert.is_false(ngx.worker.exiting())
    -- `tollgate busted` runs specs in a light thread, as `resty` runs its
    -- scripts in a timer
    assert.equal("timer", ngx.get_phase())
  end)

  it("leaves what it does not implement absent", function()
    for _, k in ipairs({ "semaphore" }) do
      assert.is_nil(ngx[k], k)
    end
  end)

  it("refuses request APIs outside a request", function()
    assert.has_error(function() return ngx.ctx end, "no request found")
    assert.has_error(function() return ngx.var.uri end, "API disabled in the current context")
    assert.has_error(function() ngx.req.get_method() end, "no request found")
    assert.has_error(function() ngx.exit(200) end, "no request found")
  end)

  it("ngx.log accepts nginx levels and refuses others", function()
    ngx.log(ngx.DEBUG, "quiet")
    assert.has_error(function() ngx.log(42, "x") end, "bad log level")
  end)

  it("coroutine.wrap/resume behave as usual once patched, and pass EXIT on", function()
    shim.patch_coroutines()
    local gen = coroutine.wrap(function(a)
      local b = coroutine.yield(a + 1, nil, "x")
      return b * 2
    end)
    assert.same({ 2, nil, "x" }, { gen(1) })
    assert.equal(10, gen(5))
    assert.has_error(function() gen() end, "cannot resume dead coroutine")
    local bad = coroutine.wrap(function() error("boom", 0) end)
    assert.has_error(bad, "boom")
    -- an EXIT yielded in an inner coroutine reaches the outer one's resumer
    local tctx = require "tollgate.ctx"
    local outer = coroutine.create(function()
      coroutine.wrap(function() coroutine.yield(tctx.EXIT) end)()
      error("not reached")
    end)
    -- resumed as the core resumes a request (not through the patched resume)
    local ok, v = shim.raw_resume(outer)
    assert.is_true(ok)
    assert.equal(tctx.EXIT, v)
    assert.equal("suspended", coroutine.status(outer))
  end)

  it("install keeps an existing ngx", function()
    local saved = rawget(_G, "ngx")
    rawset(_G, "ngx", nil)
    local g = shim.install()
    assert.equal(g, rawget(_G, "ngx"))
    assert.equal(g, shim.install())
    rawset(_G, "ngx", saved)
  end)
end)
