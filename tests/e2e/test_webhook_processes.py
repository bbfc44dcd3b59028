"""Telegram webhook mode behind several processes (issue 8): three real `python -m assistant
run` processes on one PostgreSQL database, each on a port of its own, behind a round-robin
proxy that the fake Bot API posts updates to, with up to 40 connections at once.

The tests share the processes and run in order: the kill tests and the clean stop come
last. The last test starts two processes of its own, without a configured secret.
Run with -s to see how the updates were shared or replayed.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.harness import (
    REFERENCE,
    ServerThread,
    duplicates,
    new_user_id,
    per_chat,
    wait_for,
)
from tests.e2e.webhook_rig import HOOK_PATH, SECRET, WebhookCluster, wait_quiet
from tests.pg import Cluster

PROCESSES = 3
VICTIM = 1  # the process the kill tests kill
QUESTIONS = {  # the resident's app language -> questions in it
    "fi": ["Miten teen kuntalaisaloitteen?", "Kuoppa tiessä, kenelle ilmoitan?",
           "Missä on palautepalvelu?", "Mikä on kuntalaisaloite?",
           "Milloin uimahalli on auki?"],  # the last: no topic, the "no answer" text
    "sv": ["Hur ger jag respons till staden?", "Vad är ett invånarinitiativ?"],
    "en": ["Where is the feedback service?", "How do I make a municipal initiative?"],
}
LANGUAGES = ["fi", "fi", "sv", "en"]
RESIDENTS = 24  # each asks two questions in a row


@pytest.fixture(scope="module")
def cluster(server: ServerThread, knowledge_dir: Path, workspace: Path,
            postgres_cluster: Cluster) -> Iterator[WebhookCluster]:
    name = f"webhook_e2e_{os.getpid()}"
    url = postgres_cluster.create_database(name)
    folder = workspace / "webhook_processes"
    folder.mkdir()
    rig = WebhookCluster(server, folder, knowledge_dir, url, size=PROCESSES).open()
    try:
        rig.start()
        yield rig
    finally:
        rig.close()
        postgres_cluster.drop_database(name)


def forwarded(cluster: WebhookCluster) -> list[int]:
    return cluster.server.call(lambda: list(cluster.proxy.forwarded))


def proxy_log(cluster: WebhookCluster) -> list[dict]:
    return cluster.server.call(lambda: [dict(e) for e in cluster.proxy.log])


def webhook_calls(cluster: WebhookCluster, method: str) -> list[dict]:
    return cluster.server.call(lambda: [dict(r["params"]) for r in
                                        cluster.server.server.requests_for(method)])


def test_every_process_sets_the_same_webhook_and_none_deletes_it(
        cluster: WebhookCluster) -> None:
    calls = webhook_calls(cluster, "setWebhook")
    assert len(calls) == PROCESSES  # PTB sets it at each start; harmless while they agree
    assert {(c["url"], c["secret_token"], c.get("max_connections")) for c in calls} == {
        (cluster.webhook_url, SECRET, 40)}
    assert cluster.server.server.webhook == {"url": cluster.webhook_url, "secret_token": SECRET}
    assert webhook_calls(cluster, "deleteWebhook") == []


def test_questions_are_answered_once_as_ask_answers_them_by_any_process(
        cluster: WebhookCluster) -> None:
    server = cluster.server
    every = [q for questions in QUESTIONS.values() for q in questions]
    expected = {q["question"]: q["text"].strip() for q in cluster.ask_cli(every)}
    residents = [new_user_id() for _ in range(RESIDENTS)]
    asked: dict[int, list[str]] = {}
    before = forwarded(cluster)
    for n, resident in enumerate(residents):
        language = LANGUAGES[n % len(LANGUAGES)]
        questions = QUESTIONS[language]
        asked[resident] = [questions[n % len(questions)], questions[(n + 1) % len(questions)]]
        for question in asked[resident]:
            server.send_text(resident, question, language_code=language)
    cluster.wait(lambda: all(server.message_count(r) >= 2 for r in residents), 60,
                 "two answers in every resident's chat")
    wait_quiet(server, 0.5)
    out_of_order = 0
    for resident, pair in asked.items():
        texts = [m["text"] for m in server.messages_to(resident)]
        assert sorted(texts) == sorted(expected[q] for q in pair), (resident, pair, texts)
        out_of_order += texts != [expected[q] for q in pair]
    took = [after - was for after, was in zip(forwarded(cluster), before)]
    print(f"\n[webhook] {2 * RESIDENTS} questions: process shares {took}; "
          f"{out_of_order} of {RESIDENTS} residents got their two answers in the other order")
    assert all(share > 0 for share in took), f"a process took no updates: {took}"
    # Telegram posts a chat's next update only after the previous one was answered, and a
    # process answers only once it has handled the update: a chat's order holds across them.
    assert out_of_order == 0, f"{out_of_order} residents got their answers in the other order"


def test_feedback_is_filed_and_acknowledged_once_and_the_admin_notified_once(
        cluster: WebhookCluster) -> None:
    server, token = cluster.server, uuid.uuid4().hex[:8]
    residents = [new_user_id() for _ in range(6)]
    if server.message_count(cluster.admin_id) == 0:
        cluster.ask(cluster.admin_id, "/start")  # admins are notified in a chat they opened
    admin_before = server.message_count(cluster.admin_id)
    for n, resident in enumerate(residents):
        server.send_text(resident, f"/feedback Penkki {n} on rikki puistossa {token}")
    cluster.wait(lambda: all(server.message_count(r) >= 1 for r in residents), 30,
                 "every feedback acknowledged")
    cluster.wait(lambda: server.message_count(cluster.admin_id) >= admin_before + 6, 30,
                 "the admin's notices")
    wait_quiet(server, 0.5)
    rows = cluster.query("SELECT reference, text FROM feedback_item WHERE text LIKE :t",
                         t=f"%{token}")
    assert len(rows) == 6
    for resident in residents:
        [ack] = server.messages_to(resident)
        assert REFERENCE.search(ack["text"]), ack["text"]
    notices = per_chat(server.sent(), token)
    assert notices[cluster.admin_id] == 6


def test_a_redelivered_update_is_answered_once_whichever_process_it_reaches(
        cluster: WebhookCluster) -> None:
    server = cluster.server
    resident = new_user_id()
    server.call(lambda: cluster.proxy.fail_after_forwarding(1, status=504))
    update = server.send_text(resident, "Mikä on kuntalaisaloite?")
    cluster.replies(resident, 0, 1, what="to the question whose answer the proxy lost")
    for _ in range(PROCESSES):  # Telegram posts it again: each process gets it once more
        server.call(lambda: server.server.redeliver(update))
    cluster.wait(lambda: len(_posts_of(cluster, update["update_id"])) == 2 + PROCESSES, 10,
                 "the redeliveries to reach the processes")
    wait_quiet(server, 1.0)
    posts = _posts_of(cluster, update["update_id"])
    first, retry = posts[0], posts[1]
    assert (first["upstream"], first["status"]) == (200, 504)  # taken, but Telegram saw 504
    assert retry["backend"] != first["backend"] and retry["status"] == 200
    assert {p["backend"] for p in posts} == set(range(PROCESSES))
    assert all(p["upstream"] == 200 for p in posts)
    assert len(server.messages_to(resident)) == 1


def _posts_of(cluster: WebhookCluster, update_id: int) -> list[dict]:
    return [e for e in proxy_log(cluster) if e["update_id"] == update_id]


def test_every_process_checks_the_webhook_secret(cluster: WebhookCluster) -> None:
    server = cluster.server
    for index, port in enumerate(cluster.ports):
        resident = new_user_id()
        message = server.call(lambda: server.server.build_message(
            server.server.user(resident, "Asukas", "fi"), text="Mikä on kuntalaisaloite?"))
        update = {"update_id": 900_000_000 + index, "message": message}
        url = f"http://127.0.0.1:{port}{HOOK_PATH}"
        statuses = cluster.on_server_loop(_post_with_secrets(
            url, update, ["wrong-secret", None, SECRET[:-1], SECRET]))
        assert statuses == [403, 403, 403, 200], (index, statuses)
        cluster.replies(resident, 0, 1, what=f"to the update process #{index + 1} accepted")
    for secret in ("wrong-secret", None):  # through the proxy as well
        resident = new_user_id()
        message = server.call(lambda: server.server.build_message(
            server.server.user(resident, "Asukas", "fi"), text="Mikä on kuntalaisaloite?"))
        update = {"update_id": 900_000_100 + resident % 1000, "message": message}
        statuses = cluster.on_server_loop(_post_with_secrets(
            cluster.webhook_url, update, [secret] * PROCESSES))
        assert statuses == [403] * PROCESSES
        wait_quiet(server, 0.5)
        assert server.message_count(resident) == 0


async def _post_with_secrets(url: str, update: dict, secrets: list[str | None]) -> list[int]:
    statuses = []
    async with aiohttp.ClientSession() as http:
        for secret in secrets:
            headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
            async with http.post(url, json=update, headers=headers) as response:
                statuses.append(response.status)
    return statuses


def test_a_process_killed_under_load_loses_no_update(cluster: WebhookCluster) -> None:
    """SIGKILL one process right after it confirmed its fifth update of a burst: what it
    had taken in is answered by the others once its lease runs out; nothing else twice."""
    server, victim = cluster.server, cluster.processes[VICTIM]
    assert victim is not None
    confirmed_by_victim = []

    def kill_at_fifth(entry: dict) -> None:  # on the server's thread, before Telegram hears
        if entry["backend"] == VICTIM and entry["upstream"] == 200:
            confirmed_by_victim.append(entry["update_id"])
            if len(confirmed_by_victim) == 5:
                os.killpg(victim.pid, signal.SIGKILL)

    log_before = len(proxy_log(cluster))
    server.call(lambda: setattr(cluster.proxy, "watch", kill_at_fifth))
    residents = [new_user_id() for _ in range(45)]
    chat_of = {server.send_text(r, "Miten teen kuntalaisaloitteen?")["update_id"]: r
               for r in residents}
    wait_for(victim.exited, 30, "the victim to be killed")
    server.call(lambda: setattr(cluster.proxy, "watch", None))
    cluster.kill(VICTIM)  # reaped
    wait_quiet(server, 1.0, timeout=60)  # the live processes answered what they took
    held = {chat_of[e["update_id"]] for e in proxy_log(cluster)[log_before:]
            if e["backend"] == VICTIM and e["update_id"] in chat_of}  # it may have them
    unanswered = {r for r in residents if server.message_count(r) == 0}
    assert unanswered <= held, [e for e in proxy_log(cluster)[log_before:]
                                if chat_of.get(e["update_id"]) in unanswered - held]
    expired = cluster.expire_update_leases()  # what waiting 30 s would do
    cluster.wait(lambda: cluster.pending_updates() == 0, 40,
                 "the dead process's updates to be replayed by the others")
    wait_quiet(server, 1.0)
    assert server.chats_with_messages(residents) == len(residents)
    answers = Counter({r: server.message_count(r) for r in residents})
    twice = {r for r, n in answers.items() if n > 1}
    print(f"\n[webhook kill] the victim took {len(held)} of {len(residents)}; "
          f"{len(unanswered)} unanswered at its death, {expired} update(s) pending in its "
          f"name replayed; {len(twice)} answered twice")
    assert twice <= held, "an update the dead process never had was answered twice"
    assert max(answers.values()) <= 2


def test_after_a_kill_later_messages_and_pushes_go_out_once(cluster: WebhookCluster) -> None:
    server, token = cluster.server, uuid.uuid4().hex[:8]
    if cluster.processes[VICTIM] is not None and cluster.processes[VICTIM].running():
        cluster.kill(VICTIM)  # when run alone
    filer = new_user_id()
    [ack] = cluster.ask(filer, f"/feedback Roskakori on täynnä {token}")
    reference = REFERENCE.search(ack["text"]).group()
    subscribers = [new_user_id() for _ in range(20)]
    cluster.seed_subscribers(subscribers, "leppavaara")
    wait_quiet(server, 0.5)

    log_before = len(proxy_log(cluster))
    residents = [new_user_id() for _ in range(30)]
    for resident in residents:
        server.send_text(resident, "Miten teen kuntalaisaloitteen?")
    cluster.wait(lambda: all(server.message_count(r) >= 1 for r in residents), 60,
                 "an answer to every resident after the kill")
    admin_before = server.message_count(cluster.admin_id)
    server.send_text(cluster.admin_id, f"/reply {reference} Tyhjennetään huomenna {token}")
    cluster.wait(lambda: server.message_count(filer) >= 2, 30, "the admin's answer to the filer")
    cluster.replies(cluster.admin_id, admin_before, 1, what="confirming the /reply")
    item = cluster.post_news("Leppävaara", f"Vesikatko tiistaina {token}")
    cluster.wait(lambda: cluster.query(
        "SELECT count(*) FROM outbox WHERE news_item_id = :i AND status = 'sent'",
        i=item) == [(len(subscribers),)], 60, "the news to reach every subscriber")
    wait_quiet(server, 1.0)

    after = proxy_log(cluster)[log_before:]
    # A refused connection is passed on to a live process; a request sent on a pooled
    # connection to the dead one fails (502) and Telegram posts the update again.
    assert all(e["backend"] != VICTIM for e in after if e["upstream"] is not None)
    last = {e["update_id"]: e["status"] for e in after}
    assert set(last.values()) == {200}, last
    assert all(server.message_count(r) == 1 for r in residents)
    filer_texts = server.call(lambda: server.server.texts_to(filer))
    assert len(filer_texts) == 2 and f"Tyhjennetään huomenna {token}" in filer_texts[1]
    received = per_chat(server.sent(), token)
    news = Counter({chat: n for chat, n in received.items() if chat in set(subscribers)})
    assert set(news) == set(subscribers) and duplicates(news) == 0


def test_a_clean_stop_of_one_process_leaves_the_webhook_to_the_others(
        cluster: WebhookCluster) -> None:
    server, running = cluster.server, cluster.running()
    assert len(running) >= 2
    assert running[0].stop(timeout=20) == 0  # SIGTERM
    assert server.server.webhook == {"url": cluster.webhook_url, "secret_token": SECRET}
    assert webhook_calls(cluster, "deleteWebhook") == []
    resident = new_user_id()
    [answer] = cluster.ask(resident, "Mikä on kuntalaisaloite?")
    assert answer["text"]
    assert cluster.running() == running[1:]


def test_processes_without_a_configured_secret_agree_on_one(
        server: ServerThread, knowledge_dir: Path, workspace: Path,
        postgres_cluster: Cluster) -> None:
    """Each process sets the webhook at start; with secrets of their own, the last one
    to start would have made Telegram's requests fail with 403 at every other process."""
    name = f"webhook_nosecret_{os.getpid()}"
    url = postgres_cluster.create_database(name)
    folder = workspace / "webhook_no_secret"
    folder.mkdir()
    rig = WebhookCluster(server, folder, knowledge_dir, url, size=2, secret="").open()
    try:
        rig.start()
        secrets = {c["secret_token"] for c in webhook_calls(rig, "setWebhook")
                   if c["url"] == rig.webhook_url}
        assert len(secrets) == 1 and len(secrets.pop()) >= 32
        residents = [new_user_id() for _ in range(8)]
        for resident in residents:
            server.send_text(resident, "Mikä on kuntalaisaloite?")
        rig.wait(lambda: all(server.message_count(r) == 1 for r in residents), 30,
                 "an answer to every resident")
        log = proxy_log(rig)
        assert {e["status"] for e in log} == {200}, Counter((e["backend"], e["status"])
                                                             for e in log)
        assert {e["backend"] for e in log} == {0, 1}
    finally:
        rig.close()
        postgres_cluster.drop_database(name)
