"""Code systems the FHIR export uses: CPT per modality/technique, SNOMED CT body sites, LOINC.

CPT codes follow /work/shared/CLINICAL-REFERENCE.md ("Billing") and issue #6: 97124 massage,
97140 manual therapy (myofascial release, trigger point, manual lymphatic drainage), 97035
ultrasound, 97032 attended stimulation, 97014 unattended stimulation (G0283 is the Medicare
HCPCS code for the same service; not emitted). Body-site codes are SNOMED CT "body structure"
concepts as listed in DICOM PS3.16 CID 4031 (Common Anatomic Regions) and the HL7 FHIR
body-site value set; regions without an exact concept there are exported as text only.
"""

from __future__ import annotations

from typing import Final

CPT_SYSTEM: Final = "http://www.ama-assn.org/go/cpt"
SNOMED_SYSTEM: Final = "http://snomed.info/sct"
LOINC_SYSTEM: Final = "http://loinc.org"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"

# (code, display)
CPT_MASSAGE: Final = ("97124", "Massage")
CPT_MANUAL_THERAPY: Final = ("97140", "Manual therapy techniques")
CPT_ULTRASOUND: Final = ("97035", "Ultrasound therapy")
CPT_ESTIM_ATTENDED: Final = ("97032", "Electrical stimulation, attended")
CPT_ESTIM_UNATTENDED: Final = ("97014", "Electrical stimulation, unattended")

# Technique id (config/vocabulary.toml) -> CPT. Massage strokes and deep-tissue/sports massage
# are 97124; myofascial release, trigger point and lymphatic drainage are 97140 (reference).
# Friction is a massage stroke here (97124); a clinic billing it as manual therapy edits this.
TECHNIQUE_CPT: Final[dict[str, tuple[str, str]]] = {
    "deep_tissue": CPT_MASSAGE,
    "sports_massage": CPT_MASSAGE,
    "effleurage": CPT_MASSAGE,
    "petrissage": CPT_MASSAGE,
    "friction": CPT_MASSAGE,
    "trigger_point": CPT_MANUAL_THERAPY,
    "myofascial_release": CPT_MANUAL_THERAPY,
    "lymphatic_drainage": CPT_MANUAL_THERAPY,
}

# Region id (config/vocabulary.toml) -> SNOMED CT body structure (code, display).
# Not coded (text only), no exact concept checked: anterior_neck, posterior_neck, upper_back,
# anterior_thorax, lumbar (122496007 is the lumbar *spine*, not the region of the back),
# wrist_hand and ankle_foot (two regions each).
BODY_SITE_SNOMED: Final[dict[str, tuple[str, str]]] = {
    "head": ("69536005", "Head structure"),
    "face": ("89545001", "Face structure"),
    "eye": ("81745001", "Eye structure"),
    "shoulder": ("16982005", "Shoulder region structure"),
    "abdomen": ("113345001", "Abdominal structure"),
    "pelvis": ("12921003", "Pelvic structure"),
    "upper_arm": ("40983000", "Upper arm structure"),
    "elbow": ("127949000", "Elbow region structure"),
    "forearm": ("14975008", "Forearm structure"),
    "hip": ("29836001", "Hip region structure"),
    "thigh": ("68367000", "Thigh structure"),
    "knee": ("72696002", "Knee region structure"),
    "calf": ("53840002", "Calf of leg structure"),
}

# LOINC 72514-3: Pain severity - 0-10 verbal numeric rating [Score] - Reported (NPRS).
LOINC_PAIN_NPRS: Final = (
    "72514-3",
    "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
)

# Record units (as stream descriptors write them) -> UCUM code.
UCUM: Final[dict[str, str]] = {
    "W/cm2": "W/cm2",
    "W": "W",
    "J": "J",
    "J/cm2": "J/cm2",
    "Cel": "Cel",
    "%": "%",
    "s": "s",
    "mA": "mA",
    "Hz": "Hz",
    "kHz": "kHz",
    "us": "us",
    "ohm": "Ohm",
}


def technique_label(technique: str) -> str:
    """A readable label for a technique id (the vocabulary's labels are its ids in words)."""
    return technique.replace("_", " ").capitalize()
