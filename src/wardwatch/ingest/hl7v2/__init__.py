"""HL7 v2 ADT over MLLP: framing, parsing, acknowledgement after commit, quarantine."""
