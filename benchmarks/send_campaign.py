"""Benchmark: sending a campaign's emails over SMTP.

Measures in one run, against one local SMTP sink (aiosmtpd in a child process started by
this script; it answers every command and discards the messages):

  (a) notibot's campaign send job end to end, on the in-memory store: ``--messages``
      customers and a campaign (Vietnamese subject and bodies, HTML, List-Unsubscribe) are set
      up first, untimed; then the timed part: submit a send to all customers and wait for the
      job to succeed: audience paging, one Delivery per customer, template rendering per
      customer, sending through the :class:`~notibot.adapters.smtp.SmtpEmailSender` pool,
      delivery bookkeeping and a notification message appended to every customer's
      conversation, progress reports after every batch (``--batch`` recipients);
  (b) a bare aiosmtplib loop over ONE reused connection, one message after the other: the
      floor for one connection;
  (c) a naive loop opening a new connection per message (connect, greeting, EHLO, MAIL, RCPT,
      DATA, QUIT), as ``aiosmtplib.send()`` in a loop does.

Every phase sends the same messages built by the same function
(:func:`notibot.adapters.outbox.render_email`: multipart/alternative, a Vietnamese subject
and body, List-Unsubscribe), so the phases differ only in how they use SMTP. All phases give
the same EHLO name, so no phase pays for a DNS look-up of this machine's name.

Each phase gets a sink of its own. Prints the seconds, messages per second and CPU time per
message (this process, and the sink) of each phase, a/c (how many times faster than
the naive loop; target >= 3) and a/b (speed relative to one reused connection; target
>= 0.5). Targets from issue 5.

Usage:
    python benchmarks/send_campaign.py [--messages 10000] [--pool-size 4] [--batch 500]
                                       [--skip-naive]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator

HOST = "127.0.0.1"
EHLO_NAME = "bench.notibot.test"
FROM = "Cửa hàng An <news@shop.example.vn>"


# -- the sink (runs in the child process) -----------------------------------------------------


def serve_sink(port: int) -> None:
    """Run an aiosmtpd server on ``port`` that accepts and discards everything, forever."""
    from aiosmtpd.handlers import Sink
    from aiosmtpd.smtp import SMTP

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Sink(), hostname="sink.test"),
                                          HOST, port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def sink_process() -> Iterator[int]:
    """Start the sink in a child process; yield its port; stop it at exit."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        yield port
    finally:
        child.terminate()
        child.wait(10)


# -- the messages -----------------------------------------------------------------------------


