"""Mutation testing (issue 20): mutmut 3 over the modules that delete, keep, pass or fail.

Each target is one module (or the named functions of one module, where other functions of the
file are someone else's concern) run against the test files that cover it, in a process of its
own: mutmut reads `[tool.mutmut]` from pyproject.toml and this driver narrows `only_mutate` and
the test selection per target, so no run ever starts the whole suite. Results are read back
from mutmut's own records (mutants/<path>.meta) and written to bench/MUTATION.md's figures file
bench/out/mutation.json; the page itself is kept by hand (each survivor needs a sentence).

    python -m bench.mutate                 # every target that is measured by default
    python -m bench.mutate policy.rds ...  # the named targets only
    python -m bench.mutate --list          # the targets, with their tests
    python -m bench.mutate --show policy.rds  # the diffs of its last run's survivors
    python -m bench.mutate --table         # the figures as bench/MUTATION.md's table
    python -m bench.mutate --survivors aws.reaper  # only the last run's survivors, again

Tests that run `prism-dr` in a subprocess import the installed (unmutated) code, so they kill
nothing: each target lists tests that call the code in-process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MAX_CHILDREN = 2  # the machine's cores


@dataclass(frozen=True)
class Target:
    name: str
    path: str  # the module's file, relative to the repository
    tests: tuple[str, ...]
    # Globs over mutmut's mutant names (`<module>.x_<function>__mutmut_<n>`, methods
    # `<module>.xǁ<Class>ǁ<method>__mutmut_<n>`); empty: every function of the module.
    functions: tuple[str, ...] = ()
    measured: bool = True  # False: listed for the issue, left out of a default run

    @property
    def module(self) -> str:
        return self.path.removesuffix(".py").replace("/", ".")

    def mutant_globs(self) -> list[str]:
        if not self.functions:
            return [f"{self.module}.*"]
        return [f"{self.module}.{f}__mutmut_*" for f in self.functions]


# Every drill test runs every check; these two target them (a copy of the sample database per
# test, one check at a time), which keeps a surviving mutant's run under a minute.
_VERIFY_TESTS = ("tests/drills/verify/test_defects.py", "tests/drills/verify/test_thresholds.py")

TARGETS = [
    # What the verification checks pass or fail.
    Target("verify.freshness", "drills/verify/freshness.py", _VERIFY_TESTS),
    Target("verify.schema", "drills/verify/schema.py", _VERIFY_TESTS),
    Target("verify.context", "drills/verify/context.py", _VERIFY_TESTS,
           functions=("x_fmt_duration", "x_counted", "x_fmt_hours", "xǁContextǁmissing_org_table",
                      "xǁContextǁmajor_tables")),
    Target("verify.integrity", "drills/verify/integrity.py", _VERIFY_TESTS),
    # The whole module: the sampling, the fetch by key and the SQL that says which rows count
    # decide a verdict as much as the functions that word it.
    Target("verify.data", "drills/verify/data.py",
           (*_VERIFY_TESTS, "tests/drills/verify/test_source.py",
            "tests/drills/verify/test_data.py")),
    # The deep tier's structural check, the API's health/ready/degraded checks, the team's
    # smoke command and /ready through the hostname, and which checks each tier runs.
    Target("verify.amcheck", "drills/verify/amcheck.py", ("tests/drills/verify/test_amcheck.py",)),
    # The API checks' verdicts and what the started API may inherit; not the process plumbing
    # (starting, stopping, polling /proc), which the same tests run at 10-20 s a mutant.
    Target("verify.app", "drills/verify/app.py", ("tests/drills/verify/test_app.py",),
           functions=("xǁApiǁhealth", "xǁApiǁready", "xǁApiǁdegraded", "xǁApiǁ_said",
                      "xǁApiǁ_where", "xǁApiǁ_last_output", "x_api_environment")),
    Target("verify.smoke", "drills/verify/smoke.py", ("tests/drills/aws/test_smoke.py",)),
    Target("verify.suite", "drills/verify/suite.py",
           ("tests/drills/verify/test_clean.py", "tests/drills/verify/test_defects.py",
            "tests/drills/verify/test_app.py")),
    # The policy rules.
    Target("policy.rds", "policy/rds.py", ("tests/policy/test_rds.py",)),
    Target("policy.drill", "policy/drill.py", ("tests/policy/test_drill.py",)),
    Target("policy.host", "policy/host.py", ("tests/policy/test_host.py",)),
    Target("policy.access", "policy/access.py", ("tests/policy/test_access.py",)),
    Target("policy.tunnel", "policy/tunnel.py", ("tests/policy/test_tunnel.py",)),
    # What the local reaper removes and spares.
    Target("local.reaper", "drills/local/reaper.py",
           ("tests/drills/local/test_reaper.py", "tests/drills/local/test_reaper_guards.py")),
    # Taking the pre-migration snapshot: retention, name, tags, the wait (`Snapshot`'s
    # properties are decorated, which mutmut 3 leaves alone; prune's tests pin them).
    Target("snapshot.create", "runbook/snapshot.py",
           ("tests/runbook/test_snapshot.py", "tests/runbook/test_snapshot_create.py"),
           functions=("x_check_migration_id", "x_snapshot_identifier", "x_tag_value",
                      "x_pre_migration_tags", "x_waiter_attempts",
                      "x_create_pre_migration_snapshot", "x_wait_available", "x__refusal",
                      "x__last_state", "x_describe_snapshot", "x_snapshots_of")),
    # The AWS drill's teardown and the report of its sweep (the rest of the runner is
    # orchestration the whole-drill tests cover, at a restored sample database per mutant).
    Target("aws.teardown", "drills/aws/runner.py", ("tests/drills/aws/test_teardown.py",),
           functions=("x_teardown", "x__host_first", "x__cancel", "x__sweep",
                      "xǁSweepReportǁcheck")),
    # Prune's decisions and the audit's limits (their other functions: the runbook's owner).
    Target("snapshot.prune", "runbook/snapshot.py",
           ("tests/runbook/test_snapshot.py", "tests/runbook/test_snapshot_boundaries.py"),
           # mutmut 3 leaves decorated functions (Snapshot's properties) unmutated.
           functions=("x_prune_decisions", "x_delete_snapshot")),
    # The rules judge plain facts and the limits tests call each directly; test_audit.py runs
    # the whole command against a moto server, which made a run take 20 minutes.
    Target("audit.limits", "runbook/audit.py", ("tests/runbook/test_audit_limits.py",),
           functions=("x__automated_backups", "x__pitr", "x__deletion_protection",
                      "x__encryption", "x__replication", "x__pre_migration_snapshot",
                      "x__restore_drill", "x__untagged_snapshots",
                      "x__expired_drill_resources", "x_passed")),
    # Recovery: the point and window AWS can restore, and what is masked in what is written.
    # Its decisions are tested directly in test_points.py (AWS's answers from a Stubber).
    # tests/runbook/test_recover.py calls it in-process too, but through the whole recover
    # command on a moto server (2-7 s a test, a fresh session per mutant): with it a run was
    # past an hour on this machine. tests/drills/aws (the drill's plan) is another branch's.
    Target("recovery.points", "recovery/points.py", ("tests/recovery/test_points.py",)),
    Target("recovery.redact", "recovery/redact.py", ("tests/recovery/test_redact.py",)),
    # The IAM evaluator the grants tests rely on.
    Target("infra.iam", "infra/iam.py", ("tests/infra/test_iam.py",)),
    # Its own tests and the console entry's; the plan command's call skip() only through a
    # subprocess.
    Target("teardown", "prism_dr/teardown.py",
           ("tests/prism_dr/test_teardown.py", "tests/prism_dr/test_app.py")),
    # What the AWS reaper deletes and spares: its decisions (which stacks and resources are
    # due, whose, when; what a run's sweep takes; the exit codes), against moto and the pure
    # boundary tests. Left out: how each kind is deleted and its tags read (`_delete`'s
    # per-kind calls, `current_tags`, the listings: AWS call sequences moto itself checks,
    # about 800 mutants at 20 s each here), the output table and the real clients' factories.
    Target("aws.reaper", "drills/aws/reaper.py",
           ("tests/drills/aws/test_reaper.py", "tests/drills/aws/test_reaper_boundaries.py"),
           functions=("x__verdict", "x__reap_stacks", "x_stack_started", "x__parse_time",
                      "x_reap", "x_reap_tunnels", "x_sweep_run", "x__check_run_id",
                      "x__sweep_cloudflare", "x_run", "x_run_sweep", "x__default_regions",
                      "x__cloudflare_scopes", "x__reap_resources", "x__try_delete",
                      "x__delete_secret", "x__secrets", "x__terminated")),
]
BY_NAME = {t.name: t for t in TARGETS}


def run_one(target: Target, names: list[str] | None = None) -> None:
    """In this process: mutmut with the configuration narrowed to `target` (and to the
    mutants `names`, when given)."""
    from mutmut import configuration

    # A fresh copy each time: mutmut copies a file it does not mutate over the mutated copy
    # (a newer mtime, which it later takes for "already mutated"), and never refreshes a data
    # file (a template, the manifest) already in mutants/, whatever changed since.
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)
    cfg = configuration.config()
    cfg.only_mutate = [target.path]
    cfg.pytest_add_cli_args_test_selection = [t for t in target.tests if (ROOT / t).exists()]
    import mutmut.__main__ as mutmut_main  # after the config: it is read once, then cached

    mutmut_main._run(names or target.mutant_globs(), max_children=MAX_CHILDREN)


def results(target: Target, names: list[str] | None = None) -> dict:
    """The target's mutants and their status, from mutmut's record of the last run (only
    `names`, when given)."""
    import fnmatch

    from mutmut.stats import status_by_exit_code

    meta = ROOT / "mutants" / f"{target.path}.meta"
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    globs = names or target.mutant_globs()
    statuses = {
        name: status_by_exit_code[code]
        for name, code in codes.items()
        if any(fnmatch.fnmatch(name, g) for g in globs)
    }
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    total = len(statuses)
    return {
        "target": target.name,
        "path": target.path,
        "tests": list(target.tests),
        "mutants": total,
        "killed": killed,
        "counts": counts,
        "kill_rate": round(100 * killed / total, 1) if total else None,
        "not_killed": sorted(n for n, s in statuses.items() if s not in ("killed", "timeout")),
    }


def _merged(earlier: dict, again: dict) -> dict:
    """The earlier run's figures with its survivors replaced by how they fared again."""
    killed = earlier["killed"] + again["killed"]
    # `again` ran exactly the earlier run's not-killed mutants: their statuses replace those.
    counts = {s: n for s, n in earlier["counts"].items() if s in ("killed", "timeout")}
    for status, n in again["counts"].items():
        counts[status] = counts.get(status, 0) + n
    total = earlier["mutants"]
    return {
        **earlier,
        "killed": killed,
        "counts": counts,
        "kill_rate": round(100 * killed / total, 1) if total else None,
        "not_killed": again["not_killed"],
        "passes": earlier.get("passes", 1) + 1,
    }


