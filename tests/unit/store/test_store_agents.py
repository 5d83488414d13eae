"""The agent store on both engines: tokens, redemption, certificates, revocation, tags, heartbeats."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dockmesh.server.tokens import token_hash
from dockmesh.store.agents import AgentRecord, AgentState, AgentStore, CertRecord

NOW = 1_700_000_000.0
TTL = 3600.0
CERT_A = CertRecord("a" * 64, "1a", NOW, NOW + 30 * 86400)
CERT_B = CertRecord("b" * 64, "1b", NOW + 100, NOW + 100 + 30 * 86400)


async def fetch(agents: AgentStore, agent_id: str) -> AgentRecord:
    record = await agents.get(agent_id)
    assert record is not None
    return record


async def test_create_is_pending_for_its_token(agents: AgentStore) -> None:
    record = await agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    assert record.state is AgentState.PENDING
    assert record.name == "web-1"
    assert record.created_at == NOW
    assert record.token_expires_at == NOW + TTL
    assert record.cert is None
    assert record.tags == ()
    assert record.facts == {}
    assert not record.cordoned
    assert await agents.pending_for_token(token_hash("tok"), NOW) == record
    assert await agents.pending_for_token(token_hash("other"), NOW) is None
    assert await agents.get(record.id) == record


async def test_timestamps_keep_subsecond_precision(agents: AgentStore) -> None:
    # PostgreSQL's REAL would round an epoch time to ~2 minutes: the columns must be doubles.
    record = await agents.create("web-1", token_hash("tok"), NOW + 0.125, NOW + 0.5)
    assert record.created_at == NOW + 0.5
    assert record.token_expires_at == NOW + 0.125


async def test_expired_token_is_not_found(agents: AgentStore) -> None:
    await agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    assert await agents.pending_for_token(token_hash("tok"), NOW + TTL - 1) is not None
    assert await agents.pending_for_token(token_hash("tok"), NOW + TTL) is None
    assert await agents.pending_for_token(token_hash("tok"), NOW + TTL + 1) is None


async def test_redeem_succeeds_once(agents: AgentStore) -> None:
    record = await agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    facts = {"hostname": "web-1", "arch": "x86_64"}
    assert await agents.redeem(record.id, token_hash("tok"), CERT_A, facts, NOW + 1)
    assert not await agents.redeem(record.id, token_hash("tok"), CERT_B, {}, NOW + 2)
    enrolled = await fetch(agents, record.id)
    assert enrolled.state is AgentState.ENROLLED
    assert enrolled.cert == CERT_A
    assert enrolled.facts == facts
    assert enrolled.enrolled_at == NOW + 1
    assert enrolled.token_expires_at is None
    assert await agents.pending_for_token(token_hash("tok"), NOW + 1) is None


async def test_redeem_refuses_wrong_or_expired_token(agents: AgentStore) -> None:
    record = await agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    assert not await agents.redeem(record.id, token_hash("wrong"), CERT_A, {}, NOW)
    assert not await agents.redeem("no-such-id", token_hash("tok"), CERT_A, {}, NOW)
    assert not await agents.redeem(record.id, token_hash("tok"), CERT_A, {}, NOW + TTL)
    still = await fetch(agents, record.id)
    assert still.state is AgentState.PENDING
    assert still.cert is None


async def enrolled_agent(agents: AgentStore, name: str = "web-1", cert: CertRecord = CERT_A) -> str:
    record = await agents.create(name, token_hash(name), NOW + TTL, NOW)
    assert await agents.redeem(record.id, token_hash(name), cert, {}, NOW)
    return record.id


def cert_for(i: int) -> CertRecord:
    return CertRecord(f"{i:064x}", str(i), NOW, NOW + TTL)


async def test_by_fingerprint_matches_the_current_cert(agents: AgentStore) -> None:
    agent_id = await enrolled_agent(agents)
    found = await agents.by_fingerprint(CERT_A.fingerprint, NOW)
    assert found is not None
    assert found.id == agent_id
    assert await agents.by_fingerprint(CERT_B.fingerprint, NOW) is None


async def test_previous_cert_only_within_grace(agents: AgentStore) -> None:
    agent_id = await enrolled_agent(agents)
    grace_until = NOW + 300
    assert await agents.renew(agent_id, CERT_B, grace_until)
    current = await agents.by_fingerprint(CERT_B.fingerprint, NOW + 10_000)
    assert current is not None
    assert current.id == agent_id
    assert current.cert == CERT_B
    previous = await agents.by_fingerprint(CERT_A.fingerprint, grace_until - 1)
    assert previous is not None
    assert previous.id == agent_id
    assert await agents.by_fingerprint(CERT_A.fingerprint, grace_until) is None
    assert await agents.by_fingerprint(CERT_A.fingerprint, grace_until + 1) is None


async def test_renew_needs_an_enrolled_agent(agents: AgentStore) -> None:
    record = await agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    assert not await agents.renew(record.id, CERT_B, NOW + 300)
    assert await agents.by_fingerprint(CERT_B.fingerprint, NOW) is None


async def test_revoke_makes_certs_unknown(agents: AgentStore) -> None:
    agent_id = await enrolled_agent(agents)
    await agents.renew(agent_id, CERT_B, NOW + 300)
    assert await agents.revoke(agent_id)
    assert await agents.by_fingerprint(CERT_B.fingerprint, NOW) is None
    assert await agents.by_fingerprint(CERT_A.fingerprint, NOW) is None
    assert (await fetch(agents, agent_id)).state is AgentState.REVOKED
    assert not await agents.revoke("no-such-id")


async def test_revoke_invalidates_a_pending_token(agents: AgentStore) -> None:
    record = await agents.create("web-1", token_hash("tok"), NOW + TTL, NOW)
    assert await agents.revoke(record.id)
    assert await agents.pending_for_token(token_hash("tok"), NOW) is None
    assert not await agents.redeem(record.id, token_hash("tok"), CERT_A, {}, NOW)


async def test_rotate_token_returns_to_pending_and_clears_the_cert(agents: AgentStore) -> None:
    agent_id = await enrolled_agent(agents)
    await agents.renew(agent_id, CERT_B, NOW + 300)
    assert await agents.rotate_token(agent_id, token_hash("fresh"), NOW + 2 * TTL)
    record = await fetch(agents, agent_id)
    assert record.state is AgentState.PENDING
    assert record.cert is None
    assert record.token_expires_at == NOW + 2 * TTL
    assert await agents.by_fingerprint(CERT_A.fingerprint, NOW) is None
    assert await agents.by_fingerprint(CERT_B.fingerprint, NOW) is None
    pending = await agents.pending_for_token(token_hash("fresh"), NOW)
    assert pending is not None
    assert pending.id == agent_id
    # ... and the agent can enrol again with the new token, even reusing the certificate slot.
    assert await agents.redeem(agent_id, token_hash("fresh"), CERT_A, {}, NOW + 5)
    assert await agents.by_fingerprint(CERT_A.fingerprint, NOW + 5) is not None


async def test_rotate_token_replaces_the_old_token(agents: AgentStore) -> None:
    record = await agents.create("web-1", token_hash("old"), NOW + TTL, NOW)
    assert await agents.rotate_token(record.id, token_hash("new"), NOW + TTL)
    assert await agents.pending_for_token(token_hash("old"), NOW) is None
    assert not await agents.rotate_token("no-such-id", token_hash("x"), NOW + TTL)


async def test_set_tags_round_trip(agents: AgentStore) -> None:
    agent_id = await enrolled_agent(agents)
    assert await agents.set_tags(agent_id, ["prod", "eu-west", "ü"])
    assert (await fetch(agents, agent_id)).tags == ("prod", "eu-west", "ü")
    assert await agents.set_tags(agent_id, [])
    assert (await fetch(agents, agent_id)).tags == ()
    assert not await agents.set_tags("no-such-id", ["x"])


async def test_facts_touch_error_and_cordon(agents: AgentStore) -> None:
    agent_id = await enrolled_agent(agents)
    await agents.set_error(agent_id, "x" * 1000)
    assert (await fetch(agents, agent_id)).last_error == "x" * 500
    await agents.update_facts(agent_id, {"os": "linux"}, NOW + 7)
    await agents.touch(agent_id, NOW + 9)
    assert await agents.set_cordoned(agent_id, True)
    record = await fetch(agents, agent_id)
    assert record.facts == {"os": "linux"}
    assert record.last_error == "x" * 500  # kept across reconnects: it is the *last* error
    assert record.last_seen == NOW + 9
    assert record.cordoned


async def test_all_is_sorted_by_name(agents: AgentStore) -> None:
    for name in ("zeta", "alpha", "mid"):
        await agents.create(name, token_hash(name), NOW + TTL, NOW)
    assert [a.name for a in await agents.all()] == ["alpha", "mid", "zeta"]


async def test_token_hashes_are_unique(agents: AgentStore) -> None:
    await agents.create("a", token_hash("same"), NOW + TTL, NOW)
    with pytest.raises(sa.exc.IntegrityError):
        await agents.create("b", token_hash("same"), NOW + TTL, NOW)
    assert [a.name for a in await agents.all()] == ["a"]


# --- heartbeats --------------------------------------------------------------------------------


async def test_heartbeats_are_written_in_one_batch(agents: AgentStore) -> None:
    ids = [await enrolled_agent(agents, f"web-{i}", cert_for(i)) for i in range(5)]
    for i, agent_id in enumerate(ids):
        agents.note_seen(agent_id, NOW + i)
    agents.note_seen(ids[0], NOW + 50)  # a later heartbeat of the same agent replaces the earlier one
    assert (await fetch(agents, ids[0])).last_seen is None  # not written yet
    assert await agents.flush_seen() == 5
    seen = {a.id: a.last_seen for a in await agents.all()}
    assert seen == {agent_id: NOW + (50 if i == 0 else i) for i, agent_id in enumerate(ids)}
    assert await agents.flush_seen() == 0  # nothing pending: no transaction at all


async def test_touch_wins_over_a_pending_heartbeat(agents: AgentStore) -> None:
    agent_id = await enrolled_agent(agents)
    agents.note_seen(agent_id, NOW + 1)
    await agents.touch(agent_id, NOW + 2)  # the link closed: its time is final
    assert await agents.flush_seen() == 0
    assert (await fetch(agents, agent_id)).last_seen == NOW + 2


async def test_a_late_batch_never_moves_last_seen_back(agents: AgentStore) -> None:
    agent_id = await enrolled_agent(agents)
    await agents.touch(agent_id, NOW + 5)  # the link closed at NOW + 5 …
    agents.note_seen(agent_id, NOW + 3)  # … while a heartbeat from before was still on its way to the batch
    assert await agents.flush_seen() == 1
    assert (await fetch(agents, agent_id)).last_seen == NOW + 5


async def test_hello_facts_are_batched_and_reach_the_list(agents: AgentStore) -> None:
    agent_id = await enrolled_agent(agents)
    assert (await agents.all())[0].facts == {}  # cached now
    agents.note_facts(agent_id, {"os": "linux"}, NOW + 1)
    assert await agents.flush_seen() == 1
    [record] = await agents.all()  # the flush bumped the version: the cache is rebuilt
    assert (record.facts, record.last_seen) == ({"os": "linux"}, NOW + 1)


async def test_touch_writes_facts_not_flushed_yet(agents: AgentStore) -> None:
    agent_id = await enrolled_agent(agents)
    agents.note_facts(agent_id, {"os": "linux"}, NOW + 1)
    await agents.touch(agent_id, NOW + 2)
    assert await agents.flush_seen() == 0
    record = await fetch(agents, agent_id)
    assert (record.facts, record.last_seen) == ({"os": "linux"}, NOW + 2)
