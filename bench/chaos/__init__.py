"""make chaos: faults injected under load, with every outcome accounted for (after Jepsen).

The service runs with 2 workers (CPU 0) on its own stack (.data/chaos), reaching Redis through a
TCP proxy that can black-hole it. Concurrent writers post tweets, each with a unique marker and
1-2 tags shared between writers, and record every outcome: acknowledged (201 and id), refused
(an error status, or a connection that never opened) or indeterminate (sent, no answer).
Concurrent readers search the shared tags (page_size 100) and record start, end, total and ids.
Meanwhile faults are injected one after another, with steady periods between:

  redis-kill    Redis killed (-9), restarted after the fault period
  redis-freeze  Redis stopped (SIGSTOP), resumed (SIGCONT)
  redis-cut     Redis cut off by the proxy (bytes swallowed), then reconnected
  pg-kill       PostgreSQL's postmaster killed (-9), restarted
  worker-kill   one service worker killed (-9) (a sibling starts it again)
  sigterm       the whole service sent SIGTERM under load, started again once it has exited

After healing: every acknowledged tweet must be in PostgreSQL and in the search results of each
of its tags, and each tag's total must equal its count in PostgreSQL. Per fault: writes attempted,
acknowledged, lost, refused, indeterminate (and whether they landed); reads that started after an
acknowledgement and missed it; statuses; seconds to recover. Exit 1 if a target is missed.

    python -m bench.chaos [--short] [--publish]       (make chaos; CI runs make chaos CHAOS_SHORT=1)
"""
