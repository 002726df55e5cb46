"""The records of a run directory's files, as the writer and the live dashboard both build them."""

from __future__ import annotations

from engine.run import records
from engine.run.channel import CRASHED, run_state
from engine.run.events import LogEvent, RunState, StateChanged, StepMetrics, StepSamples
from engine.run.rundir import UNKNOWN, RunRecord, last_status


def test_records_from_events_keep_the_file_shapes():
    assert records.from_metrics(StepMetrics(step=3, metrics={"reward": 0.5}, time=10.0)) == {
        "step": 3, "time": 10.0, "reward": 0.5}
    assert records.from_samples(StepSamples(step=3, groups=[{"prompt": "1+1="}], time=10.0)) == {
        "step": 3, "groups": [{"prompt": "1+1="}]}
    log = LogEvent(level="warning", category="adjust", message="lr", step=4, data={"learning_rate": 1e-5}, time=11.0)
    assert list(records.from_log(log).items()) == [
        ("time", 11.0), ("step", 4), ("level", "warning"), ("kind", "adjust"), ("message", "lr"),
        ("data", {"learning_rate": 1e-5})]
    assert records.event_record("info", "checkpoint", "saved", step=None, time=1.0)["data"] == {}


def test_a_status_record_names_its_state_and_a_failure_is_an_error():
    paused = records.from_state(StateChanged(state=RunState.PAUSED, time=5.0), step=7)
    assert paused == {"time": 5.0, "step": 7, "level": "info", "kind": "status", "message": "paused",
                      "data": {"state": "paused"}}
    assert type(paused["data"]["state"]) is str  # plain JSON, not the enum
    failed = records.status_record(RunState.FAILED, "out of memory", step=2, time=6.0)
    assert (failed["level"], failed["message"]) == ("error", "out of memory")
    assert last_status([paused, failed]) == "failed"


def test_listed_states_beside_run_states(tmp_path):
    assert run_state(tmp_path, RunState.RUNNING.value) == CRASHED  # no heartbeat: the process is gone
    assert run_state(tmp_path, "finished") == RunState.FINISHED
    assert RunRecord(tmp_path, [], [], [], "").state == UNKNOWN
    assert CRASHED not in {s.value for s in RunState} and UNKNOWN not in {s.value for s in RunState}
