"""The ``wardwatch`` command line (Typer + Rich)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wardwatch.capacity.reports import sitrep_csv
from wardwatch.capacity.schemas import AdmitRequest, DischargeRequest, PatientIn, TransferRequest
from wardwatch.capacity.service import BedFilter
from wardwatch.capacity.states import BedState
from wardwatch.capacity.system import load_system_file
from wardwatch.clikit import CLI_ACTOR, err, fail, out, runtime
from wardwatch.core.errors import NotFound, ValidationFailed, WardWatchError
from wardwatch.frontdoor.opel_cli import opel_app
from wardwatch.kpi.cli import report_app
from wardwatch.notify.cli import notify_app
from wardwatch.runtime import Runtime
from wardwatch.tasks.cli import tasks_app, teams_app
from wardwatch.virtualward.cli import vw_app

app = typer.Typer(
    help="WardWatch: live beds, flow and coordination for a health system.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
system_app = typer.Typer(help="The health system's sites, wards and beds.", no_args_is_help=True)
token_app = typer.Typer(help="API bearer tokens.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
bed_app = typer.Typer(help="Beds and their states.", no_args_is_help=True)
patient_app = typer.Typer(help="Admit, transfer and discharge patients.", no_args_is_help=True)
app.add_typer(system_app, name="system")
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")
app.add_typer(bed_app, name="bed")
app.add_typer(patient_app, name="patient")
hl7_app = typer.Typer(
    help="The HL7 v2 feed: replay exports, the quarantine queue.", no_args_is_help=True
)
quarantine_app = typer.Typer(help="Messages that could not be applied.", no_args_is_help=True)
hl7_app.add_typer(quarantine_app, name="quarantine")
app.add_typer(hl7_app, name="hl7")
app.add_typer(notify_app, name="notify")
app.add_typer(report_app, name="report")
app.add_typer(teams_app, name="teams")
app.add_typer(vw_app, name="vw")
app.add_typer(tasks_app, name="tasks")
app.add_typer(opel_app, name="opel")

GRACE_SECONDS = 3  # live streams never end by themselves: do not wait for them at shutdown


# --- serving -------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    mllp_port: Annotated[int, typer.Option(help="HL7 v2 MLLP port (0: off)")] = 2575,
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            help="MQTT broker for device readings, mqtt://host:port (mqtts:// for TLS); "
            "default: WARDWATCH_MQTT_URL, else off"
        ),
    ] = None,
    ingest_workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=64,
            help="worker processes for FHIR Bundles and HL7 v2 batches (PostgreSQL only); "
            "default: WARDWATCH_INGEST_WORKERS, else 0 (in the server process)",
        ),
    ] = None,
) -> None:
    """Run the service (API, live stream, web page, HL7 listener, MQTT readings) on the
    configured database."""
    import uvicorn

    from wardwatch.app import create_app
    from wardwatch.ingest import pool as ingest_pool
    from wardwatch.virtualward.mqtt_broker import Broker

    rt = runtime()
    if mqtt_url:
        rt.settings.mqtt_url = mqtt_url
    out.print(f"WardWatch on http://{host}:{port}  (database: {rt.db.dialect})")
    if mllp_port:
        try:
            tls = rt.settings.mllp_tls()
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="WARDWATCH_MLLP_TLS_*") from None
        how = "" if tls is None else " over TLS"
        if tls is not None and rt.settings.mllp_tls_client_ca is not None:
            how += " (client certificates required)"
        out.print(f"HL7 v2 MLLP listener{how} on {host}:{mllp_port}")
    if rt.settings.mqtt_url:
        try:
            broker = Broker.parse(rt.settings.mqtt_url)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--mqtt-url") from None
        out.print(f"MQTT readings from {broker}, topic {rt.settings.mqtt_topic}")
    if ingest_workers is not None:
        rt.settings.ingest_workers = ingest_workers
    if rt.settings.ingest_workers:
        problem = ingest_pool.refusal(rt)
        if problem:
            raise typer.BadParameter(problem, param_hint="--ingest-workers")
        out.print(
            f"FHIR Bundles and HL7 batches handled in {rt.settings.ingest_workers} "
            "worker process(es)"
        )
    uvicorn.run(
        create_app(rt, mllp_port=mllp_port, mllp_host=host),
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=GRACE_SECONDS,
    )


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 60.0,
    data_dir: Annotated[Path, typer.Option(help="where the demo's SQLite lives")] = Path(
        "wardwatch-demo"
    ),
    keep: Annotated[bool, typer.Option(help="keep an existing demo database")] = False,
) -> None:
    """Start a living example system on SQLite: ~93% occupied, patients coming and going."""
    import uvicorn

    from wardwatch.app import create_app
    from wardwatch.core.clock import ScaledClock, SystemClock
    from wardwatch.demo.run import (
        demo_settings,
        first_acute_site,
        live_loop,
        prepare,
        resume_time,
    )

    if speed <= 0:
        raise typer.BadParameter("speed must be positive")
    if not keep or not (data_dir / "wardwatch.db").exists():
        with out.status("Building the example system (Kent and Medway, 20 sites)..."):
            admitted = prepare(data_dir, SystemClock())
        out.print(f"Loaded the example system and admitted {admitted} patients.")
    clock = ScaledClock(resume_time(data_dir, SystemClock().now()), speed=speed)
    rt = Runtime.build(demo_settings(data_dir, speed=speed), clock=clock)
    _, token = rt.auth.create_token(role="control-centre", name="demo")
    _, cleaner = rt.auth.create_token(role="housekeeping", name="demo-cleaner")
    _, clinician = rt.auth.create_token(role="clinician", name="demo-clinician")
    generator = live_loop(rt, clock)
    generator.start(tick_seconds=1.0)
    team = f"{first_acute_site(rt)}-housekeeping"
    out.print(f"\n[bold]WardWatch demo[/] (time runs x{speed:g})")
    out.print(f"  Open       http://{host}:{port}/#token={token}")
    out.print(f"  Task page  http://{host}:{port}/tasks?team={team}#token={cleaner}")
    out.print(f"  Caseload   http://{host}:{port}/virtual-ward#token={clinician}")
    out.print(f"  Handovers  http://{host}:{port}/handovers#token={token}")
    out.print(f"  Report     http://{host}:{port}/report#token={token}")
    out.print(f"  API docs   http://{host}:{port}/docs")
    out.print(f"  Token      {token}\n")
    try:
        uvicorn.run(
            create_app(rt),
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=GRACE_SECONDS,
        )
    finally:
        generator.stop()


# --- system --------------------------------------------------------------------------------


@system_app.command("load")
def system_load(file: Path) -> None:
    """Load (or update) the system from a YAML file. All or nothing."""
    rt = runtime()
    try:
        result = rt.system.load(load_system_file(file), CLI_ACTOR)
    except WardWatchError as exc:
        raise fail(exc) from None
    out.print(
        f"Loaded system {result.system}: {result.sites_created} sites, "
        f"{result.wards_created} wards, {result.beds_created} beds created; "
        f"{result.sites_updated} sites and {result.wards_updated} wards updated."
    )


@system_app.command("show")
def system_show() -> None:
    """List the sites and their bed counts."""
    rt = runtime()
    try:
        info = rt.system.system_info()
    except WardWatchError as exc:
        raise fail(exc) from None
    table = Table(title=f"{info['name']} ({info['code']})")
    for col in ("code", "name", "kind", "wards", "beds"):
        table.add_column(col)
    for site in rt.system.list_sites():
        table.add_row(site.code, site.name, site.kind, str(site.ward_count), str(site.bed_count))
    out.print(table)


# --- tokens --------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    role: Annotated[
        str,
        typer.Option(
            help="admin, control-centre, ward, housekeeping, porter, "
            "clinician, integration or read-only"
        ),
    ],
    name: Annotated[str, typer.Option(help="who or what will use the token")],
) -> None:
    """Create a token and print it alone on stdout (it is shown only once)."""
    rt = runtime()
    try:
        token_id, token = rt.auth.create_token(role=role, name=name)
    except WardWatchError as exc:
        raise fail(exc) from None
    err.print(f"token {token_id} for {name} ({role}); store it now, it is not shown again")
    sys.stdout.write(token + "\n")


@token_app.command("list")
def token_list() -> None:
    rt = runtime()
    table = Table()
    for col in ("id", "name", "role", "created", "revoked"):
        table.add_column(col)
    for t in rt.auth.list_tokens():
        table.add_row(t["id"], t["name"], t["role"], _when(t["created_at"]), _when(t["revoked_at"]))
    out.print(table)


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    rt = runtime()
    try:
        rt.auth.revoke(token_id)
    except WardWatchError as exc:
        raise fail(exc) from None
    out.print(f"revoked {token_id}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the latest schema."""
    rt = runtime()
    out.print(f"database is up to date ({rt.db.dialect})")


