"""Benchmark: one AI chat turn over in-process HTTP.

Measures in one run, through the same in-process ASGI client (``falcon.testing.ASGIConductor``)
and on the same event loop:

  (a) ``POST /messages/send`` of notibot's HTTP app (authentication, validation, the chat use
      case, JSON out) on the all-in-memory store and short-term memory, with a zero-latency
      fake chat model: the customer, the conversation, the short-term window, the recent
      deliveries, the system and context templates (rendered), the prompt trimmed to the
      token budget, both messages stored in long- and short-term memory;
  (b) a bare Falcon ASGI endpoint that parses the same request body and answers the same
      JSON (a reply of (a) captured during the warm-up): the floor of HTTP + JSON in this
      client.

The state is realistic and untimed to build: ``--customers`` customers (half Vietnamese), a
campaign sent to all of them (one Delivery and one notification message each), and
``--active`` of them chatting; each active customer starts at a random point of a session
(prior turns stored through the service), and sessions last ``--session-turns`` turns, then
the customer starts a new session. So the prompts carry a growing history, the notification
and the context blocks.

(a) and (b) alternate request by request (which goes first alternates too), so a shared
machine's load weighs on both alike; ``--warmup`` pairs come first and are not counted.
Prints p50/p90/p99/mean of each and the ratios. Targets (issue 6): p50 of (a) <= 3 ms and
p50 of (a) <= 5 x p50 of (b). With ``--profile``, a further ``--profile-turns`` turns of (a)
run under cProfile and the functions with the most time are printed.

Usage:
    python benchmarks/chat_turn.py [--customers 1000] [--active 100] [--turns 3000]
                                   [--warmup 300] [--session-turns 20] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

ADMIN = ("bench-admin", "bench-admin-password")
QUESTIONS = [
    "Chào bạn, mình vừa nhận được email ưu đãi, mã giảm giá còn dùng được không?",
    "What did you send me last week? I cannot find the email anymore.",
    "Đơn hàng của mình khi nào thì được giao vậy? Mình đặt từ thứ hai.",
    "Can I use the discount code together with free shipping?",
    "Cảm ơn bạn nhiều nhé, cho mình hỏi thêm về chính sách đổi trả.",
    "Please tell me which products are included in the Tết sale.",
]


@dataclass
class Chatter:
    """An active customer: the session they are in and its turns so far."""

    customer_id: str
    session: int = 0
    turns: int = 0
    session_id: str | None = None  # None: the campaign's conversation (the latest)

    def next_request(self, session_turns: int, rng: random.Random) -> dict[str, Any]:
        if self.turns >= session_turns:  # the session is long enough: start a new one
            self.session += 1
            self.turns = 0
            self.session_id = f"{self.customer_id}-s{self.session}"
        self.turns += 1
        body: dict[str, Any] = {"customer_id": self.customer_id,
                                "message": rng.choice(QUESTIONS)}
        if self.session_id is not None:
            body["session_id"] = self.session_id
        return body


@dataclass
class Samples:
    name: str
    ns: list[int] = field(default_factory=list)

    def ms(self, q: float) -> float:
        ordered = sorted(self.ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    @property
    def p50(self) -> float:
        return statistics.median(self.ns) / 1e6

    def row(self) -> str:
        return (f"{self.name:<38} {len(self.ns):>6} {self.p50:8.3f} {self.ms(0.90):8.3f} "
                f"{self.ms(0.99):8.3f} {statistics.fmean(self.ns) / 1e6:8.3f}")


def zero_latency_model() -> Any:
    """A ChatModel that answers at once, deterministically."""
    from notibot.application.ports import ChatModel, ChatReply, ChatRequest

    class ZeroLatencyModel(ChatModel):
        name = "bench-zero-latency"

        async def generate(self, request: ChatRequest) -> ChatReply:
            notifications = request.facts.get("notifications") or []
            about = notifications[0]["campaign"] if notifications else "nothing"
            return ChatReply(
                text=(f"Thanks for your message. We last sent you: {about}. A colleague will "
                      "follow up if needed."),
                model="bench-zero-latency", tokens_in=len(request.messages), tokens_out=20)

    return ZeroLatencyModel()


def bare_app(answer: dict[str, Any]) -> Any:
    """A Falcon ASGI app whose POST /messages/send parses the body and answers ``answer``."""
    import falcon.asgi

    class Send:
        async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
            body = await req.get_media()
            if not isinstance(body, dict) or "customer_id" not in body:
                raise falcon.HTTPBadRequest()
            resp.media = answer

    app = falcon.asgi.App()
    app.add_route("/messages/send", Send())
    return app


async def build_state(notibot: Any, *, customers: int, active: int, session_turns: int,
                      rng: random.Random) -> list[Chatter]:
    """Customers, a campaign sent to all, and the active customers' earlier turns."""
    from datetime import UTC, datetime

    from notibot.application.services.campaigns import Audience
    from notibot.domain import Customer

    now = datetime.now(UTC)
    people = [Customer(id=f"c{i:06d}", full_name=f"Khách hàng {i}",
                       email=f"customer{i:06d}@example.vn",
                       phone=f"+8491{i:07d}", city=rng.choice(["Hà Nội", "Đà Nẵng", "Huế"]),
                       language="vi" if i % 2 else "en", tags=["vip"] if i % 7 == 0 else [],
                       created_at=now, updated_at=now) for i in range(customers)]
    await notibot.container.customer_repository().bulk_upsert(people, [])
    campaign = await notibot.campaigns.create({
        "name": "Tết sale", "subject": "Ưu đãi Tết cho {{ customer.full_name }}",
        "text_body": ("Xin chào {{ customer.full_name }},\nMã giảm giá {{ data.code }} có hiệu "
                      "lực đến hết 31/1.\n{{ unsubscribe_url }}"),
        "default_data": {"code": "TET30"}})
    await notibot.campaign_sender.submit(campaign.id, Audience.of("all"))
    await notibot.container.job_queue().join()

    chatters = [Chatter(customer_id=p.id) for p in rng.sample(people, active)]
    for chatter in chatters:  # somewhere inside a session, so lengths are mixed from the start
        for _ in range(rng.randrange(session_turns)):
            body = chatter.next_request(session_turns, rng)
            await notibot.chat.send(body["customer_id"], body["message"],
                                    session_id=body.get("session_id"))
    return chatters


