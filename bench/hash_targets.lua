-- bench/hash_targets.lua (wrk -s): a different X-Key on each request, cycling
-- over 100000 keys, so that consistent-hashing spreads the load.
local n = 0
request = function()
  n = (n + 1) % 100000
  return wrk.format("GET", nil, { ["X-Key"] = "key-" .. n })
end
