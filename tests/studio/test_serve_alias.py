"""`oar serve name@alias`: the model repository resolves the alias in the hub and loads that version."""

from __future__ import annotations

import pytest

from oar._core.errors import InvalidInputError, ModelNotFoundError
from oar.hub import Hub
from oar.serve.repository import DirectorySource, HubSource, ModelRepository

pytestmark = pytest.mark.timeout(120)


def test_the_repository_loads_the_version_an_alias_points_at(tmp_path, numeric_package):
    hub = Hub(home=tmp_path / "home")
    hub.register_model(numeric_package, "head")
    hub.register_model(numeric_package, "head")
    hub.aliases.set("head", "production", 1, actor="alice")
    repository = ModelRepository(HubSource(hub))
    loaded = repository.load_initial(["head@production"])
    assert [(m.name, m.version) for m in loaded] == [("head", 1)]
    with pytest.raises(ModelNotFoundError, match="no alias 'staging'; aliases: production"):
        ModelRepository(HubSource(hub)).load_initial(["head@staging"])
    hub.close()


def test_a_bad_reference_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(InvalidInputError, match="bad model"):
        ModelRepository(DirectorySource(tmp_path)).load_initial(["head@"])
