"""Which job an empty batch takes next: the fair one, or a later one whose model is already loaded.

Switching models costs a load (seconds on a GPU, see the README), so when the job at the head of
the fair order needs a model that is not loaded, an engine may first serve the next job whose model
is loaded, but only once per head job: a job passed over once is taken the next time, so a member
waits at most one batch for a model switch. Plain data in, a job id out: no store, no torch.
"""

from __future__ import annotations

from collections.abc import Collection, MutableSet, Sequence

LOOKAHEAD = 16  # how far down the fair order a loaded model's job may be found


def pick(queue: Sequence[tuple[int, str]], loaded: Collection[str], passed_over: MutableSet[int]) -> int | None:
    """The id of the job to claim from ``queue`` (``(job id, model)`` in fair order), or None when empty.

    ``passed_over`` holds the head jobs already skipped once; it is updated here.
    """
    if not queue:
        return None
    head, model = queue[0]
    if model in loaded or head in passed_over:
        passed_over.discard(head)
        return head
    for job_id, other in queue[1:]:
        if other in loaded:
            passed_over.add(head)
            return job_id
    return head
