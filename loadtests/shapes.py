"""Step load: add STEP_USERS users every STEP_SECONDS up to MAX_USERS, to find the knee of the
throughput curve (where req/s stops rising and latency climbs). Use with the locustfile:

    locust -f loadtests/locustfile.py,loadtests/shapes.py --headless MixedUser
"""

from __future__ import annotations

import os

from locust import LoadTestShape


class StepLoadShape(LoadTestShape):
    step_users = int(os.environ.get("STEP_USERS", "10"))
    step_seconds = int(os.environ.get("STEP_SECONDS", "15"))
    max_users = int(os.environ.get("MAX_USERS", "100"))

    def tick(self) -> tuple[int, float] | None:
        steps_done = int(self.get_run_time() // self.step_seconds)
        users = (steps_done + 1) * self.step_users
        if users > self.max_users:
            return None  # stop after the last step
        return users, float(self.step_users)
