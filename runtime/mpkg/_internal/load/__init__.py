"""Internal to mpkg and mpkg_builder (see mpkg._internal)."""
