-- kong.pdk outside a request: phase errors with Kong's messages, argument
-- checks, the kong table's shape.
local tctx = require "tollgate.ctx"

describe("kong.pdk", function()
  local kong

  setup(function()
    kong = require("kong.pdk").new({ prefix = os.tmpname():match("^(.*)/") or "/tmp",
                                     trusted_ips = { "10.0.0.0/8", "127.0.0.1" } })
  end)

  after_each(function()
    tctx.set_phase(nil)
  end)

  it("has Kong's version and refuses writes to the configuration", function()
    assert.equal("3.10.0", kong.version)
    assert.equal(3010000, kong.version_num)
    assert.same({ "10.0.0.0/8", "127.0.0.1" }, kong.configuration.trusted_ips)
    assert.has_error(function() kong.configuration.x = 1 end, "cannot write to configuration")
    assert.has_error(function() require("kong.pdk").new("x") end, "kong_config must be a table")
  end)

  it("raises Kong's phase error for request functions in init_worker", function()
    tctx.set_phase("init_worker")
    assert.has_error(function() kong.request.get_header("x") end,
      "function cannot be called in init_worker phase (only in: rewrite, access, balancer, " ..
      "response, cluster_listener, header_filter, body_filter, log, error, admin_api)")
    assert.has_error(function() kong.response.exit(200) end,
      "function cannot be called in init_worker phase (only in: rewrite, access, balancer, " ..
      "response, header_filter, error, admin_api)")
    assert.has_error(function() kong.response.get_status() end,
      "function cannot be called in init_worker phase (only in: response, header_filter, " ..
      "body_filter, log, error, admin_api)")
    assert.has_error(function() kong.client.get_ip() end,
      "function cannot be called in init_worker phase (can be called in any phases except: " ..
      "init_worker)")
    assert.has_error(function() kong.client.get_consumer() end,
      "function cannot be called in init_worker phase (only in: access, response, " ..
      "header_filter, body_filter, log)")
    assert.has_error(function() kong.service.request.set_header("a", "b") end,
      "function cannot be called in init_worker phase (only in: rewrite, access, balancer)")
    assert.has_error(function() kong.service.request.set_raw_query("a") end,
      "function cannot be called in init_worker phase (only in: rewrite, access)")
    assert.has_error(function() kong.request.get_raw_body() end,
      "function cannot be called in init_worker phase (only in: rewrite, access, response, " ..
      "error, admin_api)")
    assert.has_error(function() kong.router.get_route() end,
      "function cannot be called in init_worker phase (only in: access, response, " ..
      "header_filter, body_filter, log)")
    assert.has_error(function() kong.log.serialize() end,
      "function cannot be called in init_worker phase (only in: log)")
  end)

  it("checks the phase before the arguments", function()
    tctx.set_phase("init_worker")
    assert.has_error(function() kong.request.get_header(42) end,
      "function cannot be called in init_worker phase (only in: rewrite, access, balancer, " ..
      "response, cluster_listener, header_filter, body_filter, log, error, admin_api)")
  end)

  it("says there is no phase when none is set", function()
    assert.has_error(function() kong.request.get_method() end,
      "no phase in ngx.ctx.KONG_PHASE, (need one of rewrite, access, balancer, response, " ..
      "cluster_listener, header_filter, body_filter, log, error, admin_api)")
  end)

  it("checks arguments with Kong's messages in an allowed phase", function()
    -- the loader phase stands in for a request phase: argument checks come
    -- before the request is needed
    tctx.set_phase("access")
    assert.has_error(function() kong.request.get_header(42) end, "header name must be a string")
    assert.has_error(function() kong.request.get_query_arg({}) end,
                     "query argument name must be a string")
    assert.has_error(function() kong.request.get_query("x") end, "max_args must be a number")
    assert.has_error(function() kong.request.get_query(0) end, "max_args must be >= 1")
    assert.has_error(function() kong.request.get_query(1001) end, "max_args must be <= 1000")
    assert.has_error(function() kong.request.get_headers("x") end,
                     "max_headers must be a number")
    assert.has_error(function() kong.request.get_headers(0) end, "max_headers must be >= 1")
    assert.has_error(function() kong.request.get_headers(1001) end,
                     "max_headers must be <= 1000")
    assert.has_error(function() kong.response.exit("200") end, "code must be a number")
    assert.has_error(function() kong.response.exit(99) end,
                     "code must be a number between 100 and 599")
    assert.has_error(function() kong.response.exit(600) end,
                     "code must be a number between 100 and 599")
    assert.has_error(function() kong.response.exit(200, 42) end,
                     "body must be a nil, string or table")
    assert.has_error(function() kong.response.exit(200, "x", "h") end,
                     "headers must be a nil or table")
    assert.has_error(function() kong.response.exit(200, "x", { [1] = "v" }) end,
                     'invalid header name "1": got number, expected string')
    assert.has_error(function() kong.response.exit(200, "x", { a = {} ~= nil and print }) end,
                     'invalid header value for "a": got function, expected array of ' ..
                     'string, string, number or boolean')
    assert.has_error(function() kong.response.exit(200, "x", { a = { 1 } }) end,
                     'invalid header value in array "a": got number, expected string')
    assert.has_error(function() kong.response.error(399) end,
                     "code must be a number between 400 and 599")
    assert.has_error(function() kong.response.error(500, 42) end,
                     "message must be a nil, a string or a table")
    assert.has_error(function() kong.response.set_status(1000) end,
                     "code must be a number between 100 and 599")
    assert.has_error(function() kong.response.set_header(1, "v") end,
                     'invalid header name "1": got number, expected string')
    assert.has_error(function() kong.service.request.set_path("x") end,
                     "path must start with /")
    assert.has_error(function() kong.service.request.set_path(1) end, "path must be a string")
    assert.has_error(function() kong.service.request.set_method("FOO") end,
                     "invalid method: FOO")
    assert.has_error(function() kong.client.authenticate() end,
                     "either credential or consumer must be provided")
    assert.has_error(function() kong.client.authenticate("c") end,
                     "consumer must be a table or nil")
    assert.has_error(function() kong.client.load_consumer(1) end,
                     "consumer_id must be a string")
    assert.has_error(function() kong.client.load_consumer("bob") end,
                     "cannot load a consumer with an id that is not a uuid")
    assert.has_error(function() kong.log.set_serialize_value(1) end, "key must be a string")
    assert.has_error(function() kong.log.set_serialize_value("a", 1, { mode = "x" }) end,
                     "mode must be 'set', 'add' or 'replace'")
  end)

  it("blames the plugin's line, not the PDK's, for phase and argument errors", function()
    tctx.set_phase("access")
    local me = "spec/01-unit/10-pdk_phases_spec.lua"
    local function check(fn)
      local ok, err = pcall(fn)
      assert.is_false(ok)
      assert.matches(me, err, 1, true)
    end
    check(function() kong.response.exit(99) end)
    check(function() kong.response.exit(200, nil, "x") end)
    check(function() kong.response.exit(200, nil, { [1] = "v" }) end)
    check(function() kong.response.error(500, nil, { a = { 1 } }) end)
    check(function() kong.request.get_header(1) end)
    check(function() kong.service.request.set_path("x") end)
    check(function() kong.request.get_method() end) -- no request here
    tctx.set_phase("init_worker")
    check(function() kong.request.get_method() end)
  end)

  it("checks the balancer functions' arguments as Kong", function()
    tctx.set_phase("access")
    assert.has_error(function() kong.service.set_upstream(1) end, "host must be a string")
    assert.has_error(function() kong.service.set_target("h", 80.5) end,
                     "port must be an integer")
    assert.has_error(function() kong.service.set_target("h", 65536) end,
                     "port must be an integer between 0 and 65535: given 65536")
    assert.has_error(function() kong.service.set_retries(-1) end,
                     "retries must be an integer between 0 and 32767: given -1")
    assert.has_error(function() kong.service.set_timeouts(1, 0, 1) end,
                     "write_timeout must be an integer between 1 and 2147483646: given 0")
    tctx.set_phase("rewrite")
    assert.has_error(function() kong.service.set_retries(1) end,
                     "function cannot be called in rewrite phase (only in: access)")
  end)

  it("kong.table", function()
    local t = kong.table.new(2, 2)
    t[1], t.a = 1, 2
    kong.table.clear(t)
    assert.same({}, t)
    assert.same({ a = 1, b = 3, c = 4 }, kong.table.merge({ a = 1, b = 2 }, { b = 3, c = 4 }))
    assert.same({ a = 1 }, kong.table.merge({ a = 1 }))
  end)

  it("kong.ip.is_trusted outside a request", function()
    assert.is_true(kong.ip.is_trusted("10.1.2.3"))
    assert.is_true(kong.ip.is_trusted("127.0.0.1"))
    assert.is_false(kong.ip.is_trusted("11.0.0.1"))
    assert.is_false(kong.ip.is_trusted("127.0.0.2"))
  end)

  it("kong.node", function()
    local id = kong.node.get_id()
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", id)
    assert.equal(id, kong.node.get_id())
    assert.is_string(kong.node.get_hostname())
    assert.is_nil(kong.cluster.get_id())
  end)

  it("kong.ctx outside a request refuses use", function()
    assert.has_error(function() return kong.ctx.shared end,
                     "kong.ctx.shared is only available in a request")
    assert.has_error(function() return kong.ctx.plugin end,
                     "kong.ctx.plugin is only available in a request")
    assert.has_error(function() kong.ctx.shared = {} end, "kong.ctx cannot be written to")
    assert.is_nil(kong.ctx.other)
    assert.is_nil(kong.plugin.get_id())
  end)
end)

