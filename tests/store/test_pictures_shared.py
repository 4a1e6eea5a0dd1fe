"""A member's picture reaches a worker on another host through the job store's blobs."""

import numpy as np

from engine.request.picture import encode_png
from engine.store.pictures import fetch_picture, load_picture
from engine.store.store import JobStore


async def test_a_picture_kept_on_the_bot_host_is_loaded_on_another_host(store_location, tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    bot_dir, worker_dir = tmp_path / "bot", tmp_path / "worker"
    async with await JobStore.open(store_location, data_dir=bot_dir) as bot_store:
        key = await bot_store.put_picture(encode_png(pixels), guild_id=1)
    async with await JobStore.open(store_location, data_dir=worker_dir) as worker_store:
        if worker_store.blobs.local:  # one host (SQLite): the data folder is shared, nothing travels
            worker_dir = bot_dir
        await fetch_picture(worker_store, worker_dir, key)
        assert np.array_equal(load_picture(worker_dir, key), pixels)
