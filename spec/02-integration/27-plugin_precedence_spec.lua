-- Kong's precedence of a plugin's scoped configurations, every combination,
-- through the real binary: route+service+consumer, route+consumer,
-- service+consumer, route+service, consumer, route, service, global. The
-- consumer-bound ones apply once a plugin that runs first (prec-auth) has
-- authenticated the consumer; the instance access picked also runs
-- header_filter and log. Fixtures: spec/fixtures/custom_plugins/kong/plugins/
-- prec-auth and prec-probe.
local helpers = require "spec.helpers"

local PLUGINS_PATH = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

local consumer, other
local s1, rd

local function log_has(text)
  local f = io.open(helpers.error_log_path(), "r")
  if not f then
    return false
  end
  local all = f:read("*a")
  f:close()
  return all:find(text, 1, true) ~= nil
end

local function probe(path, who, id)
  local client = helpers.proxy_client()
  local headers = { ["X-Prec-Id"] = id }
  if who then
    headers["X-Consumer-Id"] = who.id
  end
  local res = assert(client:get(path, { headers = headers }))
  local body = res:read_body()
  client:close()
  assert.equal(200, res.status, body)
  return res.headers["x-prec"], res.headers["x-prec-hf"], res
end

describe("plugin precedence", function()
  lazy_setup(function()
    local bp = helpers.get_db_utils("off", nil, { "prec-auth", "prec-probe" })
    consumer = bp.consumers:insert { username = "alice" }
    other = bp.consumers:insert { username = "bob" }
    s1 = bp.services:insert { name = "s1" }
    local s2 = bp.services:insert { name = "s2" }
    bp.routes:insert { name = "plain", service = s2, paths = { "/plain" } }
    bp.routes:insert { name = "svc", service = s1, paths = { "/svc" } }
    local ra = bp.routes:insert { name = "ra", service = s1, paths = { "/ra" } }
    local rb = bp.routes:insert { name = "rb", service = s1, paths = { "/rb" } }
    local rc = bp.routes:insert { name = "rc", service = s1, paths = { "/rc" } }
    rd = bp.routes:insert { name = "rd", service = s1, paths = { "/rd" } }
    local re = bp.routes:insert { name = "re", service = s2, paths = { "/re" } }

    bp.plugins:insert { name = "prec-auth", config = {} }
    local function probe_at(tag, scope)
      scope.name = "prec-probe"
      scope.config = { tag = tag }
      bp.plugins:insert(scope)
    end
    probe_at("global", {})
    probe_at("service", { service = s1 })
    probe_at("route", { route = ra })
    probe_at("route+service", { route = rb, service = s1 })
    probe_at("consumer", { consumer = consumer })
    probe_at("service+consumer", { service = s1, consumer = consumer })
    probe_at("route+consumer", { route = rc, consumer = consumer })
    probe_at("route+service+consumer", { route = rd, service = s1, consumer = consumer })
    probe_at("route-re", { route = re })
    probe_at("route+consumer-re", { route = re, consumer = consumer })

    assert(helpers.start_kong {
      database = "off",
      plugins = "bundled,prec-auth,prec-probe",
      lua_package_path = PLUGINS_PATH,
      log_level = "notice",
    })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  -- { path, consumer or nil, the winning instance }
  local cases = {
    { "/plain", nil, "global" },
    { "/plain", "consumer", "consumer" },
    { "/plain", "other", "global" },
    { "/svc", nil, "service" },
    { "/svc", "consumer", "service+consumer" },
    { "/ra", nil, "route" },
    { "/ra", "consumer", "service+consumer" },
    { "/rb", nil, "route+service" },
    { "/rb", "consumer", "service+consumer" },
    { "/rc", nil, "service" },
    { "/rc", "consumer", "route+consumer" },
    { "/rc", "other", "service" },
    { "/rd", nil, "service" },
    { "/rd", "consumer", "route+service+consumer" },
    { "/rd", "other", "service" },
    { "/re", nil, "route-re" },
    { "/re", "consumer", "route+consumer-re" },
  }

  it("configure(configs) gets every instance's config; each config has Kong's added fields",
     function()
    local _, _, res = probe("/rd", consumer, "fields")
    assert.equal("10:consumer,global,route,route+consumer,route+consumer-re,route+service," ..
                 "route+service+consumer,route-re,service,service+consumer",
                 res.headers["x-prec-configured"])
    local ids = {}
    for part in (res.headers["x-prec-ids"] .. "|"):gmatch("([^|]*)|") do
      ids[#ids + 1] = part
    end
    assert.same({ rd.id, s1.id, consumer.id, "id-ok",
                  "plugins:prec-probe:" .. rd.id .. ":" .. s1.id .. ":" .. consumer.id .. "::" ..
                  ids[5]:match("::(.*)$"), "number" }, ids)
    -- a global instance: no scope ids
    _, _, res = probe("/plain", nil, "fields2")
    assert.matches("^%-|%-|%-|id%-ok|plugins:prec%-probe:::::%x+%-[%x-]+|number$", res.headers["x-prec-ids"])
  end)

  for i, c in ipairs(cases) do
    local path, who, want = c[1], c[2], c[3]
    it(string.format("%s as %s: the %s instance", path, who or "anonymous", want), function()
      local whom = who == "consumer" and consumer or who == "other" and other or nil
      local tag, hf_tag = probe(path, whom, "case" .. i)
      assert.equal(want, tag)
      assert.equal(want, hf_tag) -- header_filter runs what access picked
      helpers.wait_until(function()
        return log_has("prec-probe log case" .. i .. " " .. want .. "\n") or
               log_has("prec-probe log case" .. i .. " " .. want .. ",")
      end, 10)
    end)
  end
end)
