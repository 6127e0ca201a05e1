-- One wrk script for every scenario, driven by environment variables:
--   BENCH_METHOD   GET (default), POST, OPTIONS
--   BENCH_ORIGINS  comma-separated Origin values, sent round-robin ("" = no Origin)
--   BENCH_PREFLIGHT=1  add Access-Control-Request-Method/-Headers (a CORS preflight)
--   BENCH_BODY_BYTES  request body size (POST)
--   BENCH_PATH     request target (default /api/items?page=1)
-- Requests are formatted once in init(); request() only picks the next one.
local requests = {}
local n = 0
local i = 0

local function split (s)
  local out = {}
  for part in string.gmatch(s, "([^,]+)") do out[#out + 1] = part end
  return out
end

init = function (args)
  local method = os.getenv("BENCH_METHOD") or "GET"
  local origins = split(os.getenv("BENCH_ORIGINS") or "")
  if #origins == 0 then origins = { "" } end
  local bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "0")
  local path = os.getenv("BENCH_PATH") or "/api/items?page=1"
  local body = nil
  if bytes > 0 then body = string.rep("x", bytes) end
  for _, origin in ipairs(origins) do
    local headers = {}
    if origin ~= "" then headers["Origin"] = origin end
    if os.getenv("BENCH_PREFLIGHT") == "1" then
      headers["Access-Control-Request-Method"] = "POST"
      headers["Access-Control-Request-Headers"] = "content-type, authorization"
    end
    if body ~= nil then headers["Content-Type"] = "application/octet-stream" end
    n = n + 1
    requests[n] = wrk.format(method, path, headers, body)
  end
end

request = function ()
  i = i % n + 1
  return requests[i]
end
