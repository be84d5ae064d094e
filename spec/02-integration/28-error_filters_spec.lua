-- The gateway's own errors after access (502, 503, 504) go through the
-- plugins' header_filter, body_filter and log as Kong's error handler does,
-- with kong.response.get_source() "error"; a Lua error in header_filter ends
-- the request without an answer, as a failing header filter does in nginx.
-- Fixture: spec/fixtures/custom_plugins/kong/plugins/err-filters.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local function log_has(text)
  local f = io.open(helpers.error_log_path(), "r")
  if not f then
    return false
  end
  local all = f:read("*a")
  f:close()
  return all:find(text, 1, true) ~= nil
end

local function get(path, headers)
  local client = helpers.proxy_client(20000)
  local res, err = client:get(path, { headers = headers })
  if not res then
    client:close()
    return nil, err
  end
  local body = res:read_body()
  client:close()
  return res, body
end

describe("gateway errors and the plugins' filters", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "err-filters" })
    local ok = bp.services:insert { name = "ok" }
    local refused = bp.services:insert { name = "refused", host = "127.0.0.1", port = 1,
                                         retries = 1 }
    local slow = bp.services:insert { name = "slow", url = helpers.mock_upstream_url .. "/delay/5",
                                      read_timeout = 300, retries = 0 }
    bp.upstreams:insert { name = "empty-ring" }
    local ring = bp.services:insert { name = "ring", host = "empty-ring" }
    local routes = {
      { "/ok", ok }, { "/e502", refused }, { "/e504", slow }, { "/e503", ring },
    }
    for _, r in ipairs(routes) do
      local route = bp.routes:insert { service = r[2], paths = { r[1] } }
      bp.plugins:insert { name = "err-filters", route = route, config = {} }
    end
    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,err-filters",
      lua_package_path = PLUGINS_PATH,
      log_level = "notice",
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  for _, c in ipairs {
    { "/e502", 502, "An invalid response was received from the upstream server" },
    { "/e503", 503, "failure to get a peer from the ring-balancer" },
    { "/e504", 504, "The upstream server is timing out" },
  } do
    local path, status, message = c[1], c[2], c[3]

    it(path .. ": header_filter, body_filter and log see the error, source 'error'", function()
      local res, body = get(path, { ["X-Id"] = path, Accept = "application/json" })
      assert(res, body)
      assert.equal(status, res.status)
      assert.equal("error", res.headers["x-source"])
      assert.equal(tostring(status), res.headers["x-hf-status"])
      -- what access set is not part of the error's answer
      assert.is_nil(res.headers["x-set-in-access"])
      local json = cjson.decode(body)
      assert.equal(message, json.message)
      assert.matches("json", res.headers["content-type"])
      assert.equal(#body, tonumber(res.headers["content-length"]))
      helpers.wait_until(function()
        return log_has("err-filters log " .. path .. " status " .. status .. " source error body " .. #body)
      end, 10)
    end)

    it(path .. ": body_filter may rewrite the error's body", function()
      local res, body = get(path, { ["X-Bf-Upper"] = "1", Accept = "application/json" })
      assert(res, body)
      assert.equal(status, res.status)
      assert.equal(message:upper(), cjson.decode(body).MESSAGE)
      assert.equal(#body, tonumber(res.headers["content-length"]))
    end)
  end

  it("the upstream's own answers still say source 'service'", function()
    local res = get("/ok")
    assert.equal(200, res.status)
    assert.equal("service", res.headers["x-source"])
    assert.equal("yes", res.headers["x-set-in-access"])
  end)

  describe("an error in header_filter", function()
    it("ends a proxied request without an answer, logs it and runs log", function()
      local res, err = get("/ok", { ["X-Hf-Error"] = "1", ["X-Id"] = "hf-proxied" })
      assert.is_nil(res)
      assert.matches("closed", err)
      helpers.wait_until(function()
        return log_has("[err-filters] header_filter failed:") and
               log_has("boom in header_filter") and
               log_has("err-filters log hf-proxied status")
      end, 10)
      -- the worker serves on
      assert.equal(200, get("/ok").status)
    end)

    it("ends a kong.response.exit answer the same way", function()
      local res, err = get("/ok", { ["X-Hf-Error"] = "1", ["X-Exit"] = "1" })
      assert.is_nil(res)
      assert.matches("closed", err)
      local ok = get("/ok", { ["X-Exit"] = "1" })
      assert.equal(418, ok.status)
      assert.equal("exit", ok.headers["x-source"])
    end)

    it("ends a gateway error's answer the same way", function()
      local res, err = get("/e502", { ["X-Hf-Error"] = "1" })
      assert.is_nil(res)
      assert.matches("closed", err)
      assert.equal(200, get("/ok").status)
    end)
  end)
end)
