-- POST /api/v1/login as the seeded users (bench_1 .. bench_$USERS).
dofile(os.getenv("WRK_DIR") .. "/common.lua")
wrk.headers["Authorization"] = nil
local users = tonumber(os.getenv("USERS") or "1000")
local n = 0
function request()
  n = n + 1
  local body = '{"username": "bench_' .. ((n % users) + 1) .. '", "password": "bench-password"}'
  return wrk.format("POST", "/api/v1/login", nil, body)
end
