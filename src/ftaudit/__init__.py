"""ftaudit: EU AI Act evidence for fine-tuning LLMs, as a by-product of the fine-tuning itself."""

__version__ = "0.1.0"


def __getattr__(name):
    # The Trainer callback pulls in torch/transformers; keep `import ftaudit` light for the CLI.
    if name == "FlopsMeterCallback":
        from ftaudit.integrations.hf import FlopsMeterCallback

        return FlopsMeterCallback
    raise AttributeError(name)
