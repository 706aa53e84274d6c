-- wrk: POST /api/auth/login with the right password, rotating over the
-- bench users (emails one per line in $EMAILS_FILE). Successful logins are
-- not rate-limited.
local emails = {}
for line in io.lines(os.getenv("EMAILS_FILE")) do
  emails[#emails + 1] = line
end
local n = 0
request = function()
  n = n + 1
  local email = emails[(n % #emails) + 1]
  return wrk.format("POST", "/api/auth/login", { ["Content-Type"] = "application/json" },
    '{"email":"' .. email .. '","password":"bench-password-1"}')
end