def markdown_table(summary: dict) -> str:
    lines = ["| target | module | mutants | killed | of which timed out | survived | kill rate "
             "| commit |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for found in summary.values():
        lines.append(f"| {found['target']} | `{found['path']}` | {found['mutants']} | "
                     f"{found['killed']} | {found['counts'].get('timeout', 0)} | "
                     f"{len(found['not_killed'])} | {found['kill_rate']} % | {found['commit']} |")
    return "\n".join(lines)


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="target names (default: the measured ones)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument("--show", action="store_true",
                        help="print the diff of every mutant the last run did not kill")
    parser.add_argument("--table", action="store_true",
                        help="print the last figures as bench/MUTATION.md's table")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="run only the mutants the last run of each target left (after new tests); "
        "the figures then count the earlier run's kills and this run's",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process of one target
    parser.add_argument("--names", help=argparse.SUPPRESS)  # its mutants (a file), if chosen
    args = parser.parse_args(argv)

    if args.one:
        names = Path(args.names).read_text().split() if args.names else None
        run_one(BY_NAME[args.one], names)
        return 0
    if args.list:
        for t in TARGETS:
            flag = "" if t.measured else "  (not measured by default)"
            print(f"{t.name:18} {t.path}  <- {' '.join(t.tests)}{flag}")
        return 0
    unknown = [n for n in args.targets if n not in BY_NAME]
    if unknown:
        print(f"unknown target(s) {', '.join(unknown)}: see --list", file=sys.stderr)
        return 2
    chosen = [BY_NAME[n] for n in args.targets] or [t for t in TARGETS if t.measured]
    if args.table:
        print(markdown_table(json.loads((OUT / "mutation.json").read_text())))
        return 0
    if args.show:
        for target in chosen:
            print((OUT / f"survivors-{target.name}.diff").read_text())
        return 0

    OUT.mkdir(parents=True, exist_ok=True)
    summary_path = OUT / "mutation.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    worst = 0
    for target in chosen:
        print(f"== {target.name}: {target.path}", flush=True)
        started = time.monotonic()
        command = [sys.executable, "-m", "bench.mutate", "--one", target.name]
        earlier = summary.get(target.name) if args.survivors else None
        names = None
        if earlier is not None:
            names = earlier["not_killed"]
            listed = OUT / f"survivors-{target.name}.names"
            listed.write_text("\n".join(names) + "\n")
            command += ["--names", str(listed)]
        # A process per target: mutmut keeps its configuration and state in module globals.
        code = subprocess.run(command, cwd=ROOT).returncode if names != [] else 0
        if code != 0:
            print(f"   mutmut failed on {target.name} (exit {code})", file=sys.stderr)
            worst = 1
            continue
        found = results(target, names) if names else results(target)
        if earlier is not None:  # this run re-tried only the earlier survivors
            found = _merged(earlier, found)
        # The diffs now, while mutants/ holds this target's mutated copy (the next run
        # overwrites it): bench/out/survivors-<target>.diff.
        with open(OUT / f"survivors-{target.name}.diff", "w") as diffs:
            for name in found["not_killed"]:
                subprocess.run([Path(sys.executable).parent / "mutmut", "show", name], cwd=ROOT,
                               stdout=diffs, stderr=subprocess.DEVNULL)
        found["seconds"] = round(time.monotonic() - started)
        found["commit"] = commit()
        summary[target.name] = found
        summary_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        print(f"   {found['killed']}/{found['mutants']} killed ({found['kill_rate']} %), "
              f"{found['seconds']} s", flush=True)
    print()
    print(f"{'target':18} {'mutants':>7} {'killed':>6} {'rate':>6}  not killed")
    for name, found in summary.items():
        print(f"{name:18} {found['mutants']:>7} {found['killed']:>6} {found['kill_rate']:>5}%  "
              f"{len(found['not_killed'])}")
    return worst


if __name__ == "__main__":
    sys.exit(main())
