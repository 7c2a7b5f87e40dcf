"""/api/v1/jobs on SQLite and PostgreSQL: the queue with filters and pages, a job's attempts, events and
cost, its log tail, cancelling by role and ownership, and a real tiny job run by the local scheduler."""

from __future__ import annotations

import pytest

from .jobs_data import SPOT_DOLLARS, TINY_STEPS, record_queue, run_real_job
from .test_api import _error

pytestmark = pytest.mark.timeout(180)
API = "/api/v1"


@pytest.fixture()
def queue(world):
    return record_queue(world.hub, world.runs[0])


def test_the_queue_lists_jobs_newest_first_with_their_cost_so_far(world, queue):
    listing = world.client("vera").get(f"{API}/jobs").json()
    assert listing["total"] == 4 and (listing["limit"], listing["offset"]) == (50, 0)
    items = {j["id"]: j for j in listing["items"]}
    assert [j["id"] for j in listing["items"]] == [queue.waiting_bob, queue.waiting_alice, queue.running, queue.spot]
    spot = items[queue.spot]
    assert (spot["name"], spot["owner"], spot["state"], spot["pool"], spot["current_pool"]) == (
        "digits-spot",
        "alice",
        "succeeded",
        "spot",
        "on-demand",
    )
    assert spot["preemptions"] == 2 and spot["dollars"] == pytest.approx(sum(SPOT_DOLLARS.values()))
    running = items[queue.running]
    assert (running["workers_min"], running["workers_max"]) == (1, 2)
    assert running["dollars"] == pytest.approx(5 / 60 * 0.03, rel=0.05)  # five minutes so far on spot
    assert items[queue.waiting_alice]["dollars"] == 0 and items[queue.waiting_alice]["priority"] == 5


def test_the_queue_filters_by_state_and_owner_and_paginates(world, queue):
    member = world.client("bob")

    def ids(**params):
        return [j["id"] for j in member.get(f"{API}/jobs", params=params).json()["items"]]

    assert ids(state="queued") == [queue.waiting_bob, queue.waiting_alice]
    assert ids(state="succeeded") == [queue.spot]
    assert ids(owner="bob") == [queue.waiting_bob, queue.running]
    assert ids(state="running", owner="alice") == []
    page = member.get(f"{API}/jobs", params={"limit": 2, "offset": 1}).json()
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert [j["id"] for j in page["items"]] == [queue.waiting_alice, queue.running]
    assert "limit" in _error(member.get(f"{API}/jobs", params={"limit": 0}), 422)
    assert "unknown job state 'done'" in _error(member.get(f"{API}/jobs", params={"state": "done"}), 422)


def test_a_job_has_its_placements_events_and_cost(world, queue):
    job = world.client("vera").get(f"{API}/jobs/{queue.spot}").json()
    assert job["run_id"] == world.runs[0] and job["state"] == "succeeded"
    placements = [(a["number"], a["pool"], a["nodes"], a["outcome"], a["exit_code"]) for a in job["attempts"]]
    assert placements == [
        (1, "spot", ["spot-a1f3c2"], "preempted", 75),
        (2, "spot", ["spot-b72e90"], "killed", None),
        (3, "on-demand", ["on-demand-c4d1aa"], "succeeded", 0),
    ]
    steps = [(a["start_step"], a["last_step"], a["checkpoint_step"], a["steps_redone"]) for a in job["attempts"]]
    assert steps == [(0, 8, 8, 0), (8, 14, 12, 2), (12, 32, 32, 0)]
    assert [a["seconds"] for a in job["attempts"]] == [600, 300, 900]
    assert all(a["ended_at"] and a["started_at"] < a["ended_at"] for a in job["attempts"])
    assert "handle" not in job["attempts"][0]  # the executor's pids and folders stay inside
    states = [e["state"] for e in job["events"]]
    assert states[0] == "queued" and states.count("preempted") == 2 and states[-1] == "succeeded"
    assert any(e["reason"] == "moved to on-demand: preempted 2 times (limit 2)" for e in job["events"])
    cost = job["cost"]
    assert cost["dollars_by_pool"] == pytest.approx(SPOT_DOLLARS)
    assert cost["dollars"] == pytest.approx(sum(SPOT_DOLLARS.values())) == job["dollars"]
    assert (cost["preemptions"], cost["steps_redone"]) == (2, 2)
    assert cost["checkpoint_seconds"] == pytest.approx(1.8) and cost["node_seconds"] == pytest.approx(1800)
    assert cost["wasted_dollars"] == pytest.approx(300 / 3600 * 0.03 * 2 / 6)  # 2 of attempt 2's 6 steps
    assert world.client("alice").get(f"{API}/jobs/{queue.spot[:8]}").json()["id"] == queue.spot  # a prefix will do
    (running,) = world.client("vera").get(f"{API}/jobs/{queue.running}").json()["attempts"]
    assert running["ended_at"] is None and running["seconds"] == pytest.approx(300, abs=30)  # counted up to now
    assert running["dollars"] == pytest.approx(running["seconds"] / 3600 * 0.03)


