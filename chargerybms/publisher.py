"""The publisher: the registered outputs (:mod:`chargerybms.registry`) turned into messages
for the sink. It groups the outputs by when they are due, builds each against one
:class:`~chargerybms.base.Context`, keeps the changes-only rule, and sends the telemetry of
one publication (not retained, QoS 0) in one transmission. The daemon decides when; this
decides what goes out and how."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Context, Message, Output

if TYPE_CHECKING:
    from .sink import Sink

#: The timing flags the daemon asks for by name (``stale``: going offline, the link's change
#: and the last word on live values).
MOMENTS = ("burst", "link_change", "link_offline", "model_change")


class Publisher:
    def __init__(self, outputs: list[Output], heartbeat: float) -> None:
        self.outputs = outputs
        self._heartbeat = heartbeat
        self.per_frame = [o.build_frame for o in outputs if o.build_frame is not None]
        self.when = {moment: [o for o in outputs if getattr(o.timing, moment)] for moment in MOMENTS}
        self.when["stale"] = [o for o in outputs if o.timing.link_change or o.timing.link_offline]
        self.listeners = {topic: o for o in outputs for topic in o.subscriptions}
        self._sent: dict[str, tuple[str, float]] = {}  # changes_only outputs: the last payload, when

    def periodic(self, names: tuple[str, ...]) -> list[Output]:
        return [o for o in self.outputs if o.name in names]

    def announcing(self, online: bool, burst_pending: bool) -> list[Output]:
        """What a fresh subscriber needs: discovery, link, the latest values (live ones only
        while the link is online; a burst output waiting for its burst goes out with it)."""
        return [
            o
            for o in self.outputs
            if o.timing.announce and (online or not o.timing.live) and not (o.timing.burst and burst_pending)
        ]

    def emit(
        self,
        outputs: list[Output],
        context: Context,
        sink: Sink,
        *,
        again: bool = False,
        held: list[Message] | None = None,
    ) -> bool:
        """Build and publish ``outputs``; telemetry of them all (after ``held``, the frames'
        own messages) goes out together, in one transmission. ``again``: an announcement,
        where even an unchanged document is sent. True when a burst output was built."""
        now = context.now
        telemetry: list[Message] = held or []
        burst = False
        for output in outputs:
            payload = output.build(context)
            burst = burst or output.timing.burst
            if output.timing.changes_only and isinstance(payload, str):
                last = self._sent.get(output.name)
                if not again and last is not None and last[0] == payload and now - last[1] < self._heartbeat:
                    continue
                self._sent[output.name] = (payload, now)
            messages = [(output.topic, payload)] if isinstance(payload, str) else payload or []
            if output.retain or output.qos:
                for topic, text in messages:
                    sink.publish(topic, text, retain=output.retain, qos=output.qos)
            else:
                telemetry += messages
        if telemetry:
            sink.publish_many(telemetry)
        return burst
