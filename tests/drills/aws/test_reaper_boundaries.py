"""The reaper's decisions at their boundaries: when a drill stack or a drill-tagged resource is
due, to the second, and what it must never judge at all. No cloud: stacks come from the fake
engine (regions=[] leaves AWS out), tags are plain dicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drills.aws import reaper
from recovery.cloudflare import CloudflareError
from recovery.engine import StackInfo
from tests.fakes.engine import FakeStackEngine, StackState

NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)
SIX_HOURS = timedelta(hours=6)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def judge(engine, *, yes: bool = False, skip=(), older_than=SIX_HOURS) -> dict[str, str]:
    findings = reaper.reap(
        older_than=older_than,
        yes=yes,
        regions=[],
        skip_stacks=list(skip),
        engine_factory=lambda: engine,
        clients=lambda service, region: None,
        now=NOW,
    )
    return {f.name: f.action for f in findings}


@pytest.mark.parametrize(
    ("offset", "action"),
    [
        (timedelta(seconds=-1), "would destroy"),
        (timedelta(0), "would destroy"),  # expired at its expiry, not a second later
        (timedelta(seconds=1), "left: not expired"),
    ],
)
def test_a_tagged_stack_is_due_from_its_expiry_on(offset, action):
    engine = FakeStackEngine(offline=False)
    engine.stacks["drill-20261206-060000"] = StackState(
        tags={"prism:expires-at": stamp(NOW + offset)}
    )
    assert judge(engine) == {"drill-20261206-060000": action}


@pytest.mark.parametrize(
    ("age", "action"),
    [
        (SIX_HOURS + timedelta(seconds=1), "would destroy"),
        (SIX_HOURS, "would destroy"),
        (SIX_HOURS - timedelta(seconds=1), "left: not expired"),
    ],
)
def test_an_untagged_stack_is_judged_by_the_start_in_its_name(age, action):
    name = "drill-" + (NOW - age).strftime("%Y%m%d-%H%M%S")
    engine = FakeStackEngine(offline=False)
    engine.stacks[name] = StackState()
    assert judge(engine) == {name: action}


@pytest.mark.parametrize(
    ("age", "action"),
    [
        (SIX_HOURS, "would destroy"),
        (SIX_HOURS - timedelta(seconds=1), "left: not expired"),
        (None, "left: not expired"),  # never updated: nothing says it is old
    ],
)
def test_a_stack_without_expiry_or_time_in_its_name_is_judged_by_its_last_update(age, action):
    engine = FakeStackEngine(offline=False)
    engine.stacks["drill-manual"] = StackState(last_update=None if age is None else NOW - age)
    assert judge(engine) == {"drill-manual": action}


def test_the_expiry_tag_decides_over_the_start_in_the_name():
    engine = FakeStackEngine(offline=False)
    # Started long ago, kept on purpose (--keep --ttl): not due until its expiry.
    engine.stacks["drill-20261101-000000"] = StackState(
        tags={"prism:expires-at": stamp(NOW + timedelta(hours=1))}
    )
    # Started a minute ago with a short TTL that has passed: due.
    engine.stacks["drill-" + (NOW - timedelta(minutes=1)).strftime("%Y%m%d-%H%M%S")] = (
        StackState(tags={"prism:expires-at": stamp(NOW - timedelta(seconds=1))})
    )
    assert sorted(judge(engine).values()) == ["left: not expired", "would destroy"]
    assert judge(engine)["drill-20261101-000000"] == "left: not expired"


def test_a_skipped_stack_is_left_however_old():
    engine = FakeStackEngine(offline=False)
    engine.stacks["drill-20200101-000000"] = StackState(resources=["urn:db"])
    engine.stacks["drill-20200101-000001"] = StackState(resources=["urn:db"])
    findings = reaper.reap(
        older_than=SIX_HOURS, yes=True, regions=[], skip_stacks=["drill-20200101-000000"],
        engine_factory=lambda: engine, clients=lambda service, region: None, now=NOW,
    )
    assert findings == [
        reaper.Finding(
            "stack", "drill-20200101-000000", "-", "20200101-000000", "untagged", "left: skipped"
        ),
        reaper.Finding(
            "stack", "drill-20200101-000001", "-", "20200101-000001", "untagged", "destroyed"
        ),
    ]
    assert set(engine.stacks) == {"drill-20200101-000000"}


class ListsEverything(FakeStackEngine):
    """A backend whose listing ignores the prefix (a filter bug, another adapter)."""

    def list_stacks(self, prefix: str = "") -> list[StackInfo]:
        return super().list_stacks("")


def test_a_stack_that_is_not_a_drills_is_never_judged_even_if_listed():
    engine = ListsEverything(offline=False)
    long_ago = NOW - timedelta(days=400)
    engine.stacks["prod"] = StackState(resources=["urn:prod-db"], last_update=long_ago)
    engine.stacks["recovery-dec01"] = StackState(resources=["urn:db"], last_update=long_ago)
    engine.stacks["drill-20200101-000000"] = StackState(resources=["urn:db"])
    found = judge(engine, yes=True)
    assert found == {"drill-20200101-000000": "destroyed"}
    assert set(engine.stacks) == {"prod", "recovery-dec01"}
    assert not [c for c in engine.calls if c[1] in ("prod", "recovery-dec01")]


# --- a tagged resource's verdict ---------------------------------------------------------------


def tags(drill: str | None = "20261206-060000", expires: datetime | str | None = None) -> dict:
    found = {} if drill is None else {"prism:drill": drill}
    if expires is not None:
        found["prism:expires-at"] = expires if isinstance(expires, str) else stamp(expires)
    return found


@pytest.mark.parametrize(
    ("given", "verdict"),
    [
        (tags(expires=NOW - timedelta(seconds=1)), None),
        (tags(expires=NOW), None),
        (tags(expires=NOW + timedelta(seconds=1)), "not expired"),
        (tags(expires=None), "no readable prism:expires-at tag"),
        (tags(expires="next tuesday"), "no readable prism:expires-at tag"),
        (tags(expires="2026-12-06T11:00:00"), "no readable prism:expires-at tag"),  # no zone
        (tags(drill=None, expires=NOW - timedelta(days=1)), "no prism:drill tag"),
        (tags(drill="", expires=NOW - timedelta(days=1)), "no prism:drill tag"),
    ],
    ids=["past", "at", "future", "none", "garbage", "zoneless", "untagged", "empty-tag"],
)
def test_a_resource_is_due_only_tagged_as_a_drills_and_past_a_readable_expiry(given, verdict):
    assert reaper._verdict(given, set(), NOW) == verdict


def test_an_expiry_with_an_offset_is_read_in_utc():
    # 14:00+02:00 is 12:00 UTC: due at NOW, not two hours later.
    assert reaper._verdict(tags(expires="2026-12-06T14:00:00+02:00"), set(), NOW) is None
    late = tags(expires="2026-12-06T14:00:01+02:00")
    assert reaper._verdict(late, set(), NOW) == "not expired"


def test_a_skipped_drills_resources_are_left_and_others_are_not():
    expired = tags(expires=NOW - timedelta(hours=1))
    assert reaper._verdict(expired, {"20261206-060000"}, NOW) == "its drill is skipped"
    assert reaper._verdict(expired, {"20261206-070000"}, NOW) is None


def test_a_run_sweep_takes_its_runs_resources_whatever_their_expiry_and_no_others():
    future = tags(expires=NOW + timedelta(days=1))
    assert reaper._verdict(future, set(), NOW, run_id="20261206-060000") is None
    assert reaper._verdict(tags(), set(), NOW, run_id="20261206-060000") is None
    other = reaper._verdict(future, set(), NOW, run_id="20261206-070000")
    assert other == "another drill's (20261206-060000)"
    assert reaper._verdict(tags(drill=None), set(), NOW, run_id="20261206-060000") == (
        "no prism:drill tag"
    )


@pytest.mark.parametrize(
    ("name", "started"),
    [
        ("drill-20261206-060000", datetime(2026, 12, 6, 6, 0, 0, tzinfo=UTC)),
        ("drill-20261206-060000-retry", None),
        ("drill-manual", None),
        ("prod", None),
    ],
)
def test_a_stacks_start_is_read_only_from_a_drill_name(name, started):
    assert reaper.stack_started(name) == started


# --- where the reaper looks ----------------------------------------------------------------------


def project(tmp_path, monkeypatch, stacks: dict[str, dict]):
    """A project directory whose stack files hold `stacks` (name -> config mapping)."""
    import yaml

    from infra import offline

    for name, config in stacks.items():
        (tmp_path / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))
    monkeypatch.setattr(offline, "PROJECT_DIR", tmp_path)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


def test_the_regions_are_each_stacks_and_its_backups_dr_region_once(tmp_path, monkeypatch):
    replicated = {"backupReplication": {"enabled": True, "region": "eu-central-1"}}
    project(tmp_path, monkeypatch, {
        "a": {"aws:region": "eu-west-1", "prism-infra:database": replicated},
        "b": {"aws:region": "eu-west-1"},
        "c": {"aws:region": ""},  # unset: no region of its own
    })
    monkeypatch.setenv("AWS_REGION", "ap-south-1")  # the stack files win over the environment
    assert reaper._default_regions() == ["eu-west-1", "eu-central-1"]


def test_without_stack_regions_the_environments_is_used(tmp_path, monkeypatch):
    project(tmp_path, monkeypatch, {})
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert reaper._default_regions() == ["ap-south-1"]


def test_with_no_region_anywhere_the_reap_is_refused(tmp_path, monkeypatch):
    from infra.errors import BadInput

    project(tmp_path, monkeypatch, {"a": {"prism-infra:database": {}}})
    with pytest.raises(BadInput) as refused:
        reaper._default_regions()
    assert str(refused.value) == (
        "no AWS region to reap: pass --region (repeatable) or set AWS_REGION"
    )


def test_the_cloudflare_scopes_are_each_stack_tunnels_account_and_zone_once(tmp_path, monkeypatch):
    tunnel = {"accountId": "a" * 32, "zoneId": "z" * 32, "hostname": "api.prismhub.io"}
    project(tmp_path, monkeypatch, {
        "prod": {"prism-infra:tunnel": tunnel},
        "prod-copy": {"prism-infra:tunnel": dict(tunnel)},
        "staging": {"prism-infra:tunnel": {**tunnel, "hostname": "api.staging.prismhub.io"}},
        "bare": {"aws:region": "us-east-1"},  # no tunnel: nothing to sweep in Cloudflare
        "half": {"prism-infra:tunnel": {"accountId": "a" * 32}},
        "hostless": {"prism-infra:tunnel": {"accountId": "b" * 32, "zoneId": "y" * 32}},
    })
    scopes = reaper._cloudflare_scopes("20261206-060000")
    assert [(s.account_id, s.zone_id, s.hostname) for s in scopes] == [
        ("a" * 32, "z" * 32, "drill-20261206-060000.prismhub.io"),
        ("a" * 32, "z" * 32, "drill-20261206-060000.staging.prismhub.io"),
    ]


@pytest.mark.parametrize("error", ["EngineError", "BadInput"])
def test_a_backend_that_cannot_be_read_is_one_failed_stack_finding(error):
    from infra.errors import BadInput
    from recovery.engine import EngineError

    kind = {"EngineError": EngineError, "BadInput": BadInput}[error]

    def factory():
        raise kind("the Pulumi CLI is not on PATH")

    findings = reaper.reap(
        older_than=SIX_HOURS, yes=True, regions=[], skip_stacks=[], engine_factory=factory,
        clients=lambda service, region: None, now=NOW,
    )
    assert findings == [
        reaper.Finding(
            "stack", "*", "-", "-", "-", "failed: stacks not checked: the Pulumi CLI is not on PATH"
        )
    ]
    assert findings[0].failed


def test_a_stacks_finding_names_its_drill_and_its_expiry_or_that_it_has_none():
    engine = FakeStackEngine(offline=False)
    engine.stacks["drill-20261206-060000"] = StackState(
        tags={"prism:expires-at": "2026-12-06T07:00:00+00:00"}
    )
    engine.stacks["drill-20261206-100000"] = StackState()
    findings = reaper.reap(
        older_than=SIX_HOURS, yes=False, regions=[], skip_stacks=[],
        engine_factory=lambda: engine, clients=lambda service, region: None, now=NOW,
    )
    assert findings == [
        reaper.Finding(
            "stack", "drill-20261206-060000", "-", "20261206-060000", "2026-12-06T07:00:00Z",
            "would destroy",
        ),
        reaper.Finding(
            "stack", "drill-20261206-100000", "-", "20261206-100000", "untagged",
            "left: not expired",
        ),
    ]


# --- Cloudflare: what a run's sweep finds and says ---------------------------------------------

RUN = "20261206-060000"
SCOPE = reaper.CloudflareScope("a" * 32, "z" * 32, f"drill-{RUN}.prismhub.io")
TUNNEL = f"prism-drill-{RUN}-api"


def cloudflare_with(run: str = RUN):
    from tests.fakes.cloud import FakeCloudflare

    fake = FakeCloudflare()
    tunnel = fake.add_tunnel(SCOPE.account_id, f"prism-drill-{run}-api")
    record = fake.add_record(SCOPE.zone_id, SCOPE.hostname)
    return fake, tunnel, record


def test_without_a_token_the_runs_tunnel_is_a_failed_finding_naming_the_token():
    assert reaper._sweep_cloudflare(None, RUN, SCOPE, yes=True) == [
        reaper.Finding(
            "cloudflare:tunnel", TUNNEL, "-", RUN, "-",
            "failed: not checked: set CLOUDFLARE_API_TOKEN (Cloudflare Tunnel:Edit, DNS:Edit)",
        )
    ]


def test_a_dry_sweep_lists_the_runs_tunnel_and_record_and_removes_neither():
    fake, tunnel, record = cloudflare_with()
    assert reaper._sweep_cloudflare(fake, RUN, SCOPE, yes=False) == [
        reaper.Finding("cloudflare:tunnel", f"{TUNNEL} ({tunnel})", "-", RUN, "-", "would delete"),
        reaper.Finding(
            "cloudflare:dns", f"{SCOPE.hostname} ({record})", "-", RUN, "-", "would delete"
        ),
    ]
    assert fake.live() == {"tunnels": [TUNNEL], "records": [SCOPE.hostname]}


def test_a_sweep_removes_the_runs_tunnel_after_its_connections_and_its_record():
    fake, tunnel, record = cloudflare_with()
    fake.connect(tunnel)
    fake.connector_stopped(tunnel)  # the host is gone; its stale connections are not
    found = reaper._sweep_cloudflare(fake, RUN, SCOPE, yes=True)
    assert found == [
        reaper.Finding("cloudflare:tunnel", f"{TUNNEL} ({tunnel})", "-", RUN, "-", "deleted"),
        reaper.Finding("cloudflare:dns", f"{SCOPE.hostname} ({record})", "-", RUN, "-", "deleted"),
    ]
    assert fake.live() == {"tunnels": [], "records": []}


def test_a_tunnel_cloudflare_refuses_to_delete_is_a_failed_finding_the_record_still_goes():
    fake, tunnel, _ = cloudflare_with()

    def refuse(account_id, tunnel_id):
        raise CloudflareError("Cloudflare: 1022 tunnel has active connections" + "!" * 300)

    fake.delete_tunnel = refuse
    found = reaper._sweep_cloudflare(fake, RUN, SCOPE, yes=True)
    said = "Cloudflare: 1022 tunnel has active connections" + "!" * 300
    assert found[0] == reaper.Finding(
        "cloudflare:tunnel", f"{TUNNEL} ({tunnel})", "-", RUN, "-", f"failed: {said[:200]}"
    )
    assert found[1].action == "deleted" and fake.live()["records"] == []


def test_a_cloudflare_that_cannot_be_listed_is_one_failed_finding():
    fake, _, _ = cloudflare_with()

    def down(account_id, name):
        raise CloudflareError("Cloudflare /cfd_tunnel: 503" + "." * 300)

    fake.tunnels_named = down
    said = "Cloudflare /cfd_tunnel: 503" + "." * 300
    assert reaper._sweep_cloudflare(fake, RUN, SCOPE, yes=True) == [
        reaper.Finding("cloudflare", TUNNEL, "-", RUN, "-", f"failed: {said[:200]}")
    ]


def test_with_the_tunnel_off_no_dns_record_is_looked_for():
    fake, _, _ = cloudflare_with()
    no_host = reaper.CloudflareScope(SCOPE.account_id, SCOPE.zone_id, None)
    found = reaper._sweep_cloudflare(fake, RUN, no_host, yes=True)
    assert [f.kind for f in found] == ["cloudflare:tunnel"]
    assert fake.live()["records"] == [SCOPE.hostname]  # another's, or a guess: left alone
    assert not [call for call in fake.calls if call[0] == "dns_records"]  # not even asked


def test_only_the_tunnels_of_runs_found_due_are_looked_for_each_once():
    due = [
        reaper.Finding("ec2:instance", "i-1", "us-east-1", "20261101-000000", "x", "deleted"),
        reaper.Finding("rds:db", "d-1", "us-east-1", "20261101-000000", "x", "would delete"),
        reaper.Finding("stack", "drill-20261102-000000", "-", "20261102-000000", "x",
                       "failed: locked"),
        reaper.Finding("rds:db", "d-2", "us-east-1", "20261103-000000", "x", "left: not expired"),
        reaper.Finding("stack", "drill-manual", "-", "manual", "x", "destroyed"),
        reaper.Finding("ssm:parameter", "/p", "us-east-1", "", "x", "deleted"),
    ]
    found = reaper.reap_tunnels(due, True, None)
    assert found == [
        reaper.Finding(
            "cloudflare:tunnel", f"prism-drill-{run}-api", "-", run, "-",
            "left: not checked (no CLOUDFLARE_API_TOKEN)",
        )
        for run in ("20261101-000000", "20261102-000000")
    ]
    assert not any(f.failed for f in found)  # the drill's own sweep has looked already


def test_a_deletion_that_fails_is_a_failed_finding_naming_the_error_and_the_rest_goes_on():
    class Refusing:
        def __getattr__(self, operation):
            def refuse(**kwargs):
                raise RuntimeError(f"{operation} refused: " + "x" * 300)

            return refuse

    candidate = reaper._Candidate("ssm:parameter", "/prism/drill-x/api/A", "arn:x", tags())
    action = reaper._try_delete(
        lambda service, region: Refusing(), "us-east-1", candidate, set(), NOW, None
    )
    said = "list_tags_for_resource refused: " + "x" * 300
    assert action == f"failed: RuntimeError: {said[:200]}"
