-- The Lua API tollgate offers plugins: the `kong` PDK (kong.pdk.*), the
-- kong.* modules plugins import (typedefs, constants, meta, tools, reports)
-- and tollgate's own resty.* / ngx.* modules (lua-resty-string's,
-- lua-resty-openssl's, ngx.base64...). They call into the tollgate binary
-- (its tg_pdk_* C ABI and libcrypto) through LuaJIT's FFI, so they run only
-- inside tollgate; tollgate itself always loads its own copy first. The rock
-- is for tooling and for plugin rocks to depend on (`tollgate-pdk`).
--   luarocks --lua-version=5.1 make rockspecs/tollgate-pdk-0.1.0-1.rockspec
package = "tollgate-pdk"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null", -- `luarocks make` builds the checkout it runs in
}
description = {
  summary = "tollgate's plugin development kit (Kong 3.10 compatible)",
  homepage = "https://example.invalid/tollgate",
  license = "Apache-2.0",
}
dependencies = {
  "lua == 5.1",
}
build = {
  -- whole directories, so that a module added to the tree is in the rock
  type = "command",
  build_command = "true",
  install_command = [[
    mkdir -p "$(LUADIR)/tollgate" &&
    cp -R pdk/kong "$(LUADIR)/" &&
    cp -R core/lua/kong core/lua/resty core/lua/ngx "$(LUADIR)/" &&
    cp core/lua/tollgate/openssl.lua core/lua/tollgate/openssl_param.lua \
       core/lua/tollgate/resty_digest.lua \
       core/lua/tollgate/modules.lua "$(LUADIR)/tollgate/"
  ]],
}
