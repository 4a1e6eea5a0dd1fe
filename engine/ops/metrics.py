"""The engine's Prometheus metrics, declared once: render rounds, models, failures and the store.

Names follow Prometheus' conventions (``animabot_`` prefix, base units, ``_total`` counters,
``_seconds``/``_bytes``); labels are bounded (a batch size up to ``max_batch``, a control, a status,
a store operation's method name), never a member, a prompt or a job id. The bot's own metrics
(Discord, the queue read from the store at scrape time) are declared in ``bot.ops``. Every metric
lives in prometheus-client's default registry, which ``engine.ops.serve`` exposes.

A process that never serves its metrics only pays for counting: the counters are in-memory numbers.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

# s/frame and query times: a CPU test-tiny frame is ~0.05 s, a 768-px SD1.5 frame on a slow GPU ~10 s.
SECONDS_PER_FRAME_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

# -- render (each worker) ---------------------------------------------------------------------------
FRAMES = Counter("animabot_frames_rendered_total", "Frames rendered by this worker")
ROUNDS = Counter("animabot_render_rounds_total", "GPU rounds (one frame of every job in the batch)")
BATCH_SIZE = Histogram(
    "animabot_render_batch_size", "Jobs rendered together in one round", buckets=(1, 2, 3, 4, 6, 8, 12, 16)
)
SECONDS_PER_FRAME = Histogram(
    "animabot_render_seconds_per_frame",
    "Seconds a job waited for each of its frames: one round's time, by the round's batch size and control",
    ["batch_size", "control"],
    buckets=SECONDS_PER_FRAME_BUCKETS,
)
MODEL_LOADS = Counter("animabot_model_loads_total", "Models loaded onto the device (the first and every switch)")
COMPILE_SECONDS = Counter("animabot_compile_seconds_total", "Seconds spent compiling the step and VAE for a batch size")
OUT_OF_MEMORY = Counter("animabot_out_of_memory_total", "Shared GPU calls that ran out of memory")
JOBS_FINISHED = Counter("animabot_jobs_finished_total", "Jobs this worker ended, by how they ended", ["status"])
JOBS_FAILED = Counter("animabot_jobs_failed_total", "Jobs this worker failed, by reason", ["reason"])
GPU_MEMORY = Gauge("animabot_gpu_memory_bytes", "Device memory held by torch (CUDA only)", ["kind"])
SAFETY_FLAGGED = Counter(
    "animabot_safety_flagged_total",
    "Requests refused and renders stopped (block) or posted hidden (spoiler) by the content policy, by what was "
    "flagged: a banned word (counted by the bot), a start picture or a frame",
    ["action", "what"],
)

# -- the store (every process) ----------------------------------------------------------------------
QUERY_SECONDS = Histogram(
    "animabot_store_query_seconds",
    "Store calls: a read, or a write transaction by the store method that ran it",
    ["operation"],
    buckets=QUERY_BUCKETS,
)
STORE_CONNECTION_ERRORS = Counter(
    "animabot_store_connection_errors_total", "PostgreSQL connections lost or not obtained (each try)"
)
STORE_OUTAGE_SECONDS = Counter(
    "animabot_store_outage_seconds_total", "Seconds work waited for an unreachable store before trying again"
)

FAILURE_REASONS = ("user_error", "out_of_memory", "encode", "timeout", "unexpected")


def round_rendered(frames: int, control: str, seconds: float) -> None:
    """One round gave ``frames`` frames (one per job: the batch size) of one ``control`` in ``seconds``."""
    if frames == 0:  # every job of the batch ended before its frame
        return
    ROUNDS.inc()
    BATCH_SIZE.observe(frames)
    FRAMES.inc(frames)
    SECONDS_PER_FRAME.labels(str(frames), control).observe(seconds)


def failure_reason(err: BaseException) -> str:
    """The bounded label of a failure (``engine.runtime.in_flight.describe_failure`` words it for members)."""
    from engine.errors import OutOfMemory, UserError, is_disk_full

    if is_disk_full(err):
        return "disk_full"
    if isinstance(err, UserError):
        return "user_error"
    if isinstance(err, OutOfMemory):
        return "out_of_memory"
    if "ffmpeg" in str(err).lower():
        return "encode"
    return "unexpected"


def operation_of(body) -> str:
    """A write transaction's label: the store method its body was defined in (``claim``, ``enqueue``),
    read from the function's qualified name (``WorkerWrites.claim.<locals>.body``)."""
    qualname = getattr(body, "__qualname__", "") or "transaction"
    return qualname.split(".<locals>")[0].rpartition(".")[2]


def sample_names(registry=REGISTRY) -> set[str]:
    """Every series name ``registry`` can export (``x_total``, ``x_bucket``, ``x_sum``, ``x_count`` …),
    labelled metrics with no series yet included: what a dashboard or an alert may query."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names
