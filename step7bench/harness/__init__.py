"""The harness: suites, the trial matrix, the results store and the runner.

It composes the layers below (workloads, engine, techniques) and never trains anything the
engine does not: a suite is a list of trials, each one `engine.run_trial` call.
"""

from step7bench.harness.claims import Claim, load_claims
from step7bench.harness.matrix import Arm, TrialSpec, build_arms, plan_trials
from step7bench.harness.store import ResultsStore
from step7bench.harness.suite import Suite, load_suite

__all__ = ["Arm", "Claim", "ResultsStore", "Suite", "TrialSpec", "build_arms", "load_claims", "load_suite",
           "plan_trials"]
