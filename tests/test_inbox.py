"""The inbox on a real Redis: a message stays recorded until it is answered, one delivery
works on it at a time, and the sweeper queues again what the broker lost."""

from __future__ import annotations

import time

from triage.inbox import Inbox, sweep


def test_a_push_is_recorded_once_and_its_retries_are_duplicates(redis_client):
    inbox = Inbox(redis_client, redeliver_after_s=60)
    dedup = ("triage:dedup:m1", 600)
    assert inbox.accept("m1", "triage.handle_message", [{"content": "头疼"}], dedup=dedup)
    assert not inbox.accept("m1", "triage.handle_message", [{"content": "头疼"}], dedup=dedup)
    assert inbox.is_pending("m1") and inbox.size() == 1


def test_one_delivery_at_a_time_and_the_same_delivery_may_come_back(redis_client):
    inbox = Inbox(redis_client)
    inbox.accept("m2", "triage.handle_message", [])
    assert inbox.claim("m2", "task-a", ttl_s=30)
    assert not inbox.claim("m2", "task-b", ttl_s=30)  # a second copy of the task stands aside
    assert inbox.claim("m2", "task-a", ttl_s=30)  # task-a redelivered after its worker died
    inbox.settle("m2")
    assert not inbox.is_pending("m2") and inbox.size() == 0
    assert inbox.claim("m2", "task-b", ttl_s=30)  # settling frees the claim


def test_only_overdue_messages_come_back_and_each_is_postponed(redis_client):
    inbox = Inbox(redis_client, redeliver_after_s=60)
    inbox.accept("fresh", "triage.handle_message", ["a"])
    inbox.accept("lost", "triage.handle_message", ["b"])
    inbox.due_now("lost")
    assert [p.key for p in inbox.overdue()] == ["lost"]
    assert inbox.overdue() == []  # postponed by one period, not queued on every sweep
    assert [p.args for p in inbox.overdue(now=time.time() + 61)] == [["a"], ["b"]]


def test_the_sweeper_requeues_lost_messages_and_gives_up_on_old_ones(redis_client):
    inbox = Inbox(redis_client, redeliver_after_s=60)
    inbox.accept("lost", "triage.handle_message", ["b"])
    inbox.due_now("lost")
    inbox.accept("ancient", "triage.chat_message", ["c"])
    inbox.due_now("ancient")
    redis_client.hset("triage:inbox:body", "ancient", '{"task": "triage.chat_message", "args": ["c"], "at": 0}')
    published = []
    assert sweep(inbox, published.append, give_up_after_s=3600) == {"requeued": 1, "given_up": 1}
    assert [(p.task, p.args) for p in published] == [("triage.handle_message", ["b"])]
    assert inbox.is_pending("lost") and not inbox.is_pending("ancient")
    assert sweep(inbox, published.append, give_up_after_s=3600) == {}  # one sweep per period, across workers
