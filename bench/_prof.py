import subprocess, sys, time
from bench.harness import *
prepare_stack()
ep = sys.argv[1]
extra = dict(a.split("=",1) for a in sys.argv[2:])
with Server(extra, "0") as s:
    tok = token(s.url)
    wrk(s, ep, 2, tok, "1")
    worker = s.processes()[-1].pid
    p = subprocess.Popen([".venv/bin/py-spy", "record", "-p", str(worker), "-d", "6", "-r", "200", "-f", "raw", "-o", f"/tmp/prof_{ep}.txt", "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = wrk(s, ep, 5, tok, "1")
    p.wait()
    print(ep, round(r["rps"]))
