"""``state``: the battery as one JSON document (:meth:`BatteryState.document_json`), with
the views' keys and the daemon's own (:data:`DAEMON_KEYS`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..base import Context, Output, Timing

if TYPE_CHECKING:
    from ..config import Settings
    from ..topics import Topics

#: The daemon's own values in the document (link quality, liveness), after its views':
#: given to :meth:`BatteryState.document` as ``extra`` (:func:`daemon_fields`).
DAEMON_KEYS: Final = ("frames_per_second", "checksum_failures", "last_frame", "link")


def daemon_fields(
    frames_per_second: float | None, checksum_failures: int, last_frame: str | None, link: str
) -> dict[str, Any]:
    """The daemon's part of the document, under the names of :data:`DAEMON_KEYS`."""
    return dict(zip(DAEMON_KEYS, (frames_per_second, checksum_failures, last_frame, link), strict=True))


def output(settings: Settings, topics: Topics) -> Output:
    """``state``: once per burst, at the heartbeat, and a last one when the link goes offline."""

    def build(world: Context) -> str | None:
        state = world.state
        return state.document_json(world.document_extra()) if state.has_data else None

    return Output("state", topics.state, Timing(burst=True, link_offline=True, announce=True), build)
