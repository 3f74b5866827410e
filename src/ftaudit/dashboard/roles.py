"""The dashboard's roles, each including the ones before it (a small module: the CLI imports it at start-up)."""

from typing import Literal, get_args

Role = Literal["viewer", "engineer", "reviewer", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
