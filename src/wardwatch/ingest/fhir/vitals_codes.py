"""The codes the FHIR vital-signs door speaks: code systems, SNOMED CT and LOINC maps, units.

One table for the three directions of :mod:`wardwatch.ingest.fhir.observations`: reading
Observations in (:mod:`.vitals_translate`), writing NEWS2 scores and readings out
(:mod:`.vitals_out`) and searching, so that they cannot disagree about a code.
"""

from __future__ import annotations

import re

from wardwatch.ingest.fhir import resources as fr
from wardwatch.virtualward.readings import CONSCIOUSNESS_LOINC

LOINC_SYSTEM = "http://loinc.org"
SNOMED_SYSTEM = "http://snomed.info/sct"
UCUM_SYSTEM = "http://unitsofmeasure.org"
ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
CODE_SYSTEMS = f"{fr.BASE}/fhir/CodeSystem"
NEWS2_SYSTEM = f"{CODE_SYSTEMS}/news2"
RISK_SYSTEM = f"{CODE_SYSTEMS}/news2-risk"
DEVICE_SYSTEM = f"{fr.BASE}/Id/device-serial"
EXT_VALUE_USED = f"{fr.SD}/news2-value-used"
EXT_OLDEST = f"{fr.SD}/news2-oldest-reading"

NEWS2_CODE = "1104051000000101"
NEWS2_DISPLAY = "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score"
_RCP = "Royal College of Physicians National Early Warning Score 2 - "
#: SNOMED CT (UK edition) code of each parameter's score; SpO2 by scale.
PARAMETER_CODES: dict[str, tuple[str, str]] = {
    "respiration_rate": ("1104301000000104", _RCP + "respiration rate score"),
    "spo2:1": ("1104311000000102", _RCP + "oxygen saturation scale 1 score"),
    "spo2:2": ("1104321000000108", _RCP + "oxygen saturation scale 2 score"),
    "air_or_oxygen": ("1104331000000105", _RCP + "air or oxygen score"),
    "systolic_bp": ("1104341000000101", _RCP + "systolic blood pressure score"),
    "pulse": ("1104351000000103", _RCP + "pulse score"),
    "consciousness": ("1104361000000100", _RCP + "consciousness score"),
    "temperature": ("1104371000000107", _RCP + "temperature score"),
}
RISK_DISPLAY = {
    "low": "Low",
    "low-medium": "Low-medium (a single parameter scored 3)",
    "medium": "Medium",
    "high": "High",
    "unknown": "Unknown: incomplete observation set, never low",
}
#: "ACVPU scale score" (observable entity): accepted as Observation.code, like LOINC 67775-7.
ACVPU_SNOMED_CODE = "1104441000000107"
#: SNOMED CT findings for each ACVPU level (the HL7 UK Care Connect ACVPU value set).
ACVPU_SNOMED = {
    "248234008": "A",  # mentally alert
    "130987000": "C",  # acute confusion
    "300202002": "V",  # responds to voice
    "450847001": "P",  # responds to pain
    "422768004": "U",  # unresponsive
}
SNOMED_OF_ACVPU = {letter: code for code, letter in ACVPU_SNOMED.items()}
ACVPU_WORDS = {
    "alert": "A",
    "confusion": "C",
    "new confusion": "C",
    "voice": "V",
    "pain": "P",
    "unresponsive": "U",
}
#: Our parameter -> (LOINC code, display) used when a stored reading is read back.
LOINC_OF = {
    "pulse": ("8867-4", "Heart rate"),
    "respiration_rate": ("9279-1", "Respiratory rate"),
    "spo2": ("2708-6", "Oxygen saturation in Arterial blood"),
    "temperature": ("8310-5", "Body temperature"),
    "systolic_bp": ("8480-6", "Systolic blood pressure"),
    "diastolic_bp": ("8462-4", "Diastolic blood pressure"),
    "oxygen_flow": ("3151-8", "Inhaled oxygen flow rate"),
    "oxygen_concentration": ("3150-0", "Inhaled oxygen concentration"),
    "consciousness": (CONSCIOUSNESS_LOINC, "Level of responsiveness"),
}
#: Our unit of each parameter: (UCUM code, human unit).
UNIT_OF = {
    "pulse": ("/min", "beats/minute"),
    "respiration_rate": ("/min", "breaths/minute"),
    "spo2": ("%", "%"),
    "temperature": ("Cel", "°C"),
    "systolic_bp": ("mm[Hg]", "mmHg"),
    "diastolic_bp": ("mm[Hg]", "mmHg"),
    "oxygen_flow": ("L/min", "L/min"),
    "oxygen_concentration": ("%", "%"),
}
BP_PANEL, VITALS_PANEL = "85354-9", "85353-1"
#: Our Observation ids: ``news2-<score id>``, ``vs-<reading id>``, ``vp-<first reading id>``.
OUR_ID = re.compile(r"^(news2|vs|vp)-([0-9]{1,18})$")
