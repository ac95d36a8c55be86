import sys, statistics
from bench.harness import *
prepare_stack()
eps = sys.argv[1].split(",")
extra = dict(a.split("=",1) for a in sys.argv[2:])
res = {e: [] for e in eps}
with Server(extra, "0") as s:
    tok = token(s.url)
    for e in eps: wrk(s, e, 1, tok, "1")
    for _ in range(3):
        for e in eps:
            res[e].append(wrk(s, e, 3, tok, "1")["rps"])
base = statistics.median(res[eps[0]])
for e in eps:
    print(e, [round(x) for x in res[e]], round(statistics.median(res[e]) / base, 3))
