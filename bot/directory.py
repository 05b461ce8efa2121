"""Who is who in Slack, asked of Slack: user-group members and users' email addresses.

``usergroups.users.list`` is Tier 2 (about 20 calls a minute), so members are cached per
group for a minute; a user's email (``users.info``, ``users:read.email``) for ten. The email
is how a click is matched with the commit author who requested the change (``Name <email>``),
so the requester cannot approve their own change from Slack.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient

GROUP_TTL_SECONDS = 60.0
USER_TTL_SECONDS = 600.0


class SlackDirectory:
    def __init__(self, client: WebClient, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._emails: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def is_member(self, user: str, group: str) -> bool:
        now = self._clock()
        with self._lock:
            cached = self._groups.get(group)
        if cached is None or now - cached[0] > GROUP_TTL_SECONDS:
            response = self._client.usergroups_users_list(usergroup=group)
            members = frozenset(str(u) for u in response.get("users") or [])
            cached = (now, members)
            with self._lock:
                self._groups[group] = cached
        return user in cached[1]

    def email(self, user: str) -> str:
        now = self._clock()
        with self._lock:
            cached = self._emails.get(user)
        if cached is None or now - cached[0] > USER_TTL_SECONDS:
            response = self._client.users_info(user=user)
            profile = (response.get("user") or {}).get("profile") or {}
            cached = (now, str(profile.get("email") or "").lower())
            with self._lock:
                self._emails[user] = cached
        return cached[1]

    def is_requester(self, user: str, requested_by: str) -> bool:
        """Whether ``user`` is who ``requested_by`` (``Name <email>`` or an ID) names."""
        if re.search(rf"(?<![A-Z0-9]){re.escape(user)}(?![A-Z0-9])", requested_by):
            return True
        named = {found.lower() for found in re.findall(r"[^\s<>]+@[^\s<>]+", requested_by)}
        return bool(named) and self.email(user) in named
