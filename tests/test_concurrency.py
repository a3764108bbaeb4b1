"""Two (or more) clients allocating the same bed at the same moment: exactly one wins.

Each worker uses its own database connection (PostgreSQL: a real pooled connection per
thread; SQLite: its own connection to the same file), released together by a barrier.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import func, select

from wardwatch.capacity.lookups import open_stay
from wardwatch.capacity.models import Stay
from wardwatch.capacity.schemas import AdmitRequest, PatientIn, TransferRequest
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.core.actor import SYSTEM
from wardwatch.core.errors import Conflict
from wardwatch.runtime import Runtime

WORKERS = 8


def _race(fns: list[Callable[[], object]]) -> tuple[int, list[str]]:
    barrier = threading.Barrier(len(fns))
    wins, errors, lock = [0], [], threading.Lock()

    def run(fn: Callable[[], object]) -> None:
        barrier.wait()
        try:
            fn()
            with lock:
                wins[0] += 1
        except Conflict as exc:
            with lock:
                errors.append(exc.message)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return wins[0], errors


def _bed(rt: Runtime, code: str) -> str:
    return rt.capacity.list_beds(BedFilter(code=code))[0].id


def test_one_bed_many_patients(small: Runtime) -> None:
    bed = _bed(small, "ACU1-AMU-01")
    fns: list[Callable[[], object]] = [
        (
            lambda i=i: small.capacity.admit(  # type: ignore[misc]
                AdmitRequest(bed_id=bed, patient=PatientIn(local_id=f"RACE{i}")), SYSTEM
            )
        )
        for i in range(WORKERS)
    ]
    wins, errors = _race(fns)
    assert wins == 1, errors
    assert len(errors) == WORKERS - 1
    assert all("occupied" in e or "changed by someone else" in e for e in errors), errors
    with small.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Stay)) == 1


def test_one_patient_many_beds(small: Runtime) -> None:
    beds = [_bed(small, f"ACU1-AMU-0{i}") for i in range(1, 7)]
    fns: list[Callable[[], object]] = [
        (
            lambda b=b: small.capacity.admit(  # type: ignore[misc]
                AdmitRequest(bed_id=b, patient=PatientIn(nhs_number="9434765919")), SYSTEM
            )
        )
        for b in beds
    ]
    wins, errors = _race(fns)
    assert wins == 1, errors
    assert len(errors) == len(beds) - 1
    occupied = small.capacity.list_beds(BedFilter(state=BedState.OCCUPIED))
    assert len(occupied) == 1


def test_two_transfers_into_the_same_bed(small: Runtime) -> None:
    a = small.capacity.admit(
        AdmitRequest(bed_id=_bed(small, "ACU1-AMU-01"), patient=PatientIn(local_id="A")), SYSTEM
    )
    b = small.capacity.admit(
        AdmitRequest(bed_id=_bed(small, "ACU1-AMU-02"), patient=PatientIn(local_id="B")), SYSTEM
    )
    target = _bed(small, "ACU1-AMU-03")
    wins, errors = _race(
        [
            lambda: small.capacity.transfer(a.id, TransferRequest(bed_id=target), SYSTEM),
            lambda: small.capacity.transfer(b.id, TransferRequest(bed_id=target), SYSTEM),
        ]
    )
    assert wins == 1 and len(errors) == 1
    in_target = [s for s in small.capacity.list_stays() if s.bed_code == "ACU1-AMU-03"]
    assert len(in_target) == 1


def test_one_stay_moved_twice_at_once(small: Runtime) -> None:
    """A second transfer of a patient waits for the first and starts from where it left
    the patient: one bed ends occupied, never two.

    Deterministic: the first transfer is held open while the second is started.
    """
    stay = small.capacity.admit(
        AdmitRequest(bed_id=_bed(small, "ACU1-AMU-01"), patient=PatientIn(local_id="T")), SYSTEM
    )
    targets = [_bed(small, "ACU1-AMU-02"), _bed(small, "ACU1-AMU-03")]
    outcome: list[object] = []

    def second() -> None:
        try:
            outcome.append(
                small.capacity.transfer(stay.id, TransferRequest(bed_id=targets[1]), SYSTEM)
            )
        except Conflict as exc:
            outcome.append(exc)

    thread = threading.Thread(target=second)
    with small.db.transaction() as tx:
        held = open_stay(tx.session, stay.id)
        small.capacity.moves.transfer(tx, held, targets[0], SYSTEM)
        thread.start()
        time.sleep(0.5)  # the second transfer is now waiting on a lock
        assert thread.is_alive()
    thread.join(timeout=30)
    assert len(outcome) == 1, outcome
    occupied = small.capacity.list_beds(BedFilter(state=BedState.OCCUPIED))
    assert len(occupied) == 1
    assert occupied[0].stay_id == stay.id
    assert small.capacity.get_stay(stay.id).bed_id == occupied[0].id


def test_transfer_racing_a_discharge(small: Runtime) -> None:
    """Whichever wins, a discharged patient never holds a bed."""
    from wardwatch.capacity.schemas import DischargeRequest

    stay = small.capacity.admit(
        AdmitRequest(bed_id=_bed(small, "ACU1-AMU-01"), patient=PatientIn(local_id="T")), SYSTEM
    )
    target = _bed(small, "ACU1-AMU-02")
    _race(
        [
            lambda: small.capacity.transfer(stay.id, TransferRequest(bed_id=target), SYSTEM),
            lambda: small.capacity.discharge(
                stay.id, DischargeRequest(destination="home", pathway=0), SYSTEM
            ),
        ]
    )
    final = small.capacity.get_stay(stay.id)
    assert final.discharged_at is not None  # the discharge always happens (before or after)
    assert small.capacity.list_beds(BedFilter(state=BedState.OCCUPIED)) == []
