"""What the bot writes: pure functions from jobs and limits to message text.

Nothing here sends anything or touches the store, so every line a user reads can be unit-tested.
Text from users (prompts, file names) is escaped for Markdown and shortened to Discord's limits by
``bot.text.limits``, the one place that knows them; pings are prevented separately, by
``allowed_mentions`` on every send and edit.
"""

from __future__ import annotations

import math
from pathlib import PurePath

import discord

from bot.checks import cannot_post_text
from bot.guild_limits import GuildLimits
from bot.text import limits
from engine import files
from engine.config import SafetyConfig
from engine.request.safety import SPOILER_PREFIX
from engine.store.jobs import Job, JobKind, JobStatus

PROMPT_LIMIT = 900
BAR_WIDTH = 20

REROLL_EMOJI = "🔄"
CANCEL_EMOJI = "❌"
INFO_EMOJI = "ℹ️"
REMIX_EMOJI = "🔀"


# -- small pieces ---------------------------------------------------------------------------------
def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``progress_bar(5, 10, 10)`` → ``"█████░░░░░ 50%"``; an unknown total reads as 0%."""
    fraction = min(1.0, max(0.0, done / total)) if total > 0 else 0.0
    filled = math.floor(fraction * width)
    return f"{'█' * filled}{'░' * (width - filled)} {math.floor(fraction * 100)}%"


def format_duration(seconds: float) -> str:
    """``5`` → ``"5 s"``, ``125`` → ``"2 min 05 s"``, ``3720`` → ``"1 h 02 min"`` (rounded up)."""
    total = max(0, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def format_bytes(n_bytes: int) -> str:
    """``10485760`` → ``"10 MiB"``, ``1536`` → ``"1.5 KiB"``."""
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            text = f"{size:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def quote(text: str, limit: int = PROMPT_LIMIT) -> str:
    """User text as a Markdown block quote, its Markdown escaped, shortened to ``limit``."""
    escaped = discord.utils.escape_markdown(limits.shorten(" ".join(text.split()), limit))
    return f"> {escaped}" if escaped else "> (empty)"


def user_ref(user_id: int) -> str:
    """A mention that displays the name; it never pings because every send disables mentions."""
    return f"<@{user_id}>"


def result_filename(job: Job, parent: Job | None = None) -> str:
    """The upload's file name, with the seed in it: ``animabot-42-seed1234.mp4``.

    A mux result is named after the job whose video it carries (``animabot-43-seed1234-audio.mp4``);
    a result the safety checker flagged under the spoiler policy is posted hidden (``SPOILER_animabot-...``).
    The rule itself is the engine's one: :func:`engine.files.result_filename`.
    """
    if job.kind is JobKind.MUX:
        name = files.result_filename(job.id, parent.seed if parent is not None else None, audio=True)
    else:
        name = files.result_filename(job.id, job.seed, ext=job.params.format if job.params is not None else "mp4")
    return SPOILER_PREFIX + name if is_spoiler(job) else name


def is_spoiler(job: Job) -> bool:
    """Whether the job's result was flagged under the spoiler policy (the worker named it ``SPOILER_...``)."""
    return bool(job.result_path) and PurePath(job.result_path).name.startswith(SPOILER_PREFIX)


def _title(job: Job) -> str:
    if job.kind is JobKind.REROLL:
        return f"Job {job.id} (re-roll of job {job.parent_id})"
    if job.kind is JobKind.MUX:
        return f"Job {job.id} (audio for job {job.parent_id})"
    if is_remix(job):
        return f"Job {job.id} (remix of job {job.parent_id})"
    return f"Job {job.id}"


def is_remix(job: Job) -> bool:
    """A remix is an animate job with a parent: the job whose video it remixes (see ``bot.cogs.remix``)."""
    return job.kind is JobKind.ANIMATE and job.parent_id is not None


def _finish(lines: list[str]) -> str:
    return limits.content("\n".join(line for line in lines if line))


# -- progress and results -------------------------------------------------------------------------
def progress_text(job: Job, position: int = 0) -> str:
    """The progress message of a job in any state (queued, running, or finished)."""
    head = f"**{_title(job)}** for {user_ref(job.user_id)}"
    prompt = quote(job.params.prompt) if job.params is not None else ""
    if job.status is JobStatus.QUEUED:
        where = f"position {position} in the queue" if position else "waiting in the queue"
        state = f"⏳ Queued: {where}."
    elif job.status is JobStatus.RUNNING:
        state = running_line(job)
    elif job.status is JobStatus.DONE:
        state = "✅ Done: the video is posted below."
    elif job.status is JobStatus.FAILED:
        state = f"⚠️ Failed: {job.error or 'the render failed unexpectedly.'}"
    else:
        state = "✖️ Cancelled."
    settings = f"-# {job.params.summary()}" if job.params is not None else ""
    return _finish([head, prompt, state, settings])


