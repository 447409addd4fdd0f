from app.codec.errors import CodecError


def test_codec_error_is_a_value_error_naming_its_field():
    error = CodecError("vdp.filter.count", "a VSI TLV needs at least one filter entry")
    assert isinstance(error, ValueError)
    assert error.field == "vdp.filter.count"
    assert str(error) == "vdp.filter.count: a VSI TLV needs at least one filter entry"
