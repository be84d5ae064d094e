-- The CLI verbs, as Kong's (KONG_COMPAT.md, "kong.conf" and CLI).
local helpers = require "spec.helpers"
local pl_file = require "pl.file"
local pl_path = require "pl.path"
local pl_dir = require "pl.dir"

local PREFIX = helpers.test_conf.prefix

local tmpdir
local function tmpfile(name, content)
  local path = tmpdir .. "/" .. name
  assert(pl_file.write(path, helpers.unindent(content) .. "\n"))
  return path
end

local function exec(cmd, env)
  local ok, stderr, stdout, code = helpers.kong_exec(cmd, env)
  return ok, (stderr or "") .. (stdout or ""), code
end

local function write_conf(extra)
  local conf = {}
  for k, v in pairs(helpers.test_conf) do conf[k] = v end
  for k, v in pairs(extra or {}) do conf[k] = v end
  conf.declarative_config = conf.declarative_config or (tmpdir .. "/kong.yml")
  local path = tmpdir .. "/tollgate.conf"
  helpers.write_conf(path, conf)
  return path
end

describe("tollgate CLI", function()
  lazy_setup(function()
    tmpdir = os.tmpname()
    os.remove(tmpdir)
    pl_dir.makepath(tmpdir)
    tmpfile("kong.yml", [[
      _format_version: "3.0"
      services:
      - name: echo
        url: http://127.0.0.1:]] .. helpers.mock_upstream_port .. "\n" .. [[
        routes:
        - name: r1
          paths: [ "/cli" ]
    ]])
    assert(helpers.start_mock_upstream())
  end)

  lazy_teardown(function()
    exec("stop -p " .. PREFIX)
    helpers.stop_mock_upstream()
    pl_dir.rmtree(tmpdir)
  end)

  describe("version", function()
    it("prints tollgate's version and the Kong version it is compatible with", function()
      local ok, out = exec("version")
      assert.is_true(ok)
      assert.matches("%d+%.%d+%.%d+", out)
      assert.matches("3.10.0", out, 1, true)
    end)
  end)

  describe("check", function()
    it("accepts a valid configuration", function()
      local conf = write_conf()
      local ok, out = exec("check " .. conf)
      assert.is_true(ok, out)
      assert.matches("configuration at " .. conf .. " is valid", out, 1, true)
    end)

    it("refuses a bad value naming the key", function()
      local conf = write_conf { log_level = "loud" }
      local ok, out = exec("check " .. conf)
      assert.is_false(ok)
      assert.matches("log_level", out, 1, true)
    end)

    it("warns about an unknown key, naming the nearest known key", function()
      local conf = write_conf { proxy_listn = "127.0.0.1:9000" }
      local ok, out = exec("check " .. conf)
      assert.is_true(ok, out)
      assert.matches("proxy_listn", out, 1, true)
      assert.matches("proxy_listen", out, 1, true)
    end)

    it("reads KONG_<KEY> and TOLLGATE_<KEY> from the environment, TOLLGATE_ first", function()
      local conf = write_conf()
      local ok, out = exec("check " .. conf, { KONG_LOG_LEVEL = "loud" })
      assert.is_false(ok)
      assert.matches("log_level", out, 1, true)
      ok, out = exec("check " .. conf, { KONG_LOG_LEVEL = "loud", TOLLGATE_LOG_LEVEL = "debug" })
      assert.is_true(ok, out)
    end)
  end)

  describe("prepare", function()
    it("creates Kong's prefix layout", function()
      local prefix = tmpdir .. "/prepared"
      local ok, out = exec("prepare -c " .. write_conf() .. " -p " .. prefix)
      assert.is_true(ok, out)
      assert.truthy(pl_path.isdir(prefix .. "/logs"))
      assert.truthy(pl_path.isdir(prefix .. "/pids"))
    end)
  end)

  describe("start, health, stop", function()
    after_each(function()
      exec("stop -p " .. PREFIX)
      helpers.wait_until(function() return not helpers.pid_alive(helpers.get_pid(PREFIX)) end, 15)
    end)

    it("starts in the background, reports health, and stops", function()
      local ok, out = exec("start -c " .. write_conf() .. " -p " .. PREFIX)
      assert.is_true(ok, out)
      local pid = helpers.get_pid(PREFIX)
      assert.truthy(helpers.pid_alive(pid))
      ok, out = exec("health -p " .. PREFIX)
      assert.is_true(ok, out)
      local client = helpers.proxy_client()
      assert.res_status(200, assert(client:get("/cli/anything")))
      client:close()
      ok, out = exec("stop -p " .. PREFIX)
      assert.is_true(ok, out)
      helpers.wait_until(function() return not helpers.pid_alive(pid) end, 15)
      ok = exec("health -p " .. PREFIX)
      assert.is_false(ok)
    end)

    it("refuses a second start on a prefix in use", function()
      local conf = write_conf()
      assert.is_true((exec("start -c " .. conf .. " -p " .. PREFIX)))
      local ok, out = exec("start -c " .. conf .. " -p " .. PREFIX)
      assert.is_false(ok)
      assert.truthy(#out > 0)
      -- the first instance is untouched
      local client = helpers.proxy_client()
      assert.res_status(200, assert(client:get("/cli/anything")))
      client:close()
    end)

    it("refuses to start on a bad configuration, naming the key", function()
      local ok, out = exec("start -c " .. write_conf { proxy_listen = "not-an-address:x" }
                           .. " -p " .. PREFIX)
      assert.is_false(ok)
      assert.matches("proxy_listen", out, 1, true)
    end)

    it("refuses to start on an invalid declarative file", function()
      local bad = tmpfile("bad.yml", [[
        _format_version: "3.0"
        services:
        - name: s
          url: http://127.0.0.1:]] .. helpers.mock_upstream_port .. "\n" .. [[
          routes:
          - paths: [ "nostartingslash" ]
      ]])
      local ok, out = exec("start -c " .. write_conf { declarative_config = bad } .. " -p " .. PREFIX)
      assert.is_false(ok)
      assert.matches("paths", out, 1, true)
    end)

    it("quits gracefully", function()
      assert.is_true((exec("start -c " .. write_conf() .. " -p " .. PREFIX)))
      local pid = helpers.get_pid(PREFIX)
      local ok, out = exec("quit -p " .. PREFIX .. " --timeout 10")
      assert.is_true(ok, out)
      helpers.wait_until(function() return not helpers.pid_alive(pid) end, 15)
    end)

    it("restarts with a new process", function()
      local conf = write_conf()
      assert.is_true((exec("start -c " .. conf .. " -p " .. PREFIX)))
      local pid = helpers.get_pid(PREFIX)
      local ok, out = exec("restart -c " .. conf .. " -p " .. PREFIX)
      assert.is_true(ok, out)
      local pid2 = helpers.get_pid(PREFIX)
      assert.is_not.equal(pid, pid2)
      assert.truthy(helpers.pid_alive(pid2))
      helpers.wait_until(function()
        local client = helpers.proxy_client()
        local res = client:get("/cli/anything")
        client:close()
        return res and res.status == 200
      end, 15)
    end)

    it("reloads while running", function()
      local conf = write_conf()
      assert.is_true((exec("start -c " .. conf .. " -p " .. PREFIX)))
      local pid = helpers.get_pid(PREFIX)
      local ok, out = exec("reload -c " .. conf .. " -p " .. PREFIX)
      assert.is_true(ok, out)
      assert.equal(pid, helpers.get_pid(PREFIX))
      local client = helpers.proxy_client()
      assert.res_status(200, assert(client:get("/cli/anything")))
      client:close()
    end)
  end)

  describe("config parse", function()
    it("accepts a valid declarative file", function()
      local ok, out = exec("config parse " .. tmpdir .. "/kong.yml")
      assert.is_true(ok, out)
      assert.matches("parse successful", out, 1, true)
    end)

    it("prints Kong's error text for an invalid file", function()
      local bad = tmpfile("bad2.yml", [[
        _format_version: "3.0"
        services:
        - name: s
          port: 99999
          host: example.test
      ]])
      local ok, out = exec("config parse " .. bad)
      assert.is_false(ok)
      assert.matches("Error: Failed parsing:", out, 1, true)
      assert.matches("port", out, 1, true)
    end)
  end)

  describe("lua and busted", function()
    it("tollgate lua runs a file with its arguments", function()
      local f = tmpfile("args.lua", [[
        local a, b = ...
        io.write(arg[1], "+", arg[2], "=", a, b, " ", type(jit))
      ]])
      local ok, out = exec("lua " .. f .. " x y")
      assert.is_true(ok, out)
      assert.equal("x+y=xy table", out)
    end)

    it("tollgate lua exits 1 when the file raises an error", function()
      local f = tmpfile("err.lua", [[ error("deliberate") ]])
      local ok, out, code = exec("lua " .. f)
      assert.is_false(ok)
      assert.equal(1, code)
      assert.matches("deliberate", out, 1, true)
    end)

    it("tollgate busted returns busted's verdict", function()
      local pass = tmpfile("pass_spec.lua", [[
        describe("p", function() it("passes", function() assert.equal(2, 1 + 1) end) end)
      ]])
      local fail = tmpfile("fail_spec.lua", [[
        describe("f", function() it("fails", function() assert.equal(3, 1 + 1) end) end)
      ]])
      local ok, out = exec("busted -o plainTerminal " .. pass)
      assert.is_true(ok, out)
      assert.matches("1 success / 0 failures", out, 1, true)
      ok, out = exec("busted -o plainTerminal " .. fail)
      assert.is_false(ok)
      assert.matches("0 successes / 1 failure", out, 1, true)
    end)
  end)
end)
