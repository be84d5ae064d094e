-- kong.tools.utils: as in Kong 3.10, the functions of kong.tools.table,
-- .uuid, .rand, .time, .string, .ip and .http in one table.

local utils = {}

for _, name in ipairs({ "kong.tools.table", "kong.tools.uuid", "kong.tools.rand",
                        "kong.tools.time", "kong.tools.string", "kong.tools.ip",
                        "kong.tools.http" }) do
  for k, v in pairs(require(name)) do
    utils[k] = v
  end
end

return utils
