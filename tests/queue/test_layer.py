"""The queue layer loads neither torch (nor diffusers) nor discord: a bot host and a CPU worker host
import it without them, and the batcher imports the render layer only on the GPU thread."""

import subprocess
import sys

QUEUE_MODULES = [
    "engine.queue.jobs", "engine.queue.schema", "engine.queue.order", "engine.queue.reads",
    "engine.queue.store", "engine.queue.batcher", "engine.queue.worker",
]  # fmt: skip


def test_the_queue_layer_imports_no_torch_diffusers_or_discord():
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in QUEUE_MODULES)
        + "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'diffusers', 'discord'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
