-- Exercises the interpreter across its files: the parser and VM, closures, metatables, strings,
-- tables, coroutines, errors and the garbage collector.
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
print("fib(20)", fib(20))

local counters = {}
for i = 1, 5 do
  local n = 0
  counters[i] = function() n = n + i; return n end
end
for _ = 1, 3 do for i = 1, 5 do counters[i]() end end
print("closures", counters[1](), counters[5]())

local Vec = {}
Vec.__index = Vec
Vec.__add = function(a, b) return setmetatable({ x = a.x + b.x, y = a.y + b.y }, Vec) end
Vec.__tostring = function(v) return string.format("(%g, %g)", v.x, v.y) end
local v = setmetatable({ x = 1.5, y = -2 }, Vec) + setmetatable({ x = 2, y = 4.25 }, Vec)
print("metatables", tostring(v))

local words = {}
for w in ("the quick brown fox jumps over the lazy dog"):gmatch("%a+") do words[#words + 1] = w:upper() end
table.sort(words)
print("strings", table.concat(words, ","), ("%05.1f|%x|%q"):format(3.14159, 255, "a\nb"))

local co = coroutine.create(function(a)
  local s = a
  for i = 1, 3 do s = s + coroutine.yield(s) * i end
  return "done", s
end)
local out = {}
local ok, val = coroutine.resume(co, 1)
while coroutine.status(co) ~= "dead" do
  out[#out + 1] = tostring(val)
  ok, val = coroutine.resume(co, #out)
end
print("coroutines", table.concat(out, " "), val)

local ok2, err = pcall(function() error({ code = 42 }) end)
print("errors", ok2, type(err), err.code, select(2, pcall(error, "plain")))

local t = {}
for i = 1, 20000 do t[i] = { i, tostring(i) } end
t = nil
collectgarbage()
local before = collectgarbage("count")
local big = {}
for i = 1, 1000 do big[#big + 1] = string.rep("x", i % 50) end
print("gc", #big, collectgarbage("count") >= before)
print("math", math.floor(2 ^ 40 + 0.5), math.maxinteger // 3, 7 % -3, -7 // 2, 10 / 4)
print("utf8", utf8.len("h\u{e9}llo"), utf8.char(72, 228, 8364))
