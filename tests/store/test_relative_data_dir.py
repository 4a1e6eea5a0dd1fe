"""The default ``data_dir = "data"`` is relative to the working folder: a SQLite host's results stay
reachable through the store's blobs, whichever folder a process runs in and whatever earlier
releases recorded."""

from pathlib import Path

from engine.store.store import JobStore


async def test_a_result_saved_with_a_relative_data_dir_is_fetched_from_any_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with await JobStore.open(Path("data/animabot.sqlite3"), data_dir=Path("data")) as store:
        await store.blobs.put("jobs/1/animabot-1.mp4", b"the video")
        ref = store.blobs.ref("jobs/1/animabot-1.mp4")  # what the job row records
    assert Path(ref).is_absolute()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # e.g. the bot started from another folder, or a service's cwd
    async with await JobStore.open(tmp_path / "data/animabot.sqlite3", data_dir=tmp_path / "data") as store:
        assert (await store.blobs.fetch(ref)).read_bytes() == b"the video"
        assert (await store.blobs.fetch("jobs/1/animabot-1.mp4")).read_bytes() == b"the video"  # a key


async def test_a_path_an_earlier_release_recorded_relative_to_the_working_folder_is_found(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    video = Path("data/jobs/1/animabot-1.mp4")  # what releases up to now recorded with data_dir = "data"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"an old video")
    async with await JobStore.open(Path("data/animabot.sqlite3"), data_dir=Path("data")) as store:
        assert (await store.blobs.fetch(str(video))).read_bytes() == b"an old video"
        assert await store.blobs.fetch("data/jobs/2/animabot-2.mp4") is None  # removed by retention
