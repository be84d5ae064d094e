-- Routing through the proxy (Kong's traditional_compatible router): which
-- route served a request is read from the path the upstream received, since
-- each route's service has its own path ("/anything/<tag>").
local helpers = require "spec.helpers"
local cjson = require "cjson"
local pl_file = require "pl.file"
local pl_dir = require "pl.dir"

local PORT = helpers.test_conf.proxy_port

-- Sends a request; returns the upstream path, or nil and the status.
local function upstream_uri(client, opts)
  local res = assert(client:send(opts))
  local body = res:read_body()
  if res.status ~= 200 then return nil, res.status end
  return cjson.decode(body).uri
end

describe("router", function()
  local client

  lazy_setup(function()
    local bp = helpers.get_db_utils("off")
    local services = {}
    local function route(tag, fields)
      services[tag] = services[tag] or bp.services:insert { name = "svc-" .. tag:gsub("/", "_"),
                                                            path = "/anything/" .. tag }
      fields.service = services[tag]
      fields.name = fields.name or ("route-" .. tag:gsub("/", "_") .. "-" .. tostring(#tag))
      return bp.routes:insert(fields)
    end

    route("exact", { hosts = { "exact.test" } })
    route("port", { hosts = { "port.test:" .. PORT } })
    route("wild", { hosts = { "*.wild.test" } })
    route("wildexact", { hosts = { "exact.wild.test" } })
    route("wildend", { hosts = { "wildend.*" } })
    route("many", { paths = { "/m" } })
    route("mpost", { paths = { "/m" }, methods = { "POST" } })
    route("hplain", { paths = { "/h" } })
    route("hv2", { paths = { "/h" }, headers = { ["x-version"] = { "v2" } } })
    route("hbeta", { paths = { "/h" }, headers = { ["x-channel"] = { "~*^beta" } } })
    route("uprefix", { paths = { "/users" }, strip_path = false })
    route("uregex", { paths = { [[~/users/\d+$]] }, strip_path = false })
    route("rplow", { paths = { "~/rp/.*" }, regex_priority = 0, strip_path = false })
    route("rphigh", { paths = { "~/rp/a.*" }, regex_priority = 10, strip_path = false })
    route("l1", { paths = { "/long" } })
    route("l2", { paths = { "/long/er" } })
    route("hostpath", { hosts = { "exact.test" }, paths = { "/hp" } })

    -- strip_path / service path (Kong's path_handling v0)
    local s_noslash = bp.services:insert { name = "s-noslash", path = "/anything/s" }
    local s_slash = bp.services:insert { name = "s-slash", path = "/anything/s/" }
    bp.routes:insert { name = "fv0", service = s_noslash, paths = { "/fv0" } }
    bp.routes:insert { name = "tv0", service = s_slash, paths = { "/tv0" } }
    bp.routes:insert { name = "nv0", service = s_noslash, paths = { "/nv0" }, strip_path = false }

    -- a second workspace, loaded from its own declarative file
    local ws = bp.workspaces:insert { name = "team-b" }
    local sb = bp.services:insert({ name = "svc-b", path = "/anything/wsb" }, { workspace = ws })
    bp.routes:insert({ name = "route-b", service = sb, hosts = { "ws-b.test" } },
                     { workspace = ws })
    route("wsa", { hosts = { "ws-a.test" } })

    assert(helpers.start_kong { database = "off" })
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  before_each(function() client = helpers.proxy_client() end)
  after_each(function() client:close() end)

  local function get(path, headers, method)
    return upstream_uri(client, { method = method or "GET", path = path, headers = headers })
  end

  describe("hosts", function()
    it("match exactly and case-insensitively", function()
      assert.equal("/anything/exact", get("/", { Host = "exact.test" }))
      assert.equal("/anything/exact", get("/", { Host = "EXACT.Test" }))
      assert.equal("/anything/exact", get("/", { Host = "exact.test:" .. PORT }))
    end)

    it("with a port match only that port", function()
      assert.equal("/anything/port", get("/", { Host = "port.test:" .. PORT }))
      local uri, status = get("/", { Host = "port.test:1234" })
      assert.is_nil(uri)
      assert.equal(404, status)
    end)

    it("match a leftmost wildcard, plain hosts winning over it", function()
      assert.equal("/anything/wild", get("/", { Host = "a.wild.test" }))
      assert.equal("/anything/wild", get("/", { Host = "a.b.wild.test" }))
      assert.equal("/anything/wildexact", get("/", { Host = "exact.wild.test" }))
      assert.is_nil((get("/", { Host = "wild.test" })))
    end)

    it("match a rightmost wildcard", function()
      assert.equal("/anything/wildend", get("/", { Host = "wildend.org" }))
      assert.equal("/anything/wildend", get("/", { Host = "wildend.co.uk" }))
    end)

    it("combine with paths, the route with more criteria winning", function()
      assert.equal("/anything/hostpath", get("/hp", { Host = "exact.test" }))
      assert.equal("/anything/exact/other", get("/other", { Host = "exact.test" }))
    end)
  end)

  describe("methods and headers", function()
    it("a route with a matching method wins over one without methods", function()
      assert.equal("/anything/many", get("/m"))
      assert.equal("/anything/mpost", get("/m", nil, "POST"))
    end)

    it("header values match case-insensitively", function()
      assert.equal("/anything/hplain", get("/h"))
      assert.equal("/anything/hv2", get("/h", { ["X-Version"] = "v2" }))
      assert.equal("/anything/hv2", get("/h", { ["X-Version"] = "V2" }))
      assert.equal("/anything/hplain", get("/h", { ["X-Version"] = "v3" }))
    end)

    it("header values starting with ~* are case-insensitive regexes", function()
      assert.equal("/anything/hbeta", get("/h", { ["X-Channel"] = "Beta-7" }))
      assert.equal("/anything/hplain", get("/h", { ["X-Channel"] = "alpha" }))
    end)
  end)

  describe("paths", function()
    it("regex paths win over prefix paths", function()
      assert.equal("/anything/uregex/users/42", get("/users/42"))
      assert.equal("/anything/uprefix/users/abc", get("/users/abc"))
    end)

    it("a higher regex_priority wins", function()
      assert.equal("/anything/rphigh/rp/abc", get("/rp/abc"))
      assert.equal("/anything/rplow/rp/xyz", get("/rp/xyz"))
    end)

    it("the longest prefix wins", function()
      assert.equal("/anything/l2/x", get("/long/er/x"))
      assert.equal("/anything/l1/x", get("/long/x"))
    end)

    it("matches the normalised path", function()
      assert.equal("/anything/l2/x", get("/long//er/./x"))
      assert.equal("/anything/l2/x", get("/long/%65r/x"))
    end)

    it("answers 404 when nothing matches", function()
      local uri, status = get("/nothing/here")
      assert.is_nil(uri)
      assert.equal(404, status)
    end)
  end)

  -- Kong 3.10's kong/router/utils.lua get_upstream_uri_v0: a postfix without a
  -- leading slash is joined with one; a service path ending in "/" loses it when
  -- nothing follows the stripped prefix and the request did not end in "/".
  describe("upstream path (strip_path, service path: path_handling v0)", function()
    local cases = {
      { "/fv0", "/anything/s" },
      { "/fv0/", "/anything/s/" },
      { "/fv0req", "/anything/s/req" },
      { "/fv0/req", "/anything/s/req" },
      { "/tv0", "/anything/s" },
      { "/tv0/", "/anything/s/" },
      { "/tv0/req", "/anything/s/req" },
      { "/nv0/req", "/anything/s/nv0/req" },
      { "/fv0/req?a=1", "/anything/s/req" },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " reaches the upstream as " .. c[2], function()
        assert.equal(c[2], get(c[1]))
      end)
    end
  end)

  describe("workspaces", function()
    it("one router serves routes of two workspaces loaded DB-less", function()
      assert.equal("/anything/wsa", get("/", { Host = "ws-a.test" }))
      assert.equal("/anything/wsb", get("/", { Host = "ws-b.test" }))
    end)
  end)
end)

describe("conflicting workspaces", function()
  local dir

  lazy_setup(function()
    dir = os.tmpname()
    os.remove(dir)
    pl_dir.makepath(dir)
  end)

  lazy_teardown(function()
    pl_dir.rmtree(dir)
  end)

  local function write(name, text)
    assert(pl_file.write(dir .. "/" .. name, helpers.unindent(text) .. "\n"))
  end

  it("are refused by `tollgate config parse`, naming both routes", function()
    write("a.yml", [[
      _format_version: "3.0"
      services:
      - name: sa
        url: http://127.0.0.1:15555
        routes:
        - name: route-in-default
          paths: [ "/shared" ]
    ]])
    write("b.yml", [[
      _format_version: "3.0"
      _workspace: team-b
      services:
      - name: sb
        url: http://127.0.0.1:15555
        routes:
        - name: route-in-team-b
          hosts: [ "b.test" ]
          paths: [ "/shared/more" ]
    ]])
    local ok, err, out = helpers.kong_exec("config parse " .. dir)
    local text = (err or "") .. (out or "")
    assert.is_false(ok, text)
    assert.matches("route-in-default", text, 1, true)
    assert.matches("route-in-team-b", text, 1, true)
  end)

  it("are accepted when their traffic cannot collide", function()
    pl_dir.rmtree(dir)
    pl_dir.makepath(dir)
    write("a.yml", [[
      _format_version: "3.0"
      services:
      - name: sa
        url: http://127.0.0.1:15555
        routes:
        - name: ra
          hosts: [ "a.test" ]
          paths: [ "/shared" ]
    ]])
    write("b.yml", [[
      _format_version: "3.0"
      _workspace: team-b
      services:
      - name: sb
        url: http://127.0.0.1:15555
        routes:
        - name: rb
          hosts: [ "b.test" ]
          paths: [ "/shared" ]
    ]])
    local ok, err, out = helpers.kong_exec("config parse " .. dir)
    assert.is_true(ok, (err or "") .. (out or ""))
  end)
end)
