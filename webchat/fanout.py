"""Group messages to visitor sockets: one subscription per conversation group per process.

Channels gives each consumer a channel of its own. With the pub/sub layer a group message is then
queued on every member socket's channel and, per socket, deserialised and woken through a task
and `asyncio.wait` of its own: at 10,000 sockets that was most of a web process's time. Here the
sockets of one conversation in this process share one channel in its group (refcounted: it is
made with the first socket and dropped with the last), and each message is received and
deserialised once, then handed to the sockets in turn (`Member.group_event`): for the next
message of the conversation, that is one send of a frame built once per process.

It goes through the channel layer's own API, so the layer's Redis connection, reconnection (and
re-subscription), prefix and serializer serve it as they serve the inbox's sockets; Redis down
loses only live pushes. A group's messages arrive on the group's own channel: they carry no
schema, and the channel is what keeps one tenant's or conversation's events from another's.
Each group is read by a task of its own, so a socket whose sends block (a client that stopped
reading, its buffers full) holds up at most its own conversation's sockets in this process, and
for at most `STALL_SECONDS`: then it is dropped from the group and closed (the widget reconnects
and resumes from its seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# How long a socket that joins waits for its group's subscription before going on without it
# (Redis down: it misses live pushes until the subscription is made, and replays on resume).
JOIN_WAIT_SECONDS = 2.0
# Between attempts to subscribe while Redis cannot be reached.
RETRY_SECONDS = 1.0
# How long one socket may take over one message before it is taken for stalled.
STALL_SECONDS = 5.0


class Member(Protocol):
    async def group_event(self, message: dict[str, Any]) -> None:
        """Handles one message of the group. Awaited for each member in turn: it must not wait
        on anything slower than its own socket's send."""

    def stalled(self) -> None:
        """The socket took longer than `STALL_SECONDS` over a message and has left the group:
        close it, without waiting for it."""


@dataclass(eq=False)
class _Group:
    name: str
    # Insertion-ordered: the sockets get each message in the order they joined.
    members: dict[Member, None] = field(default_factory=dict)
    channel: str = ""
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Fanout:
    """The groups that have sockets in this process (one event loop), each with its reader."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.groups: dict[str, _Group] = {}

    async def join(self, group: str, member: Member) -> None:
        """Adds the socket to the group; returns once the group's subscription is in place (or
        after `JOIN_WAIT_SECONDS` when it cannot be made yet)."""
        entry = self.groups.get(group)
        if entry is None:
            entry = self.groups[group] = _Group(group)
            entry.task = asyncio.create_task(self._read(entry), name=f"fanout {group}")
        entry.members[member] = None
        if not entry.subscribed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.subscribed.wait(), JOIN_WAIT_SECONDS)
            return
        # Each socket renews the membership, as each consumer's own group_add did: the core
        # layer's expires, and goes with a Redis that restarts empty. (The pub/sub layer,
        # subscribed already, does nothing.)
        try:
            await self.layer.group_add(group, entry.channel)
        except Exception as error:
            logger.warning("fan-out group not renewed", extra={"error": type(error).__name__})

    def leave(self, group: str, member: Member) -> None:
        """Removes the socket (idempotent); the last one out drops the group's subscription."""
        entry = self.groups.get(group)
        if entry is None:
            return
        entry.members.pop(member, None)
        if not entry.members:
            del self.groups[group]
            if entry.task is not None:
                entry.task.cancel()

    async def _read(self, entry: _Group) -> None:
        try:
            await self._subscribe(entry)
            entry.subscribed.set()
            while True:
                try:
                    message = await self.layer.receive(entry.channel)
                except Exception as error:
                    # The core layer reads from Redis (the pub/sub layer from its own queue).
                    logger.warning(
                        "fan-out receive failed; trying again",
                        extra={"error": type(error).__name__},
                    )
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                await self._hand_out(entry, message)
        finally:
            # The layer unsubscribes the group once no channel of this process is left in it
            # (an operator's inbox socket may still be).
            if entry.channel:
                try:
                    await self.layer.group_discard(entry.name, entry.channel)
                except Exception as error:
                    logger.warning(
                        "fan-out group not discarded", extra={"error": type(error).__name__}
                    )

    async def _hand_out(self, entry: _Group, message: dict[str, Any]) -> None:
        """The message to each socket in turn, each within `STALL_SECONDS` (one timer for the
        message, moved on at each socket: no task or timer per socket)."""
        loop = asyncio.get_running_loop()
        # A copy: a socket that closes (or joins) meanwhile does not upset the loop.
        members = tuple(entry.members)
        index = 0
        while index < len(members):
            try:
                async with asyncio.timeout(None) as deadline:
                    while index < len(members):
                        member = members[index]
                        index += 1
                        deadline.reschedule(loop.time() + STALL_SECONDS)
                        try:
                            await member.group_event(message)
                        except Exception as error:
                            # Most often a socket that closed mid-fan-out; the others go on.
                            logger.info(
                                "group message not delivered to a socket",
                                extra={"error": type(error).__name__},
                            )
            except TimeoutError:
                stalled = members[index - 1]
                logger.warning("a visitor socket stalled; closed")
                entry.members.pop(stalled, None)
                stalled.stalled()

    async def _subscribe(self, entry: _Group) -> None:
        """A channel of this process in the group, trying again until Redis answers."""
        while True:
            try:
                if not entry.channel:
                    entry.channel = await self.layer.new_channel()
                await self.layer.group_add(entry.name, entry.channel)
                return
            except Exception as error:
                logger.warning(
                    "fan-out subscription failed; trying again",
                    extra={"error": type(error).__name__},
                )
                await asyncio.sleep(RETRY_SECONDS)


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = weakref.WeakKeyDictionary()


def fanout() -> Fanout | None:
    """This event loop's fan-out (a channel layer's connections belong to one loop), or None
    without a channel layer."""
    layer = get_channel_layer()
    if layer is None:
        return None
    loop = asyncio.get_running_loop()
    current = _fanouts.get(loop)
    # A new layer (tests change CHANNEL_LAYERS) starts a new fan-out.
    if current is None or current.layer is not layer:
        current = _fanouts[loop] = Fanout(layer)
    return current
