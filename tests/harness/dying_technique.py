"""A technique whose step ends the process that runs it: how a worker that dies mid-trial (out of
memory, killed) meets the executor. Only for tests: a suite names it in `plugins`."""

import os

from step7bench.api import Plugin, StepStage, TechniqueSpec


class _Die(StepStage):
    def step(self, ctx, batch):
        os._exit(3)


TECHNIQUES = (
    TechniqueSpec(name="dies", summary="ends its worker process at the first step", stages=("step",),
                  build=lambda workload, config: Plugin("dies", step=_Die())),
)
