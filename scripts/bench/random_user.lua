-- wrk -s random_user.lua URL -- N: each request GETs URL .. id, id drawn from 1..N (the seeded users),
-- so that no layer can answer the load from one hot row or coalesce it into one id.
local users = 1

function init(args)
  users = tonumber(args[1])
end

function request()
  return wrk.format("GET", wrk.path .. math.random(1, users))
end
