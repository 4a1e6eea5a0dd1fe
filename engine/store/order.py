"""The fair order, written once: the order in which claims take the queued jobs of a lane.

Round-robin over users. Each claim serves the user who was served longest ago in that lane (the
``claim_turns`` table; never served first, ties by their oldest queued job), then that user's oldest
queued job, and being served makes a user the most recently served. So every user waiting is served
once per round, and each round serves them in the same order as the first. The whole order is
therefore one sort of the queued jobs: by the job's rank among its user's queued jobs (its round),
then by the user's key (turn, never served first; then the user's oldest queued job id).

:data:`FAIR_ORDER` is that sort as a ``WITH`` clause defining ``fair_order (id, lane, position)``,
``position`` being 1-based within the lane. It is standard SQL (window functions), so it runs on
SQLite and PostgreSQL alike. ``claim`` takes its first row, ``queue_positions`` reads positions.
"""

from __future__ import annotations

# The lane of a job: renders share the GPU; mux jobs are CPU work in a lane of their own.
LANE_OF_KIND = "CASE kind WHEN 'mux' THEN 'mux' ELSE 'render' END"

FAIR_ORDER = f"""
    WITH queued AS (
        SELECT id, user_id, {LANE_OF_KIND} AS lane
        FROM jobs
        WHERE status = 'queued' AND cancel_requested = 0
    ),
    ranked AS (
        SELECT q.id, q.lane, t.turn,
               ROW_NUMBER() OVER (PARTITION BY q.lane, q.user_id ORDER BY q.id) AS round,
               MIN(q.id) OVER (PARTITION BY q.lane, q.user_id) AS first_id
        FROM queued AS q
        LEFT JOIN claim_turns AS t ON t.user_id = q.user_id AND t.lane = q.lane
    ),
    fair_order AS (
        SELECT id, lane,
               ROW_NUMBER() OVER (PARTITION BY lane ORDER BY round, turn NULLS FIRST, first_id) AS position
        FROM ranked
    )
"""
