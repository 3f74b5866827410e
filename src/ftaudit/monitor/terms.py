"""The monitor's closed vocabularies, named once: the models validate against them and the CLI offers them as
choices (this module imports nothing, so `ftaudit --help` stays fast)."""

from typing import Literal

ContentPolicy = Literal["hash", "redacted", "full"]
OutputFormat = Literal["text", "json"]
Category = Literal["serious_incident", "death", "widespread", "systemic_risk", "not_serious"]
Severity = Literal["low", "medium", "high", "critical"]
Status = Literal["open", "assessed", "reported", "closed"]
