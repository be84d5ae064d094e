-- Reloading the declarative configuration of a running instance.
local helpers = require "spec.helpers"
local cjson = require "cjson"
local pl_file = require "pl.file"

local PREFIX = helpers.test_conf.prefix

local function status_of(path)
  local client = helpers.proxy_client()
  local res = client:get(path)
  client:close()
  return res and res.status
end

describe("declarative reload", function()
  local bp, db

  lazy_setup(function()
    bp, db = helpers.get_db_utils("off")
    local s = bp.services:insert { name = "svc" }
    bp.routes:insert { name = "one", service = s, paths = { "/one" } }
    assert(helpers.start_kong { database = "off" })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  it("serves the initial routes", function()
    assert.equal(200, status_of("/one"))
    assert.equal(404, status_of("/two"))
  end)

  it("swaps the routes on reload", function()
    db:truncate("routes")
    local s = bp.services:insert { name = "svc2" }
    bp.routes:insert { name = "two", service = s, paths = { "/two" } }
    local ok, err = helpers.reload_kong()
    assert.is_true(ok, err)
    helpers.wait_until(function() return status_of("/two") == 200 end, 10)
    assert.equal(404, status_of("/one"))
  end)

  it("refuses a bad file and keeps serving the old config", function()
    local bad = PREFIX .. "/bad.yml"
    assert(pl_file.write(bad, '_format_version: "3.0"\nservices:\n- name: x\n  port: 70000\n'
                              .. "  host: example.test\n"))
    -- `reload` checks the file before signalling the node, and says why
    local ok, err, out = helpers.reload_kong { declarative_config = bad }
    assert.is_false(ok)
    assert.matches("Failed parsing", (err or "") .. (out or ""), 1, true)
    assert.matches("port", (err or "") .. (out or ""), 1, true)
    helpers.sleep(1)
    assert.equal(200, status_of("/two"))
    assert.equal(404, status_of("/one"))
  end)

  it("lets a request in flight finish on the config it started with", function()
    -- restore a good config first
    local ok, err = helpers.reload_kong()
    assert.is_true(ok, err)
    helpers.wait_until(function() return status_of("/two") == 200 end, 10)

    -- start a slow request, reload underneath it, then read its answer
    local client = helpers.proxy_client(10000)
    assert(client:connect())
    assert(client.sock:send("GET /two/delay/1.5 HTTP/1.1\r\nHost: x\r\n\r\n"))
    db:truncate("routes")
    local s = bp.services:insert { name = "svc3" }
    bp.routes:insert { name = "three", service = s, paths = { "/three" } }
    assert.is_true((helpers.reload_kong()))
    local res = assert(client:read_response("GET"))
    assert.equal(200, res.status)
    assert.equal("/delay/1.5", cjson.decode(res.body).uri)
    client:close()
    helpers.wait_until(function() return status_of("/three") == 200 end, 10)
    assert.equal(404, status_of("/two"))
  end)

  it("keeps the running config when the file turns bad under a SIGHUP", function()
    -- the node's own files, broken in place, then signalled directly
    local dir = PREFIX .. "/declarative"
    local pl_dir = require "pl.dir"
    for _, f in ipairs(pl_dir.getfiles(dir)) do
      assert(pl_file.write(f, '{"_format_version": "3.0", "services": [{"name": "x", "port": 70000}]}'))
    end
    local pid = assert(pl_file.read(PREFIX .. "/pids/tollgate.pid")):match("%d+")
    assert(os.execute("kill -HUP " .. pid))
    helpers.wait_until(function()
      local log = pl_file.read(PREFIX .. "/logs/error.log") or ""
      return log:find("reload refused", 1, true) ~= nil
    end, 10)
    assert.equal(200, status_of("/three"))
  end)
end)
