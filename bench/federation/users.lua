-- wrk script for bench/federation: every request names the next of N people (round robin), for
-- every target, so the load generator does the same work whichever target it drives.
--
--   wrk ... -s users.lua <url> -- <N>

users = 1
n = 0

function init(args)
  users = tonumber(args[1]) or 1
end

function request()
  n = n + 1
  wrk.headers["x-test-identity"] = "test-identity-secret:user" .. (n % users)
  return wrk.format()
end
