"""The demo's finetune steps, run in this process as the demo runs them (its arguments), one thread."""

from __future__ import annotations


def run_demo_finetune(args: list[str], **values: str):
    """finetune.run with the demo's `--option value` arguments, updated by `values`; its Result."""
    import torch

    from bertvault.train import finetune

    given = dict(zip(args[::2], args[1::2], strict=True))
    settings = {key.removeprefix("--").replace("-", "_"): value for key, value in given.items()}
    settings.update(values)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the demo's processes run, and the same numbers on every machine
    try:
        return finetune.run(finetune.resolve_settings({}, settings))
    finally:
        torch.set_num_threads(threads)