@db_app.command("check")
def db_check(
    repair: Annotated[bool, typer.Option(help="rebuild the bed counters from the beds")] = False,
) -> None:
    """Check that the kept bed counters agree with the beds (and optionally rebuild them)."""
    from wardwatch.capacity import counts

    rt = runtime()
    with rt.db.read() as s:
        drift = counts.drift(s)
    if not drift:
        out.print("bed counters agree with the beds")
        return
    for (ward, state), (kept, real) in sorted(drift.items()):
        err.print(f"ward {ward} {state}: counter {kept}, beds {real}")
    if repair:
        with rt.db.transaction() as tx:
            counts.recount(tx.session)
        out.print("bed counters rebuilt from the beds")
        return
    raise typer.Exit(code=1)


# --- beds and patients ---------------------------------------------------------------------


@bed_app.command("list")
def bed_list(
    site: str | None = None,
    ward: str | None = None,
    state: Annotated[BedState | None, typer.Option(case_sensitive=False)] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    rt = runtime()
    beds = rt.capacity.list_beds(BedFilter(site=site, ward=ward, state=state, limit=1_000_000))
    if as_json:
        _print_json([b.model_dump(mode="json") for b in beds])
        return
    table = Table()
    for col in ("code", "state", "since", "reason"):
        table.add_column(col)
    for b in beds:
        table.add_row(b.code, b.state.value, _when(b.state_since), b.state_reason or "")
    out.print(table)


@bed_app.command("set")
def bed_set(
    code: str,
    state: Annotated[BedState, typer.Argument(case_sensitive=False)],
    reason: str | None = None,
) -> None:
    """Change a bed's state by hand, e.g. ``wardwatch bed set XMT01-AMU-03 blocked --reason
    'infection control'``."""
    rt = runtime()
    try:
        bed = rt.capacity.change_bed_state(_bed_id(rt, code), state, reason, CLI_ACTOR)
    except WardWatchError as exc:
        raise fail(exc) from None
    out.print(f"{bed.code} is now {bed.state.value}")


@patient_app.command("admit")
def patient_admit(
    bed: Annotated[str, typer.Argument(help="bed code")],
    nhs_number: str | None = None,
    local_id: str | None = None,
    sex: str | None = None,
    source: str | None = None,
    expected_discharge: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"])] = None,
) -> None:
    rt = runtime()
    try:
        req = AdmitRequest.model_validate(
            {
                "bed_id": _bed_id(rt, bed),
                "source": source,
                "patient": PatientIn.model_validate(
                    {"nhs_number": nhs_number, "local_id": local_id, "sex": sex}
                ).model_dump(),
                "expected_discharge_date": expected_discharge.date()
                if expected_discharge
                else None,
            }
        )
        stay = rt.capacity.admit(req, CLI_ACTOR)
    except WardWatchError as exc:
        raise fail(exc) from None
    except ValueError as exc:
        raise fail(ValidationFailed(str(exc).splitlines()[-1])) from None
    out.print(f"admitted to {stay.bed_code}: stay {stay.id}")


@patient_app.command("transfer")
def patient_transfer(stay_id: str, bed: Annotated[str, typer.Argument(help="bed code")]) -> None:
    rt = runtime()
    try:
        stay = rt.capacity.transfer(stay_id, TransferRequest(bed_id=_bed_id(rt, bed)), CLI_ACTOR)
    except WardWatchError as exc:
        raise fail(exc) from None
    out.print(f"stay {stay.id} moved to {stay.bed_code}")


@patient_app.command("discharge")
def patient_discharge(
    stay_id: str,
    destination: Annotated[str, typer.Option()] = "usual residence",
    pathway: Annotated[int, typer.Option(min=0, max=3)] = 0,
) -> None:
    rt = runtime()
    try:
        stay = rt.capacity.discharge(
            stay_id, DischargeRequest(destination=destination, pathway=pathway), CLI_ACTOR
        )
    except WardWatchError as exc:
        raise fail(exc) from None
    except ValueError as exc:  # the request itself is invalid (pydantic)
        raise fail(ValidationFailed(str(exc).splitlines()[-1].strip())) from None
    out.print(f"stay {stay.id} discharged from {stay.bed_code}; bed awaits cleaning")


# --- HL7 -----------------------------------------------------------------------------------


#: Messages of a replayed file applied per transaction (each still stands or falls alone).
REPLAY_BATCH = 50


@hl7_app.command("replay")
def hl7_replay(file: Path) -> None:
    """Load a file of HL7 messages (a PAS export) through the feed, in order."""
    from rich.progress import Progress

    from wardwatch.ingest.hl7v2.service import FROM_FILE, split_file

    try:
        messages = list(split_file(file.read_bytes()))
    except OSError as exc:
        raise fail(ValidationFailed(f"cannot read {file}: {exc.strerror}")) from None
    rt = runtime()
    counts: dict[str, int] = {}
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"Replaying {file.name}", total=len(messages))
        source = f"{FROM_FILE}{file.name}"
        for start in range(0, len(messages), REPLAY_BATCH):  # in order, sharing commits
            chunk = messages[start : start + REPLAY_BATCH]
            for handled in rt.hl7.handle_batch([(raw, source) for raw in chunk]):
                counts[handled.status] = counts.get(handled.status, 0) + 1
            progress.advance(task, len(chunk))
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    out.print(f"{len(messages)} messages: {summary or 'none'}")
    if counts.get("quarantined"):
        out.print("see them with: wardwatch hl7 quarantine list")


