"""VSIID text forms read back: what events and REST show can be looked up again."""

from hypothesis import given
from hypothesis import strategies as st

from app.codec.vdp import VsiId, VsiIdFormat
from app.vdp.describe import vsi_id_from_text, vsi_id_text


@given(st.sampled_from(list(VsiIdFormat)), st.binary(min_size=16, max_size=16))
def test_every_vsi_id_reads_back_from_its_text(fmt, octets):
    vsi_id = VsiId(fmt, octets)
    assert vsi_id_from_text(vsi_id_text(vsi_id)) == vsi_id
    assert vsi_id_from_text(vsi_id_text(vsi_id).upper()) in (vsi_id, None)


def test_texts_that_name_no_vsi_id():
    for text in ("", "vm-1", "uuid:00", "10.0.0", "52:54:00:00:00", "a1b2c3d4-0000-zzzz"):
        assert vsi_id_from_text(text) is None
