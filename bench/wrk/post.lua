-- POST /api/v1/tweet with 1-3 tags drawn from a Zipf-like spread over the seeded topics
-- ($PREFIX1..$PREFIX1000; PREFIX "topic").
dofile(os.getenv("WRK_DIR") .. "/common.lua")
local n = 0
local prefix = os.getenv("PREFIX") or "topic"
math.randomseed(7)
local function topic()
  -- inverse-CDF of a 1/k law over 1000 topics, cheap enough to run per request
  return prefix .. math.floor(math.exp(math.random() * math.log(1000)))
end
function request()
  n = n + 1
  local tags = '"' .. topic() .. '"'
  if n % 2 == 0 then tags = tags .. ',"' .. topic() .. '"' end
  local body = '{"msg": "wrk post ' .. n .. ' #' .. topic() .. '", "tags": [' .. tags .. ']}'
  return wrk.format("POST", "/api/v1/tweet", nil, body)
end
