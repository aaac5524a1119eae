"""Internal to mpkg and mpkg_builder (see mpkg._internal): the read side of OCI registries and the
local store (spec/registry.md). Only :mod:`.oci` and :mod:`.transport` need httpx, the
``mpkg[registry]`` extra; everything else imports without it."""