def campaign_messages(count: int) -> list:
    from notibot.application.ports import EmailMessage

    return [EmailMessage(
        to=f"customer{i:06d}@example.vn",
        subject=f"Ưu đãi tháng 12 dành cho khách hàng số {i}",
        text=(f"Xin chào khách hàng {i},\n\nCửa hàng An gửi bạn mã giảm giá GIAM30 cho đơn "
              "hàng tiếp theo. Ưu đãi có hiệu lực đến hết ngày 31/12.\n\nTrân trọng."),
        html=(f"<p>Xin chào khách hàng <b>{i}</b>,</p><p>Cửa hàng An gửi bạn mã giảm giá "
              "<b>GIAM30</b>. Ưu đãi có hiệu lực đến hết ngày 31/12.</p>"),
        headers={"List-Unsubscribe": f"<https://shop.example.vn/unsubscribe/{i}>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    ) for i in range(count)]


def render(message):  # the same MIME building for every phase
    from notibot.adapters.outbox import render_email

    return render_email(message, default_from=FROM, message_id_domain="shop.example.vn")


# -- the phases -------------------------------------------------------------------------------


async def send_with_notibot(port: int, count: int, *, pool_size: int, batch: int) -> float:
    """(a) notibot's campaign send job end to end; returns the seconds from submit to the job's
    success (the set-up of customers and campaign is not timed)."""
    from datetime import UTC, datetime

    from notibot.adapters.smtp import SmtpEmailSender
    from notibot.application.services.campaigns import Audience, SendPolicy
    from notibot.domain import Customer
    from notibot.testing import memory_notibot

    sender = SmtpEmailSender(HOST, port, tls="none", from_address=FROM, pool_size=pool_size,
                             local_hostname=EHLO_NAME)
    app = memory_notibot(email_sender=sender, campaign_send_policy=SendPolicy(
        batch_size=batch, concurrency=pool_size))
    await app.start(ensure_admin=False)
    try:
        now = datetime.now(UTC)
        customers = [Customer(id=f"c{i:06d}", full_name=f"Khách hàng {i}",
                              email=f"customer{i:06d}@example.vn", language="vi",
                              created_at=now, updated_at=now) for i in range(count)]
        await app.container.customer_repository().bulk_upsert(customers, [])
        campaign = await app.campaigns.create({
            "name": "Ưu đãi tháng 12", "channel": "email",
            "subject": "Ưu đãi tháng 12 dành cho {{ customer.full_name }}",
            "text_body": ("Xin chào {{ customer.full_name }},\n\nCửa hàng An gửi bạn mã giảm "
                          "giá {{ data.code }} cho đơn hàng tiếp theo. Ưu đãi có hiệu lực đến "
                          "hết ngày 31/12.\n\nTrân trọng.\n{{ unsubscribe_url }}"),
            "html_body": ("<p>Xin chào <b>{{ customer.full_name }}</b>,</p><p>Cửa hàng An gửi "
                          "bạn mã giảm giá <b>{{ data.code }}</b>. Ưu đãi có hiệu lực đến hết "
                          "ngày 31/12.</p>"),
            "default_data": {"code": "GIAM30"},
        })
        started = time.perf_counter()
        job = await app.campaign_sender.submit(campaign.id, Audience.of("all"))
        await app.container.job_queue().join()
        seconds = time.perf_counter() - started
        job = await app.jobs.get(job.id)
        sent = job.counters.get("sent", 0)
        if job.status.value != "succeeded" or sent != count:
            raise SystemExit(f"the send job did not send everything: {job.status.value}, "
                             f"counters {job.counters}, {job.failure_reason}")
        return seconds
    finally:
        await app.stop()


async def send_over_one_connection(port: int, messages: list) -> None:
    """(b) bare aiosmtplib: one connection, one message after the other."""
    import aiosmtplib

    client = aiosmtplib.SMTP(hostname=HOST, port=port, start_tls=False,
                             local_hostname=EHLO_NAME)
    await client.connect()
    try:
        for message in messages:
            rendered = render(message)
            await client.sendmail(rendered.sender, [rendered.recipient], rendered.data)
    finally:
        await client.quit()


async def send_with_a_connection_each(port: int, messages: list) -> None:
    """(c) naive: a new connection for every message."""
    import aiosmtplib

    for message in messages:
        rendered = render(message)
        await aiosmtplib.send(rendered.data, sender=rendered.sender,
                              recipients=[rendered.recipient], hostname=HOST, port=port,
                              start_tls=False, local_hostname=EHLO_NAME)


def children_cpu() -> float:
    """CPU seconds used by this process's finished children (the sinks)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(name: str, run: Callable[[int], Awaitable[float | None]], count: int) -> float:
    """Run one phase against a sink of its own; print wall time, msg/s and the CPU time per
    message of this process and of the sink (its start-up included: about 0.3 s)."""
    sink_cpu = children_cpu()
    with sink_process() as port:
        cpu = time.process_time()
        started = time.perf_counter()
        timed = asyncio.run(run(port))
        seconds = time.perf_counter() - started
        if isinstance(timed, float):  # the phase timed its own part (set-up excluded)
            seconds = timed
        cpu = time.process_time() - cpu
    sink_cpu = children_cpu() - sink_cpu
    print(f"{name:<46} {seconds:7.2f} s {count / seconds:7.0f} msg/s   cpu/msg: sender "
          f"{cpu / count * 1000:.2f} ms, sink {sink_cpu / count * 1000:.2f} ms", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--skip-naive", action="store_true", help="skip phase (c)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        serve_sink(args.serve)
        return

    messages = campaign_messages(args.messages)
    count = len(messages)
    print(f"{count} messages; SMTP sink: aiosmtpd in a child process, a new one per phase; "
          f"pool size {args.pool_size}, batches of {args.batch}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    a = measure(f"(a) notibot: campaign send job, pool of {args.pool_size}",
                lambda port: send_with_notibot(port, count, pool_size=args.pool_size,
                                               batch=args.batch), count)
    b = measure("(b) bare aiosmtplib, one reused connection",
                lambda port: send_over_one_connection(port, messages), count)
    c = None
    if not args.skip_naive:
        c = measure("(c) naive: a new connection per message",
                    lambda port: send_with_a_connection_each(port, messages), count)
    print(f"load average {os.getloadavg()[0]:.2f} at the end (sender and sink need one CPU "
          "each: other work on the machine slows (a) most)")
    print(f"a vs b: a is {b / a:.2f} x the speed of b (target >= 0.5)")
    if c is not None:
        print(f"a vs c: a is {c / a:.2f} x faster than c (target >= 3)")


if __name__ == "__main__":
    main()
