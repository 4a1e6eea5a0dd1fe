"""A start picture belongs to the guilds that sent it (issue 20): only they may queue a render from
it, only their jobs renew it, and one no guild has used for the retention time leaves the blobs."""

import numpy as np

from engine.request.params import RenderParams
from engine.request.picture import encode_png
from engine.store.jobs import JobKind
from engine.store.pictures import picture_blob_key
from engine.store.store import JobStore

OWNER, STRANGER = 111, 222
SENT_AT = 1_000_000.0


def _png(seed: int) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8))


async def test_a_picture_is_kept_only_for_the_guild_that_sent_it(store_location, tmp_path):
    async with await JobStore.open(store_location, data_dir=tmp_path / "data") as store:
        key = await store.put_picture(_png(1), OWNER, now=SENT_AT)
        assert await store.picture_used_at(key, OWNER) == SENT_AT

        # another guild names the key: refused, and the owner's row is not renewed
        assert not await store.keep_picture(key, STRANGER, now=SENT_AT + 100)
        assert not await store.keep_picture(key, None, now=SENT_AT + 100)
        assert await store.picture_used_at(key, OWNER) == SENT_AT
        assert await store.picture_used_at(key, STRANGER) is None

        # the owner's own job renews it
        assert await store.keep_picture(key, OWNER, now=SENT_AT + 200)
        assert await store.picture_used_at(key, OWNER) == SENT_AT + 200


async def test_old_rows_expire_and_a_picture_no_guild_owns_leaves_the_blobs(store_location, tmp_path):
    async with await JobStore.open(store_location, data_dir=tmp_path / "data") as store:
        shared = await store.put_picture(_png(2), OWNER, now=SENT_AT)
        await store.put_picture(_png(2), STRANGER, now=SENT_AT + 500)  # the same picture sent in another guild
        alone = await store.put_picture(_png(3), OWNER, now=SENT_AT)
        queued = await store.put_picture(_png(4), OWNER, now=SENT_AT)
        await store.enqueue(JobKind.ANIMATE, RenderParams("a cat", seed=1, image_key=queued), user_id=1, guild_id=OWNER)
        assert await store.remove_old_pictures(1000, now=SENT_AT + 900) == 0

        assert await store.remove_old_pictures(1000, now=SENT_AT + 1200) == 1  # OWNER's rows expired
        assert await store.blobs.exists(picture_blob_key(queued))  # a queued job still starts from it
        assert await store.blobs.exists(picture_blob_key(shared)) and not await store.blobs.exists(
            picture_blob_key(alone)
        )
        assert not await store.keep_picture(shared, OWNER, now=SENT_AT + 1200)  # no longer OWNER's
        assert await store.keep_picture(shared, STRANGER, now=SENT_AT + 1200)
        assert not await store.keep_picture(alone, OWNER, now=SENT_AT + 1200)
