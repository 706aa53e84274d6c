-- wrk: POST /api/tasks, rotating over the bench users' tokens (one per line
-- in $TOKENS_FILE), so writes spread over users as real traffic does.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  tokens[#tokens + 1] = line
end
local n = 0
request = function()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("POST", "/api/tasks", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, '{"title":"bench task","description":"written by the benchmark","priority":3}')
end