def test_a_job_log_tail_has_as_many_lines_as_asked(world, queue):
    member = world.client("alice")
    tail = member.get(f"{API}/jobs/{queue.spot}/logs", params={"lines": 2}).json()
    assert tail == {"job_id": queue.spot, "lines": 2, "log": "resumed from step 12\nstep 32"}
    assert member.get(f"{API}/jobs/{queue.spot}/logs").json()["log"].startswith("--- attempt 1 on spot-a1f3c2")
    assert member.get(f"{API}/jobs/{queue.waiting_bob}/logs").json()["log"] == ""  # nothing ran yet
    assert "lines" in _error(member.get(f"{API}/jobs/{queue.spot}/logs", params={"lines": 0}), 422)


def test_jobs_need_a_signed_in_user_and_unknown_ones_are_404(world, queue):
    anonymous = world.client()
    assert "sign in" in _error(anonymous.get(f"{API}/jobs"), 401)
    assert _error(anonymous.get(f"{API}/jobs/{queue.spot}"), 401)
    assert _error(anonymous.post(f"{API}/jobs/{queue.waiting_alice}/cancel"), 401)
    member = world.client("alice")
    assert "no job 'nope'" in _error(member.get(f"{API}/jobs/nope"), 404)
    assert _error(member.get(f"{API}/jobs/nope/logs"), 404)
    assert _error(member.post(f"{API}/jobs/nope/cancel"), 404)


def test_viewers_cannot_cancel_members_cancel_their_own_and_admins_any(world, queue):
    assert "a viewer cannot cancel a job" in _error(
        world.client("vera").post(f"{API}/jobs/{queue.waiting_bob}/cancel"), 403
    )
    assert "owner (alice)" in _error(world.client("bob").post(f"{API}/jobs/{queue.waiting_alice}/cancel"), 403)
    cancelled = world.client("alice").post(f"{API}/jobs/{queue.waiting_alice}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert "already cancelled" in _error(world.client("alice").post(f"{API}/jobs/{queue.waiting_alice}/cancel"), 409)
    assert "already succeeded" in _error(world.client("admin").post(f"{API}/jobs/{queue.spot}/cancel"), 409)
    running = world.client("admin").post(f"{API}/jobs/{queue.running}/cancel").json()  # bob's, by an admin
    assert running["state"] == "running" and running["cancel_requested"] is True  # the scheduler stops it
    events = world.client("bob").get(f"{API}/jobs/{queue.running}").json()["events"]
    assert events[-1]["reason"] == "cancel requested"
    assert world.client("bob").post(f"{API}/jobs/{queue.waiting_bob}/cancel").json()["state"] == "cancelled"


def test_a_cancel_riding_on_the_session_cookie_needs_the_csrf_header(world, queue):
    from .conftest import PASSWORD

    client = world.client()
    csrf = client.get("/signin").text.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/signin", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf})
    assert "CSRF" in _error(client.post(f"{API}/jobs/{queue.waiting_alice}/cancel"), 403)
    fresh = client.get("/").text.split('name="csrf-token" content="')[1].split('"')[0]
    ok = client.post(f"{API}/jobs/{queue.waiting_alice}/cancel", headers={"x-csrf-token": fresh})
    assert ok.status_code == 200 and ok.json()["state"] == "cancelled"


def test_the_openapi_document_has_the_job_endpoints(world):
    paths = world.client().get(f"{API}/openapi.json").json()["paths"]
    assert {
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/logs",
        "/api/v1/jobs/{job_id}/cancel",
    } <= set(paths)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_real_job_run_by_the_local_scheduler_shows_its_placement_cost_and_log(world, tmp_path, monkeypatch):
    job_id = run_real_job(world, tmp_path, monkeypatch)
    member = world.client("vera")
    job = member.get(f"{API}/jobs/{job_id}").json()
    assert (job["name"], job["owner"], job["state"], job["pool"]) == ("digits-tiny", "alice", "succeeded", "on-demand")
    (attempt,) = job["attempts"]
    assert attempt["pool"] == "on-demand" and len(attempt["nodes"]) == 1
    assert attempt["nodes"][0].startswith("on-demand-")
    assert (attempt["outcome"], attempt["exit_code"], attempt["last_step"]) == ("succeeded", 0, TINY_STEPS)
    assert attempt["checkpoint_seconds"] > 0 and attempt["seconds"] > 0
    assert job["cost"]["dollars_by_pool"]["on-demand"] == pytest.approx(attempt["seconds"] / 3600 * 0.10, rel=1e-6)
    assert [e["state"] for e in job["events"]] == ["queued", "placed", "running", "succeeded"]
    assert member.get(f"{API}/runs/{job['run_id']}").json()["status"] == "finished"
    log = member.get(f"{API}/jobs/{job_id}/logs", params={"lines": 5000}).json()["log"]
    assert log.startswith("--- attempt 1 on on-demand (")
    listing = member.get(f"{API}/jobs", params={"state": "succeeded"}).json()
    assert [j["id"] for j in listing["items"]] == [job_id] and listing["items"][0]["dollars"] > 0
