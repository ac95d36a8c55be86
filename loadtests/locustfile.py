"""Locust scenarios for Simple Twitter: one user class per scenario.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:2080 --class-picker   (web UI)
    locust -f loadtests/locustfile.py --headless -u 50 -t 60s MixedUser             (one scenario)
    locust -f loadtests/locustfile.py,loadtests/shapes.py ...                       (step load)

Scenarios, also selectable by tag (-T): ReaderUser (reader), ColdReaderUser (cold),
PosterUser (poster), RegistrarUser (registrar), MixedUser (mixed). Tag popularity follows
the same Zipf law as the seeded data (bench/seed.py): topic1 is the hottest. Requests are
named by endpoint, so statistics read per endpoint, not per tag URL.

Gates (headless runs): --max-fail-ratio (default 0) and --max-p95-ms (default 0 = off) make
the run exit with code 3 and say which bound broke and where.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import uuid
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, tag, task
from locust.runners import WorkerRunner

# Locust imports this file by path: the project's packages are found from its root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.seed import SeedSpec, topic, zipf_sampler

SPEC = SeedSpec()  # the data make loadtest seeds: the same topics and Zipf law
PASSWORD = "load-test-password"
SEARCH = "/api/v1/search-tweets"
log = logging.getLogger("loadtests")


def cold_topic(rng: random.Random) -> str:
    """The long tail (rarely searched, so rarely cached), or a tag nobody ever used."""
    if rng.random() < 0.5:
        return topic(rng.randint(SPEC.topics // 2, SPEC.topics))
    return f"never_{uuid.uuid4().hex[:10]}"


def why(response: Any) -> str:
    """Status and the start of the body, or the connection error when there was no response."""
    if response.error and not response.status_code:
        return f"no response ({response.error})"
    return f"{response.status_code} {(response.text or '')[:200]}"


class ServiceUser(FastHttpUser):
    """Signs up and logs in once (on_start), then reuses its bearer token."""

    abstract = True
    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.pick_topic = zipf_sampler(SPEC.topics, SPEC.zipf_s, self.rng)
        self.username = f"lt_{uuid.uuid4().hex[:16]}"
        self.register(self.username)
        self.token = self.login(self.username)

    def hot_topic(self) -> str:
        """A tag drawn by the seed's Zipf law (topic1 the hottest)."""
        return topic(self.pick_topic())

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def register(self, username: str) -> None:
        body = {"username": username, "password": PASSWORD, "full_name": "Load Test"}
        with self.client.post("/api/v1/register", json=body, name="/api/v1/register",
                              catch_response=True) as r:
            if r.status_code != 201:
                r.failure(f"register: {why(r)}")

    def login(self, username: str) -> str:
        with self.client.post("/api/v1/login", json={"username": username, "password": PASSWORD},
                              name="/api/v1/login", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"login: {why(r)}")
                return ""
            return str(r.json()["access_token"])

    def search(self, topic: str, page: int = 1) -> None:
        with self.client.get(f"{SEARCH}?tag={topic}&page={page}&page_size=10", headers=self.auth,
                             name=SEARCH, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"search: {why(r)}")
            elif b'"pagination"' not in (r.content or b""):
                r.failure("search: no pagination in the body")

    def post_tweet(self) -> None:
        topics = sorted({self.hot_topic() for _ in range(self.rng.randint(1, 3))})
        if self.rng.random() < 0.5:  # some tags as #hashtags in the text, some in the list
            body = {"msg": "load test " + " ".join(f"#{t}" for t in topics), "tags": []}
        else:
            body = {"msg": f"load test {uuid.uuid4().hex[:8]}", "tags": topics}
        with self.client.post("/api/v1/tweet", json=body, headers=self.auth, name="/api/v1/tweet",
                              catch_response=True) as r:
            if r.status_code != 201:
                r.failure(f"post: {why(r)}")

    def me(self) -> None:
        with self.client.get("/api/v1/me", headers=self.auth, name="/api/v1/me", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"me: {why(r)}")


@tag("reader")
class ReaderUser(ServiceUser):
    """Searches popular tags (cache hits): page 1 mostly, sometimes deeper pages."""

    @task
    def read(self) -> None:
        page = 1 if self.rng.random() < 0.85 else self.rng.randint(2, 5)
        self.search(self.hot_topic(), page)


