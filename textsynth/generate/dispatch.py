"""Shards onto a Ray cluster: one ShardWorker actor per CPU, each taking the next shard when idle.

Which worker renders which shard never changes the bytes (a shard is a pure function of the plan
and its index), so work goes to whichever worker is free. A worker that dies (killed, OOM, lost
node) is replaced by a new one built from the same arguments, and its shard goes back to the front
of the queue (at-least-once; the atomic rename makes a repeat harmless), up to RETRIES times a shard.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import TextsynthError
from ..shards import storage
from ..shards.dataset import shard_name
from .plan import Plan
from .worker import ShardWorker

if TYPE_CHECKING:
    from ..synth.synthesizer import Pools

RETRIES = 4


class Workers:
    """One ShardWorker actor per cluster CPU (no more than `at_most`), killed on exit.

    The pools go into the object store once; their ObjectRef is a top-level constructor argument, so
    Ray resolves it before each worker's __init__ and the worker receives the Pools themselves.
    """

    def __init__(self, plan: Plan, pools: Pools, target: str, fingerprint: str, at_most: int):
        import ray

        self.plan = plan
        self.args = (plan, ray.put(pools), target, fingerprint)
        self.actor_class = ray.remote(num_cpus=1)(ShardWorker)
        n = max(1, min(at_most, int(ray.cluster_resources().get("CPU", 1))))
        self.actors = [self.actor_class.remote(*self.args) for _ in range(n)]

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc: Any) -> bool:
        import ray

        for a in self.actors:  # on success they are idle; on failure this stops the others' shards
            ray.kill(a)
        return False

    def render(self, todo: list[int]) -> Iterator[dict[str, Any]]:
        """Render shards `todo`, yielding each worker's result as it lands (in completion order);
        a shard that fails (or kills its worker more than RETRIES times) raises one TextsynthError."""
        import ray

        queue = deque(todo)
        retries = {k: 0 for k in todo}
        pending = {a.ready.remote(): (a, None) for a in self.actors}  # a worker gets shards once built
        busy = 0
        while queue or busy:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            actor, k = pending.pop(ref)
            what = "a worker" if k is None else f"shard {shard_name(k, self.plan.num_shards)}"
            if k is not None:
                busy -= 1
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as e:  # the worker process died: replace it, retry its shard
                if k is None or retries[k] == RETRIES:
                    raise task_error(e, what) from e
                retries[k] += 1
                queue.appendleft(k)
                actor = self.replace(actor)
                pending[actor.ready.remote()] = (actor, None)
                continue
            except (ray.exceptions.RayError, OSError) as e:
                raise task_error(e, what) from e
            if queue:
                nxt = queue.popleft()
                pending[actor.render_shard.remote(nxt)] = (actor, nxt)
                busy += 1
            if k is not None:
                yield result

    def replace(self, dead: Any) -> Any:
        """A new worker in place of a dead one (killed again in case it is only unreachable)."""
        import ray

        ray.kill(dead)
        self.actors.remove(dead)
        self.actors.append(self.actor_class.remote(*self.args))
        return self.actors[-1]


def task_error(e: BaseException, what: str) -> TextsynthError:
    """A Ray task failure as one TextsynthError: the task's own exception, without Ray's traceback."""
    cause = getattr(e, "cause", None)
    if cause is None and hasattr(e, "as_instanceof_cause"):
        cause = e.as_instanceof_cause()
    cause = cause if cause is not None else e
    if isinstance(cause, TextsynthError):
        return TextsynthError(storage.redact(str(cause)))
    msg = str(cause).strip().splitlines()
    return TextsynthError(storage.redact(f"{what} failed: {type(cause).__name__}: {msg[0] if msg else ''}"))