describe("tollgate.ctx", function()
  local ffi = require "ffi"

  it("keeps per-request tables by the request's address and clears them", function()
    local a = ffi.cast("void *", 0x1000)
    local b = ffi.cast("void *", 0x2000)
    local sa = tctx.get(a)
    sa.x = 1
    assert.equal(sa, tctx.get(a))
    assert.is_nil(tctx.get(b).x)
    tctx.plugin(a, "p1").v = "one"
    assert.equal("one", tctx.plugin(a, "p1").v)
    assert.is_nil(tctx.plugin(a, "p2").v)
    tctx.set_current_plugin(a, "p1", "id-1")
    assert.same({ "p1", "id-1" }, { tctx.current_plugin(a) })
    assert.is_nil(tctx.current_plugin(b))
    tctx.clear(a)
    tctx.clear(b)
    assert.is_nil(tctx.get(a).x)
    assert.is_nil(tctx.plugin(a, "p1").v)
    assert.is_nil(tctx.current_plugin(a))
    tctx.clear(a)
    assert.equal(0, tctx.count())
  end)

  it("has a unique EXIT sentinel and a loader phase", function()
    assert.is_table(tctx.EXIT)
    assert.equal("tollgate.ctx.EXIT", tostring(tctx.EXIT))
    tctx.set_phase("init_worker")
    assert.equal("init_worker", tctx.phase())
    tctx.set_phase(nil)
    assert.is_nil(tctx.phase())
  end)
end)

describe("kong.log", function()
  local edit_result = require("kong.pdk.log").edit_result

  it("applies set_serialize_value edits (set, add, replace, dotted keys)", function()
    local root = { request = { id = "r" }, a = 1 }
    local out = edit_result(root, {
      { key = "request.id", value = "new", mode = "set" },
      { key = "a", value = 2, mode = "add" },
      { key = "b", value = 3, mode = "add" },
      { key = "c", value = 4, mode = "replace" },
      { key = "x.y.z", value = true, mode = "set" },
    })
    assert.same({ request = { id = "new" }, a = 1, b = 3, x = { y = { z = true } } }, out)
    local t = {}
    t.self = t
    assert.has_error(function()
      edit_result({}, { { key = "k", value = t, mode = "set" } })
    end)
  end)
end)