def running_line(job: Job) -> str:
    if job.cancel_requested:
        return "✖️ Cancelling…"
    if job.kind is JobKind.MUX:
        return "🎵 Adding the audio…"
    if job.frames_done <= 0:
        return f"🎬 Starting… (frame 0/{job.frames_total})"
    if job.frames_done >= job.frames_total:
        return f"🎞️ Encoding the video… (frame {job.frames_done}/{job.frames_total})"
    eta = f" · about {format_duration(job.eta_seconds)} left" if job.eta_seconds is not None else ""
    return f"🎬 `{progress_bar(job.frames_done, job.frames_total)}` frame {job.frames_done}/{job.frames_total}{eta}"


def result_text(job: Job, parent: Job | None = None, note: str = "") -> str:
    """The text posted with the MP4: who, the prompt, the seed and the settings."""
    head = f"🎞️ **{_title(job)}** for {user_ref(job.user_id)}"
    params = job.params if job.params is not None else (parent.params if parent is not None else None)
    lines = [head]
    if params is not None:
        lines.append(quote(params.prompt))
        lines.append(f"-# {params.summary()}")
    if job.kind is not JobKind.MUX:
        lines.append(f"-# {REROLL_EMOJI} re-roll with a new seed · {CANCEL_EMOJI} delete (requester or moderators)")
    if note:
        lines.append(f"-# {note}")
    return _finish(lines)


def upload_failed_text(job: Job, reason: str) -> str:
    head = f"⚠️ **{_title(job)}** for {user_ref(job.user_id)}"
    return limits.fill("{head} rendered, but the video could not be posted: {reason}", head=head, reason=reason)


def queued_reply(job: Job, position: int) -> str:
    """The (private) answer to the command that queued a job."""
    where = f"position {position} in the queue" if position else "starting now"
    if job.kind is JobKind.MUX:
        return (
            f"Queued job {job.id}: adding your audio to job {job.parent_id} ({where}). "
            "The video will be posted in this channel."
        )
    what = f"re-roll of job {job.parent_id}" if job.kind is JobKind.REROLL else "render"
    if is_remix(job):
        what = f"remix of job {job.parent_id}"
    return (
        f"Queued job {job.id} ({what}, seed {job.seed}), {where}. Progress and the video will appear in this channel."
    )


def apology(reference: int | str) -> str:
    return (
        f"Sorry, something went wrong on our side (reference {reference}). It has been logged; please try again later."
    )


# -- /limits and /queue ---------------------------------------------------------------------------
LIMIT_LABELS = {
    "max_frames": "Max frames",
    "max_steps": "Max steps",
    "max_side": "Max side (pixels)",
    "max_fps": "Max fps",
    "daily_quota": "Renders per user per UTC day",
    "max_queued_per_user": "Queued jobs per user",
    "cooldown_seconds": "Cooldown between requests (s)",
    "upload_limit_bytes": "Upload limit",
    "allowed_channel_ids": "Channels",
    "allowed_models": "Models",
    "allowed_loras": "LoRAs",
    "allow_pictures": "Start from a picture",
    "allowed_controls": "Controls",
    "safety": "Content policy",
    "banned_words": "Banned words",
}
SPOILER_NOTE = "posted as a spoiler: the safety checker flagged it for this channel"
# What each content policy does outside age-restricted channels (README "Safety").
SAFETY_EFFECTS = {
    "block": "flagged renders are stopped and not posted",
    "spoiler": "flagged renders are posted as spoilers",
    "off": "nothing is checked; what is posted here is this server's responsibility",
}


def limits_text(guild: GuildLimits, title: str = "Limits on this server", safety: SafetyConfig | None = None) -> str:
    """``/limits show``: each limit, then what the content policy means on this host (``safety``)."""
    lines = [f"**{title}**"]
    for name, label in LIMIT_LABELS.items():
        value = getattr(guild, name)
        if name == "upload_limit_bytes":
            shown = format_bytes(value)
        elif name == "allowed_channel_ids":
            shown = ", ".join(f"<#{c}>" for c in value) if value else "all"
        elif name in ("allowed_models", "allowed_loras"):
            shown = ", ".join(value) if value else "all configured"
        elif name == "allow_pictures":
            shown = "yes" if value else "no"
        elif name == "allowed_controls":
            shown = ", ".join(value) if value else "all"
        elif name == "banned_words":  # behind spoiler bars: the words are what the server does not want shown
            shown = f"||{limits.shorten(', '.join(value), 500)}||" if value else "none besides the host's"
        else:
            shown = str(value)
        lines.append(f"{label}: **{shown}**")
    if safety is not None:
        lines.append(safety_note(guild.safety, safety))
    return _finish(lines)