@tag("cold")
class ColdReaderUser(ServiceUser):
    """Searches long-tail or never-seen tags (cache misses)."""

    @task
    def read_cold(self) -> None:
        self.search(cold_topic(self.rng))


@tag("poster")
class PosterUser(ServiceUser):
    """Posts tweets with 1-3 Zipf-drawn tags, some as #hashtags in the text."""

    @task
    def post(self) -> None:
        self.post_tweet()


@tag("registrar")
class RegistrarUser(ServiceUser):
    """Registers a new user, logs in, reads /me: the argon2-bound path."""

    wait_time = between(0.5, 1.5)

    @task
    def sign_up(self) -> None:
        username = f"lt_{uuid.uuid4().hex[:16]}"
        self.register(username)
        self.token = self.login(username) or self.token
        self.me()


@tag("mixed")
class MixedUser(ServiceUser):
    """80% search (Zipf popularity), 15% post, 4% login or /me, 1% register.

    Reads dominate as in the social-network benchmark mix (60% home timeline, 30% user
    timeline, 10% compose); this service has one read kind, so both read shares become search.
    """

    @task(80)
    def read(self) -> None:
        self.search(self.hot_topic(), 1 if self.rng.random() < 0.9 else self.rng.randint(2, 5))

    @task(15)
    def write(self) -> None:
        self.post_tweet()

    @task(4)
    def account(self) -> None:
        if self.rng.random() < 0.5:
            self.token = self.login(self.username) or self.token
        else:
            self.me()

    @task(1)
    def sign_up(self) -> None:
        self.register(f"lt_{uuid.uuid4().hex[:16]}")


# Which scenarios the web UI offers (make locust SCENARIO=...; LOCUST_SCENARIOS=all offers every
# one). Locust's class picker ticks every class it offers, so offering one scenario by default
# keeps Start from running them all at once.
def _offer(offered: str) -> None:
    # A function, not a loop at module level: Locust collects every module-level name bound to a
    # User class, and a loop variable would list the last scenario twice.
    if offered == "all":
        return
    for scenario in (ReaderUser, ColdReaderUser, PosterUser, RegistrarUser, MixedUser):
        scenario.abstract = scenario.__name__ not in offered.split(",")


_offer(os.environ.get("LOCUST_SCENARIOS", "all"))


# -- gates ---------------------------------------------------------------------------------------

@events.init_command_line_parser.add_listener
def _gate_options(parser: Any) -> None:
    parser.add_argument("--max-fail-ratio", type=float, default=0.0, include_in_web_ui=False,
                        help="fail the run when the failure ratio is above this (default 0)")
    parser.add_argument("--max-p95-ms", type=float, default=0.0, include_in_web_ui=False,
                        help="fail the run when any endpoint's p95 exceeds this many ms (0 = off)")


def gate_failures(environment: Any) -> list[str]:
    """Reasons the run broke its bounds (empty when it did not)."""
    options = environment.parsed_options
    stats = environment.stats
    reasons = []
    if stats.total.num_requests == 0:
        reasons.append("no requests were made")
    elif stats.total.fail_ratio > options.max_fail_ratio:
        reasons.append(f"failure ratio {stats.total.fail_ratio:.2%} > {options.max_fail_ratio:.2%} "
                       f"({stats.total.num_failures} of {stats.total.num_requests} requests failed)")
    if options.max_p95_ms > 0:
        for entry in stats.entries.values():
            p95 = entry.get_response_time_percentile(0.95)
            if entry.num_requests and p95 > options.max_p95_ms:
                reasons.append(f"{entry.method} {entry.name}: p95 {p95:.0f} ms > {options.max_p95_ms:.0f} ms")
    return reasons


@events.quitting.add_listener
def _apply_gates(environment: Any, **_: Any) -> None:
    if environment.parsed_options is None or not environment.parsed_options.headless:
        return
    if isinstance(environment.runner, WorkerRunner):
        return  # the master (or the only process) judges the whole run
    reasons = gate_failures(environment)
    if reasons:
        for reason in reasons:
            log.error("GATE FAILED: %s", reason)
        environment.process_exit_code = 3
    else:
        log.info("gates passed: failure ratio %.2f%%", 100 * environment.stats.total.fail_ratio)
