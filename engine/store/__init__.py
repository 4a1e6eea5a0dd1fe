"""The job store: the contract between the bot and the GPU workers, SQL only (SQLite or PostgreSQL).

``store`` (``JobStore``, ``open_store``), ``db`` (connections, transactions, migrations applied,
outages), ``schema``/``schema_pg`` (numbered migrations, frozen once released), ``jobs`` (the
``Job`` row and its status enum), ``order`` (the one fair order), ``claims`` (leases with fencing
tokens), ``reads`` (queue positions, usage, listings), ``replies`` (how the front end answers a
job's requester, and results held back), ``blobs`` (frames, previews, results and uploads that travel
through the database) and ``pictures`` (members' start pictures by key).

Speaks neutral words (a job's ``origin_id``, ``result_post_id``): no Discord, no torch, no ffmpeg.
"""