def safety_note(mode: str, safety: SafetyConfig) -> str:
    """What ``mode`` does on this host: the effect, frames checked or not, and age-restricted channels."""
    note = SAFETY_EFFECTS[mode]
    if mode != "off":
        if safety.checks_pictures:
            every = "every frame" if safety.every_k_frames == 1 else f"every {safety.every_k_frames}th frame"
            note += f"; start pictures and {every} are checked by a classifier"
        else:
            note += "; this host has no checker, so frames are not checked: only banned words are refused"
        if safety.age_restricted == "allow":
            note += "; age-restricted channels are not checked"
    return f"Content policy: {note}."


def queue_text(jobs: list[Job], positions: dict[int, int], user_id: int) -> str:
    """``/queue``: running jobs first, then the waiting ones in claim order; the caller's marked."""
    if not jobs:
        return "The queue is empty: /animate starts right away."

    def place(job: Job) -> float:
        return positions.get(job.id) or math.inf

    running = [j for j in jobs if j.status is JobStatus.RUNNING]
    queued = sorted((j for j in jobs if j.status is JobStatus.QUEUED), key=place)
    lines: list[str] = []
    for job in running:
        lines.append(f"▶️ {_queue_line(job, user_id)} · {_short_progress(job)}")
    for job in queued:
        lines.append(f"{positions.get(job.id) or '·'}. {_queue_line(job, user_id)}")
    mine = [positions[j.id] for j in queued if j.user_id == user_id and positions.get(j.id)]
    if mine:
        lines.append(f"Your next job is at position {min(mine)}.")
    elif any(j.user_id == user_id for j in running):
        lines.append("Your job is rendering now.")
    else:
        lines.append("You have nothing in the queue.")
    return _finish(lines)


def _queue_line(job: Job, user_id: int) -> str:
    who = "you" if job.user_id == user_id else user_ref(job.user_id)
    what = (
        discord.utils.escape_markdown(limits.shorten(job.params.prompt, 60)) if job.params is not None else "audio mux"
    )
    return f"job {job.id} by {who}: {what}"


def _short_progress(job: Job) -> str:
    if job.kind is JobKind.MUX:
        return "adding audio"
    return f"frame {job.frames_done}/{job.frames_total}"


# -- results that could not be posted -------------------------------------------------------------
def not_posted_reason(code: int | None, channel_id: int | None, missing: list[str]) -> str:
    """Why Discord refused a post, as the member reads it (one sentence, what to do included)."""
    where = f"<#{channel_id}>" if channel_id else "that channel"
    if code == 10003:
        return f"The channel {where} was deleted before I could post there."
    if code == 50001:
        return f"I can't see {where} any more — ask a server admin to give me the View Channel permission there."
    return cannot_post_text(missing or ["Send Messages", "Attach Files"], channel_id)


def not_posted_text(job: Job, reason: str, retention_days: float) -> str:
    """What the member is told when a finished job could not be posted for good."""
    if job.status is not JobStatus.DONE:
        return limits.fill("{reason} {outcome}", reason=reason, outcome=progress_text(job))
    kept = (
        f"Your video (job {job.id}) is kept for {retention_days:g} days: `/queue` shows it, "
        f"and `/deliver job:{job.id}` posts it once that is fixed (or in another channel)."
    )
    return limits.fill("{reason} {kept}", reason=reason, kept=kept)


def held_lines(held: dict[int, str]) -> list[str]:
    """``/queue``'s lines for the caller's videos that are kept but not posted."""
    return [limits.fill("📦 job {id}: kept, not posted ({why}) · `/deliver job:{id}`", 200, id=str(job_id), why=why)
            for job_id, why in held.items()]  # fmt: skip


# -- clips people share (issue 12) ----------------------------------------------------------------
def smooth_lowered_note(asked: int, allowed: int, fps: int, max_fps: int) -> str:
    """Why a clip is smoothed less than asked: the server's fps limit."""
    if allowed == 1:
        return f"Smoothing is off: at {fps} fps even ×2 would pass this server's limit of {max_fps} fps."
    return f"Smoothing lowered from ×{asked} to ×{allowed} to stay within this server's limit of {max_fps} fps."
