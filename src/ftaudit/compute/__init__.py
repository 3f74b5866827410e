"""Compute accounting: FLOP arithmetic from a model config (pure Python, no torch), the runtime meter
(`FlopMeter`, for any PyTorch loop), hardware and energy sampling, the GPU peak table."""


def __getattr__(name: str):
    if name == "FlopMeter":  # imports torch: only when asked for
        from ftaudit.compute.flop_meter import FlopMeter

        return FlopMeter
    raise AttributeError(name)
