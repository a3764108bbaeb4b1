#!/usr/bin/env python3
"""Generate examples/kent-medway.yaml deterministically.

Standard library only; the YAML is written as plain text.  Run from anywhere:

    python examples/generate_example.py

All data below is FICTIONAL example data for demonstrating WardWatch.  Site
names borrow real Kent & Medway place names and approximate coordinates so the
map looks familiar, but codes, ward names, bed numbers and layouts are invented
and do not describe any real organisation's bed base.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent / "kent-medway.yaml"

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ()'.,&/-]*$")


def q(s: str) -> str:
    """Plain YAML scalar when safe, else a JSON (= YAML double-quoted) string."""
    if SAFE.match(s) and s.lower() not in {"yes", "no", "true", "false", "null", "on", "off", "y", "n"}:
        return s
    return json.dumps(s)


def w(abbr, name, specialty, beds, side=None, sex="mixed", staffed=None,
      kind="core", age="adult", ga=True):
    return dict(abbr=abbr, name=name, specialty=specialty, beds=beds, side=side,
                sex=sex, staffed=staffed, kind=kind, age=age, ga=ga)


def nga(*a, **k):
    """Ward outside the general & acute (G&A) bed base."""
    k["ga"] = False
    return w(*a, **k)


def paed(*a, **k):
    k["age"] = "paediatric"
    return w(*a, **k)


def esc(*a, **k):
    k["kind"] = "escalation"
    return w(*a, **k)


SYSTEM = dict(code="KMICS",
              name="Kent and Medway Integrated Care System (example)",
              occupancy_target=0.92)

SITES = []

# --- Acute hospitals ------------------------------------------------------

SITES.append(dict(
    code="XMT01", name="Maidstone Hospital (example)", kind="acute",
    lat=51.2745, lon=0.4868,
    wards=[
        w("AMU", "Acute Medical Unit", "acute medicine", 32, 4),
        w("SAU", "Surgical Assessment Unit", "general surgery", 14, 2),
        w("LEN", "Len Ward", "general medicine", 28, 4),
        w("BLT", "Beult Ward", "general medicine", 26, 4, sex="male"),
        w("TSE", "Teise Ward", "elderly care", 30, 4),
        w("EDN", "Eden Ward", "elderly care", 28, 4, sex="female"),
        w("BRN", "Bourne Ward", "elderly care", 26, 3, staffed=22),
        w("DRT", "Darent Ward", "respiratory medicine", 26, 6),
        w("CCU", "Coronary Care Unit", "cardiology", 10, 2),
        w("LSE", "Loose Ward", "cardiology", 22, 3),
        w("HASU", "Hyper-acute and Acute Stroke Unit", "stroke medicine", 28, 4),
        w("BXL", "Boxley Ward", "gastroenterology", 24, 4),
        w("AYL", "Aylesford Ward", "general surgery", 26, 4),
        w("LDS", "Leeds Ward", "colorectal surgery", 22, 4),
        w("DTL", "Detling Ward", "urology", 18, 3),
        w("HBN", "Hollingbourne Ward", "trauma and orthopaedics", 28, 4),
        w("LTN", "Linton Ward", "gynaecology", 14, 2, sex="female"),
        paed("BLU", "Bluebell Ward", "paediatrics", 16, 6),
        w("CHT", "Chart Ward", "clinical oncology", 24, 8),
        w("SUT", "Sutton Ward", "haematology", 16, 8),
        nga("MAT", "Maternity Ward", "maternity", 22, 4, sex="female"),
        nga("ICU", "Intensive Care Unit", "critical care", 12, 12),
        esc("ORC", "Orchard Ward (escalation)", "general medicine", 18, 2, staffed=0),
    ]))

SITES.append(dict(
    code="XMW01", name="Medway Maritime Hospital (example)", kind="acute",
    lat=51.3797, lon=0.5450,
    wards=[
        w("AMU", "Acute Medical Unit", "acute medicine", 36, 4),
        w("AFU", "Acute Frailty Unit", "elderly care", 20, 2),
        w("SAU", "Surgical Assessment Unit", "general surgery", 18, 2),
        w("UPN", "Upnor Ward", "general medicine", 28, 4, sex="male"),
        w("COL", "Cooling Ward", "general medicine", 28, 4, sex="female"),
        w("LUL", "Lullingstone Ward", "general medicine", 24, 4),
        w("ARE", "Arethusa Ward", "elderly care", 30, 4),
        w("VIC", "Victory Ward", "elderly care", 30, 4),
        w("TEM", "Temeraire Ward", "elderly care", 28, 4, sex="female"),
        w("END", "Endeavour Ward", "elderly care", 26, 3, staffed=22),
        w("AJX", "Ajax Ward", "respiratory medicine", 30, 6),
        w("CCU", "Coronary Care Unit", "cardiology", 14, 2),
        w("VAN", "Vanguard Ward", "cardiology", 24, 3),
        w("ACH", "Achilles Stroke Unit", "stroke medicine", 26, 4),
        w("RES", "Resolution Ward", "gastroenterology", 28, 4),
        w("DIS", "Discovery Ward", "diabetes and endocrinology", 22, 3),
        w("INV", "Invincible Ward", "general surgery", 28, 4),
        w("DRD", "Dreadnought Ward", "colorectal surgery", 24, 4),
        w("MER", "Mermaid Ward", "urology", 20, 3),
        w("BEL", "Bellerophon Ward", "trauma and orthopaedics", 30, 4),
        w("UNI", "Unicorn Ward", "trauma and orthopaedics", 24, 3),
        w("PEL", "Pelican Ward", "gynaecology", 16, 2, sex="female"),
        paed("PAU", "Paediatric Assessment Unit", "paediatrics", 10, 2),
        paed("DOL", "Dolphin Ward", "paediatrics", 24, 8),
        nga("NNU", "Neonatal Unit", "neonatology", 20, 4, age="paediatric"),
        nga("LHS", "Lighthouse Ward", "maternity", 30, 6, sex="female"),
        nga("LAB", "Labour Ward", "maternity", 12, 12, sex="female"),
        nga("ICU", "Intensive Care Unit", "critical care", 16, 6),
        esc("HOO", "Hoo Ward (escalation)", "general medicine", 22, 2, staffed=0),
        esc("SHP", "Sheppey Ward (escalation)", "elderly care", 14, 1, staffed=8),
    ]))

SITES.append(dict(
    code="XEK01", name="Kent and Canterbury Hospital (example)", kind="acute",
    lat=51.2660, lon=1.0870,
    wards=[
        w("AMU", "Acute Medical Unit", "acute medicine", 36, 4),
        w("AFU", "Acute Frailty Unit", "elderly care", 24, 2),
        w("SAU", "Surgical Assessment Unit", "general surgery", 20, 2),
        w("CHM", "Chartham Ward", "general medicine", 28, 4),
        w("FOR", "Fordwich Ward", "general medicine", 28, 4, sex="male"),
        w("STY", "Sturry Ward", "general medicine", 28, 4, sex="female"),
        w("BAR", "Barham Ward", "general medicine", 26, 4),
        w("WNG", "Wingham Ward", "elderly care", 30, 4),
        w("LTB", "Littlebourne Ward", "elderly care", 30, 4, sex="female"),
        w("BKB", "Bekesbourne Ward", "elderly care", 30, 4, sex="male"),
        w("CHL", "Chilham Ward", "elderly care", 28, 4),
        w("PTH", "Petham Ward", "elderly care", 24, 3, staffed=20),
        w("BLN", "Blean Ward", "respiratory medicine", 30, 6),
        w("RSU", "Respiratory Support Unit", "respiratory medicine", 10, 4),
        w("CCU", "Coronary Care Unit", "cardiology", 16, 2),
        w("ICK", "Ickham Ward", "cardiology", 28, 3),
        w("ADI", "Adisham Stroke Unit", "stroke medicine", 32, 4),
        w("PTX", "Patrixbourne Ward", "gastroenterology", 28, 4),
        w("STD", "Stodmarsh Ward", "renal medicine", 26, 6),
        w("ELH", "Elham Ward", "renal medicine", 18, 8),
        w("LYM", "Lyminge Ward", "general surgery", 28, 4),
        w("STL", "Stelling Ward", "upper gi surgery", 22, 3),
        w("WKB", "Wickhambreaux Ward", "colorectal surgery", 26, 4),
        w("NAK", "Nackington Ward", "urology", 22, 3),
        w("BSB", "Bishopsbourne Ward", "vascular surgery", 20, 3),
        w("BRG", "Bridge Ward", "trauma and orthopaedics", 30, 4),
        w("WMW", "Womenswould Ward", "trauma and orthopaedics", 30, 4),
        w("SEL", "Selling Ward", "elective orthopaedics", 24, 4),
        w("WLT", "Waltham Ward", "gynaecology", 18, 2, sex="female"),
        paed("RBN", "Robin Ward", "paediatrics", 22, 8),
        nga("STM", "St Martin's Ward", "maternity", 28, 6, sex="female"),
        nga("LAB", "Labour Ward", "maternity", 12, 12, sex="female"),
        nga("ICU", "Intensive Care Unit", "critical care", 16, 6),
        nga("HDU", "High Dependency Unit", "critical care", 10, 4),
        esc("DUR", "Durovernum Ward (escalation)", "general medicine", 24, 2, staffed=0),
        esc("DAN", "Dane John Ward (escalation)", "elderly care", 18, 2, staffed=18),
    ]))

# --- Community hospitals ----------------------------------------------------

SITES.append(dict(
    code="XKC01", name="Sevenoaks Community Hospital (example)", kind="community",
    lat=51.2820, lon=0.1930,
    wards=[
        nga("CED", "Cedar Ward", "rehabilitation", 24, 4),
        nga("OAK", "Oak Ward", "intermediate care", 22, 4, staffed=20),
    ]))

SITES.append(dict(
    code="XKC02", name="Herne Bay Community Hospital (example)", kind="community",
    lat=51.3690, lon=1.1290,
    wards=[
        nga("HER", "Heron Ward", "rehabilitation", 28, 4),
        nga("KGF", "Kingfisher Ward", "intermediate care", 26, 4),
        nga("REC", "Reculver Ward", "intermediate care", 12, 2),
    ]))

# --- Care homes ---------------------------------------------------------------
# (code, name, lat, lon, [(abbr, unit name, specialty, beds, side_rooms)])
CARE_HOMES = [
    ("XCH01", "Oakwood House Nursing Home (example)", 51.1465, 0.8750,
     [("NUR", "Nursing Unit", "nursing care", 48, 48)]),
    ("XCH02", "The Orchards Residential Home (example)", 51.3150, 0.8910,
     [("RES", "Residential Unit", "residential care", 32, 32)]),
    ("XCH03", "Medway View Care Home (example)", 51.3880, 0.5060,
     [("NUR", "Riverside Unit", "nursing care", 34, 34),
      ("RES", "Castle Unit", "residential care", 30, 30)]),
    ("XCH04", "Harbour Lodge Nursing Home (example)", 51.0810, 1.1660,
     [("NUR", "Nursing Unit", "nursing care", 40, 40)]),
    ("XCH05", "Greensand Court Care Home (example)", 51.2700, 0.1900,
     [("RES", "Residential Unit", "residential care", 26, 26)]),
    ("XCH06", "White Cliffs Nursing Home (example)", 51.1290, 1.3080,
     [("NUR", "Nursing Unit", "nursing care", 44, 44)]),
    ("XCH07", "Thanet Gardens Care Home (example)", 51.3870, 1.3800,
     [("NUR", "Foreland Unit", "nursing care", 32, 32),
      ("RES", "Dreamland Unit", "residential care", 26, 26)]),
    ("XCH08", "Pegwell Lodge (example)", 51.3350, 1.4190,
     [("RES", "Residential Unit", "residential care", 22, 22)]),
    ("XCH09", "Swale House Nursing Home (example)", 51.3400, 0.7350,
     [("NUR", "Nursing Unit", "nursing care", 36, 36)]),
    ("XCH10", "The Pantiles Care Home (example)", 51.1320, 0.2630,
     [("RES", "Residential Unit", "residential care", 30, 30)]),
    ("XCH11", "Darent Valley Lodge (example)", 51.4440, 0.2190,
     [("NUR", "Nursing Unit", "nursing care", 52, 52)]),
    ("XCH12", "Riverview Care Home (example)", 51.4410, 0.3700,
     [("RES", "Residential Unit", "residential care", 28, 28)]),
    ("XCH13", "Tankerton Court (example)", 51.3600, 1.0400,
     [("RES", "Residential Unit", "residential care", 24, 24)]),
    ("XCH14", "Weald Lodge Nursing Home (example)", 51.1950, 0.2750,
     [("NUR", "Nursing Unit", "nursing care", 40, 40)]),
]

for code, name, lat, lon, units in CARE_HOMES:
    SITES.append(dict(
        code=code, name=name, kind="care_home", lat=lat, lon=lon,
        wards=[nga(a, n, s, b, side) for a, n, s, b, side in units]))

# --- Virtual wards --------------------------------------------------------------

SITES.append(dict(
    code="XVW01", name="Kent and Medway Virtual Ward Service (example)",
    kind="virtual_ward", lat=51.2760, lon=0.4020,
    wards=[
        nga("FRL", "Frailty Virtual Ward", "frailty", 60),
        nga("RSP", "Respiratory Virtual Ward", "respiratory medicine", 40),
        nga("HF", "Heart Failure Virtual Ward", "heart failure", 20),
    ]))


HEADER = """\
# =============================================================================
# WardWatch example system: Kent and Medway (EXAMPLE DATA ONLY)
#
# This file is FICTIONAL example data for demonstrating WardWatch. It is NOT a
# real bed base and must not be used for operational decisions. Site names and
# coordinates borrow real Kent & Medway towns so the map looks familiar, but all
# organisation/site codes (X-prefixed), ward names, bed numbers, staffing and
# side-room counts are invented.
#
# Generated by examples/generate_example.py - edit that script and re-run it
# rather than editing this file by hand.
# =============================================================================
"""


def site_total(site):
    return sum(wd["beds"] for wd in site["wards"])


def render() -> str:
    out = [HEADER, "system:",
           f"  code: {q(SYSTEM['code'])}",
           f"  name: {q(SYSTEM['name'])}",
           f"  occupancy_target: {SYSTEM['occupancy_target']}",
           "",
           f"# {len(SITES)} sites, {sum(site_total(s) for s in SITES)} beds/places in total",
           "sites:"]
    for s in SITES:
        total = site_total(s)
        staffed = sum(wd["beds"] if wd["staffed"] is None else wd["staffed"]
                      for wd in s["wards"])
        out.append("")
        out.append(f"  # {s['name']}: {total} beds in total "
                   f"({staffed} staffed at start), {len(s['wards'])} ward(s)")
        out.append(f"  - code: {q(s['code'])}")
        out.append(f"    name: {q(s['name'])}")
        out.append(f"    kind: {s['kind']}")
        out.append(f"    lat: {s['lat']:.4f}")
        out.append(f"    lon: {s['lon']:.4f}")
        out.append("    wards:")
        for wd in s["wards"]:
            out.append(f"      - code: {q(s['code'] + '-' + wd['abbr'])}")
            out.append(f"        name: {q(wd['name'])}")
            out.append(f"        specialty: {q(wd['specialty'])}")
            out.append(f"        kind: {wd['kind']}")
            out.append(f"        age_group: {wd['age']}")
            out.append(f"        general_acute: {'true' if wd['ga'] else 'false'}")
            out.append(f"        sex_policy: {wd['sex']}")
            out.append(f"        beds: {wd['beds']}")
            if wd["staffed"] is not None:
                out.append(f"        staffed_beds: {wd['staffed']}")
            if wd["side"] is not None:
                out.append(f"        side_rooms: {wd['side']}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    for s in SITES:
        print(f"{s['code']:6} {s['kind']:13} {site_total(s):4}  {s['name']}")
    print(f"total {sum(site_total(s) for s in SITES)}")
