-- wrk script for bench/tokens: every request is built by request(), for every target, so the
-- load generator does the same work whichever target it drives.
--
--   wrk ... -s lines.lua <url> -- [proofs-file]
--
-- With a file, request i carries line i as its DPoP header (one fresh proof per request);
-- a proof is never sent twice: past the end of the file requests go without one (and are
-- refused, which the runner counts as errors). done() prints how many lines were used.

proofs = {}
count = 0
used = 0

function init(args)
  local file = args[1]
  if file then
    for line in io.lines(file) do
      count = count + 1
      proofs[count] = line
    end
  end
end

function request()
  if count > 0 then
    used = used + 1
    -- wrk.headers holds the -H headers and Host (with the port); the DPoP line is added to it.
    wrk.headers["DPoP"] = proofs[used]
  end
  return wrk.format()
end

threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total, available = 0, 0
  for _, t in ipairs(threads) do
    total = total + t:get("used")
    available = available + t:get("count")
  end
  io.write(string.format("proofs used: %d of %d\n", total, available))
end
