"""The GPU worker: what ``animabot worker`` and ``animabot run`` run, and what ``animabot render`` renders with.

``worker`` (``Runtime``: the claim loop, heartbeats, mux jobs, start and stop), ``batcher`` (the
rounds: jobs of one batch key rendered a frame at a time with their denoising steps batched),
``in_flight`` (a claimed job's state and the files it writes), ``gpu_models`` (the models one
runtime keeps loaded and compiled), ``model_order`` (which job an empty batch takes next) and
``render_job`` (the one render path: a job's params to its frame chain, its frames to its finished
file with the recipe inside — the batcher and the command line both use it).

Imports the store, video and request at the top; ``engine.render`` (and so torch) only inside the
functions that run on the GPU thread, so importing the runtime never loads torch.
"""
