"""Group commit gathers: the connections answered together send again together, so a lane
waits (briefly) for them to share one commit instead of taking them one by one; a
connection alone, or one among quiet ones, is never held longer than that, and usually not
at all."""

from __future__ import annotations

import asyncio

from wardwatch.ingest.hl7v2.mllp import GroupCommit
from wardwatch.ingest.hl7v2.service import Handled

#: Long enough that a test never depends on how fast this machine is.
GATHER = 5.0


class Recorder:
    """A fake ``apply``: keeps each batch's connections, holds it ``hold`` seconds."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.batches: list[list[str]] = []
        self.in_hand = 0
        self.most_in_hand = 0

    async def __call__(self, items: list[tuple[bytes, str | None]]) -> list[Handled]:
        self.batches.append([str(source) for _, source in items])
        self.in_hand += 1
        self.most_in_hand = max(self.most_in_hand, self.in_hand)
        await asyncio.sleep(self.hold)
        self.in_hand -= 1
        return [Handled(f"ACK {raw.decode()}", "AA", "accepted", "", None) for raw, _ in items]


async def _connection(commits: GroupCommit, name: str, count: int, pause: float) -> None:
    """Send ``count`` messages, each after the last one's answer and ``pause`` seconds
    (a sender answered together with others comes back a little before or after them)."""
    for i in range(count):
        answer = await commits.submit(f"{name}-{i}".encode(), name)
        assert answer.ack == f"ACK {name}-{i}"
        await asyncio.sleep(pause)


def _run(lanes: int, connections: int, rounds: int, hold: float = 0.0) -> Recorder:
    apply = Recorder(hold)

    async def main() -> None:
        commits = GroupCommit(apply, lanes, gather=GATHER)
        names = [f"c{n}" for n in range(connections)]
        await asyncio.wait_for(
            asyncio.gather(
                *(_connection(commits, c, rounds, 0.001 * n) for n, c in enumerate(names))
            ),
            GATHER,  # had any lane waited for its whole gather time, this would fail
        )

    asyncio.run(main())
    return apply


def test_connections_answered_together_share_the_next_commit() -> None:
    apply = _run(lanes=1, connections=8, rounds=4)
    assert [len(b) for b in apply.batches] == [8, 8, 8, 8]


def test_with_two_lanes_each_takes_its_share_and_both_work_at_once() -> None:
    apply = _run(lanes=2, connections=8, rounds=5, hold=0.02)
    assert [len(b) for b in apply.batches[1:]] == [4] * 8, apply.batches
    assert apply.most_in_hand == 2
    for batch in apply.batches:  # never two messages of one connection in a batch
        assert len(set(batch)) == len(batch)


def test_a_connection_alone_is_never_held() -> None:
    apply = _run(lanes=1, connections=1, rounds=5)
    assert apply.batches == [["c0"]] * 5


def test_a_connection_whose_neighbour_went_quiet_waits_once_at_most() -> None:
    """a and b are answered together; b sends nothing more. a's next message waits for b
    at most the gather time; after that b counts as quiet and a is not held again."""
    apply = Recorder()
    gather = 0.3

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        commits = GroupCommit(apply, gather=gather)
        await asyncio.gather(commits.submit(b"a-0", "a"), commits.submit(b"b-0", "b"))
        took = []
        for i in (1, 2, 3):
            t0 = loop.time()
            await commits.submit(f"a-{i}".encode(), "a")
            took.append(loop.time() - t0)
        return took

    took = asyncio.run(main())
    assert apply.batches == [["a", "b"], ["a"], ["a"], ["a"]]
    assert took[0] >= gather * 0.9  # held for b
    assert max(took[1:]) < gather / 2  # b is quiet now: not held again