async def run(args: argparse.Namespace) -> None:
    from falcon import testing

    from notibot.entrypoints.http import create_app
    from notibot.testing import memory_notibot

    rng = random.Random(6)
    notibot = memory_notibot(admin=ADMIN, chat_model=zero_latency_model())
    app = create_app(notibot.container)
    started = time.perf_counter()
    async with testing.ASGIConductor(app) as api:
        login = await api.simulate_post("/auth/login", json={"username": ADMIN[0],
                                                             "password": ADMIN[1]})
        headers = {"Authorization": f"Bearer {login.json['access_token']}"}
        chatters = await build_state(notibot, customers=args.customers, active=args.active,
                                     session_turns=args.session_turns, rng=rng)
        sample = await api.simulate_post("/messages/send", headers=headers,
                                         json=chatters[0].next_request(args.session_turns, rng))
        assert sample.status_code == 200, sample.json
        print(f"state: {args.customers} customers, campaign sent to all, {args.active} "
              f"chatting (sessions of {args.session_turns} turns); built in "
              f"{time.perf_counter() - started:.1f} s")
        print(f"a reply is {len(sample.content)} bytes of JSON; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.2f} at start")

        async with testing.ASGIConductor(bare_app(sample.json)) as bare:
            a, b = Samples("(a) notibot POST /messages/send"), Samples("(b) bare Falcon endpoint")
            c = Samples("(c) ChatService.send alone, no HTTP")

            async def over_http(client: Any, body: dict[str, Any], samples: Samples) -> int:
                t0 = time.perf_counter_ns()
                result = await client.simulate_post("/messages/send", headers=headers,
                                                     json=body)
                elapsed = time.perf_counter_ns() - t0
                if result.status_code != 200:
                    raise SystemExit(f"{samples.name}: {result.status_code} {result.text}")
                return elapsed

            async def use_case(body: dict[str, Any], samples: Samples) -> int:
                t0 = time.perf_counter_ns()
                await notibot.chat.send(body["customer_id"], body["message"],
                                        session_id=body.get("session_id"))
                return time.perf_counter_ns() - t0

            gc.collect()
            for i in range(args.warmup + args.turns):
                # (a) and (c) each take the next turn of a customer; (b) echoes (a)'s body
                body = chatters[i % len(chatters)].next_request(args.session_turns, rng)
                other = chatters[(i + len(chatters) // 2) % len(chatters)].next_request(
                    args.session_turns, rng)
                steps = [(lambda s, body=body: over_http(api, body, s), a),
                         (lambda s, body=body: over_http(bare, body, s), b),
                         (lambda s, other=other: use_case(other, s), c)]
                shift = i % len(steps)  # who goes first rotates
                for step, samples in steps[shift:] + steps[:shift]:
                    elapsed = await step(samples)
                    if i >= args.warmup:
                        samples.ns.append(elapsed)

        lengths = []
        for chatter in chatters:
            page = await notibot.container.conversation_repository().list_for_customer(
                chatter.customer_id, limit=200, offset=0)
            lengths += [len(c.messages) for c in page.items]
        print(f"conversations of the active customers at the end: {len(lengths)}, "
              f"{statistics.fmean(lengths):.1f} messages on average, longest {max(lengths)}")
        print()
        print(f"{'endpoint':<38} {'turns':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
              f"{'mean ms':>8}")
        print(a.row())
        print(b.row())
        print(c.row())
        print()
        ratio = a.p50 / b.p50
        print(f"p50 of a = {a.p50:.3f} ms   (target <= 3 ms: "
              f"{'met' if a.p50 <= 3 else 'MISSED'})")
        print(f"a/b p50  = {ratio:.2f}      (target <= 5: {'met' if ratio <= 5 else 'MISSED'})")
        print(f"a/b p99  = {a.ms(0.99) / b.ms(0.99):.2f}; a - b p50 = {a.p50 - b.p50:.3f} ms, "
              f"of which the use case (c) p50 = {c.p50:.3f} ms")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")

        if args.profile:
            await profile(api, headers, chatters, args, rng)


async def profile(api: Any, headers: dict[str, str], chatters: list[Chatter],
                  args: argparse.Namespace, rng: random.Random) -> None:
    """Run ``--profile-turns`` turns of (a) under cProfile; print where the time goes."""
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(args.profile_turns):
        body = chatters[i % len(chatters)].next_request(args.session_turns, rng)
        await api.simulate_post("/messages/send", headers=headers, json=body)
    profiler.disable()
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key)
        stats.print_stats(args.profile_lines)
        print(f"\n-- cProfile of {args.profile_turns} turns of (a), by {key} --")
        print("\n".join(line for line in out.getvalue().splitlines()
                        if line.strip() and not line.startswith(("   Ordered", "         "))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--active", type=int, default=100,
                        help="customers who chat during the run")
    parser.add_argument("--turns", type=int, default=3_000,
                        help="timed requests of each endpoint")
    parser.add_argument("--warmup", type=int, default=300,
                        help="requests of each endpoint before timing")
    parser.add_argument("--session-turns", type=int, default=20,
                        help="turns of a session before the customer starts a new one")
    parser.add_argument("--profile", action="store_true",
                        help="then profile --profile-turns turns of (a) with cProfile")
    parser.add_argument("--profile-turns", type=int, default=2_000)
    parser.add_argument("--profile-lines", type=int, default=30)
    args = parser.parse_args()
    if args.active > args.customers:
        parser.error("--active cannot exceed --customers")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