@hl7_app.command("feeds")
def hl7_feeds(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each sending system (MSH-3|MSH-4), when it was last heard, and whether it is silent."""
    rows = runtime().hl7.feeds.senders()
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"{len(rows)} HL7 senders")
    for col in ("sender", "last heard", "quiet for", "state"):
        table.add_column(col)
    for r in rows:
        state = (
            "retired (a week quiet)"
            if r["retired"]
            else f"SILENT since {_when(r['silent_since'])}"
            if r["silent_since"]
            else "talking"
        )
        table.add_row(r["sender"], _when(r["last_heard_at"]), r["quiet"], state)
    out.print(table)


@quarantine_app.command("list")
def quarantine_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    rt = runtime()
    rows = rt.hl7.list(status="quarantined", limit=100_000)
    if as_json:
        _print_json(rows)
        return
    table = Table(title=f"{len(rows)} quarantined HL7 messages")
    for col in ("id", "received", "type", "control id", "ack", "reason"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["id"],
            _when(r["received_at"]),
            r["type"] or "",
            r["control_id"] or "",
            r["ack_code"],
            r["detail"] or "",
        )
    out.print(table)


@quarantine_app.command("replay")
def quarantine_replay(
    message_id: Annotated[str | None, typer.Argument(help="one message; default: all")] = None,
) -> None:
    """Apply quarantined messages again (after fixing the cause), oldest first."""
    rt = runtime()
    try:
        if message_id:
            result = rt.hl7.replay(message_id, CLI_ACTOR)
            out.print(f"{message_id}: {result['status']} ({result['detail']})")
        else:
            counts = rt.hl7.replay_quarantined(CLI_ACTOR)
            out.print(", ".join(f"{n} {status}" for status, n in counts.items()))
    except WardWatchError as exc:
        raise fail(exc) from None


@quarantine_app.command("discard")
def quarantine_discard(message_id: str, reason: Annotated[str, typer.Option()]) -> None:
    rt = runtime()
    try:
        rt.hl7.discard(message_id, reason, CLI_ACTOR)
    except WardWatchError as exc:
        raise fail(exc) from None
    out.print(f"discarded {message_id}")


# --- reports -------------------------------------------------------------------------------


@app.command()
def occupancy(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Occupancy now, per site and for the system, against the target."""
    rt = runtime()
    snap = rt.occupancy.live()
    if as_json:
        _print_json(snap)
        return
    table = Table(title=f"Occupancy (target {snap['target']:.0%})")
    for col in ("site", "kind", "occupied", "open", "occupancy", "G&A", "available"):
        table.add_column(col, justify="right" if col not in ("site", "kind") else "left")
    for row in [*snap["sites"], {"code": "SYSTEM", "kind": "", **snap["system"]}]:
        table.add_row(
            row["code"],
            row["kind"],
            str(row["occupied"]),
            str(row["open"]),
            _pct(row["occupancy"], row["over_target"]),
            _pct(row["general_acute"]["occupancy"], row["general_acute"]["over_target"]),
            str(row["available"]),
        )
    out.print(table)


@app.command()
def sitrep(
    day: Annotated[
        datetime | None, typer.Option("--date", formats=["%Y-%m-%d"], help="default: today")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    output: Annotated[Path | None, typer.Option(help="file to write (default stdout)")] = None,
) -> None:
    """The daily SitRep-style 08:00 bed snapshot, rebuilt from the event log."""
    if fmt not in ("csv", "json"):
        raise typer.BadParameter("--format must be csv or json")
    rt = runtime()
    when: date = day.date() if day else rt.clock.now().astimezone(rt.occupancy.tz).date()
    try:
        report = rt.occupancy.sitrep(when)
    except WardWatchError as exc:
        raise fail(exc) from None
    text = sitrep_csv(report) if fmt == "csv" else json.dumps(report, indent=2) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


def _bed_id(rt: Runtime, code: str) -> str:
    beds = rt.capacity.list_beds(BedFilter(code=code, limit=1))
    if not beds:
        raise NotFound(f"no bed with code {code!r}")
    return beds[0].id


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else ""


def _pct(value: float | None, over: bool | None) -> str:
    if value is None:
        return "—"
    text = f"{value:.1%}"
    return f"[red]{text}[/]" if over else text


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    app()
