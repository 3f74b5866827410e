"""Compute accounting: FLOP arithmetic from a model config (pure Python, no torch), the runtime meter,
hardware and energy sampling, the GPU peak table."""
