-- spec.helpers (Kong's helper names: blueprints, start_kong, proxy_client,
-- assert.res_status...) for plugin specs outside a tollgate checkout. They
-- drive the `tollgate` on PATH (or $TOLLGATE_BIN) and its mock upstream
-- ($TG_ECHO_SERVER_BIN, default beside the binary).
--   luarocks --lua-version=5.1 make rockspecs/tollgate-spec-helpers-0.1.0-1.rockspec
package = "tollgate-spec-helpers"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null", -- `luarocks make` builds the checkout it runs in
}
description = {
  summary = "busted helpers for tollgate plugin specs (Kong's spec.helpers names)",
  homepage = "https://example.invalid/tollgate",
  license = "Apache-2.0",
}
dependencies = {
  "lua == 5.1",
}
build = {
  type = "builtin",
  modules = {
    ["spec.helpers"] = "spec/helpers.lua",
    ["spec.helpers.blueprints"] = "spec/helpers/blueprints.lua",
    ["spec.helpers.http"] = "spec/helpers/http.lua",
    ["spec.helpers.scratch"] = "spec/helpers/scratch.lua",
  },
}
