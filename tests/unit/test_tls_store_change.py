"""Kafka's check of a key store replaced at run time: same subject and subjectAltNames."""

from odradek.broker.tls import keystore_change_error

OLD = {"subject": ((("commonName", "localhost"),),),
       "subjectAltName": (("IP Address", "127.0.0.1"), ("DNS", "localhost"))}


def test_a_renewed_certificate_with_the_same_names_passes():
    renewed = {**OLD, "serialNumber": "02", "subjectAltName": tuple(reversed(OLD["subjectAltName"]))}
    assert keystore_change_error(OLD, renewed, False, False) is None


def test_another_subject_is_refused_in_kafkas_words_unless_allowed():
    other = {**OLD, "subject": ((("organizationName", "acme"),), (("commonName", "rotated"),))}
    assert keystore_change_error(OLD, other, False, False) == (
        "Keystore DistinguishedName does not match:  existing={alias=kafka, DN=CN=localhost}, "
        "new={alias=kafka, DN=CN=rotated, O=acme}")
    assert keystore_change_error(OLD, other, True, False) is None


def test_other_subject_alt_names_are_refused_unless_allowed():
    fewer = {**OLD, "subjectAltName": (("DNS", "localhost"),)}
    assert keystore_change_error(OLD, fewer, False, False).startswith("Keystore SubjectAltNames do not match")
    assert keystore_change_error(OLD, fewer, False, True) is None
